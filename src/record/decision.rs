//! The hand-over between `bellwether promote RUN` / `abort RUN` and a process that waits at
//! the run's promotion point (`rollout --wait`): the command writes `promotion.json` into the
//! run folder; the waiting process learns of it from the file system's change notification
//! (inotify, through `notify` — no polling), takes it with one rename (so it is acted on
//! once), records it, and goes on or reverts. The file exists only in between.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The file a decision is handed over in (`decision.json` is the calendar's decision).
pub const FILE: &str = "promotion.json";
/// Where the waiting process moves it to read it.
const TAKEN: &str = "promotion.taken";

/// What a person decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Go on with the next phase.
    Promote,
    /// Revert every host the run changed.
    Abort,
}

/// A decision for the wait after `phase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: Verb,
    /// The phase the run was seen waiting after: a decision meant for another wait is ignored.
    pub phase: String,
    /// `user@machine`.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Write `d` for the waiting process: a temp file, fsynced, renamed into place.
pub fn hand_over(dir: &Path, d: &Decision) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let mut f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().write(true).create(true).truncate(true),
        0o600,
    )
    .open(&tmp)?;
    f.write_all(&serde_json::to_vec(d).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Take the decision waiting in `dir`, if any (None: there is none). An unreadable one is
/// an error, and gone either way.
pub fn take(dir: &Path) -> std::io::Result<Option<Decision>> {
    match std::fs::rename(dir.join(FILE), dir.join(TAKEN)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r?,
    }
    let bytes = std::fs::read(dir.join(TAKEN));
    let _ = std::fs::remove_file(dir.join(TAKEN));
    serde_json::from_slice(&bytes?)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{FILE}: {e}")))
}

/// Take back a decision nobody took: true when it was still there (so it never will be).
pub fn withdraw(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(dir.join(FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Is a decision still waiting to be taken?
pub fn pending(dir: &Path) -> bool {
    dir.join(FILE).exists()
}

/// Change notifications for one folder (not its subfolders), as an async stream of "something
/// changed": the reader looks again at what it waits for.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl DirWatch {
    /// Watch `dir`. Fails where the system has no notification left (inotify limits).
    pub fn new(dir: &Path) -> notify::Result<DirWatch> {
        use notify::Watcher;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // An error from the watcher is news too: the reader looks again.
            let _ = ev;
            let _ = tx.send(());
        })?;
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(DirWatch { _watcher: w, rx })
    }

    /// Wait for the next change (false: the watcher stopped and nothing more will come).
    pub async fn changed(&mut self) -> bool {
        let got = self.rx.recv().await.is_some();
        // A burst of changes (write, then rename) is one look.
        while self.rx.try_recv().is_ok() {}
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(v: Verb) -> Decision {
        Decision {
            decision: v,
            phase: "canary".into(),
            by: "ops@deploy-1".into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn a_decision_is_taken_once_and_withdrawing_a_taken_one_says_so() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("decision.json"), "{}").unwrap();
        assert_eq!(take(d.path()).unwrap(), None);
        hand_over(d.path(), &decision(Verb::Promote)).unwrap();
        assert!(pending(d.path()));
        assert_eq!(take(d.path()).unwrap().unwrap().decision, Verb::Promote);
        assert_eq!(take(d.path()).unwrap(), None, "taken once");
        assert!(!withdraw(d.path()).unwrap(), "already taken");
        hand_over(d.path(), &decision(Verb::Abort)).unwrap();
        assert!(withdraw(d.path()).unwrap());
        assert_eq!(take(d.path()).unwrap(), None);
        std::fs::write(d.path().join(FILE), "{not json").unwrap();
        assert!(take(d.path()).is_err());
        assert!(!pending(d.path()), "an unreadable decision is gone too");
        assert!(
            d.path().join("decision.json").exists(),
            "the calendar's decision is not touched"
        );
    }

    #[tokio::test]
    async fn the_watch_wakes_on_a_hand_over() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(d.path()).unwrap();
        let dir = d.path().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || hand_over(&dir, &decision(Verb::Abort)));
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), w.changed()).await;
        assert_eq!(woke.ok(), Some(true));
        writer.await.unwrap().unwrap();
    }
}
