//! The run state machine: for each phase (canary, batch 1, ...) re-check the calendar,
//! start log tails, change the hosts, observe, and on any failure revert every changed host.

use super::change::change_host;
use super::ctx::RunCtx;
use super::host;
use super::observe;
use super::reconnect::reconnect;
use super::revert::Outstanding;
use crate::calendar::{decide, CalendarSpec, GateRequest};
use crate::exit::Exit;
use crate::record::{read_events, EventKind};
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::time::Duration;

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

fn io(e: std::io::Error) -> Outcome {
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

/// Is the calendar still open for the next batch?
fn calendar_open(ctx: &RunCtx) -> Result<(), String> {
    let Some(c) = &ctx.calendar else { return Ok(()) };
    let mut req = c.request.clone();
    req.at = chrono::Utc::now() + c.offset;
    let d = decide(&c.calendar, &req);
    if d.allowed {
        Ok(())
    } else {
        Err(d.summary())
    }
}

async fn wait_window(ctx: &mut RunCtx, window: Duration) -> bool {
    let sleep = tokio::time::sleep(window);
    tokio::pin!(sleep);
    let mut intr = ctx.interrupt.clone();
    tokio::select! {
        _ = &mut sleep => false,
        _ = intr.changed() => true,
    }
}

/// Baseline hosts for batch `idx`: unchanged hosts of later batches first (the true control),
/// then hosts that already took the change and passed (so the last batch of a run during a
/// fleet-wide outage is compared with hosts showing the same outage, not judged alone).
fn batch_baseline(phases: &[(String, Vec<String>)], idx: usize, k: usize) -> Vec<String> {
    let later = phases.iter().skip(idx + 1).flat_map(|(_, h)| h.iter().cloned());
    let earlier = phases.iter().take(idx).flat_map(|(_, h)| h.iter().cloned());
    later.chain(earlier).take(k).collect()
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
    for (idx, (phase, hosts)) in phases.iter().enumerate().skip(from) {
        if idx > 0 || resumed {
            if let Err(why) = calendar_open(ctx) {
                let _ = ctx.run.emit(EventKind::Paused { reason: why.clone() });
                return Outcome {
                    exit: Exit::Blocked,
                    outcome: "paused",
                    message: format!("paused before {phase}: {why}. Hosts already changed keep the change (they passed their gates). Continue later with: bellwether resume {}", ctx.run.id),
                };
            }
        }
        if let Err(e) = ctx.run.emit(EventKind::PhaseStarted {
            phase: phase.clone(),
            hosts: hosts.clone(),
        }) {
            return io(e);
        }
        ctx.say(&format!("{phase}: {} host(s): {}", hosts.len(), hosts.join(", ")));
        let is_canary = phase == "canary";
        let watched_base = if is_canary {
            ctx.record.baseline.clone()
        } else {
            batch_baseline(&phases, idx, ctx.record.baseline.len())
        };
        let mut need = hosts.clone();
        if ctx.watch.is_some() {
            need.extend(watched_base.iter().cloned());
        }
        reconnect(ctx, &need, phase).await;
        let window = Duration::from_millis(if is_canary {
            ctx.record.observe_ms
        } else {
            ctx.record.batch_observe_ms
        });
        // Tails first, so start-up errors after the restart are seen.
        let mut tails = None;
        if let Some(w) = &ctx.watch {
            let mk = |names: &[String]| -> Vec<_> {
                names
                    .iter()
                    .filter_map(|n| ctx.prepared.get(n))
                    .filter_map(|p| p.log_command.clone().map(|c| (p.name.clone(), p.conn.clone(), c)))
                    .collect()
            };
            let base = mk(&watched_base);
            match observe::start(mk(hosts), base).await {
                Ok((mut t, warnings)) => {
                    for w in &warnings {
                        ctx.say(&format!("{phase}: {w}"));
                    }
                    if let (true, Some(b)) = (is_canary, ctx.record.before_ms) {
                        ctx.say(&format!(
                            "canary: recording {} of logs before the change",
                            humantime::format_duration(Duration::from_millis(b))
                        ));
                        let w = w.clone();
                        let mut intr = ctx.interrupt.clone();
                        let r = t
                            .observe(&ctx.run, "before", &w, Duration::from_millis(b), &mut intr)
                            .await;
                        if r.interrupted {
                            t.stop().await;
                            return stop_interrupted(ctx).await;
                        }
                    }
                    tails = Some(t);
                }
                Err((failed, e)) => {
                    let _ = ctx.run.emit(EventKind::HostFailed {
                        host: failed,
                        phase: phase.clone(),
                        reason: e.clone(),
                    });
                    return revert_all(ctx, &format!("{phase}: {e}")).await;
                }
            }
        }
        // Change the phase's hosts, up to `concurrency` at once.
        let ctx_ref = &*ctx;
        let results: Vec<(String, Result<(), String>)> = stream::iter(hosts.iter())
            .map(|h| async move {
                let Some(p) = ctx_ref.prepared.get(h) else {
                    return (h.clone(), Err("not prepared".to_string()));
                };
                (h.clone(), change_host(ctx_ref, p, resumed).await)
            })
            .buffer_unordered(ctx.concurrency)
            .collect()
            .await;
        let mut phase_failures: Vec<(String, String)> = results
            .into_iter()
            .filter_map(|(h, r)| r.err().map(|e| (h, e)))
            .collect();
        for (h, e) in &phase_failures {
            ctx.say(&format!("{phase}: {h} FAILED: {e}"));
        }
        if ctx.interrupted() > 0 {
            if let Some(t) = tails {
                t.stop().await;
            }
            return stop_interrupted(ctx).await;
        }
        if phase_failures.is_empty() || !is_canary {
            // Observe.
            ctx.say(&format!(
                "{phase}: observing for {}",
                humantime::format_duration(window)
            ));
            let _ = ctx.run.emit(EventKind::ObserveStarted {
                phase: phase.clone(),
                hosts: hosts.clone(),
                baseline: watched_base.clone(),
                window_ms: window.as_millis() as u64,
            });
            let interrupted;
            if let (Some(t), Some(w)) = (tails.as_mut(), ctx.watch.clone()) {
                let mut intr = ctx.interrupt.clone();
                let r = t.observe(&ctx.run, phase, &w, window, &mut intr).await;
                interrupted = r.interrupted;
                for (h, why) in r.failures() {
                    if !phase_failures.iter().any(|(x, _)| *x == h) {
                        phase_failures.push((h, why));
                    }
                }
                for (h, v) in &r.verdicts {
                    let failed = phase_failures.iter().any(|(x, _)| x == h);
                    ctx.say(&format!(
                        "{phase}: {h}: {} lines, {} errors, {}",
                        v.stats.lines,
                        v.stats.error_lines,
                        if v.passed && !failed { "gates passed" } else { "FAILED" }
                    ));
                }
            } else {
                interrupted = wait_window(ctx, window).await;
            }
            if interrupted {
                if let Some(t) = tails {
                    t.stop().await;
                }
                return stop_interrupted(ctx).await;
            }
            // Still healthy at the end of the window?
            if phase_failures.is_empty() {
                for h in hosts {
                    let Some(p) = ctx.prepared.get(h) else { continue };
                    if let Some(cmd) = &p.health {
                        let hp = ctx.record.hosts.get(h).cloned().unwrap_or_default();
                        if let Err(e) = host::health(
                            &ctx.run,
                            &p.conn,
                            h,
                            Some(cmd),
                            Duration::from_millis(hp.health_timeout_ms),
                        )
                        .await
                        {
                            phase_failures.push((h.clone(), format!("health after the window: {e}")));
                        }
                    }
                }
            }
        }
        if let Some(t) = tails {
            t.stop().await;
        }
        for (h, e) in &phase_failures {
            let _ = ctx.run.emit(EventKind::HostFailed {
                host: h.clone(),
                phase: phase.clone(),
                reason: e.clone(),
            });
        }
        if !phase_failures.is_empty() {
            failed_hosts += phase_failures.len();
            let first = &phase_failures[0];
            if is_canary || failed_hosts > ctx.record.max_failed_hosts {
                let reason = format!("{phase} failed on {}: {}", first.0, first.1);
                return revert_all(ctx, &reason).await;
            }
            // Within the failure budget: put the failed hosts back and go on.
            ctx.say(&format!(
                "{phase}: {} host(s) failed, within max_failed_hosts = {}; reverting just those",
                phase_failures.len(),
                ctx.record.max_failed_hosts
            ));
            let only: BTreeSet<String> = phase_failures.iter().map(|(h, _)| h.clone()).collect();
            let events = match read_events(&ctx.run.dir) {
                Ok(e) => e,
                Err(e) => return io(e),
            };
            let todo = Outstanding::from_events(&events).only(&only);
            reconnect(ctx, &only.iter().cloned().collect::<Vec<_>>(), phase).await;
            let cmds = ctx.restore_commands();
            let res = super::revert::revert(&ctx.run, todo, &ctx.conns, &cmds, ctx.concurrency).await;
            if res.iter().any(|r| !r.problems.is_empty()) {
                return revert_all(ctx, &format!("{phase}: could not revert failed host(s) cleanly")).await;
            }
        }
        let _ = ctx.run.emit(EventKind::PhasePassed { phase: phase.clone() });
        ctx.say(&format!("{phase}: passed"));
    }
    Outcome {
        exit: Exit::Done,
        outcome: "done",
        message: "every target has the change".into(),
    }
}

async fn stop_interrupted(ctx: &mut RunCtx) -> Outcome {
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
