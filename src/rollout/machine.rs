//! The run as one state machine. Every way a run can go is a transition here; the steps
//! (phase.rs, revert.rs) do one thing each and RETURN the next state — none of them reverts
//! or finishes on its own.
//!
//! ```text
//!            ┌──────────── calendar closed ───────────▶ Paused ─────────────┐
//!            │                                                              │
//!  Begin(k) ─┴▶ Change(k) ─▶ Observe(k) ─▶ Judge(k) ─ passed ─▶ Begin(k+1)  │
//!     │            │            │             │                   …         │
//!     │            │            │             ├─ within budget: revert the  │
//!     │            │            │             │  failed hosts, Begin(k+1)   │
//!     │            └─ Ctrl-C ───┴─▶ Interrupted ─ 2nd Ctrl-C ─▶ Finished ◀──┤
//!     │                               │ 1st                                 │
//!     │                               ▼                                     │
//!     └─ tails fail ──────────────▶ Reverting ◀─ canary failed / budget ────┤
//!                                     │                                     │
//!  no phase left ─────────────────────┴──────────────────────▶ Finished ◀───┘
//! ```
//!
//! A phase that stops for a person (`Judge` passed, `promote = "manual"` or a `"pause"` step)
//! goes to AwaitPromotion (promotion.rs): Finished (exit 7), or with `--wait` Begin(k+1),
//! Reverting or Interrupted.
//!
//! Preflight happens before the machine starts (start.rs): a run whose preflight fails never
//! changes a host. A record write that fails anywhere stops the run: the machine checks the
//! sink after every step and reverts what the run changed.

use super::error::RecordFailed;
use super::outcome::{Ending, Outcome};
use super::phase;
use super::pins::AtEnd;
use super::reconnect::reconnect_for_revert;
use super::revert::{HostRevert, Outstanding};
use super::run::Run;
pub(crate) use super::state::{State, Step};
use crate::record::{read_events, EventKind};
use std::collections::BTreeSet;

/// No phase left: the pins' end check, then `begin` finishes the run (or the hosts whose
/// pins broke are reverted first, or the whole run is).
async fn end_pins(run: &mut Run, k: usize) -> Step {
    match super::pins::at_end(run)? {
        AtEnd::Hold => phase::begin(run, k).await,
        AtEnd::Revert(why) => Ok(State::Reverting(why)),
        AtEnd::RevertHosts(only, why) => {
            if !phase::revert_some(run, &only, "end").await? {
                return Ok(State::Reverting(why));
            }
            phase::begin(run, k).await
        }
    }
}

/// Drive the run from `state` to its end.
pub(crate) async fn drive(run: &mut Run, mut state: State) -> Ending {
    loop {
        let next = match state {
            // No phase left: the end check of the pins, then `begin` finishes the run.
            State::Begin(k) if k >= run.plan.plan.phases().len() => end_pins(run, k).await,
            State::Begin(k) => phase::begin(run, k).await,
            State::Change(p) => phase::change(run, p).await,
            State::Observe(p, f) => phase::observe(run, p, f).await,
            State::Judge(p, f) => phase::judge(run, p, f).await,
            State::Paused(why) => pause(run, why),
            State::AwaitPromotion { phase, next, at } => super::promotion::await_promotion(run, phase, next, at).await,
            State::Interrupted => interrupted(run),
            State::Reverting(why) => return revert_all(run, &why).await,
            State::Finished(e) => return e,
        };
        // A write nobody could propagate (a verdict, a matched log line) still stops the run.
        let next = match (next, run.rec.failed()) {
            (Ok(State::Finished(e)), _) => Ok(State::Finished(e)),
            (Ok(_), Some(e)) => Err(RecordFailed(e)),
            (n, _) => n,
        };
        state = match next {
            Ok(s) => s,
            Err(RecordFailed(e)) => return record_failed(run, &e).await,
        };
    }
}

/// The record could not be written: stop, put back what the run changed, and end as
/// `record_failed` (exit 5) whatever the revert did — the record is incomplete.
pub(crate) async fn record_failed(run: &mut Run, e: &str) -> Ending {
    run.stop_tails().await;
    run.say(&format!("STOPPING: {e}"));
    let reverted = revert_all(run, &format!("the run record could not be written ({e})")).await;
    if reverted.outcome == Outcome::Interrupted {
        return reverted;
    }
    Ending::new(
        Outcome::RecordFailed,
        format!(
            "{}
the run stopped because its record could not be written; check {}",
            reverted.message,
            run.dir().display()
        ),
    )
}

/// The calendar closed: hosts already changed keep the change (they passed their gates).
fn pause(run: &mut Run, why: String) -> Step {
    run.rec.emit(EventKind::Paused { reason: why.clone() })?;
    Ok(State::Finished(Ending::new(
        Outcome::Paused,
        format!(
            "{why}. Hosts already changed keep the change (they passed their gates). Continue later with: bellwether resume {}",
            run.id()
        ),
    )))
}

/// First interrupt: revert what changed; second: stop at once and leave hosts as they are.
fn interrupted(run: &mut Run) -> Step {
    run.rec.emit(EventKind::Interrupted {
        reason: "interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)".into(),
    })?;
    if run.interrupted() >= 2 {
        return Ok(State::Finished(left_as_is(run, "stopped at once")));
    }
    Ok(State::Reverting("interrupted by the operator".into()))
}

fn left_as_is(run: &Run, what: &str) -> Ending {
    Ending::new(
        Outcome::Interrupted,
        format!(
            "{what}; hosts were left as they are. Finish with: bellwether revert {}",
            run.id()
        ),
    )
}

/// Revert everything this run changed and has not restored (from the record alone).
pub(crate) async fn revert_all(run: &mut Run, reason: &str) -> Ending {
    run.stop_tails().await;
    let events = match read_events(&run.rec.dir) {
        Ok(e) => e,
        Err(e) => {
            return Ending::new(
                Outcome::RecordFailed,
                format!("{reason}; the run record cannot be read back to revert ({e}); hosts may need attention: restore from {}/snapshots", run.dir().display()),
            )
        }
    };
    let todo = Outstanding::from_events(&events);
    let hosts: BTreeSet<String> = todo.hosts();
    run.say(&format!("REVERTING {} host(s): {}", hosts.len(), reason));
    let ev = serde_json::json!({"reason": reason, "hosts": hosts});
    // Recorded like every callback; its failure (or a record failure, remembered by the
    // sink) never stops putting hosts back.
    let _ = super::callbacks::call(run, super::callbacks::Milestone::Revert, None, None, ev).await;
    reconnect_for_revert(run, &hosts.iter().cloned().collect::<Vec<_>>()).await;
    let cmds = run.restore_commands();
    let mut intr = run.interrupt.clone();
    let fut = super::revert::revert(&run.rec, todo, &run.conns, &cmds, run.concurrency, reason);
    tokio::pin!(fut);
    let results = loop {
        tokio::select! {
            r = &mut fut => break Some(r),
            c = intr.changed() => {
                if c.is_err() || *intr.borrow() >= 2 { break None; }
            }
        }
    };
    let Some(results) = results else {
        // Best effort: the run stops either way; a failed write is reported by the ending.
        run.rec.emit_or_remember(EventKind::Interrupted {
            reason: "second interrupt during revert: hosts left as they are".into(),
        });
        let ending = left_as_is(run, "stopped during revert");
        return match run.rec.failed() {
            Some(e) => Ending::new(
                Outcome::RecordFailed,
                format!("{}\nthe run record is incomplete ({e})", ending.message),
            ),
            None => ending,
        };
    };
    let ending = revert_ending(run, reason, &hosts, &results);
    match run.rec.failed() {
        Some(e) => Ending::new(
            Outcome::RecordFailed,
            format!(
                "{}\nthe run record is incomplete ({e}): check the hosts above by hand",
                ending.message
            ),
        ),
        None => ending,
    }
}

/// Reverted (exit 1) only when every changed host is back and verified; hosts the run left
/// alone (never written) are named, but are not a failure of the revert.
fn revert_ending(run: &Run, reason: &str, hosts: &BTreeSet<String>, results: &[HostRevert]) -> Ending {
    let mut bad = Vec::new();
    for r in results {
        if r.problems.is_empty() {
            run.say(&format!(
                "{}: reverted and verified ({})",
                r.host,
                r.restored.join(", ")
            ));
        } else {
            let why: Vec<String> = r.problems.iter().map(|(p, m)| format!("{p}: {m}")).collect();
            bad.push(format!("  {}: {}", r.host, why.join("; ")));
        }
    }
    let alone = run.left_alone_note();
    if bad.is_empty() {
        return Ending::new(
            Outcome::Reverted,
            format!(
                "{reason}; every changed host ({}) was reverted and verified{alone}",
                hosts.len()
            ),
        )
        .said_first(reason);
    }
    // A link refused because its old slot changed stays refused however often `revert` is
    // run: suggesting it would send the operator round in circles.
    let retry_helps = results
        .iter()
        .flat_map(|r| &r.problems)
        .any(|(_, m)| !super::flip::needs_a_person(m));
    let next = if retry_helps {
        format!("Retry with: bellwether revert {}", run.id())
    } else {
        format!(
            "These need a person: `bellwether revert {}` would refuse them the same way until the slot holds what it held at the flip",
            run.id()
        )
    };
    Ending::new(
        Outcome::RevertFailed,
        format!(
            "{reason}; revert FAILED on {} host(s), they need attention:\n{}\n{next}{alone}",
            bad.len(),
            bad.join("\n"),
        ),
    )
    .said_first(reason)
}
