//! One host's preflight: everything that can be known before anything changes — its
//! templates rendered, every file it will change read and its edits computed, every program
//! its commands need and the log file it watches found — so a run changes no host unless
//! every target passed this.
//! (Reached as `host::preflight`, beside the change steps it prepares for.)

use super::host::{template_ctx, FileChange, Prepared};
use crate::config::playbook::Strategy;
use crate::config::{Host, Playbook};
use crate::edit::render_command;
use crate::edit::spec::EditSpec;
use crate::edit::template::{render, TemplateCtx};
use crate::ssh::{quote::quote, sha256_hex, Connection, RemoteFile};
use std::path::Path;
use std::sync::Arc;

fn first_word(cmd: &str) -> Option<&str> {
    cmd.split_whitespace().find(|w| !w.contains('='))
}

/// Everything that can be known without changing anything: render templates, read every
/// file, compute every edit, check the apply/health/log commands and the watched log exist.
/// With `marker` (a run id), the run's marker is placed in the same remote command; a marker
/// of another run comes back in `Prepared::marker_held`.
pub async fn preflight(
    conn: Arc<Connection>,
    host: &Host,
    pb: &Playbook,
    base: &Path,
    marker: Option<&str>,
) -> Result<Prepared, String> {
    let ctx = template_ctx(host);
    let cmds = render_commands(pb, &ctx)?;
    let by_path = edits_by_path(pb, &ctx)?;
    let blue_green = blue_green_slots(&conn, pb, &ctx).await?;
    // One remote command for a host with one plain file: its checks, the programs and the
    // log file, and the marker run as a prelude of its read. Otherwise they run on their own.
    let mut marker_held = None;
    let mut folded = false;
    let mut files = Vec::new();
    for (path, specs) in by_path {
        let before = if !folded && blue_green.is_none() {
            folded = true;
            let (before, held) = read_with_checks(&conn, &path, pb, &cmds, marker).await?;
            marker_held = held;
            before
        } else {
            read_before(&conn, &path, blue_green.as_ref(), pb.follow_links).await?
        };
        files.push(compute(path, &specs, before, &ctx, base)?);
    }
    if !folded {
        check_programs_and_log(&conn, &cmds).await?;
        if let Some(id) = marker {
            if let Err(holder) = super::markers::place(&conn, id, false).await {
                marker_held = Some(holder);
            }
        }
    }
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
        log_file: cmds.log_file,
        blue_green,
        marker_held,
    })
}

/// Read `path` with its write checks, the programs and log check and the marker (when
/// asked) as the prelude of the same remote command; another run's marker comes back.
async fn read_with_checks(
    conn: &Connection,
    path: &str,
    pb: &Playbook,
    cmds: &Commands,
    marker: Option<&str>,
) -> Result<(Option<RemoteFile>, Option<String>), String> {
    let progs = programs(cmds);
    let needs = needs_script(&progs, cmds.log_file.as_deref());
    let marker_part = marker.map(|id| super::markers::place_script_for(id).text().to_string());
    let check = crate::ssh::file_scripts::check(path, pb.follow_links);
    let prelude = prelude(check.text(), &needs, marker_part.as_deref());
    let (before, report) = conn
        .read_file_after(path, &prelude)
        .await
        .map_err(|e| format!("read {path}: {e}"))?;
    let r = parse_prelude(&report, &progs, cmds.log_file.as_deref());
    r.check.map_err(|why| {
        if why.is_empty() {
            format!("{path}: cannot be replaced")
        } else {
            why
        }
    })?;
    if !r.missing.is_empty() {
        return Err(r.missing.join("; "));
    }
    Ok((before, r.marker_held))
}

/// The checks that ride along with the first file's read, each reporting on stderr.
fn prelude(check: &str, needs: &str, marker: Option<&str>) -> String {
    // Each report on a line of its own: a script's last output may lack its newline.
    let mut p = format!("(\n{check}\n); r=$?; echo; echo \"BW-CHECK $r\"\n{needs}\n");
    if let Some(m) = marker {
        p.push_str(&format!("(\n{m}\n); r=$?; echo; echo \"BW-MARKER $r\"\n"));
    }
    p
}

/// What the prelude reported.
struct PreludeReport {
    /// Err(the check's message) when the file cannot be replaced as the write does it.
    check: Result<(), String>,
    /// Programs or a log file that are missing, for people.
    missing: Vec<String>,
    /// Another run's marker line, when it holds the host.
    marker_held: Option<String>,
}

fn parse_prelude(report: &str, progs: &[(&str, &str)], log_file: Option<&str>) -> PreludeReport {
    let mut r = PreludeReport {
        check: Ok(()),
        missing: Vec::new(),
        marker_held: None,
    };
    let mut pending: Vec<&str> = Vec::new();
    for line in report.lines() {
        let l = line.trim();
        if let Some(rc) = l.strip_prefix("BW-CHECK ") {
            if rc != "0" {
                r.check = Err(pending.join(" ").trim().to_string());
            }
            pending.clear();
        } else if let Some(rc) = l.strip_prefix("BW-MARKER ") {
            if rc == "9" {
                r.marker_held = pending.iter().rev().find(|x| !x.is_empty()).map(|x| x.to_string());
            } else if rc != "0" {
                r.marker_held = Some(format!("(cannot place the run marker: exit {rc})"));
            }
            pending.clear();
        } else if let Some(m) = missing(l, progs, log_file) {
            r.missing.push(m);
        } else {
            pending.push(l);
        }
    }
    r
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
    /// The watched log file, when the log source is a file.
    log_file: Option<String>,
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
    let log = pb.watch.as_ref().and_then(|w| w.log.as_ref());
    let log_file = log
        .and_then(|l| l.file.as_deref())
        .map(|f| r("watch.log.file", f))
        .transpose()?;
    let log_command = match (&log_file, log.and_then(|l| l.command.as_deref())) {
        (Some(f), _) => Some(crate::ssh::tail_file_command(f)),
        (None, Some(c)) => Some(rc("watch.log.command", c)?),
        (None, None) => None,
    };
    Ok(Commands {
        apply,
        health,
        log_command,
        log_file,
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
) -> Result<Option<super::slots::BlueGreenHost>, String> {
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
    blue_green: Option<&super::slots::BlueGreenHost>,
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

/// What a host must have before anything changes: the program each of the apply, health and
/// log commands starts (`sh -c` builtins like `true` are found too), and the watched log file
/// — present, not a directory, readable — since a misspelt log path would otherwise be found
/// only after the canary changed, as a silent window. One shell on the host checks them all:
/// on a busy host every remote command is a shell start.
async fn check_programs_and_log(conn: &Connection, cmds: &Commands) -> Result<(), String> {
    let progs = programs(cmds);
    let script = needs_script(&progs, cmds.log_file.as_deref());
    if script.is_empty() {
        return Ok(());
    }
    let out = conn
        .run(&script, None, conn.command_timeout(), None)
        .await
        .map_err(|e| format!("checking for the programs and the log file the playbook needs: {e}"))?;
    let problems: Vec<String> = out
        .stdout_text()
        .lines()
        .filter_map(|l| missing(l.trim(), &progs, cmds.log_file.as_deref()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Each program the commands start, once, with the setting that needs it.
fn programs(cmds: &Commands) -> Vec<(&str, &'static str)> {
    let mut progs: Vec<(&str, &'static str)> = Vec::new();
    let all = [
        (&cmds.apply, "apply.command"),
        (&cmds.health, "apply.health"),
        (&cmds.log_command, "watch.log"),
    ];
    for (cmd, what) in all {
        let Some(c) = cmd.as_deref() else { continue };
        let c = c.strip_prefix("exec ").unwrap_or(c);
        let new = |w: &&str| *w != "exec" && !progs.iter().any(|(p, _)| p == w);
        if let Some(w) = first_word(c).filter(new) {
            progs.push((w, what));
        }
    }
    // The log stream's wrapper runs the command under `setsid` (ssh::stream).
    if cmds.log_command.is_some() && !progs.iter().any(|(p, _)| *p == "setsid") {
        progs.push(("setsid", "watch.log"));
    }
    progs
}

/// The check as one script: each thing missing prints one line (`program I`, `log WHY`).
fn needs_script(progs: &[(&str, &str)], log_file: Option<&str>) -> String {
    let mut s = String::new();
    for (i, (p, _)) in progs.iter().enumerate() {
        s.push_str(&format!(
            "command -v {} >/dev/null 2>&1 || echo 'program {i}'\n",
            quote(p)
        ));
    }
    if let Some(f) = log_file.map(quote) {
        s.push_str(&format!(
            "if [ ! -e {f} ]; then echo 'log missing'; elif [ -d {f} ]; then echo 'log directory'; \
             elif [ ! -r {f} ]; then echo 'log unreadable'; fi\n"
        ));
    }
    s
}

/// The problem one output line of [`needs_script`] reports, for people.
fn missing(line: &str, progs: &[(&str, &str)], log_file: Option<&str>) -> Option<String> {
    if let Some((p, what)) = line
        .strip_prefix("program ")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| progs.get(i))
    {
        return Some(format!("command {p:?} is not available on the host (needed by {what})"));
    }
    let f = log_file?;
    let why = match line.strip_prefix("log ")? {
        "missing" => "does not exist on the host: is the path misspelt? The log watch would see no lines",
        "directory" => "is a directory, not a log file",
        "unreadable" => "cannot be read by the login user (fix its permissions, or set become = true)",
        _ => return None,
    };
    Some(format!("watch.log.file {f:?} {why}"))
}

/// Render the `[hooks]` list `what` for a host.
fn render_hooks(ctx: &TemplateCtx, what: &str, list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .enumerate()
        .map(|(i, c)| rendered_command(ctx, &format!("hooks.{what}[{i}]"), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prelude_reports_a_failed_check_a_missing_program_and_a_held_marker_through_a_real_sh() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".bellwether.lock"), "20260101T000000000Z-old u@m 42\n").unwrap();
        let c = cmds(None);
        let progs = vec![("no-such-program-xyz", "apply.command")];
        let needs = needs_script(&progs, None);
        let check = crate::ssh::file_scripts::check("missing-dir/config.toml", false);
        let marker = super::super::markers::place_script_for("20261130T000000000Z-new");
        let text = prelude(check.text(), &needs, Some(marker.text()));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .current_dir(d.path())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let r = parse_prelude(&report, &progs, None);
        assert!(r.check.as_ref().is_err_and(|m| m.contains("missing-dir")), "{report}");
        assert_eq!(r.missing.len(), 1, "{report}");
        assert_eq!(
            r.marker_held.as_deref(),
            Some("20260101T000000000Z-old u@m 42"),
            "{report}"
        );
        let _ = c;
    }

    fn cmds(log_file: Option<&str>) -> Commands {
        Commands {
            apply: Some("./agentctl restart".into()),
            health: Some("AGENT=1 ./agentctl status".into()),
            log_command: log_file.map(crate::ssh::tail_file_command),
            log_file: log_file.map(String::from),
        }
    }

    #[test]
    fn each_program_is_checked_once_with_the_setting_that_needs_it() {
        let c = cmds(Some("agent/agent.log"));
        assert_eq!(
            programs(&c),
            [
                ("./agentctl", "apply.command"),
                ("tail", "watch.log"),
                ("setsid", "watch.log")
            ]
        );
        let c = Commands {
            log_command: Some("exec journalctl -fu hermes".into()),
            log_file: None,
            ..cmds(None)
        };
        assert_eq!(programs(&c)[1], ("journalctl", "watch.log"));
    }

    /// The script run by a real `sh` in a scratch directory: only the missing things print.
    #[test]
    fn one_script_finds_missing_programs_and_log_problems() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.log"), "x\n").unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let run = |progs: &[(&str, &str)], log: Option<&str>| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(needs_script(progs, log))
                .current_dir(dir.path())
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter_map(|l| missing(l, progs, log))
                .collect::<Vec<_>>()
        };
        let progs = [("sh", "apply.command"), ("no-such-prog-x9", "apply.health")];
        assert_eq!(
            run(&progs, Some("agent.log")),
            ["command \"no-such-prog-x9\" is not available on the host (needed by apply.health)"]
        );
        assert_eq!(
            run(&progs[..1], Some("agnet.log")),
            ["watch.log.file \"agnet.log\" does not exist on the host: is the path misspelt? The log watch would see no lines"]
        );
        assert_eq!(
            run(&[], Some("logs")),
            ["watch.log.file \"logs\" is a directory, not a log file"]
        );
        let odd = "it's $(touch pwned) a.log";
        assert_eq!(run(&[], Some(odd)).len(), 1, "a quoted path is one word, never run");
        assert!(!dir.path().join("pwned").exists());
        assert_eq!(needs_script(&[], None), "");
    }
}
