//! A manual promotion point (`promote = "manual"`, a `"pause"` step). The hosts changed so
//! far keep the change and the run keeps its markers. Then either:
//!
//! - the process stops (exit 7) and people end the wait with `promote RUN` / `abort RUN`
//!   later (or cron's `abort --expired`); or
//! - with `--wait`, the process stays at the point like a rollout controller would, holding
//!   its lock: a `promote RUN` / `abort RUN` run elsewhere hands its decision over through the
//!   run folder (record/decision.rs, woken by a change notification, not by polling — a
//!   look every second only where the system refuses notifications), and
//!   once `pause_timeout` has passed the run reverts by itself (exit 1). Ctrl-C is Ctrl-C:
//!   the run reverts.

use super::outcome::{Ending, Outcome};
use super::run::Run;
use super::state::{State, Step};
use crate::record::decision::{self, Decision, DirWatch, Verb};
use crate::record::EventKind;
use chrono::{DateTime, Utc};

/// Record the wait, then stop the process or, with `--wait`, wait here.
pub(crate) async fn await_promotion(run: &mut Run, phase: String, next: String, at: usize) -> Step {
    let since = Utc::now();
    let expires = run
        .pause_timeout
        .and_then(|t| chrono::Duration::from_std(t).ok())
        .map(|t| Utc::now() + t);
    run.rec.emit(EventKind::AwaitingPromotion {
        phase: phase.clone(),
        next: next.clone(),
        expires,
    })?;
    if !run.wait_for_promotion {
        return Ok(stopped(run, &phase, &next, expires));
    }
    let watch = DirWatch::new(run.dir());
    if let Some(why) = &watch.degraded {
        run.say(&format!("{why}: looking for a decision every second instead"));
    }
    run.say(&format!(
        "{phase} passed; waiting for promotion before {next}{}. In another terminal: bellwether promote {id} (go on) or bellwether abort {id} (revert); Ctrl-C reverts",
        until(expires, "reverts by itself"),
        id = run.id()
    ));
    let wait = Wait {
        phase,
        at,
        since,
        expires,
    };
    wait.run(run, watch).await
}

/// " (until 18:00 UTC, then it WHAT)", or nothing without a `pause_timeout`.
fn until(expires: Option<DateTime<Utc>>, what: &str) -> String {
    expires
        .map(|e| format!(" (until {}, then it {what})", e.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default()
}

/// The run ends here as `awaiting_promotion` (exit 7), saying how to go on.
fn stopped(run: &Run, phase: &str, next: &str, expires: Option<DateTime<Utc>>) -> State {
    let until = expires
        .map(|e| {
            format!(
                " (a promotion after {} reverts instead; nothing reverts it by itself unless `bellwether abort --expired` runs from cron, or the rollout waits with --wait)",
                e.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .unwrap_or_default();
    State::Finished(Ending::new(
        Outcome::AwaitingPromotion,
        format!(
            "{phase} passed; waiting for promotion before {next}{until}. Continue with: bellwether promote {id}; or revert with: bellwether abort {id}",
            id = run.id()
        ),
    ))
}

/// A wait in a live process: until a decision, the deadline, or Ctrl-C.
struct Wait {
    phase: String,
    /// The phase the run goes on with.
    at: usize,
    /// When the wait began (a decision from before it is not for it).
    since: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
}

impl Wait {
    async fn run(self, run: &mut Run, mut watch: DirWatch) -> Step {
        let mut intr = run.interrupt.clone();
        let mut signals = true;
        loop {
            // An interrupt that came before the wait began counts too.
            if run.interrupted() > 0 {
                return Ok(State::Interrupted);
            }
            if let Some(d) = self.decision(run) {
                return self.decided(run, d);
            }
            let left = self.expires.map(|e| (e - Utc::now()).to_std().unwrap_or_default());
            tokio::select! {
                _ = watch.changed() => {},
                _ = sleep(left) => return self.expired(run),
                c = intr.changed(), if signals => match c {
                    Ok(()) if *intr.borrow() > 0 => return Ok(State::Interrupted),
                    Ok(()) => {}
                    // No signal handler: nothing more will come from there.
                    Err(_) => signals = false,
                },
            }
        }
    }

    /// A decision handed over for this wait; others (for another wait, from before this
    /// one began, unreadable) are said and dropped.
    fn decision(&self, run: &Run) -> Option<Decision> {
        let d = match decision::take(run.dir()) {
            Ok(d) => d?,
            Err(e) => {
                run.say(&format!("ignored an unreadable decision: {e}"));
                return None;
            }
        };
        if d.phase != self.phase || d.at < self.since {
            run.say(&format!(
                "ignored a decision by {} for the wait after {} of {}",
                d.by,
                d.phase,
                d.at.format("%Y-%m-%d %H:%M:%S UTC")
            ));
            return None;
        }
        Some(d)
    }

    /// Promote: record it and go on. Abort: record it and revert. A promotion that comes
    /// after the deadline reverts, as `promote RUN` on a stopped run does.
    fn decided(&self, run: &mut Run, d: Decision) -> Step {
        if self.expires.is_some_and(|e| Utc::now() > e) {
            return self.expired(run);
        }
        let phase = self.phase.clone();
        match d.decision {
            Verb::Promote => {
                run.rec.emit(EventKind::Promoted {
                    phase: phase.clone(),
                    by: d.by.clone(),
                })?;
                run.say(&format!("promoted by {}; going on", d.by));
                run.promoted.push(phase);
                Ok(State::Begin(self.at))
            }
            Verb::Abort => {
                run.rec.emit(EventKind::Aborted {
                    phase: phase.clone(),
                    by: d.by.clone(),
                })?;
                Ok(State::Reverting(format!(
                    "aborted by {} while waiting for promotion after {phase}",
                    d.by
                )))
            }
        }
    }

    /// The wait outlived `pause_timeout`: recorded, and the run reverts by itself.
    fn expired(&self, run: &mut Run) -> Step {
        let expires = self.expires.unwrap_or_else(Utc::now);
        run.rec.emit(EventKind::PromotionExpired {
            phase: self.phase.clone(),
            expires,
        })?;
        Ok(State::Reverting(format!(
            "nobody promoted the run: the wait for promotion after {} expired at {} (pause_timeout)",
            self.phase,
            expires.format("%Y-%m-%d %H:%M:%S UTC")
        )))
    }
}

/// Sleep for `left`, or forever without a deadline.
async fn sleep(left: Option<std::time::Duration>) {
    match left {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
