//! The steps of one phase (canary, batch 1, …), each returning the next state of the machine
//! (machine.rs): begin (calendar, record, reach hosts, start tails), change the hosts,
//! observe the window, judge.

use super::callbacks;
use super::change::change_host;
use super::error::HostError;
use super::error::RecordFailed;
use super::host;
use super::observe;
use super::reconnect::reconnect as reconnect_hosts;
use super::reconnect::reconnect;
use super::revert::Outstanding;
use super::run::Run;
pub(crate) use super::state::{Failures, Phase, State, Step};
use crate::calendar::decide;
use crate::record::read_events;
use crate::record::EventKind;
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::time::Duration;

/// Is the calendar still open for the next phase?
fn calendar_open(run: &Run, region: Option<&str>) -> Result<(), String> {
    let Some(c) = &run.calendar else { return Ok(()) };
    let mut req = c.request.clone();
    req.at = chrono::Utc::now() + c.offset;
    if let Some(r) = region {
        // A region wave asks about its own region: a regional freeze (or the region's own
        // off-peak window) pauses the run at that region's boundary, not before.
        req.regions = vec![r.to_string()];
        if let Some(w) = run.within.get(r) {
            let op: crate::calendar::OffPeak = w.parse().map_err(|e| format!("rollout.within.{r}: {e}"))?;
            if !op.contains(req.at) {
                return Err(format!(
                    "{r} is outside its window {w} (next opening {})",
                    op.next_start(req.at).format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
    }
    let d = decide(&c.calendar, &req);
    if d.allowed {
        Ok(())
    } else {
        Err(d.summary())
    }
}

/// Begin phase `idx`: every phase after the first (and the first of a resumed run) asks the
/// calendar again, so a freeze that began mid-run pauses it; then the phase is recorded, its
/// hosts reached and its tails started.
pub(crate) async fn begin(run: &mut Run, idx: usize) -> Step {
    let phases = run.plan.plan.phases();
    let Some((name, hosts)) = phases.get(idx).cloned() else {
        return Ok(State::Finished(super::outcome::Ending::new(
            super::outcome::Outcome::Done,
            format!("every target has the change{}", run.left_alone_note()),
        )));
    };
    // A region wave's first phase asks about its region, the first wave included (its
    // off-peak window was not part of the start's gate).
    let wave = super::plan::BatchPlan::wave_of(&name)
        .filter(|w| idx == 0 || super::plan::BatchPlan::wave_of(&phases[idx - 1].0) != Some(*w));
    if idx > 0 || run.resumed || wave.is_some() {
        if let Err(why) = calendar_open(run, wave) {
            return Ok(State::Paused(format!("paused before {name}: {why}")));
        }
    }
    run.rec.emit(EventKind::PhaseStarted {
        phase: name.clone(),
        hosts: hosts.clone(),
    })?;
    run.say(&format!("{name}: {} host(s): {}", hosts.len(), hosts.join(", ")));
    let is_canary = super::plan::BatchPlan::is_canary(&name);
    // Unchanged hosts of later phases first (for the canary: the batches, as planned).
    let watched_base = super::planner::phase_baseline(&phases, idx, run.plan.baseline.len());
    let mut need = hosts.clone();
    if run.watch.is_some() {
        need.extend(watched_base.iter().cloned());
    }
    reconnect(run, &need, &name).await;
    let ms = if is_canary {
        run.plan.observe_ms
    } else {
        run.plan.batch_observe_ms
    };
    let phase = Phase {
        idx,
        name,
        hosts,
        is_canary,
        watched_base,
        window: Duration::from_millis(ms),
    };
    start_tails(run, phase).await
}

/// Tails start before the change, so start-up errors after the restart are seen; the canary
/// also records a "before" window to compare with.
async fn start_tails(run: &mut Run, phase: Phase) -> Step {
    // Cuts are per phase (an earlier phase's host that failed in its change left one).
    if let Ok(mut m) = run.changed_at.lock() {
        m.clear();
    }
    let Some(w) = run.watch.clone() else {
        return Ok(State::Change(phase));
    };
    let mk = |names: &[String]| -> Vec<_> {
        names
            .iter()
            .filter_map(|n| run.prepared.get(n))
            .filter_map(|p| {
                Some(observe::TailSpec {
                    name: p.name.clone(),
                    conn: p.conn.clone(),
                    command: p.log_command.clone()?,
                    file: p.log_file.clone(),
                })
            })
            .collect()
    };
    let (hosts, base) = (mk(&phase.hosts), mk(&phase.watched_base));
    let mut intr = run.interrupt.clone();
    let started = tokio::select! {
        r = observe::start(hosts, base) => r,
        _ = intr.changed() => return Ok(State::Interrupted),
    };
    let mut t = match started {
        Ok((t, warnings)) => {
            for w in &warnings {
                run.say(&format!("{}: {w}", phase.name));
            }
            t
        }
        Err((failed, e)) => {
            run.rec.emit(EventKind::HostFailed {
                host: failed,
                phase: phase.name.clone(),
                reason: e.clone(),
            })?;
            return Ok(State::Reverting(format!("{}: {e}", phase.name)));
        }
    };
    if let (true, Some(b)) = (phase.is_canary, run.plan.before_ms) {
        let b = Duration::from_millis(b);
        run.say(&format!(
            "canary: recording {} of logs before the change",
            humantime::format_duration(b)
        ));
        let mut intr = run.interrupt.clone();
        let r = t
            .observe(
                &run.rec,
                "before",
                &w,
                b,
                &mut intr,
                observe::Ends {
                    changed_at: &Default::default(),
                    stop_after: 1,
                    failed: &Default::default(),
                },
            )
            .await;
        if r.interrupted {
            t.stop().await;
            return Ok(State::Interrupted);
        }
    }
    run.tails = Some(t);
    Ok(State::Change(phase))
}

/// Change the phase's hosts, up to `concurrency` at once.
pub(crate) async fn change(run: &mut Run, phase: Phase) -> Step {
    let r: &Run = run;
    let results: Vec<(String, Result<(), HostError>)> = stream::iter(phase.hosts.iter())
        .map(|h| async move {
            let Some(p) = r.prepared.get(h) else {
                return (h.clone(), Err(HostError::Failed("not prepared".into())));
            };
            let res = change_host(r, p).await;
            if let Some(l) = r.rec.live() {
                l.host_done(h);
            }
            (h.clone(), res)
        })
        .buffer_unordered(run.concurrency)
        .collect()
        .await;
    let mut failures: Failures = Vec::new();
    for (h, res) in results {
        match res {
            Ok(()) => {}
            Err(HostError::Record(e)) => {
                run.stop_tails().await;
                return Err(e.into());
            }
            Err(e) => {
                run.say(&format!("{}: {h} FAILED: {e}", phase.name));
                failures.push((h, e));
            }
        }
    }
    if run.interrupted() > 0 {
        run.stop_tails().await;
        return Ok(State::Interrupted);
    }
    let flipped: Vec<&String> = phase
        .hosts
        .iter()
        .filter(|h| run.prepared.get(*h).is_some_and(|p| p.blue_green.is_some()))
        .filter(|h| !failures.iter().any(|(f, _)| f == *h))
        .collect();
    if !flipped.is_empty() {
        let ev = serde_json::json!({"phase": phase.name, "hosts": flipped});
        callbacks::call(run, callbacks::Milestone::Cutover, Some(&phase.name), None, ev).await?;
    }
    // A failed canary is reverted at once; a batch still observes its other hosts.
    // So is a batch whose failures already spent `max_failed_hosts`: its window could not
    // change that.
    if !failures.is_empty() && (phase.is_canary || run.failed_hosts + failures.len() > run.plan.max_failed_hosts) {
        return Ok(State::Judge(phase, failures));
    }
    Ok(State::Observe(phase, failures))
}

/// Watch the window (or just wait it out without a log watch); the hosts whose gates failed
/// join `failures`; then every host must still pass its health check.
pub(crate) async fn observe(run: &mut Run, phase: Phase, mut failures: Failures) -> Step {
    let name = phase.name.clone();
    run.say(&format!(
        "{name}: observing for {}",
        humantime::format_duration(phase.window)
    ));
    run.rec.emit(EventKind::ObserveStarted {
        phase: name.clone(),
        hosts: phase.hosts.clone(),
        baseline: phase.watched_base.clone(),
        window_ms: phase.window.as_millis() as u64,
    })?;
    let mut intr = run.interrupt.clone();
    // A canary ends its window at its first failure; a batch when one more host failed than
    // `max_failed_hosts` has left (the run reverts then anyway): within the budget the
    // failed hosts are put back afterwards and the others get their whole window.
    let stop_after = if phase.is_canary {
        1
    } else {
        run.plan
            .max_failed_hosts
            .saturating_sub(run.failed_hosts + failures.len())
            + 1
    };
    let changed_at = run
        .changed_at
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    let interrupted = match (run.tails.take(), run.watch.clone()) {
        (Some(mut t), Some(w)) => {
            let r = t
                .observe(
                    &run.rec,
                    &name,
                    &w,
                    phase.window,
                    &mut intr,
                    observe::Ends {
                        changed_at: &changed_at,
                        stop_after,
                        failed: &failures.iter().map(|(h, _)| h.as_str()).collect(),
                    },
                )
                .await;
            run.tails = Some(t);
            for (h, why) in r.failures() {
                if !failures.iter().any(|(x, _)| *x == h) {
                    failures.push((h, HostError::Failed(why)));
                }
            }
            for (h, v) in &r.verdicts {
                let failed = failures.iter().any(|(x, _)| x == h);
                let word = if r.interrupted {
                    "interrupted"
                } else if v.passed && !failed {
                    "gates passed"
                } else {
                    "FAILED"
                };
                run.say(&format!(
                    "{name}: {h}: {} lines, {} errors, {word}",
                    v.stats.lines, v.stats.error_lines
                ));
            }
            r.interrupted
        }
        (t, _) => {
            run.tails = t;
            tokio::select! {
                _ = tokio::time::sleep(phase.window) => false,
                _ = intr.changed() => true,
            }
        }
    };
    if interrupted {
        run.stop_tails().await;
        return Ok(State::Interrupted);
    }
    // A zero window: health just passed in the change step, asking again adds nothing.
    // Hosts that failed are not asked; nor is anyone when the phase reverts the run anyway
    // (a failed canary, a spent `max_failed_hosts`).
    let reverts =
        (phase.is_canary && !failures.is_empty()) || run.failed_hosts + failures.len() > run.plan.max_failed_hosts;
    if !reverts && !phase.window.is_zero() {
        let rest: Vec<String> = phase
            .hosts
            .iter()
            .filter(|h| !failures.iter().any(|(f, _)| f == *h))
            .cloned()
            .collect();
        health_after_window(run, &rest, &mut failures).await?;
    }
    Ok(State::Judge(phase, failures))
}

/// Clean logs are not enough: a host must still pass its health check when the window ends.
/// Hosts are checked in parallel (bounded by the run's concurrency): one at a time, a batch
/// of hundreds waited ~100 ms a host at every window's end (bench/README.md). Failures keep
/// the phase's host order.
async fn health_after_window(run: &Run, hosts: &[String], failures: &mut Failures) -> Result<(), HostError> {
    let mut results: Vec<(usize, String, Result<(), HostError>)> = stream::iter(hosts.iter().enumerate())
        .filter_map(|(i, h)| async move {
            let p = run.prepared.get(h)?;
            let cmd = p.health.as_deref()?;
            let hp = run.plan.hosts.get(h).cloned().unwrap_or_default();
            let timeout = Duration::from_millis(hp.health_timeout_ms);
            Some((i, h, p, cmd, timeout))
        })
        .map(|(i, h, p, cmd, timeout)| async move {
            (
                i,
                h.clone(),
                host::health(&run.rec, &p.conn, h, Some(cmd), timeout).await,
            )
        })
        .buffer_unordered(run.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _, _)| *i);
    for (_, h, r) in results {
        match r {
            Ok(()) => {}
            Err(HostError::Record(e)) => return Err(HostError::Record(e)),
            Err(e) => failures.push((h, HostError::Failed(format!("health after the window: {e}")))),
        }
    }
    Ok(())
}

/// Record the phase's failed hosts. None: the phase passed. A failed canary or a spent
/// budget reverts the run; within the budget only the failed hosts are put back.
pub(crate) async fn judge(run: &mut Run, phase: Phase, failures: Failures) -> Step {
    run.stop_tails().await;
    for (h, e) in &failures {
        run.rec.emit(EventKind::HostFailed {
            host: h.clone(),
            phase: phase.name.clone(),
            reason: e.to_string(),
        })?;
        if let HostError::LeftAlone(why) = e {
            run.left_alone.push((h.clone(), why.clone()));
        }
    }
    let name = &phase.name;
    let Some((first, why)) = failures.first() else {
        return passed(run, &phase).await;
    };
    run.failed_hosts += failures.len();
    if phase.is_canary || run.failed_hosts > run.plan.max_failed_hosts {
        return Ok(State::Reverting(format!("{name} failed on {first}: {why}")));
    }
    run.say(&format!(
        "{name}: {} host(s) failed, within max_failed_hosts = {}; reverting just those",
        failures.len(),
        run.plan.max_failed_hosts
    ));
    let only: BTreeSet<String> = failures.iter().map(|(h, _)| h.clone()).collect();
    if !revert_some(run, &only, name).await? {
        return Ok(State::Reverting(format!(
            "{name}: could not revert failed host(s) cleanly"
        )));
    }
    passed(run, &phase).await
}

/// A passed phase: recorded, then `on_promote` (which may veto, when the playbook says so),
/// then either the next phase or, at a manual promotion point, a stop until `promote RUN`.
async fn passed(run: &mut Run, phase: &Phase) -> Step {
    let name = &phase.name;
    run.rec.emit(EventKind::PhasePassed { phase: name.clone() })?;
    run.say(&format!("{name}: passed"));
    let ev = serde_json::json!({"phase": name, "hosts": phase.hosts});
    let called = callbacks::call(run, callbacks::Milestone::Promote, Some(name), None, ev).await?;
    if let callbacks::Called::Vetoed(source) = called {
        return Ok(State::Reverting(format!(
            "on_promote vetoed the promotion after {name} (the {}'s [callbacks])",
            source.as_str()
        )));
    }
    let phases = run.plan.plan.phases();
    let next = phases.get(phase.idx + 1).map(|(n, _)| n.clone());
    match next {
        Some(next) if run.plan.plan.pause_after.contains(name) && !run.promoted.contains(name) => {
            Ok(State::AwaitPromotion {
                phase: name.clone(),
                next,
                at: phase.idx + 1,
            })
        }
        _ => Ok(State::Begin(phase.idx + 1)),
    }
}

/// Revert only `hosts` (failed within the budget); false when that did not work cleanly.
pub(crate) async fn revert_some(run: &mut Run, hosts: &BTreeSet<String>, phase: &str) -> Result<bool, RecordFailed> {
    let events = read_events(&run.rec.dir)?;
    let todo = Outstanding::from_events(&events).only(hosts);
    if todo.is_empty() {
        return Ok(true);
    }
    reconnect_hosts(run, &hosts.iter().cloned().collect::<Vec<_>>(), phase).await;
    let cmds = run.restore_commands();
    let why = format!("{phase}: host(s) failed within max_failed_hosts");
    let res = super::revert::revert(&run.rec, todo, &run.conns, &cmds, run.concurrency, &why).await;
    Ok(res.iter().all(|r| r.problems.is_empty()))
}
