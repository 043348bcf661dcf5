//! One host's part in a run: preflight (read, compute, check; in `host_preflight.rs`), then
//! the change itself (snapshot, write, apply, health), each step recorded before it is taken.

use super::error::HostError;
use crate::config::Host;
use crate::edit::template::TemplateCtx;
use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, RemoteFile, WriteOptions};
use crate::watch::{HealthRetry, HealthStep};
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
    /// The watched log file (`watch.log.file`, rendered): `log_command` follows it from
    /// the size it has when the watch starts.
    pub log_file: Option<String>,
    /// `[hooks]` rendered for this host: before the write, after health, after a revert.
    pub before_hooks: Vec<String>,
    pub after_hooks: Vec<String>,
    pub on_revert: Vec<String>,
    /// `strategy = "blue_green"`: the host's slots; `files` then name paths through the link,
    /// `before` is the live slot's file and the result is staged into the idle slot.
    pub blue_green: Option<super::slots::BlueGreenHost>,
    /// Preflight found another run's marker on the host (its line): the run must not start.
    pub marker_held: Option<String>,
}

impl Prepared {
    /// True when every file already equals the result.
    pub fn unchanged(&self) -> bool {
        self.files.iter().all(|f| !f.changes())
    }
}

// Preflight has a file of its own (host.rs would pass ~400 lines) but stays `host::preflight`.
pub use super::host_preflight::preflight;

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
    let opts = before_write(run, h, f)?;
    let r = h.conn.write_file(&f.path, &f.after, &opts).await;
    after_write(run, h, f, r)
}

/// The snapshot and `write_intent` of `f`, recorded before it is written; the options the
/// write must be made with (compare-and-swap on the hash preflight read).
pub(crate) fn before_write(run: &RunDir, h: &Prepared, f: &FileChange) -> Result<WriteOptions, HostError> {
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
    Ok(WriteOptions {
        mode: if f.before.is_none() { f.create_mode } else { None },
        owner: None,
        expect: Some(f.before.as_ref().map(|b| b.sha256.clone())),
    })
}

/// Record how the write of `f` went: `written` with the hash read back, or `write_refused`
/// (the file changed since preflight: left alone), or the failure.
pub(crate) fn after_write(
    run: &RunDir,
    h: &Prepared,
    f: &FileChange,
    r: Result<String, crate::ssh::SshError>,
) -> Result<(), HostError> {
    let sha = match r {
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
    health_after(run, conn, host, cmd, timeout, None).await
}

/// The health gate, its first attempt possibly already made (by `apply_then_health`, in
/// the same remote command as apply): retried only while it fails, until `timeout`.
pub(crate) async fn health_after(
    run: &RunDir,
    conn: &Connection,
    host: &str,
    cmd: Option<&str>,
    timeout: Duration,
    mut first: Option<(Option<i32>, String)>,
) -> Result<(), HostError> {
    let Some(cmd) = cmd else { return Ok(()) };
    let started = Instant::now();
    let mut retry = HealthRetry::new(timeout);
    loop {
        let elapsed = started.elapsed().as_millis() as u64;
        let budget = Duration::from_millis(retry.remaining_ms(elapsed).max(1000));
        let (exit, output) = match first.take() {
            Some(attempt) => attempt,
            None => match conn.run(cmd, None, budget, None).await {
                Ok(o) => (Some(o.status as i32), format!("{}{}", o.stdout_text(), o.stderr_text())),
                Err(e) => (None, e.to_string()),
            },
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
