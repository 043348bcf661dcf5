//! The local run lock (`runs/lock.json`): one rollout at a time per runs folder.
//!
//! Created with O_EXCL so two processes cannot both win; it records who holds it so the loser
//! can say which run, owner and start time. A lock whose pid is dead is stale and may be
//! broken with `--break-lock` (recorded in the new run).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub run_id: String,
    pub user: String,
    pub pid: u32,
    pub host: String,
    pub started: DateTime<Utc>,
    pub hosts: Vec<String>,
}

impl LockInfo {
    /// Is the holding process gone (on this machine)?
    pub fn is_stale(&self) -> bool {
        let this_host = hostname();
        this_host == self.host && pid_is_dead(self.pid as i32)
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "run {} by {} (pid {} on {}), started {}",
            self.run_id,
            self.user,
            self.pid,
            self.host,
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// Is there no process `pid` on this machine? EPERM means it exists (another user's).
pub fn pid_is_dead(pid: i32) -> bool {
    // SAFETY: kill(pid, 0) sends no signal; it only asks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The current user name.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    pub info: LockInfo,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    Held(LockInfo, bool),
    Io(std::io::Error),
}

impl Lock {
    /// Take the lock in `runs`; `break_stale` removes a stale lock first (returns the old
    /// holder in `broken`).
    pub fn acquire(runs: &Path, info: LockInfo, break_stale: bool) -> Result<(Lock, Option<LockInfo>), LockError> {
        std::fs::create_dir_all(runs).map_err(LockError::Io)?;
        let path = runs.join("lock.json");
        let mut broken = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let text =
                        serde_json::to_string_pretty(&info).map_err(|e| LockError::Io(std::io::Error::other(e)))?;
                    f.write_all(text.as_bytes()).map_err(LockError::Io)?;
                    f.sync_all().map_err(LockError::Io)?;
                    return Ok((Lock { path, info }, broken));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = read(runs).ok_or_else(|| {
                        LockError::Io(std::io::Error::other(format!(
                            "{} exists but cannot be read; remove it if no run is active",
                            path.display()
                        )))
                    })?;
                    let stale = holder.is_stale();
                    if break_stale && stale {
                        std::fs::remove_file(&path).map_err(LockError::Io)?;
                        broken = Some(holder);
                        continue;
                    }
                    return Err(LockError::Held(holder, stale));
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
        Err(LockError::Io(std::io::Error::other("lock raced twice; try again")))
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if read(self.path.parent().unwrap_or(Path::new("."))).is_some_and(|i| i.run_id == self.info.run_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The current holder, if any.
pub fn read(runs: &Path) -> Option<LockInfo> {
    let text = std::fs::read_to_string(runs.join("lock.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, pid: u32) -> LockInfo {
        LockInfo {
            run_id: id.into(),
            user: "me".into(),
            pid,
            host: hostname(),
            started: Utc::now(),
            hosts: vec![],
        }
    }

    #[test]
    fn second_acquire_names_the_holder_and_stale_locks_break() {
        let d = tempfile::tempdir().unwrap();
        let (l, _) = Lock::acquire(d.path(), info("a", std::process::id()), false).unwrap();
        match Lock::acquire(d.path(), info("b", std::process::id()), true) {
            Err(LockError::Held(h, stale)) => {
                assert_eq!(h.run_id, "a");
                assert!(!stale);
            }
            other => panic!("{other:?}"),
        }
        drop(l);
        assert!(read(d.path()).is_none());
        // A lock left by a dead process.
        let (dead, _) = Lock::acquire(d.path(), info("c", 999_999_999), false).unwrap();
        std::mem::forget(dead);
        assert!(matches!(
            Lock::acquire(d.path(), info("d", 1), false),
            Err(LockError::Held(_, true))
        ));
        let (_l, broken) = Lock::acquire(d.path(), info("d", std::process::id()), true).unwrap();
        assert_eq!(broken.unwrap().run_id, "c");
    }
}
