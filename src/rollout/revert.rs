//! Putting hosts back: restore each changed file's exact bytes, mode and owner (and flip each
//! blue/green link back to its old slot), re-run apply, confirm health, and verify the hash
//! (or the link's target) equals what it was. Works from the run folder alone.

use crate::record::history::{outstanding, outstanding_flips, ChangedFile, FlippedLink};
use crate::record::{Event, EventKind, RunDir};
use crate::ssh::{Connection, WriteOptions};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Everything a run changed and has not put back yet: written files and flipped links.
#[derive(Debug, Clone, Default)]
pub struct Outstanding {
    pub files: Vec<ChangedFile>,
    pub flips: Vec<FlippedLink>,
}

impl Outstanding {
    /// Read it from a run's events.
    pub fn from_events(events: &[Event]) -> Outstanding {
        Outstanding {
            files: outstanding(events),
            flips: outstanding_flips(events),
        }
    }

    /// The hosts concerned.
    pub fn hosts(&self) -> BTreeSet<String> {
        self.files
            .iter()
            .map(|f| f.host.clone())
            .chain(self.flips.iter().map(|f| f.host.clone()))
            .collect()
    }

    /// Only what concerns `hosts`.
    pub fn only(self, hosts: &BTreeSet<String>) -> Outstanding {
        Outstanding {
            files: self.files.into_iter().filter(|f| hosts.contains(&f.host)).collect(),
            flips: self.flips.into_iter().filter(|f| hosts.contains(&f.host)).collect(),
        }
    }

    /// Nothing to put back?
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.flips.is_empty()
    }
}

/// One host's share of a revert.
#[derive(Default)]
struct HostWork {
    files: Vec<ChangedFile>,
    flips: Vec<FlippedLink>,
}

/// What to run on a host after its files are restored.
#[derive(Clone, Default)]
pub struct RestoreCommands {
    pub apply: Option<String>,
    pub health: Option<String>,
    pub apply_timeout: Duration,
    pub health_timeout: Duration,
    pub on_revert: Vec<String>,
}

/// The result for one host.
#[derive(Debug, Clone)]
pub struct HostRevert {
    pub host: String,
    /// Files put back and verified.
    pub restored: Vec<String>,
    /// Problems that need a person: (path or step, message).
    pub problems: Vec<(String, String)>,
}

/// While hosts are being put back, a record write that fails must not stop the restore (the
/// hosts come first): the sink remembers the failure and the run's ending reports it
/// (machine.rs), so nothing is lost silently.
fn noted(r: std::io::Result<()>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "run record write failed during revert; continuing to restore");
    }
}

/// Restore one file; returns the verified sha (None when the file was removed).
async fn restore_file(run: &RunDir, conn: &Connection, f: &ChangedFile) -> Result<Option<String>, String> {
    let (cur, cleared) = conn
        .read_file_for_revert(&f.path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !cleared.is_empty() {
        tracing::info!(host = %f.host, path = %f.path, "{cleared}");
    }
    let cur_sha = cur.as_ref().map(|c| c.sha256.clone());
    if cur_sha == f.before {
        // Never written (killed between intent and write) or already put back.
        return Ok(cur_sha);
    }
    if cur_sha.as_deref() != Some(f.after.as_str()) {
        return Err(format!(
            "it was changed by someone else since this run wrote it (sha256 now {}, this run wrote {}); not overwriting. Compare it with {} and restore by hand",
            cur_sha.as_deref().unwrap_or("absent"),
            f.after,
            f.snapshot.as_deref().map(|s| run.dir.join(s).display().to_string()).unwrap_or_else(|| "(no snapshot: the file did not exist before)".into())
        ));
    }
    match (&f.snapshot, &f.before) {
        (Some(rel), Some(before)) => write_snapshot(run, conn, f, rel, before).await,
        _ => {
            conn.remove_file(&f.path, Some(&f.after))
                .await
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
    }
}

/// Write the snapshot `rel` (whose recorded hash is `before`) back over `f`, then read it back:
/// a restore counts only once the bytes and mode on the host are the old ones.
async fn write_snapshot(
    run: &RunDir,
    conn: &Connection,
    f: &ChangedFile,
    rel: &str,
    before: &str,
) -> Result<Option<String>, String> {
    let bytes = run
        .load_snapshot(rel)
        .map_err(|e| format!("snapshot {rel} unreadable: {e}"))?;
    if crate::ssh::sha256_hex(&bytes) != *before {
        return Err(format!(
            "snapshot {rel} does not match its recorded hash; not restoring from it"
        ));
    }
    let opts = WriteOptions {
        mode: f.mode,
        owner: f.uid.zip(f.gid),
        expect: Some(Some(f.after.clone())),
    };
    let sha = conn
        .write_file(&f.path, &bytes, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let back = conn
        .read_file(&f.path)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the file vanished after the restore")?;
    if back.sha256 != *before || f.mode.is_some_and(|m| m != back.mode) {
        return Err(format!(
            "verification failed: sha256 {} mode {:o}, expected {} mode {:o}",
            back.sha256,
            back.mode,
            before,
            f.mode.unwrap_or(back.mode)
        ));
    }
    Ok(Some(sha))
}

/// Revert every outstanding file and link, hosts in parallel (newest-changed host first in
/// the record), then re-run apply and health on each restored host.
pub async fn revert(
    run: &RunDir,
    todo: Outstanding,
    conns: &BTreeMap<String, Arc<Connection>>,
    cmds: &BTreeMap<String, RestoreCommands>,
    concurrency: usize,
    reason: &str,
) -> Vec<HostRevert> {
    let by_host = split_by_host(todo);
    noted(run.emit(EventKind::RevertStarted {
        hosts: by_host.iter().map(|(h, _)| h.clone()).collect(),
        reason: reason.to_string(),
    }));
    stream::iter(by_host)
        .map(|(host, work)| async move {
            let cmd = cmds.get(&host).cloned().unwrap_or_default();
            revert_host(run, conns.get(&host).map(Arc::as_ref), &cmd, host, work).await
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Each host's share: hosts in the order their newest written file (then newest flipped link)
/// appears going back through the record, each host's files and links newest first, so they
/// are undone in the reverse of the order they were done.
fn split_by_host(todo: Outstanding) -> Vec<(String, HostWork)> {
    let mut by_host: Vec<(String, HostWork)> = Vec::new();
    fn slot<'a>(v: &'a mut Vec<(String, HostWork)>, host: &str) -> &'a mut HostWork {
        let i = match v.iter().position(|(h, _)| h == host) {
            Some(i) => i,
            None => {
                v.push((host.to_string(), HostWork::default()));
                v.len() - 1
            }
        };
        &mut v[i].1
    }
    for f in todo.files.into_iter().rev() {
        slot(&mut by_host, &f.host.clone()).files.push(f);
    }
    for f in todo.flips.into_iter().rev() {
        slot(&mut by_host, &f.host.clone()).flips.push(f);
    }
    by_host
}

/// Put one host back: its links first, then its files, then apply, health and the
/// `on_revert` hooks. `conn` is None when the host cannot be reached.
async fn revert_host(
    run: &RunDir,
    conn: Option<&Connection>,
    c: &RestoreCommands,
    host: String,
    work: HostWork,
) -> HostRevert {
    let HostWork { files, flips } = work;
    let mut out = HostRevert {
        host: host.clone(),
        restored: vec![],
        problems: vec![],
    };
    let Some(conn) = conn else {
        let paths = files
            .iter()
            .map(|f| f.path.clone())
            .chain(flips.iter().map(|f| f.link.clone()));
        for path in paths {
            failed(run, &mut out, path, "host unreachable".to_string());
        }
        return out;
    };
    restore_flips(run, conn, &flips, &mut out).await;
    restore_files(run, conn, &files, &mut out).await;
    restart(run, conn, c, &mut out).await;
    out
}

/// Record that `path` could not be put back, and keep it as a problem for a person.
fn failed(run: &RunDir, out: &mut HostRevert, path: String, error: String) {
    noted(run.emit(EventKind::RevertFailed {
        host: out.host.clone(),
        path: path.clone(),
        error: error.clone(),
    }));
    out.problems.push((path, error));
}

/// Flip each link back to the slot it named before the run.
async fn restore_flips(run: &RunDir, conn: &Connection, flips: &[FlippedLink], out: &mut HostRevert) {
    for f in flips {
        match super::flip::flip_back(conn, f).await {
            Ok(target) => {
                noted(run.emit(EventKind::FlippedBack {
                    host: out.host.clone(),
                    link: f.link.clone(),
                    target,
                    verified: true,
                }));
                out.restored.push(f.link.clone());
            }
            Err(e) => failed(run, out, f.link.clone(), e),
        }
    }
}

/// Put each file's old bytes, mode and owner back (or remove a file the run created).
async fn restore_files(run: &RunDir, conn: &Connection, files: &[ChangedFile], out: &mut HostRevert) {
    for f in files {
        match restore_file(run, conn, f).await {
            Ok(sha) => {
                noted(run.emit(EventKind::Reverted {
                    host: out.host.clone(),
                    path: f.path.clone(),
                    sha256: sha,
                    verified: true,
                }));
                out.restored.push(f.path.clone());
            }
            Err(e) => failed(run, out, f.path.clone(), e),
        }
    }
}

/// Re-run apply, then health only if apply worked, then the `on_revert` hooks, so the agent
/// really runs the restored files; `host_restored` records which step a host failed at.
async fn restart(run: &RunDir, conn: &Connection, c: &RestoreCommands, out: &mut HostRevert) {
    let host = out.host.clone();
    let apply_ok = super::host::apply(
        run,
        conn,
        &host,
        c.apply.as_deref(),
        c.apply_timeout.max(Duration::from_secs(1)),
    )
    .await
    .map_err(|e| e.to_string());
    let health_ok = match &apply_ok {
        Ok(()) => super::host::health(
            run,
            conn,
            &host,
            c.health.as_deref(),
            c.health_timeout.max(Duration::from_secs(1)),
        )
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    on_revert_hooks(run, conn, &host, c).await;
    noted(run.emit(EventKind::HostRestored {
        host: host.clone(),
        apply_ok: apply_ok.is_ok(),
        health_ok: health_ok.is_ok(),
    }));
    if let Err(e) = apply_ok {
        out.problems.push(("apply".into(), e));
    } else if let Err(e) = health_ok {
        out.problems.push(("health".into(), e));
    }
}

/// Run the playbook's `on_revert` hooks, each recorded; a failed hook is reported, not fatal.
async fn on_revert_hooks(run: &RunDir, conn: &Connection, host: &str, c: &RestoreCommands) {
    for hook in &c.on_revert {
        let r = conn
            .run(hook, None, c.apply_timeout.max(Duration::from_secs(1)), None)
            .await;
        let ok = matches!(&r, Ok(o) if o.status == 0);
        noted(run.emit(EventKind::Hook {
            host: host.to_string(),
            hook: hook.clone(),
            ok,
            detail: String::new(),
        }));
    }
}
