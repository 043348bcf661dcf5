//! One host's part in a run: preflight (read, compute, check), then the change itself
//! (snapshot, write, apply, health), each step recorded before it is taken.

use super::error::HostError;
use crate::config::playbook::Strategy;
use crate::config::{Host, Playbook};
use crate::edit::spec::EditSpec;
use crate::edit::template::{render, TemplateCtx};
use crate::record::{EventKind, RunDir};
use crate::ssh::{quote::quote, sha256_hex, Connection, RemoteFile, WriteOptions};
use crate::watch::{HealthRetry, HealthStep};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One file this host will change.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Rendered remote path.
    pub path: String,
    pub before: Option<RemoteFile>,
    pub after: Vec<u8>,
    pub after_sha: String,
    /// Mode for a file that is created.
    pub create_mode: Option<u32>,
}

impl FileChange {
    /// Does this change alter the file?
    pub fn changes(&self) -> bool {
        self.before.as_ref().map(|b| b.sha256 != self.after_sha).unwrap_or(true)
    }
}

/// A host ready for the change.
#[derive(Clone)]
pub struct Prepared {
    pub name: String,
    pub conn: Arc<Connection>,
    pub ctx: TemplateCtx,
    pub files: Vec<FileChange>,
    pub apply: Option<String>,
    pub health: Option<String>,
    pub log_command: Option<String>,
    /// `[hooks]` rendered for this host: before the write, after health, after a revert.
    pub before_hooks: Vec<String>,
    pub after_hooks: Vec<String>,
    pub on_revert: Vec<String>,
    /// `strategy = "blue_green"`: the host's slots; `files` then name paths through the link,
    /// `before` is the live slot's file and the result is staged into the idle slot.
    pub blue_green: Option<super::blue_green::BlueGreenHost>,
}

impl Prepared {
    /// True when every file already equals the result.
    pub fn unchanged(&self) -> bool {
        self.files.iter().all(|f| !f.changes())
    }
}

/// Template context for a fleet host.
pub fn template_ctx(h: &Host) -> TemplateCtx {
    TemplateCtx {
        host_name: h.name.clone(),
        address: h.addr().to_string(),
        region: h.region.clone(),
        groups: h.groups.clone(),
        vars: h.vars.clone(),
    }
}

fn first_word(cmd: &str) -> Option<&str> {
    cmd.split_whitespace().find(|w| !w.contains('='))
}

/// Everything that can be known without changing anything: render templates, read every
/// file, compute every edit, check the apply/health/log commands exist.
pub async fn preflight(conn: Arc<Connection>, host: &Host, pb: &Playbook, base: &Path) -> Result<Prepared, String> {
    let ctx = template_ctx(host);
    let r = |what: &str, t: &str| render(t, &ctx).map_err(|e| format!("{what}: {e}"));
    let apply = pb.apply.command.as_deref().map(|c| r("apply.command", c)).transpose()?;
    let health = pb.apply.health.as_deref().map(|c| r("apply.health", c)).transpose()?;
    let log_command = match pb.watch.as_ref().and_then(|w| w.log.as_ref()) {
        Some(l) => match (&l.file, &l.command) {
            (Some(f), _) => Some(format!("exec tail -n0 -F -- {}", quote(&r("watch.log.file", f)?))),
            (None, Some(c)) => Some(r("watch.log.command", c)?),
            _ => None,
        },
        None => None,
    };
    // Group edits by rendered path, keeping order: several edits to one file apply in turn.
    let mut by_path: Vec<(String, Vec<&EditSpec>)> = Vec::new();
    for (i, e) in pb.edits.iter().enumerate() {
        let p = r(&format!("edit[{i}].path"), &e.path)?;
        match by_path.iter_mut().find(|(q, _)| *q == p) {
            Some((_, v)) => v.push(e),
            None => by_path.push((p, vec![e])),
        }
    }
    let blue_green = match (&pb.rollout.strategy, &pb.rollout.blue_green) {
        (Strategy::BlueGreen, Some(spec)) => {
            let link = r("rollout.blue_green.link", &spec.link)?;
            let a = r("rollout.blue_green.slots[0]", &spec.slots[0])?;
            let b = r("rollout.blue_green.slots[1]", &spec.slots[1])?;
            Some(super::blue_green::inspect(&conn, &link, [&a, &b]).await?)
        }
        _ => None,
    };
    let mut files = Vec::new();
    for (path, specs) in by_path {
        let before = match &blue_green {
            Some(bg) => {
                let live = bg.in_slot(&path, &bg.live).ok_or_else(|| {
                    format!(
                        "{path} is not below the link {}: with strategy \"blue_green\" every edit names its file through the link",
                        bg.link
                    )
                })?;
                let before = conn.read_file(&live).await.map_err(|e| format!("read {live}: {e}"))?;
                super::blue_green::check_dir(&conn, &live).await?;
                before
            }
            None => {
                let before = conn.read_file(&path).await.map_err(|e| format!("read {path}: {e}"))?;
                conn.check_writable(&path).await.map_err(|e| match e {
                    crate::ssh::SshError::Remote { stderr, .. } => stderr,
                    other => format!("{path}: {other}"),
                })?;
                before
            }
        };
        let out = crate::edit::compute_all(
            specs.iter().copied(),
            before.as_ref().map(|b| b.bytes.as_slice()),
            &ctx,
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
        files.push(FileChange {
            after_sha: sha256_hex(&after),
            path,
            before,
            after,
            create_mode,
        });
    }
    // Is each command's program present? (`sh -c` builtins like `true` are found too.)
    let mut progs: Vec<&str> = Vec::new();
    for c in [&apply, &health, &log_command].into_iter().flatten() {
        if let Some(w) = first_word(c).filter(|w| *w != "exec") {
            progs.push(w);
        }
    }
    if let Some(w) = log_command
        .as_deref()
        .and_then(|c| c.strip_prefix("exec "))
        .and_then(first_word)
    {
        progs.push(w);
    }
    for p in progs {
        let out = conn
            .run(
                &format!("command -v {} >/dev/null", quote(p)),
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
    let hooks = |what: &str, list: &[String]| -> Result<Vec<String>, String> {
        list.iter()
            .enumerate()
            .map(|(i, c)| r(&format!("hooks.{what}[{i}]"), c))
            .collect()
    };
    let before_hooks = hooks("before", &pb.hooks.before)?;
    let after_hooks = hooks("after", &pb.hooks.after)?;
    let on_revert = hooks("on_revert", &pb.hooks.on_revert)?;
    Ok(Prepared {
        before_hooks,
        after_hooks,
        on_revert,
        name: host.name.clone(),
        conn,
        ctx,
        files,
        apply,
        health,
        log_command,
        blue_green,
    })
}

/// Snapshot, then write every changed file (each recorded before and after).
pub(crate) async fn write_files(run: &RunDir, h: &Prepared) -> Result<(), HostError> {
    for f in h.files.iter().filter(|f| f.changes()) {
        write_one(run, h, f).await?;
    }
    Ok(())
}

/// Snapshot and write one file. A write refused because the file no longer holds what
/// preflight read is recorded as `write_refused` and is `LeftAlone`: the run did not touch it.
pub(crate) async fn write_one(run: &RunDir, h: &Prepared, f: &FileChange) -> Result<(), HostError> {
    {
        let snapshot = match &f.before {
            Some(b) => Some(run.save_snapshot(&h.name, &f.path, b)?),
            None => None,
        };
        run.emit(EventKind::Snapshot {
            host: h.name.clone(),
            path: f.path.clone(),
            missing: f.before.is_none(),
            sha256: f.before.as_ref().map(|b| b.sha256.clone()),
            mode: f.before.as_ref().map(|b| b.mode),
            uid: f.before.as_ref().map(|b| b.uid),
            gid: f.before.as_ref().map(|b| b.gid),
            file: snapshot,
        })?;
        run.emit(EventKind::WriteIntent {
            host: h.name.clone(),
            path: f.path.clone(),
            before: f.before.as_ref().map(|b| b.sha256.clone()),
            after: f.after_sha.clone(),
        })?;
        let opts = WriteOptions {
            mode: if f.before.is_none() { f.create_mode } else { None },
            owner: None,
            expect: Some(f.before.as_ref().map(|b| b.sha256.clone())),
        };
        let sha = match h.conn.write_file(&f.path, &f.after, &opts).await {
            Ok(sha) => sha,
            Err(e @ crate::ssh::SshError::Changed { .. }) => {
                let why = format!("left alone: changed by someone else since preflight ({e})");
                run.emit(EventKind::WriteRefused {
                    host: h.name.clone(),
                    path: f.path.clone(),
                    error: why.clone(),
                })?;
                return Err(HostError::LeftAlone(why));
            }
            Err(e) => return Err(HostError::Failed(format!("write {}: {e}", f.path))),
        };
        run.emit(EventKind::Written {
            host: h.name.clone(),
            path: f.path.clone(),
            sha256: sha,
        })?;
    }
    Ok(())
}

/// Run the apply command (if any), recorded.
pub(crate) async fn apply(
    run: &RunDir,
    conn: &Connection,
    host: &str,
    cmd: Option<&str>,
    timeout: Duration,
) -> Result<(), HostError> {
    let Some(cmd) = cmd else { return Ok(()) };
    let r = conn.run(cmd, None, timeout, None).await;
    let (ok, status, detail) = match &r {
        Ok(o) => (o.status == 0, Some(o.status), o.stderr_text()),
        Err(e) => (false, None, e.to_string()),
    };
    run.emit(EventKind::Apply {
        host: host.to_string(),
        command: cmd.to_string(),
        status,
        ok,
        detail: detail.clone(),
    })?;
    if ok {
        Ok(())
    } else {
        Err(HostError::Failed(match status {
            Some(s) => format!("apply command `{cmd}` exited {s}: {detail}"),
            None => format!("apply command `{cmd}` failed: {detail}"),
        }))
    }
}

/// Run the health command until it passes or `timeout` runs out, recorded.
pub(crate) async fn health(
    run: &RunDir,
    conn: &Connection,
    host: &str,
    cmd: Option<&str>,
    timeout: Duration,
) -> Result<(), HostError> {
    let Some(cmd) = cmd else { return Ok(()) };
    let started = Instant::now();
    let mut retry = HealthRetry::new(timeout);
    loop {
        let elapsed = started.elapsed().as_millis() as u64;
        let budget = Duration::from_millis(retry.remaining_ms(elapsed).max(1000));
        let (exit, output) = match conn.run(cmd, None, budget, None).await {
            Ok(o) => (Some(o.status as i32), format!("{}{}", o.stdout_text(), o.stderr_text())),
            Err(e) => (None, e.to_string()),
        };
        // Masked before `record` keeps only the output's end: a cut key name leaves its value bare.
        let output = run.secrets().text(&output);
        match retry.record(exit, &output, started.elapsed().as_millis() as u64) {
            HealthStep::Passed(r) => {
                run.emit(EventKind::Health {
                    host: host.into(),
                    ok: true,
                    attempts: r.attempts,
                    detail: String::new(),
                })?;
                return Ok(());
            }
            HealthStep::RetryAfter(d) => tokio::time::sleep(d).await,
            HealthStep::Failed(r) => {
                let detail = format!(
                    "`{cmd}` did not pass within {} ({} attempts; last exit {:?}: {})",
                    humantime::format_duration(timeout),
                    r.attempts,
                    r.last_exit,
                    r.last_output.trim()
                );
                run.emit(EventKind::Health {
                    host: host.into(),
                    ok: false,
                    attempts: r.attempts,
                    detail: detail.clone(),
                })?;
                return Err(HostError::Failed(detail));
            }
        }
    }
}
