//! `promote RUN` / `abort RUN` for a run whose process still waits at its promotion point
//! (`--wait`): the decision is handed over through the run folder (record/decision.rs) and
//! the waiting process acts on it — it holds the lock, the markers and the connections.
//! `promote` returns once the process took the decision; `abort` follows it to the end of
//! its revert, so its exit code says how that went.

use super::outcome::{Ending, Outcome};
use super::reopen::{need_yes, open};
use super::run::RunOptions;
use super::waits::{live_wait, Waiting};
use crate::config::LoadedFleet;
use crate::exit::{Exit, Failure};
use crate::record::decision::{self, Decision, DirWatch, Verb};
use crate::record::lock::{hostname, username};
use crate::record::{read_events, EventKind, RunDir};
use std::time::Duration;

/// How long the waiting process has to take a decision (it reacts in milliseconds).
const TAKE_WITHIN: Duration = Duration::from_secs(30);

/// What came of a hand-over.
#[derive(Debug)]
pub enum Handed {
    /// The waiting process took the promotion and goes on: what to tell the person.
    Promoted(String),
    /// The waiting process took the abort and reverted: how its run ended.
    Aborted(Ending),
}

/// Hand `verb` to the process waiting at `id`'s promotion point; None: no process waits
/// there (the run stopped, or is not waiting), so the caller goes on as usual.
pub async fn hand_over(lf: &LoadedFleet, opts: &RunOptions, id: &str, verb: Verb) -> Result<Option<Handed>, Failure> {
    let (rec, events) = open(lf, opts, id)?;
    let lock = crate::record::lock::read_all(&opts.runs_dir)
        .into_iter()
        .map(|(_, l)| l)
        .find(|l| l.run_id == rec.id && !l.is_stale());
    let Some(w) = lock.and_then(|l| live_wait(&rec.id, &events, l)) else {
        return Ok(None);
    };
    let pid = check_waiter(&rec, &w, verb)?;
    let what = match verb {
        Verb::Promote => "Promote",
        Verb::Abort => "Abort (revert every host it changed)",
    };
    need_yes(
        opts.yes,
        &format!("{what} run {}, waiting in process {pid} after {}", rec.id, w.after),
    )?;
    // Watching before the hand-over, so the process taking it cannot be missed.
    let mut watch = DirWatch::new(&rec.dir);
    let d = Decision {
        decision: verb,
        phase: w.after.clone(),
        by: format!("{}@{}", username(), hostname()),
        at: chrono::Utc::now(),
    };
    decision::hand_over(&rec.dir, &d)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot hand the decision over: {e}")))?;
    taken(&rec, &mut watch, pid).await?;
    Ok(Some(match verb {
        Verb::Promote => Handed::Promoted(format!(
            "run {id}: promoted after {}; the waiting process (pid {pid}) goes on with the next phase — follow it in its terminal, or `bellwether show {id}`",
            w.after,
            id = rec.id
        )),
        Verb::Abort => Handed::Aborted(ended(&rec, &mut watch, pid).await),
    }))
}

/// The waiter must be on this machine (the hand-over goes through its file system's
/// notifications), and a promotion must come within the wait's time.
fn check_waiter(rec: &RunDir, w: &Waiting, verb: Verb) -> Result<i32, Failure> {
    let Some(l) = w.waiter.as_ref() else {
        return Err(Failure::input("no process waits for this run"));
    };
    if l.host != hostname() {
        return Err(Failure::input(format!(
            "run {} waits in a process on {} (pid {}): promote or abort it there",
            rec.id, l.host, l.pid
        )));
    }
    if verb == Verb::Promote && w.expired() {
        return Err(Failure::input(format!(
            "run {}: the wait for promotion after {} expired (pause_timeout); its process (pid {}) reverts it by itself",
            rec.id, w.after, l.pid
        )));
    }
    Ok(l.pid as i32)
}

/// Wait until the process took the decision; one not taken in time is taken back.
async fn taken(rec: &RunDir, watch: &mut DirWatch, pid: i32) -> Result<(), Failure> {
    let limit = tokio::time::sleep(TAKE_WITHIN);
    tokio::pin!(limit);
    let gone = process_ended(pid);
    tokio::pin!(gone);
    while decision::pending(&rec.dir) {
        tokio::select! {
            _ = watch.changed() => {}
            _ = &mut limit => break,
            _ = &mut gone => break,
        }
    }
    if !decision::withdraw(&rec.dir).unwrap_or(false) {
        return Ok(());
    }
    Err(Failure::new(
        Exit::NeedsAttention,
        format!(
            "the process waiting for run {} (pid {pid}) did not take the decision; nothing was done. See `bellwether status`",
            rec.id
        ),
    ))
}

/// Follow the waiting process to the end of the run it goes on with.
async fn ended(rec: &RunDir, watch: &mut DirWatch, pid: i32) -> Ending {
    let gone = process_ended(pid);
    tokio::pin!(gone);
    let mut alive = true;
    loop {
        if let Some(e) = last_end(rec) {
            return e;
        }
        if !alive {
            return Ending::new(
                Outcome::Interrupted,
                format!(
                    "the process of run {id} (pid {pid}) ended without recording how; finish with: bellwether revert {id}",
                    id = rec.id
                ),
            );
        }
        tokio::select! {
            _ = watch.changed() => {}
            _ = &mut gone => alive = false,
        }
    }
}

/// The run's end, once the process that took over recorded it.
fn last_end(rec: &RunDir) -> Option<Ending> {
    let evs = read_events(&rec.dir).ok()?;
    let start = evs
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::RunStarted { .. }))?;
    evs[start..].iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFinished { outcome, message, .. } => Some(Ending::new(Outcome::parse(outcome)?, message.clone())),
        _ => None,
    })
}

/// Resolves when process `pid` of this machine has ended (a pidfd becomes readable), at
/// once if it is gone already; never, where the kernel has no pidfds (the run's events
/// still wake the caller).
async fn process_ended(pid: i32) {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return;
        }
        return std::future::pending().await;
    }
    // SAFETY: `fd` was just opened above and is owned by nothing else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: an OwnedFd stays open, and is the same descriptor, until the AsyncFd drops it.
    let afd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) };
    match afd {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(_) => std::future::pending().await,
    }
}
