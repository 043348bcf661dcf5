//! Local run locks: `runs/.locks/RUN_ID.json`, one per running run, naming its hosts. A run may
//! start only if no live lock names one of its hosts, so rollouts of disjoint host sets can
//! run side by side while overlapping ones exit 4. The check-and-create is serialised with
//! `flock` on `runs/.locks/.mutex`, so two processes cannot both win.
//!
//! A lock whose process is gone (same machine, dead pid), or one from another machine older
//! than [`FOREIGN_STALE_AFTER`], is stale and may be broken with `--break-lock` (recorded).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A lock written on another machine (whose pid cannot be checked from here) counts as stale
/// after this long: no rollout's observation windows last a day.
pub const FOREIGN_STALE_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// Who holds a lock.
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
    /// Is the holding process gone (this machine), or the lock old (another machine)?
    pub fn is_stale(&self) -> bool {
        if self.host == hostname() {
            pid_is_dead(self.pid as i32)
        } else {
            Utc::now() - self.started > FOREIGN_STALE_AFTER
        }
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

/// The current user name: `$USER`, `$LOGNAME`, else the password database's name for the
/// uid (cron and systemd often set neither variable), else `uidN`. Never with a space: the
/// host marker is `RUN_ID USER@MACHINE PID`, split on spaces to find a stale one.
pub fn username() -> String {
    let env = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.trim().is_empty() && !v.contains(char::is_whitespace))
    };
    if let Some(u) = env("USER").or_else(|| env("LOGNAME")) {
        return u;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    passwd_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

/// The login name of `uid` in the password database.
fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value to be overwritten (null pointers, zeros).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to storage owned here that outlives the call; getpwuid_r
    // writes the strings into `buf` (at most its length) and sets `found` to `&pw` or null.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if r != 0 || found.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`, still alive.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned();
    (!name.is_empty() && !name.contains(char::is_whitespace)).then_some(name)
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
    /// A live (or, without break, stale) run holds some of the same hosts: (holder, stale).
    Held(LockInfo, bool),
    Io(std::io::Error),
}

fn locks_dir(runs: &Path) -> PathBuf {
    runs.join(".locks")
}

/// Holds `flock(LOCK_EX)` on the mutex file until dropped.
struct Mutex(std::fs::File);

impl Mutex {
    fn take(dir: &Path) -> std::io::Result<Mutex> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".mutex"))?;
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mutex(f))
    }
}

impl Drop for Mutex {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor locked in `take`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Lock {
    /// Take a lock for `info.hosts`; a lock of the same run id (a resumed or reverted run) is
    /// replaced; `break_stale` removes stale overlapping locks (returned in `broken`).
    pub fn acquire(runs: &Path, info: LockInfo, break_stale: bool) -> Result<(Lock, Option<LockInfo>), LockError> {
        let dir = locks_dir(runs);
        std::fs::create_dir_all(&dir).map_err(LockError::Io)?;
        let _m = Mutex::take(&dir).map_err(LockError::Io)?;
        let mut broken = None;
        for (path, holder) in read_all(runs) {
            let overlaps = holder.run_id == info.run_id || holder.hosts.iter().any(|h| info.hosts.contains(h));
            if !overlaps {
                continue;
            }
            let stale = holder.is_stale();
            if holder.run_id == info.run_id && stale {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if break_stale && stale {
                std::fs::remove_file(&path).map_err(LockError::Io)?;
                broken = Some(holder);
                continue;
            }
            return Err(LockError::Held(holder, stale));
        }
        let path = dir.join(format!("{}.json", info.run_id));
        let text = serde_json::to_string_pretty(&info).map_err(|e| LockError::Io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&path).map_err(LockError::Io)?;
        f.write_all(text.as_bytes()).map_err(LockError::Io)?;
        f.sync_all().map_err(LockError::Io)?;
        Ok((Lock { path, info }, broken))
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every lock file in `runs` with its holder.
pub fn read_all(runs: &Path) -> Vec<(PathBuf, LockInfo)> {
    let mut v: Vec<(PathBuf, LockInfo)> = std::fs::read_dir(locks_dir(runs))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let info = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
            Some((p, info))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_has_its_login_name() {
        assert_eq!(passwd_name(0).as_deref(), Some("root"));
        assert!(!username().contains(' '), "{}", username());
    }

    fn info(id: &str, pid: u32, hosts: &[&str]) -> LockInfo {
        LockInfo {
            run_id: id.into(),
            user: "me".into(),
            pid,
            host: hostname(),
            started: Utc::now(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn overlapping_hosts_conflict_disjoint_ones_do_not() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let (a, _) = Lock::acquire(d.path(), info("a", me, &["h1", "h2"]), false).unwrap();
        match Lock::acquire(d.path(), info("b", me, &["h2", "h3"]), true) {
            Err(LockError::Held(h, stale)) => {
                assert_eq!(h.run_id, "a");
                assert!(!stale, "a live process is never stale");
            }
            other => panic!("{other:?}"),
        }
        let (c, _) = Lock::acquire(d.path(), info("c", me, &["h3"]), false).unwrap();
        assert_eq!(read_all(d.path()).len(), 2);
        drop(a);
        drop(c);
        assert!(read_all(d.path()).is_empty());
    }

    #[test]
    fn stale_locks_break_only_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let (dead, _) = Lock::acquire(d.path(), info("c", 999_999_999, &["h1"]), false).unwrap();
        std::mem::forget(dead);
        assert!(matches!(
            Lock::acquire(d.path(), info("d", 1, &["h1"]), false),
            Err(LockError::Held(_, true))
        ));
        let (_l, broken) = Lock::acquire(d.path(), info("d", std::process::id(), &["h1"]), true).unwrap();
        assert_eq!(broken.unwrap().run_id, "c");
    }

    #[test]
    fn foreign_locks_go_stale_after_a_day() {
        let mut i = info("x", 1, &["h1"]);
        i.host = "elsewhere".into();
        assert!(!i.is_stale());
        i.started = Utc::now() - chrono::Duration::hours(25);
        assert!(i.is_stale());
    }
}
