//! The append-only event log of a run (`events.jsonl`).
//!
//! Every transition is written and fsynced BEFORE the action it announces, and its result
//! after, so a run killed at any instant can be finished or reverted from its folder alone.

use super::secrets::Secrets;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of `events.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Host-level events name the host; file-level events also the path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        run_id: String,
        playbook: String,
        playbook_path: String,
        tier: String,
        component: String,
        user: String,
        pid: u32,
        targets: Vec<String>,
        resumed: bool,
    },
    Gate {
        allowed: bool,
        summary: String,
        exception: Option<String>,
        approver: Option<String>,
        emergency: bool,
        /// For an exception: the playbook's owner, the scope it was granted for, and the
        /// rollback lever (the command that undoes this run).
        #[serde(default)]
        owner: Option<String>,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        rollback: Option<String>,
    },
    LockBroken {
        holder: String,
    },
    Preflight {
        host: String,
        ok: bool,
        detail: String,
    },
    Skipped {
        host: String,
        reason: String,
    },
    /// Preflight found every file of `host` already holding the change: nothing to write.
    /// `files` are those files with the hash they hold (`bellwether drift` compares with it).
    Unchanged {
        host: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<SlotFile>,
    },
    PhaseStarted {
        phase: String,
        hosts: Vec<String>,
    },
    /// The previous bytes of `path` are saved under `snapshots/` (mode/owner/hash here).
    Snapshot {
        host: String,
        path: String,
        missing: bool,
        sha256: Option<String>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        file: Option<String>,
    },
    /// About to replace `path`: from here on the host may hold the new bytes.
    WriteIntent {
        host: String,
        path: String,
        before: Option<String>,
        after: String,
    },
    Written {
        host: String,
        path: String,
        sha256: String,
    },
    /// The write after a `write_intent` was refused before the file was touched (it no
    /// longer held the bytes preflight read): the run did NOT change it, so revert leaves it
    /// alone and never calls it a host to repair.
    WriteRefused {
        host: String,
        path: String,
        error: String,
    },
    /// This run's marker is now on `host` (placed before the first change; see `markers`).
    MarkerPlaced {
        host: String,
    },
    /// This run's marker was taken off `host` (the run ended on that host).
    MarkerReleased {
        host: String,
    },
    Apply {
        host: String,
        command: String,
        status: Option<u32>,
        ok: bool,
        detail: String,
    },
    Health {
        host: String,
        ok: bool,
        attempts: u32,
        detail: String,
    },
    Hook {
        host: String,
        hook: String,
        ok: bool,
        detail: String,
    },
    ObserveStarted {
        phase: String,
        hosts: Vec<String>,
        baseline: Vec<String>,
        window_ms: u64,
    },
    Verdict {
        phase: String,
        host: String,
        passed: bool,
        verdict: serde_json::Value,
    },
    HostFailed {
        host: String,
        phase: String,
        reason: String,
    },
    PhasePassed {
        phase: String,
    },
    Paused {
        reason: String,
    },
    /// The run stopped after `phase` passed and waits for `bellwether promote RUN` before
    /// `next`; past `expires` a promotion reverts instead.
    AwaitingPromotion {
        phase: String,
        next: String,
        #[serde(default)]
        expires: Option<DateTime<Utc>>,
    },
    /// `bellwether promote RUN`: the wait after `phase` is over; `by` is who promoted.
    Promoted {
        phase: String,
        by: String,
    },
    /// `bellwether abort RUN`, handed over to the process waiting after `phase` (`rollout
    /// --wait`): it reverts the run. `by` is who aborted.
    Aborted {
        phase: String,
        by: String,
    },
    /// The wait after `phase` outlived its `pause_timeout` (`expires`) in a process that
    /// waited for it (`rollout --wait`): the run reverts by itself.
    PromotionExpired {
        phase: String,
        expires: DateTime<Utc>,
    },
    /// A controller callback ran (`callback` is its name: on_start, on_promote, …), from the
    /// fleet's `[callbacks]` or the playbook's (`source`; records before fleet callbacks
    /// existed have only the playbook's).
    Callback {
        callback: String,
        #[serde(default)]
        source: CallbackSource,
        #[serde(default)]
        phase: Option<String>,
        command: String,
        ok: bool,
        detail: String,
    },
    Interrupted {
        reason: String,
    },
    RevertStarted {
        hosts: Vec<String>,
        reason: String,
    },
    Reverted {
        host: String,
        path: String,
        sha256: Option<String>,
        verified: bool,
    },
    RevertFailed {
        host: String,
        path: String,
        error: String,
    },
    HostRestored {
        host: String,
        apply_ok: bool,
        health_ok: bool,
    },
    /// Blue/green: about to make the idle slot a fresh copy of the live one. Nothing the
    /// agent reads changes, so a revert does not undo it (the staged slot stays idle).
    StageStarted {
        host: String,
        live: String,
        idle: String,
    },
    /// Blue/green: one edited file written into the idle slot (`before`: the live slot's).
    Staged {
        host: String,
        path: String,
        before: Option<String>,
        sha256: String,
    },
    /// Blue/green: about to repoint `link` from `from` to `to` (raw symlink targets, as
    /// `readlink` prints them). From here on the agent may read the new slot.
    FlipIntent {
        host: String,
        link: String,
        from: String,
        to: String,
        /// The edited files in the slot `from` names, with their hashes: a revert flips back
        /// only while that slot still holds them (it may have been restaged since).
        #[serde(default)]
        slot_files: Vec<SlotFile>,
    },
    /// The link now points at `target` (read back after the flip).
    Flipped {
        host: String,
        link: String,
        target: String,
    },
    /// The flip was refused before the link was touched (`untouched`), or failed.
    FlipFailed {
        host: String,
        link: String,
        error: String,
        untouched: bool,
    },
    /// Revert: the link points at `target` (the flip's `from`) again, read back.
    FlippedBack {
        host: String,
        link: String,
        target: String,
        verified: bool,
    },
    /// The pins (`[[edit]]` `pins`, `pin_sha256`) of `path` on `host`, checked on the bytes
    /// the host holds (`sha256`: written and read back, or found up to date at preflight):
    /// after the host's write (`at = "write"`) or at the end of the run (`at = "end"`).
    /// `pins` names every pin checked (key paths, or `sha256`), `broken` those that do not
    /// hold; `detail` says what the file holds instead (free text).
    PinCheck {
        host: String,
        path: String,
        at: String,
        sha256: String,
        ok: bool,
        pins: Vec<String>,
        broken: Vec<String>,
        detail: String,
    },
    /// A dropped connection was opened again before `phase` (or the revert).
    Reconnected {
        host: String,
        phase: String,
    },
    /// A dropped connection could not be opened again; the host's next steps fail.
    ReconnectFailed {
        host: String,
        phase: String,
        error: String,
    },
    /// How many remote commands this process started on each host (each is a shell start
    /// on the host): written at the end of each process's part of a run.
    RemoteCommands {
        per_host: std::collections::BTreeMap<String, u32>,
        /// Hosts whose connection the connection budget parked and a later step opened
        /// again, and how many times (each is one more SSH handshake on the host).
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        reopened: std::collections::BTreeMap<String, u32>,
    },
    RunFinished {
        outcome: String,
        exit: i32,
        message: String,
    },
}

/// Which `[callbacks]` table a callback came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackSource {
    /// `fleet.toml`: for every playbook, run first.
    Fleet,
    /// The playbook's own.
    #[default]
    Playbook,
}

impl CallbackSource {
    /// The word in the record and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackSource::Fleet => "fleet",
            CallbackSource::Playbook => "playbook",
        }
    }
}

/// A file in a blue/green slot and its sha256 (None: it does not exist there).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlotFile {
    pub path: String,
    pub sha256: Option<String>,
}

/// Appends events, flushing and fsyncing each one.
pub struct EventLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl EventLog {
    /// Open (create or append) `events.jsonl` in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<EventLog> {
        let path = dir.join("events.jsonl");
        // 0644 whatever the umask: revert refuses a record others could write (record::trust).
        let file =
            std::os::unix::fs::OpenOptionsExt::mode(OpenOptions::new().create(true).append(true), 0o644).open(&path)?;
        Ok(EventLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Append one event durably: free text masked by `secrets`, identifiers exact.
    pub fn emit(&self, mut kind: EventKind, secrets: &Secrets) -> std::io::Result<()> {
        kind.mask_free_text(secrets);
        let ev = Event { ts: Utc::now(), kind };
        let mut line = serde_json::to_string(&ev).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("event log lock poisoned"))?;
        f.write_all(line.as_bytes())?;
        f.sync_data()
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read every event of a run. A torn LAST line (the process was killed mid-write) is
/// ignored; any other line that does not parse is an error naming the file and line: the
/// record is the write-ahead log that `revert` and `resume` act on, and skipping a line could
/// hide a change that must be put back.
pub fn read_events(dir: &Path) -> std::io::Result<Vec<Event>> {
    let path = dir.join("events.jsonl");
    let f = File::open(&path)?;
    let mut out = Vec::new();
    let mut bad: Option<(usize, String)> = None;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some((n, e)) = bad.take() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}:{n}: not a valid event ({e}); the record is damaged, refusing to act on it (inspect the line; only a torn last line is ignored)",
                    path.display()
                ),
            ));
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(ev) => out.push(ev),
            Err(e) => bad = Some((i + 1, e.to_string())),
        }
    }
    Ok(out)
}

impl EventKind {
    /// Mask the free-text fields (messages, command lines and their output, log lines) in
    /// place. Identifiers — hosts, paths, hashes, ids, link targets, modes, owners — are left
    /// exact: `revert` and `resume` read them back.
    pub fn mask_free_text(&mut self, s: &Secrets) {
        use EventKind::*;
        match self {
            Gate { summary, exception, .. } => {
                s.mask(summary);
                if let Some(e) = exception {
                    s.mask(e);
                }
            }
            Preflight { detail, .. } | Health { detail, .. } | PinCheck { detail, .. } => s.mask(detail),
            Skipped { reason, .. } | HostFailed { reason, .. } | Paused { reason } | Interrupted { reason } => {
                s.mask(reason)
            }
            Callback { command, detail, .. } => {
                s.mask(command);
                s.mask(detail);
            }
            RevertStarted { reason, .. } => s.mask(reason),
            Apply { command, detail, .. } => {
                s.mask(command);
                s.mask(detail);
            }
            Hook { hook, detail, .. } => {
                s.mask(hook);
                s.mask(detail);
            }
            Verdict { verdict, .. } => s.json(verdict),
            WriteRefused { error, .. }
            | RevertFailed { error, .. }
            | FlipFailed { error, .. }
            | ReconnectFailed { error, .. } => s.mask(error),
            RunFinished { message, .. } => s.mask(message),
            RunStarted { .. }
            | LockBroken { .. }
            | Unchanged { .. }
            | PhaseStarted { .. }
            | Snapshot { .. }
            | WriteIntent { .. }
            | Written { .. }
            | MarkerPlaced { .. }
            | MarkerReleased { .. }
            | AwaitingPromotion { .. }
            | RemoteCommands { .. }
            | Promoted { .. }
            | Aborted { .. }
            | PromotionExpired { .. }
            | ObserveStarted { .. }
            | PhasePassed { .. }
            | Reverted { .. }
            | HostRestored { .. }
            | StageStarted { .. }
            | Staged { .. }
            | FlipIntent { .. }
            | Flipped { .. }
            | FlippedBack { .. }
            | Reconnected { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path()).unwrap();
        let s = Secrets::default();
        log.emit(
            EventKind::PhaseStarted {
                phase: "canary".into(),
                hosts: vec!["h01".into()],
            },
            &s,
        )
        .unwrap();
        log.emit(
            EventKind::Written {
                host: "h01".into(),
                path: "/a b".into(),
                sha256: "ff".into(),
            },
            &s,
        )
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"ts\":\"2026")
            .unwrap();
        let evs = read_events(d.path()).unwrap();
        assert_eq!(evs.len(), 2);
        assert!(matches!(&evs[1].kind, EventKind::Written { path, .. } if path == "/a b"));
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("{\"ts\":"), "{text}");
        assert!(text.contains("\"event\":\"phase_started\""), "{text}");
    }

    #[test]
    fn a_damaged_line_that_is_not_the_last_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path()).unwrap();
        let s = Secrets::default();
        log.emit(EventKind::Paused { reason: "a".into() }, &s).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"ts\":\"2026-garbage\n")
            .unwrap();
        log.emit(EventKind::Paused { reason: "b".into() }, &s).unwrap();
        let e = read_events(d.path()).unwrap_err();
        assert!(e.to_string().contains("events.jsonl:2:"), "{e}");
    }

    #[test]
    fn identifiers_are_exact_and_free_text_is_masked() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path()).unwrap();
        // A secret-named var whose value is a directory, a token-shaped host name and path.
        let s = Secrets::new(&[], ["/etc/agent".to_string()]).unwrap();
        log.emit(
            EventKind::WriteIntent {
                host: "sk-prod-01".into(),
                path: "/etc/agent/config.toml".into(),
                before: Some("aa".into()),
                after: "bb".into(),
            },
            &s,
        )
        .unwrap();
        log.emit(
            EventKind::Snapshot {
                host: "sk-prod-01".into(),
                path: "/srv/sk-learn-models/x.toml".into(),
                missing: false,
                sha256: Some("aa".into()),
                mode: Some(0o640),
                uid: Some(0),
                gid: Some(0),
                file: Some("snapshots/sk-prod-01/%2Fsrv%2Fsk-learn-models%2Fx.toml".into()),
            },
            &s,
        )
        .unwrap();
        log.emit(
            EventKind::HostFailed {
                host: "sk-prod-01".into(),
                phase: "canary".into(),
                reason: "write /etc/agent/config.toml: api_key = \"sk-ant-abcdefghijkl\"".into(),
            },
            &s,
        )
        .unwrap();
        let evs = read_events(d.path()).unwrap();
        assert!(matches!(&evs[0].kind, EventKind::WriteIntent { host, path, .. }
            if host == "sk-prod-01" && path == "/etc/agent/config.toml"));
        assert!(matches!(&evs[1].kind, EventKind::Snapshot { path, file: Some(f), .. }
            if path == "/srv/sk-learn-models/x.toml" && f.contains("sk-learn-models")));
        let EventKind::HostFailed { host, reason, .. } = &evs[2].kind else {
            panic!("{:?}", evs[2])
        };
        assert_eq!(host, "sk-prod-01");
        assert!(
            !reason.contains("/etc/agent") && !reason.contains("sk-ant-abc"),
            "{reason}"
        );
    }
}
