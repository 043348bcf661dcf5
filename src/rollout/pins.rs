//! Pins in a run (`[[edit]]` `pins`, `pin_sha256`): values that must hold on every target
//! after the change. Checked three times, never with a remote command of its own:
//!
//! - at preflight, on targets already up to date (they are never written): on the bytes
//!   preflight read. A pin that does not hold fails the host's preflight, so it is caught
//!   before anything changes (skipped within `max_failed_hosts`, else exit 6);
//! - after each host's write (or blue/green staging), on the bytes written: the write read
//!   its result back and compared the hash, so those bytes are what the host holds. A pin that
//!   does not hold fails the host before apply, and the machine's failure handling follows
//!   (a failed canary reverts the run; a batch counts against `max_failed_hosts`);
//! - at the end of the run, for every target the run prepared: changed hosts on the bytes
//!   written — and the record must say that the last write of each file was those bytes —
//!   and the others on the bytes preflight read (in a resumed run: the hosts changed before
//!   the interruption that it prepared again). A file changed on a host after its write is
//!   `bellwether drift`'s job.

use super::error::HostError;
use super::error::RecordFailed;
use super::host::Prepared;
use super::run::Run;
use super::state::Failures;
use crate::edit::pins::{describe_broken, for_host};
use crate::edit::EditSpec;
use crate::record::{read_events, EventKind, RunDir};
use std::collections::{BTreeMap, BTreeSet};

/// The last sha256 the record says was written to each (host, path).
type Writes = BTreeMap<(String, String), String>;

/// At preflight: targets already up to date whose pins do not hold leave `prepared` for
/// `failures` (host, why), as if their preflight had failed.
pub(crate) fn at_preflight(
    rec: &RunDir,
    edits: &[EditSpec],
    prepared: &mut BTreeMap<String, Prepared>,
    failures: &mut Vec<(String, String)>,
) -> std::io::Result<()> {
    let pinned: Vec<EditSpec> = edits.iter().filter(|e| e.has_pins()).cloned().collect();
    if pinned.is_empty() {
        return Ok(());
    }
    let mut bad = Vec::new();
    for (name, h) in prepared.iter().filter(|(_, h)| h.unchanged()) {
        if let Some(why) = check_host(rec, &pinned, h, "preflight", None)? {
            bad.push((name.clone(), format!("already up to date, but {why}")));
        }
    }
    for (name, why) in bad {
        prepared.remove(&name);
        failures.push((name, why));
    }
    failures.sort();
    Ok(())
}

/// After `h`'s write: every pin of its files must hold on the bytes it now holds.
pub(crate) fn after_write(run: &Run, h: &Prepared) -> Result<(), HostError> {
    match check_host(&run.rec, &run.pinned, h, "write", None)? {
        None => Ok(()),
        Some(why) => Err(HostError::Failed(format!("{why}; apply was not run"))),
    }
}

/// What the end-of-run pin check decided; the machine acts on it (machine.rs).
pub(crate) enum AtEnd {
    /// Every pin holds (or there are none): finish.
    Hold,
    /// Too many hosts failed (beyond `max_failed_hosts`): revert the run.
    Revert(String),
    /// Within `max_failed_hosts`: revert just these hosts, then finish; the reason if that
    /// cannot be done cleanly.
    RevertHosts(BTreeSet<String>, String),
}

/// The end of the run (no phase left): check every target; the hosts whose pins do not hold
/// fail like in a phase (within `max_failed_hosts` only they are reverted; beyond it the run).
pub(crate) fn at_end(run: &mut Run) -> Result<AtEnd, RecordFailed> {
    if run.pinned.is_empty() {
        return Ok(AtEnd::Hold);
    }
    let events = read_events(&run.rec.dir)?;
    let mut failed = BTreeSet::new();
    let mut writes = Writes::new();
    for e in &events {
        match &e.kind {
            EventKind::HostFailed { host, .. } => {
                failed.insert(host.clone());
            }
            EventKind::Written { host, path, sha256 } => {
                writes.insert((host.clone(), path.clone()), sha256.clone());
            }
            _ => {}
        }
    }
    let mut failures: Failures = Vec::new();
    for (name, h) in run.prepared.iter().filter(|(n, _)| !failed.contains(*n)) {
        if let Some(why) = check_host(&run.rec, &run.pinned, h, "end", Some(&writes))? {
            failures.push((name.clone(), HostError::Failed(why)));
        }
    }
    let Some((first, why)) = failures.first() else {
        run.say("pins hold on every target");
        return Ok(AtEnd::Hold);
    };
    let reason = format!("pins at the end of the run: {first}: {why}");
    for (h, e) in &failures {
        run.rec.emit(EventKind::HostFailed {
            host: h.clone(),
            phase: "end".into(),
            reason: e.to_string(),
        })?;
    }
    run.failed_hosts += failures.len();
    if run.failed_hosts > run.plan.max_failed_hosts {
        return Ok(AtEnd::Revert(reason));
    }
    run.say(&format!(
        "end: pins do not hold on {} host(s), within max_failed_hosts = {}; reverting just those",
        failures.len(),
        run.plan.max_failed_hosts
    ));
    let only: BTreeSet<String> = failures.iter().map(|(h, _)| h.clone()).collect();
    Ok(AtEnd::RevertHosts(
        only,
        format!("{reason}; could not revert it cleanly"),
    ))
}

/// Check and record the pins of `h`'s files on the bytes it holds (`at`: "preflight",
/// "write" or "end"); with `writes`, each changed file's last recorded write must be those
/// bytes. `Some(why)` when something does not hold.
fn check_host(
    rec: &RunDir,
    pinned: &[EditSpec],
    h: &Prepared,
    at: &str,
    writes: Option<&Writes>,
) -> std::io::Result<Option<String>> {
    let pins = match for_host(pinned, &h.ctx) {
        Ok(p) => p,
        Err(e) => return Ok(Some(format!("pins cannot be rendered: {e}"))),
    };
    let red = rec.secrets().redactor();
    let mut bad = Vec::new();
    for fp in pins {
        let Some(f) = h.files.iter().find(|f| f.path == fp.path) else {
            bad.push(format!("{}: pinned, but not read at preflight", fp.path));
            continue;
        };
        let results: Vec<_> = fp.check(Some(&f.after)).iter().map(|r| r.redacted(red)).collect();
        let mut broken: Vec<String> = results.iter().filter(|r| !r.held).map(|r| r.pin.clone()).collect();
        let mut detail = describe_broken(&results);
        let recorded = writes.filter(|_| f.changes() && h.blue_green.is_none());
        if let Some(w) = recorded.map(|w| w.get(&(h.name.clone(), f.path.clone()))) {
            if w != Some(&f.after_sha) {
                broken.push("sha256".into());
                detail = format!(
                    "the record's last write of {} is {}, not the bytes whose pins were checked",
                    f.path,
                    w.map_or("missing", |s| s.as_str())
                );
            }
        }
        rec.emit(EventKind::PinCheck {
            host: h.name.clone(),
            path: f.path.clone(),
            at: at.to_string(),
            sha256: f.after_sha.clone(),
            ok: broken.is_empty(),
            pins: results.iter().map(|r| r.pin.clone()).collect(),
            broken: broken.clone(),
            detail: detail.clone(),
        })?;
        if !broken.is_empty() {
            bad.push(format!("{}: {detail}", f.path));
        }
    }
    Ok((!bad.is_empty()).then(|| format!("pins do not hold: {}", bad.join("; "))))
}
