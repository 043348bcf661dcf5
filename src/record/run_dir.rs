//! A run's folder: `runs/RUN_ID/` with events, plan, snapshots, matched log lines, summary.

use super::events::{EventKind, EventLog};
use crate::ssh::RemoteFile;
use chrono::Utc;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open run folder.
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
    pub events: EventLog,
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
/// elsewhere (see `ui::out_file`).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::ui::out_file::write_file(path, bytes)
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
    pub fn create(runs: &Path, id: &str) -> std::io::Result<RunDir> {
        let dir = runs.join(id);
        std::fs::create_dir_all(dir.join("snapshots"))?;
        // Snapshots are the operator's exact bytes, secrets included: owner-only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("snapshots"), std::fs::Permissions::from_mode(0o700))?;
        let events = EventLog::open(&dir)?;
        Ok(RunDir {
            id: id.to_string(),
            dir,
            events,
        })
    }

    /// Open an existing run folder (revert, resume).
    pub fn open(runs: &Path, id: &str) -> std::io::Result<RunDir> {
        let dir = resolve(runs, id)?;
        let events = EventLog::open(&dir)?;
        let id = dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        Ok(RunDir { id, dir, events })
    }

    /// Append an event; a failure to record is fatal for safety, so it is returned.
    pub fn emit(&self, kind: EventKind) -> std::io::Result<()> {
        self.events.emit(kind)
    }

    /// Save a file's previous bytes before the host is touched; returns the snapshot's
    /// relative path.
    pub fn save_snapshot(&self, host: &str, path: &str, file: &RemoteFile) -> std::io::Result<String> {
        let rel = format!("snapshots/{}/{}", snapshot_name(host), snapshot_name(path));
        let full = self.dir.join(&rel);
        if let Some(p) = full.parent() {
            std::fs::create_dir_all(p)?;
        }
        write_atomic_mode(&full, &file.bytes, 0o600)?;
        Ok(rel)
    }

    /// Read a saved snapshot.
    pub fn load_snapshot(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(rel))
    }

    /// Write a whole file in the run folder (plan.json, summary.md, ...).
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        if name.ends_with(".json") {
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) {
                super::secrets::redact_json(&mut v);
                let text = serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?;
                return write_atomic(&self.dir.join(name), &text);
            }
        }
        if name.ends_with(".md") {
            let text = super::secrets::redact(&String::from_utf8_lossy(bytes));
            return write_atomic(&self.dir.join(name), text.as_bytes());
        }
        write_atomic(&self.dir.join(name), bytes)
    }

    /// Append text to a file in the run folder (matched log lines).
    pub fn append(&self, name: &str, text: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?;
        f.write_all(text.as_bytes())
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
        let a = RunDir::create(d.path(), "20260101T000000000Z-alpha").unwrap();
        a.emit(EventKind::Paused { reason: "x".into() }).unwrap();
        let b = RunDir::create(d.path(), "20260102T000000000Z-beta").unwrap();
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
