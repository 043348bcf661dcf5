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

/// Where the system gives no change notification (inotify limits), or they stop, a look
/// this often instead: the wait still ends, just less promptly.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Change notifications for one folder (not its subfolders), as an async stream of "something
/// changed": the reader looks again at what it waits for.
pub struct DirWatch {
    notified: Option<Notified>,
    /// Why there are no notifications (then `changed` returns every [`LOOK_EVERY`]).
    pub degraded: Option<String>,
}

impl DirWatch {
    /// Watch `dir`; where that is refused, `degraded` says why.
    pub fn new(dir: &Path) -> DirWatch {
        match notified(dir) {
            Ok(n) => DirWatch {
                notified: Some(n),
                degraded: None,
            },
            Err(e) => DirWatch {
                notified: None,
                degraded: Some(format!("no change notification for {}: {e}", dir.display())),
            },
        }
    }

    /// Wait for the next change (or, degraded, for the next look).
    pub async fn changed(&mut self) {
        let Some((_, rx)) = self.notified.as_mut() else {
            return tokio::time::sleep(LOOK_EVERY).await;
        };
        if rx.recv().await.is_none() {
            self.notified = None;
            self.degraded = Some("the change notifications stopped".into());
            return;
        }
        // A burst of changes (write, then rename) is one look.
        while rx.try_recv().is_ok() {}
    }
}

type Notified = (notify::RecommendedWatcher, tokio::sync::mpsc::UnboundedReceiver<()>);

fn notified(dir: &Path) -> notify::Result<Notified> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // An error from the watcher is news too: the reader looks again.
        let _ = ev;
        let _ = tx.send(());
    })?;
    w.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok((w, rx))
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
        let mut w = DirWatch::new(d.path());
        // Every process of a user shares its inotify instances (`tail -F` uses them too): a
        // busy machine may have none left, and then a look every second stands in.
        let limit = match &w.degraded {
            None => std::time::Duration::from_millis(900),
            Some(_) => LOOK_EVERY * 2,
        };
        let dir = d.path().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || hand_over(&dir, &decision(Verb::Abort)));
        let woke = tokio::time::timeout(limit, w.changed()).await;
        assert!(woke.is_ok(), "woken within {limit:?} ({:?})", w.degraded);
        writer.await.unwrap().unwrap();
    }
}
