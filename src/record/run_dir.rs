//! A run's folder: `runs/RUN_ID/` with events, plan, snapshots, matched log lines, summary.
//!
//! The open folder is also the run's one event SINK: every typed event goes through
//! [`RunDir::emit`], which masks its free text with the run's [`Secrets`] (identifiers stay
//! exact), appends it to `events.jsonl`, fsyncs, and hands it to the log; progress lines for
//! people go through [`RunDir::say`] to the renderer chosen once when the run was opened.
//! Nothing else in the engine prints, and nothing holds process-wide masking state.

use super::events::{EventKind, EventLog};
use super::secrets::Secrets;
use crate::ssh::RemoteFile;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::progress::Progress;
use super::progress::Whereabouts;

/// An open run folder: the run's record and its event sink.
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
    events: EventLog,
    secrets: Secrets,
    progress: Progress,
    /// `logs/HOST.log`: the canary's (and baseline's) own log lines, capped.
    logs: super::logs::LogKeeper,
    /// Where the run is, for JSON progress lines.
    whereabouts: std::sync::Mutex<Whereabouts>,
    /// The first record write that failed: once set, the run must stop (the state machine
    /// checks it after every step, so even a write nobody could propagate stops the run).
    failed: std::sync::Mutex<Option<String>>,
    /// The bars on a terminal (`None` without one: plain lines only).
    live: Option<crate::ui::live::Live>,
}

/// A sortable run id: UTC time then the playbook id.
pub fn new_run_id(playbook_id: &str) -> String {
    format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string().replace('.', ""),
        playbook_id
    )
}

/// Make a host name and remote path safe as one file name under `snapshots/HOST/`.
pub fn snapshot_name(path: &str) -> String {
    let mut s = String::new();
    for c in path.chars() {
        match c {
            '/' => s.push_str("%2F"),
            '%' => s.push_str("%25"),
            c if c.is_control() => s.push('_'),
            c => s.push(c),
        }
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// Summaries and plans: replaced atomically, but written through if the operator linked one
/// elsewhere (see `ui::out_file`). A new file is 0644 whatever the umask: `revert` and
/// `resume` refuse a run folder whose files others could write (`record::trust`).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return write_atomic_mode(path, bytes, 0o644);
    }
    crate::ui::out_file::write_file(path, bytes)
}

/// Create `dir` and its missing parents with `mode` (not the umask's group-writable default).
fn create_dirs(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// Write via a temp file with `mode` from the start (snapshots may hold secrets: 0600).
fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp~");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

impl RunDir {
    /// Create a new run folder under `runs`.
    pub fn create(runs: &Path, id: &str, secrets: Secrets, progress: Progress) -> std::io::Result<RunDir> {
        let dir = runs.join(id);
        create_dirs(&dir, 0o755)?;
        create_dirs(&dir.join("snapshots"), 0o700)?;
        // Snapshots are the operator's exact bytes, secrets included: owner-only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("snapshots"), std::fs::Permissions::from_mode(0o700))?;
        let events = EventLog::open(&dir)?;
        let dir_for_logs = dir.clone();
        Ok(RunDir {
            id: id.to_string(),
            dir,
            events,
            secrets,
            progress,
            logs: super::logs::LogKeeper::new(&dir_for_logs, super::logs::CAP_BYTES),
            whereabouts: Default::default(),
            failed: Default::default(),
            live: progress.live(),
        })
    }

    /// Open an existing run folder (revert, resume, show).
    pub fn open(runs: &Path, id: &str, secrets: Secrets, progress: Progress) -> std::io::Result<RunDir> {
        let dir = resolve(runs, id)?;
        let events = EventLog::open(&dir)?;
        let id = dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir_for_logs = dir.clone();
        Ok(RunDir {
            id,
            dir,
            events,
            secrets,
            progress,
            logs: super::logs::LogKeeper::new(&dir_for_logs, super::logs::CAP_BYTES),
            whereabouts: Default::default(),
            failed: Default::default(),
            live: progress.live(),
        })
    }

    /// Append an event durably (free text masked, identifiers exact). A failure to record is
    /// fatal for safety — an unrecorded change could not be reverted — so it is returned and
    /// every caller stops on it.
    pub fn emit(&self, kind: EventKind) -> std::io::Result<()> {
        if tracing::enabled!(target: "bellwether::event", tracing::Level::DEBUG) {
            let mut k = kind.clone();
            k.mask_free_text(&self.secrets);
            tracing::debug!(target: "bellwether::event", run_id = %self.id, event = ?k);
        }
        let crash_here = super::crash::is_point(&kind);
        if let Ok(mut w) = self.whereabouts.lock() {
            w.note(&kind);
        }
        if let (Some(l), Some(step)) = (&self.live, super::progress::follow(&kind)) {
            l.step(step);
        }
        let json = (self.progress == Progress::Json).then(|| kind.clone());
        let r = self.events.emit(kind, &self.secrets);
        if let (Ok(()), Some(k)) = (&r, json) {
            self.json_event(k);
        }
        if r.is_ok() && crash_here {
            std::process::abort();
        }
        if let Err(e) = &r {
            self.note_failure(format!("cannot write {}: {e}", self.events.path().display()));
        }
        r
    }

    /// [`RunDir::emit`] where the caller cannot stop on the spot (inside an observation
    /// window, a reconnect, the second Ctrl-C): a failure is remembered, and the state machine
    /// stops the run at its next check of [`RunDir::failed`]; the run's ending reports it.
    pub fn emit_or_remember(&self, kind: EventKind) {
        if let Err(e) = self.emit(kind) {
            tracing::error!(error = %e, "run record write failed; the run stops at its next step");
        }
    }

    fn note_failure(&self, msg: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(msg);
        }
    }

    /// The first record write that failed, if any.
    pub fn failed(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// An event as a JSON line on stderr (`--log-format json`), masked like the record, with
    /// the run id and the phase under way when the event names none.
    fn json_event(&self, mut kind: EventKind) {
        kind.mask_free_text(&self.secrets);
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&kind) else {
            return;
        };
        let mut m = crate::ui::json_log::object("info");
        m.insert("run_id".into(), self.id.clone().into());
        if !fields.contains_key("phase") {
            if let Some(p) = self.whereabouts.lock().ok().and_then(|w| w.phase.clone()) {
                m.insert("phase".into(), p.into());
            }
        }
        m.extend(fields);
        crate::ui::json_log::write_line(m);
    }

    /// A progress line for people (masked), with the run id on the log event.
    pub fn say(&self, msg: &str) {
        let msg = self.secrets.text(msg);
        if self.progress == Progress::Json {
            let fields = self
                .whereabouts
                .lock()
                .map(|w| w.fields(&self.id, &msg))
                .unwrap_or_default();
            self.progress.line_with(&msg, fields);
            return;
        }
        let _span = tracing::info_span!("run", run_id = %self.id).entered();
        tracing::info!(target: "bellwether::run", "{msg}");
        match &self.live {
            // On a terminal the line goes above the bars (a failed write is ignored like a
            // closed terminal is: the run must still finish).
            Some(l) => {
                let _ = l.println(&super::progress::stamped(&crate::ui::safe::text(&msg)));
            }
            None => self.progress.line(&msg),
        }
    }

    /// The terminal view, if the run's progress goes to a terminal.
    pub fn live(&self) -> Option<&crate::ui::live::Live> {
        self.live.as_ref()
    }

    /// Keep one line of `host`'s log (`logs/HOST.log`, masked, capped), received now during
    /// `window`. A failure is remembered like a failed event: the run stops.
    pub fn keep_log_line(&self, host: &str, window: &str, line: &str) -> std::io::Result<()> {
        self.keep_log_line_at(host, window, line, Utc::now())
    }

    /// [`RunDir::keep_log_line`] for a line received `at` (earlier than now).
    pub fn keep_log_line_at(&self, host: &str, window: &str, line: &str, at: DateTime<Utc>) -> std::io::Result<()> {
        let r = self.logs.line(host, window, at, line, &self.secrets);
        if let Err(e) = &r {
            self.note_failure(format!("cannot write {}/logs: {e}", self.dir.display()));
        }
        r
    }

    /// State each capped log file's dropped lines at its end (the run is ending).
    pub fn close_logs(&self) -> std::io::Result<()> {
        self.logs.close()
    }

    /// The run's secret masker (for free text built outside the sink: diffs, log lines).
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Where progress lines go.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The path of `events.jsonl`.
    pub fn events_path(&self) -> &Path {
        self.events.path()
    }

    /// Save a file's previous bytes before the host is touched; returns the snapshot's
    /// relative path.
    pub fn save_snapshot(&self, host: &str, path: &str, file: &RemoteFile) -> std::io::Result<String> {
        let rel = format!("snapshots/{}/{}", snapshot_name(host), snapshot_name(path));
        let full = self.dir.join(&rel);
        let r = full
            .parent()
            .map_or(Ok(()), |d| create_dirs(d, 0o700))
            .and_then(|()| write_atomic_mode(&full, &file.bytes, 0o600));
        if let Err(e) = &r {
            self.note_failure(format!("cannot save the snapshot {}: {e}", full.display()));
        }
        r.map(|()| rel)
    }

    /// Read a saved snapshot.
    pub fn load_snapshot(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(rel))
    }

    /// Write a whole file in the run folder as given: the caller has masked its free text
    /// and kept its identifiers (`plan.json`, see `PlanRecord::masked`).
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.dir.join(name), bytes)
    }

    /// Write a document for people (`summary.md`), masked as a whole.
    pub fn write_text(&self, name: &str, text: &str) -> std::io::Result<()> {
        write_atomic(&self.dir.join(name), self.secrets.text(text).as_bytes())
    }

    /// Write a JSON document that is free text throughout (`decision.json`), every string
    /// masked.
    pub fn write_free_json<T: serde::Serialize>(&self, name: &str, doc: &T) -> std::io::Result<()> {
        let mut v = serde_json::to_value(doc).map_err(std::io::Error::other)?;
        self.secrets.json(&mut v);
        let text = serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(name), &text)
    }

    /// Append free text to a file in the run folder (matched log lines), masked. A failure
    /// is remembered like a failed event: the record is incomplete, so the run stops.
    pub fn append(&self, name: &str, text: &str) -> std::io::Result<()> {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .and_then(|mut f| f.write_all(self.secrets.text(text).as_bytes()));
        if let Err(e) = &r {
            self.note_failure(format!("cannot write {}: {e}", self.dir.join(name).display()));
        }
        r
    }
}

/// Find a run folder by id, unique prefix, unique suffix (playbook id) or `latest`.
pub fn resolve(runs: &Path, id: &str) -> std::io::Result<PathBuf> {
    let direct = runs.join(id);
    if direct.join("events.jsonl").exists() {
        return Ok(direct);
    }
    let mut all = list_ids(runs);
    if id == "latest" {
        return all.pop().map(|r| runs.join(r)).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("no runs in {}", runs.display()))
        });
    }
    let hits: Vec<_> = all.iter().filter(|r| r.starts_with(id) || r.ends_with(id)).collect();
    match hits.as_slice() {
        [one] => Ok(runs.join(one)),
        [] => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no run {id:?} in {} (see `bellwether runs`)", runs.display()),
        )),
        many => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{id:?} matches {} runs; use a full id: {}",
                many.len(),
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Every run id in `runs`, oldest first.
pub fn list_ids(runs: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("events.jsonl").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_reversible_enough_and_flat() {
        assert_eq!(snapshot_name("/etc/agent/config.toml"), "%2Fetc%2Fagent%2Fconfig.toml");
        assert_eq!(snapshot_name("a%b"), "a%25b");
    }

    #[test]
    fn ids_sort_by_time_and_resolve_by_prefix_or_suffix() {
        let d = tempfile::tempdir().unwrap();
        let q = || (Secrets::default(), Progress::Quiet);
        let (s, p) = q();
        let a = RunDir::create(d.path(), "20260101T000000000Z-alpha", s, p).unwrap();
        a.emit(EventKind::Paused { reason: "x".into() }).unwrap();
        let (s, p) = q();
        let b = RunDir::create(d.path(), "20260102T000000000Z-beta", s, p).unwrap();
        b.emit(EventKind::Paused { reason: "x".into() }).unwrap();
        assert_eq!(
            list_ids(d.path()),
            vec!["20260101T000000000Z-alpha", "20260102T000000000Z-beta"]
        );
        assert!(resolve(d.path(), "latest")
            .unwrap()
            .ends_with("20260102T000000000Z-beta"));
        assert!(resolve(d.path(), "alpha")
            .unwrap()
            .ends_with("20260101T000000000Z-alpha"));
        assert!(resolve(d.path(), "2026").is_err());
        assert!(new_run_id("pb").ends_with("Z-pb"));
    }
}
