//! The run state machine: for each phase (canary, batch 1, ...) re-check the calendar,
//! start log tails, change the hosts, observe, and on any failure revert every changed host.
//! The steps of one phase live in `phase.rs`.

use super::ctx::RunCtx;
use super::phase;
use super::reconnect::reconnect;
use super::revert::Outstanding;
use crate::calendar::{CalendarSpec, GateRequest};
use crate::exit::Exit;
use crate::record::{read_events, EventKind};
use std::collections::BTreeSet;

/// What the calendar is re-checked against before each batch.
pub struct CalendarCheck {
    pub calendar: CalendarSpec,
    pub request: GateRequest,
    /// `--at` shifts "now" for rehearsals; the offset is kept for later checks.
    pub offset: chrono::Duration,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub outcome: &'static str,
    pub message: String,
}

/// A run record that cannot be written stops the run: an unrecorded change could not be reverted.
pub(super) fn io(e: std::io::Error) -> Outcome {
    Outcome {
        exit: Exit::NeedsAttention,
        outcome: "record_failed",
        message: format!("cannot write the run record: {e}; stopping (hosts may need `bellwether revert`)"),
    }
}

/// Revert everything this run changed and not yet restored; the run's final outcome.
pub async fn revert_all(ctx: &mut RunCtx, reason: &str) -> Outcome {
    let events = match read_events(&ctx.run.dir) {
        Ok(e) => e,
        Err(e) => return io(e),
    };
    let todo = Outstanding::from_events(&events);
    let hosts: BTreeSet<String> = todo.hosts();
    ctx.say(&format!("REVERTING {} host(s): {}", hosts.len(), reason));
    reconnect(ctx, &hosts.iter().cloned().collect::<Vec<_>>(), "revert").await;
    let cmds = ctx.restore_commands();
    let mut intr = ctx.interrupt.clone();
    let fut = super::revert::revert(&ctx.run, todo, &ctx.conns, &cmds, ctx.concurrency);
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
        let _ = ctx.run.emit(EventKind::Interrupted {
            reason: "second interrupt during revert: hosts left as they are".into(),
        });
        return Outcome {
            exit: Exit::NeedsAttention,
            outcome: "interrupted",
            message: format!(
                "stopped during revert; hosts were left as they are. Finish with: bellwether revert {}",
                ctx.run.id
            ),
        };
    };
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| {
            format!(
                "  {}: {}",
                r.host,
                r.problems
                    .iter()
                    .map(|(p, m)| format!("{p}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .collect();
    for r in &results {
        if r.problems.is_empty() {
            ctx.say(&format!(
                "{}: reverted and verified ({})",
                r.host,
                r.restored.join(", ")
            ));
        }
    }
    if bad.is_empty() {
        Outcome {
            exit: Exit::Reverted,
            outcome: "reverted",
            message: format!(
                "{reason}; every changed host ({}) was reverted and verified",
                hosts.len()
            ),
        }
    } else {
        Outcome {
            exit: Exit::NeedsAttention,
            outcome: "revert_failed",
            message: format!(
                "{reason}; revert FAILED on {} host(s), they need attention:\n{}\nRetry with: bellwether revert {}",
                bad.len(),
                bad.join("\n"),
                ctx.run.id
            ),
        }
    }
}

/// Run every phase from `from` on; `resumed` continues a run recorded earlier.
pub async fn run_phases(ctx: &mut RunCtx, from: usize, resumed: bool) -> Outcome {
    let phases = ctx.record.plan.phases();
    // Hosts that failed preflight count against the budget; hosts in a frozen region do not.
    let mut failed_hosts: usize = ctx
        .record
        .skipped
        .iter()
        .filter(|(h, _)| !ctx.record.frozen.contains(h))
        .count();
    for (idx, (name, hosts)) in phases.iter().enumerate().skip(from) {
        let phase = match phase::begin_phase(ctx, &phases, idx, name, hosts, resumed).await {
            Ok(p) => p,
            Err(o) => return o,
        };
        let mut tails = match phase::start_tails(ctx, &phase).await {
            Ok(t) => t,
            Err(o) => return o,
        };
        let mut phase_failures = phase::change_hosts(ctx, &phase, resumed).await;
        if ctx.interrupted() > 0 {
            if let Some(t) = tails {
                t.stop().await;
            }
            return stop_interrupted(ctx).await;
        }
        // A failed canary is reverted at once; a batch still observes its other hosts.
        let observe = phase_failures.is_empty() || !phase.is_canary;
        if observe && phase::observe_phase(ctx, &phase, tails.as_mut(), &mut phase_failures).await {
            if let Some(t) = tails {
                t.stop().await;
            }
            return stop_interrupted(ctx).await;
        }
        if let Some(t) = tails {
            t.stop().await;
        }
        if let Err(o) = phase::handle_failures(ctx, &phase, &phase_failures, &mut failed_hosts).await {
            return o;
        }
        let _ = ctx.run.emit(EventKind::PhasePassed {
            phase: phase.name.to_string(),
        });
        ctx.say(&format!("{}: passed", phase.name));
    }
    Outcome {
        exit: Exit::Done,
        outcome: "done",
        message: "every target has the change".into(),
    }
}

/// First Ctrl-C: revert what changed; second: stop at once and leave hosts as they are.
pub(super) async fn stop_interrupted(ctx: &mut RunCtx) -> Outcome {
    let _ = ctx.run.emit(EventKind::Interrupted {
        reason: "interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)".into(),
    });
    if ctx.interrupted() >= 2 {
        return Outcome {
            exit: Exit::NeedsAttention,
            outcome: "interrupted",
            message: format!(
                "stopped at once; hosts were left as they are. Finish with: bellwether revert {}",
                ctx.run.id
            ),
        };
    }
    revert_all(ctx, "interrupted by the operator").await
}
