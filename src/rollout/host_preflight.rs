//! One host's preflight: everything that can be known before anything changes — its
//! templates rendered, every file it will change read and its edits computed, every program
//! its commands need found — so a run changes no host unless every target passed this.
//! (Reached as `host::preflight`, beside the change steps it prepares for.)

use super::host::{template_ctx, FileChange, Prepared};
use crate::config::playbook::Strategy;
use crate::config::{Host, Playbook};
use crate::edit::render_command;
use crate::edit::spec::EditSpec;
use crate::edit::template::{render, TemplateCtx};
use crate::ssh::{quote::join, sha256_hex, Connection, RemoteFile};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn first_word(cmd: &str) -> Option<&str> {
    cmd.split_whitespace().find(|w| !w.contains('='))
}

/// Everything that can be known without changing anything: render templates, read every
/// file, compute every edit, check the apply/health/log commands exist.
pub async fn preflight(conn: Arc<Connection>, host: &Host, pb: &Playbook, base: &Path) -> Result<Prepared, String> {
    let ctx = template_ctx(host);
    let cmds = render_commands(pb, &ctx)?;
    let by_path = edits_by_path(pb, &ctx)?;
    let blue_green = blue_green_slots(&conn, pb, &ctx).await?;
    let mut files = Vec::new();
    for (path, specs) in by_path {
        let before = read_before(&conn, &path, blue_green.as_ref(), pb.follow_links).await?;
        files.push(compute(path, &specs, before, &ctx, base)?);
    }
    check_programs(&conn, &cmds).await?;
    let before_hooks = render_hooks(&ctx, "before", &pb.hooks.before)?;
    let after_hooks = render_hooks(&ctx, "after", &pb.hooks.after)?;
    let on_revert = render_hooks(&ctx, "on_revert", &pb.hooks.on_revert)?;
    Ok(Prepared {
        before_hooks,
        after_hooks,
        on_revert,
        name: host.name.clone(),
        conn,
        ctx,
        files,
        apply: cmds.apply,
        health: cmds.health,
        log_command: cmds.log_command,
        blue_green,
    })
}

/// Render one playbook template for a host; an error names the setting it came from.
fn rendered(ctx: &TemplateCtx, what: &str, t: &str) -> Result<String, String> {
    render(t, ctx).map_err(|e| format!("{what}: {e}"))
}

/// A host's apply, health and log commands, rendered.
struct Commands {
    apply: Option<String>,
    health: Option<String>,
    log_command: Option<String>,
}

/// Render a command template for a host: values shell-quoted where they land (unless
/// `| raw`); an error names the setting it came from.
fn rendered_command(ctx: &TemplateCtx, what: &str, t: &str) -> Result<String, String> {
    render_command(t, ctx).map_err(|e| format!("{what}: {e}"))
}

/// Render the apply, health and log commands (a watched log file becomes a `tail -F`).
/// Commands: values shell-quoted; paths and file contents: as they are.
fn render_commands(pb: &Playbook, ctx: &TemplateCtx) -> Result<Commands, String> {
    let r = |what: &str, t: &str| rendered(ctx, what, t);
    let rc = |what: &str, t: &str| rendered_command(ctx, what, t);
    let apply = pb
        .apply
        .command
        .as_deref()
        .map(|c| rc("apply.command", c))
        .transpose()?;
    let health = pb.apply.health.as_deref().map(|c| rc("apply.health", c)).transpose()?;
    let log_command = match pb.watch.as_ref().and_then(|w| w.log.as_ref()) {
        Some(l) => match (&l.file, &l.command) {
            (Some(f), _) => Some(join(["exec", "tail", "-n0", "-F", "--", &r("watch.log.file", f)?])),
            (None, Some(c)) => Some(rc("watch.log.command", c)?),
            _ => None,
        },
        None => None,
    };
    Ok(Commands {
        apply,
        health,
        log_command,
    })
}

/// Group edits by rendered path, keeping order: several edits to one file apply in turn.
fn edits_by_path<'a>(pb: &'a Playbook, ctx: &TemplateCtx) -> Result<Vec<(String, Vec<&'a EditSpec>)>, String> {
    let mut by_path: Vec<(String, Vec<&EditSpec>)> = Vec::new();
    for (i, e) in pb.edits.iter().enumerate() {
        let p = rendered(ctx, &format!("edit[{i}].path"), &e.path)?;
        match by_path.iter_mut().find(|(q, _)| *q == p) {
            Some((_, v)) => v.push(e),
            None => by_path.push((p, vec![e])),
        }
    }
    Ok(by_path)
}

/// With `strategy = "blue_green"`, the host's link and slots as they are now.
async fn blue_green_slots(
    conn: &Connection,
    pb: &Playbook,
    ctx: &TemplateCtx,
) -> Result<Option<super::blue_green::BlueGreenHost>, String> {
    Ok(match (&pb.rollout.strategy, &pb.rollout.blue_green) {
        (Strategy::BlueGreen, Some(spec)) => {
            let link = rendered(ctx, "rollout.blue_green.link", &spec.link)?;
            let a = rendered(ctx, "rollout.blue_green.slots[0]", &spec.slots[0])?;
            let b = rendered(ctx, "rollout.blue_green.slots[1]", &spec.slots[1])?;
            Some(super::blue_green::inspect(conn, &link, [&a, &b]).await?)
        }
        _ => None,
    })
}

/// Read the file an edit starts from (in the live slot, with blue/green) and check that the
/// change can be written where it will go.
async fn read_before(
    conn: &Connection,
    path: &str,
    blue_green: Option<&super::blue_green::BlueGreenHost>,
    follow_links: bool,
) -> Result<Option<RemoteFile>, String> {
    Ok(match blue_green {
        Some(bg) => {
            let live = bg.in_slot(path, &bg.live).ok_or_else(|| {
                format!(
                    "{path} is not below the link {}: with strategy \"blue_green\" every edit names its file through the link",
                    bg.link
                )
            })?;
            let before = conn.read_file(&live).await.map_err(|e| format!("read {live}: {e}"))?;
            super::blue_green::check_dir(conn, &live).await?;
            before
        }
        None => {
            let before = conn.read_file(path).await.map_err(|e| format!("read {path}: {e}"))?;
            conn.check_writable(path, follow_links).await.map_err(|e| match e {
                crate::ssh::SshError::Remote { stderr, .. } => stderr,
                other => format!("{path}: {other}"),
            })?;
            before
        }
    })
}

/// Apply a file's edits, in order, to what it holds now.
fn compute(
    path: String,
    specs: &[&EditSpec],
    before: Option<RemoteFile>,
    ctx: &TemplateCtx,
    base: &Path,
) -> Result<FileChange, String> {
    let out = crate::edit::compute_all(
        specs.iter().copied(),
        before.as_ref().map(|b| b.bytes.as_slice()),
        ctx,
        base,
    )
    .map_err(|e| {
        // Most edit errors already start with the path; say it once.
        let msg = e.to_string();
        if msg.starts_with(&format!("{path}:")) {
            msg
        } else {
            format!("{path}: {msg}")
        }
    })?;
    let after = out.after;
    let create_mode = out.create_mode;
    Ok(FileChange {
        after_sha: sha256_hex(&after),
        path,
        before,
        after,
        create_mode,
    })
}

/// Is each command's program present? (`sh -c` builtins like `true` are found too.)
async fn check_programs(conn: &Connection, cmds: &Commands) -> Result<(), String> {
    let mut progs: Vec<&str> = Vec::new();
    for c in [&cmds.apply, &cmds.health, &cmds.log_command].into_iter().flatten() {
        if let Some(w) = first_word(c).filter(|w| *w != "exec") {
            progs.push(w);
        }
    }
    if let Some(w) = cmds
        .log_command
        .as_deref()
        .and_then(|c| c.strip_prefix("exec "))
        .and_then(first_word)
    {
        progs.push(w);
    }
    for p in progs {
        let out = conn
            .run(
                &format!("{} >/dev/null", join(["command", "-v", p])),
                None,
                Duration::from_secs(20),
                None,
            )
            .await
            .map_err(|e| format!("checking for {p}: {e}"))?;
        if out.status != 0 {
            return Err(format!(
                "command {p:?} is not available on the host (needed by apply/health/watch)"
            ));
        }
    }
    Ok(())
}

/// Render the `[hooks]` list `what` for a host.
fn render_hooks(ctx: &TemplateCtx, what: &str, list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .enumerate()
        .map(|(i, c)| rendered_command(ctx, &format!("hooks.{what}[{i}]"), c))
        .collect()
}
