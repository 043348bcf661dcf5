//! The steps of one phase of the run (see `engine::run_phases`): re-check the calendar, start
//! log tails, change the hosts, observe, and handle the hosts that failed.

use super::change::change_host;
use super::ctx::RunCtx;
use super::engine::{io, revert_all, stop_interrupted, Outcome};
use super::host;
use super::observe;
use super::reconnect::reconnect;
use super::revert::Outstanding;
use crate::calendar::decide;
use crate::exit::Exit;
use crate::record::{read_events, EventKind};
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::time::Duration;

/// One phase as the steps below see it: worked out once so they agree on hosts and window.
pub(super) struct Phase<'a> {
    pub(super) name: &'a str,
    pub(super) hosts: &'a [String],
    pub(super) is_canary: bool,
    /// Unchanged (or already passed) hosts whose logs are compared with this phase's.
    pub(super) watched_base: Vec<String>,
    pub(super) window: Duration,
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

/// Without a log watch the window is plain waiting, still cut short by Ctrl-C.
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

/// Every phase after the first (and the first one of a resumed run) asks the calendar again,
/// so a freeze that began mid-run pauses it; then the phase is recorded and its hosts reached.
pub(super) async fn begin_phase<'a>(
    ctx: &mut RunCtx,
    phases: &[(String, Vec<String>)],
    idx: usize,
    phase: &'a str,
    hosts: &'a [String],
    resumed: bool,
) -> Result<Phase<'a>, Outcome> {
    if idx > 0 || resumed {
        if let Err(why) = calendar_open(ctx) {
            let _ = ctx.run.emit(EventKind::Paused { reason: why.clone() });
            return Err(Outcome {
                exit: Exit::Blocked,
                outcome: "paused",
                message: format!("paused before {phase}: {why}. Hosts already changed keep the change (they passed their gates). Continue later with: bellwether resume {}", ctx.run.id),
            });
        }
    }
    if let Err(e) = ctx.run.emit(EventKind::PhaseStarted {
        phase: phase.to_string(),
        hosts: hosts.to_vec(),
    }) {
        return Err(io(e));
    }
    ctx.say(&format!("{phase}: {} host(s): {}", hosts.len(), hosts.join(", ")));
    let is_canary = phase == "canary";
    let watched_base = if is_canary {
        ctx.record.baseline.clone()
    } else {
        batch_baseline(phases, idx, ctx.record.baseline.len())
    };
    let mut need = hosts.to_vec();
    if ctx.watch.is_some() {
        need.extend(watched_base.iter().cloned());
    }
    reconnect(ctx, &need, phase).await;
    let window = Duration::from_millis(if is_canary {
        ctx.record.observe_ms
    } else {
        ctx.record.batch_observe_ms
    });
    Ok(Phase {
        name: phase,
        hosts,
        is_canary,
        watched_base,
        window,
    })
}

/// Tails start before the change, so start-up errors after the restart are seen; the canary
/// also records a "before" window to compare with. `Ok(None)` when the playbook watches no log.
pub(super) async fn start_tails(ctx: &mut RunCtx, phase: &Phase<'_>) -> Result<Option<observe::Tails>, Outcome> {
    let name = phase.name;
    let mut tails = None;
    if let Some(w) = &ctx.watch {
        let mk = |names: &[String]| -> Vec<_> {
            names
                .iter()
                .filter_map(|n| ctx.prepared.get(n))
                .filter_map(|p| p.log_command.clone().map(|c| (p.name.clone(), p.conn.clone(), c)))
                .collect()
        };
        let base = mk(&phase.watched_base);
        match observe::start(mk(phase.hosts), base).await {
            Ok((mut t, warnings)) => {
                for w in &warnings {
                    ctx.say(&format!("{name}: {w}"));
                }
                if let (true, Some(b)) = (phase.is_canary, ctx.record.before_ms) {
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
                        return Err(stop_interrupted(ctx).await);
                    }
                }
                tails = Some(t);
            }
            Err((failed, e)) => {
                let _ = ctx.run.emit(EventKind::HostFailed {
                    host: failed,
                    phase: name.to_string(),
                    reason: e.clone(),
                });
                return Err(revert_all(ctx, &format!("{name}: {e}")).await);
            }
        }
    }
    Ok(tails)
}

/// Change the phase's hosts, up to `concurrency` at once; the hosts that failed, with why.
pub(super) async fn change_hosts(ctx: &RunCtx, phase: &Phase<'_>, resumed: bool) -> Vec<(String, String)> {
    let results: Vec<(String, Result<(), String>)> = stream::iter(phase.hosts.iter())
        .map(|h| async move {
            let Some(p) = ctx.prepared.get(h) else {
                return (h.clone(), Err("not prepared".to_string()));
            };
            (h.clone(), change_host(ctx, p, resumed).await)
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    let phase_failures: Vec<(String, String)> = results
        .into_iter()
        .filter_map(|(h, r)| r.err().map(|e| (h, e)))
        .collect();
    for (h, e) in &phase_failures {
        ctx.say(&format!("{}: {h} FAILED: {e}", phase.name));
    }
    phase_failures
}

/// Watch the window (or just wait it out without a log watch), adding the hosts whose gates
/// failed to `phase_failures`; true when the operator interrupted it.
pub(super) async fn observe_phase(
    ctx: &mut RunCtx,
    phase: &Phase<'_>,
    tails: Option<&mut observe::Tails>,
    phase_failures: &mut Vec<(String, String)>,
) -> bool {
    let name = phase.name;
    let window = phase.window;
    ctx.say(&format!("{name}: observing for {}", humantime::format_duration(window)));
    let _ = ctx.run.emit(EventKind::ObserveStarted {
        phase: name.to_string(),
        hosts: phase.hosts.to_vec(),
        baseline: phase.watched_base.clone(),
        window_ms: window.as_millis() as u64,
    });
    let interrupted;
    if let (Some(t), Some(w)) = (tails, ctx.watch.clone()) {
        let mut intr = ctx.interrupt.clone();
        let r = t.observe(&ctx.run, name, &w, window, &mut intr).await;
        interrupted = r.interrupted;
        for (h, why) in r.failures() {
            if !phase_failures.iter().any(|(x, _)| *x == h) {
                phase_failures.push((h, why));
            }
        }
        for (h, v) in &r.verdicts {
            let failed = phase_failures.iter().any(|(x, _)| x == h);
            ctx.say(&format!(
                "{name}: {h}: {} lines, {} errors, {}",
                v.stats.lines,
                v.stats.error_lines,
                if v.passed && !failed { "gates passed" } else { "FAILED" }
            ));
        }
    } else {
        interrupted = wait_window(ctx, window).await;
    }
    if interrupted {
        return true;
    }
    if phase_failures.is_empty() {
        health_after_window(ctx, phase.hosts, phase_failures).await;
    }
    false
}

/// Clean logs are not enough: a host must still pass its health check when the window ends.
async fn health_after_window(ctx: &RunCtx, hosts: &[String], phase_failures: &mut Vec<(String, String)>) {
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

/// Record the phase's failed hosts; a failed canary or a spent budget reverts the whole run
/// (`Err` with its outcome), otherwise only the failed hosts are put back and the run goes on.
pub(super) async fn handle_failures(
    ctx: &mut RunCtx,
    phase: &Phase<'_>,
    phase_failures: &[(String, String)],
    failed_hosts: &mut usize,
) -> Result<(), Outcome> {
    let name = phase.name;
    for (h, e) in phase_failures {
        let _ = ctx.run.emit(EventKind::HostFailed {
            host: h.clone(),
            phase: name.to_string(),
            reason: e.clone(),
        });
    }
    let Some(first) = phase_failures.first() else {
        return Ok(());
    };
    *failed_hosts += phase_failures.len();
    if phase.is_canary || *failed_hosts > ctx.record.max_failed_hosts {
        let reason = format!("{name} failed on {}: {}", first.0, first.1);
        return Err(revert_all(ctx, &reason).await);
    }
    // Within the failure budget: put the failed hosts back and go on.
    ctx.say(&format!(
        "{name}: {} host(s) failed, within max_failed_hosts = {}; reverting just those",
        phase_failures.len(),
        ctx.record.max_failed_hosts
    ));
    let only: BTreeSet<String> = phase_failures.iter().map(|(h, _)| h.clone()).collect();
    let events = match read_events(&ctx.run.dir) {
        Ok(e) => e,
        Err(e) => return Err(io(e)),
    };
    let todo = Outstanding::from_events(&events).only(&only);
    reconnect(ctx, &only.iter().cloned().collect::<Vec<_>>(), name).await;
    let cmds = ctx.restore_commands();
    let res = super::revert::revert(&ctx.run, todo, &ctx.conns, &cmds, ctx.concurrency).await;
    if res.iter().any(|r| !r.problems.is_empty()) {
        return Err(revert_all(ctx, &format!("{name}: could not revert failed host(s) cleanly")).await);
    }
    Ok(())
}
