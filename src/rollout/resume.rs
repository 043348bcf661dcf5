//! `Run::resume`: continue a paused or interrupted run from its first phase that did not
//! pass. Reopening the run folder (its events, plan, record and hosts) is shared with
//! `Run::revert` in `reopen.rs`.

use super::finish::Finished;
use super::host::Prepared;
use super::machine::{drive, State};
use super::outcome::Outcome;
use super::record_plan::PlanRecord;
use super::reopen::{need_yes, open, record_err, reopened, restart_record, unmask_commands};
use super::run::{CalendarCheck, Run, RunOptions};
use super::start::{concurrency, lock};
use super::{markers, planner, preflight};
use crate::config::{load_playbook, Host, LoadedFleet};
use crate::exit::{Exit, Failure};
use crate::record::history::changed_hosts;
use crate::record::{Event, EventKind, RunDir};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Run {
    /// `resume RUN`: continue an interrupted or paused run from its first phase that did not
    /// pass, with the same plan, exception and failure handling as the original run.
    pub async fn resume(lf: &LoadedFleet, opts: &RunOptions, id: &str) -> Result<Finished, Failure> {
        Run::continue_run(lf, opts, id, false).await
    }

    /// `promote RUN`: end the wait at a manual promotion point and go on with the next phase;
    /// past `pause_timeout` it reverts the run instead.
    pub async fn promote(lf: &LoadedFleet, opts: &RunOptions, id: &str) -> Result<Finished, Failure> {
        Run::continue_run(lf, opts, id, true).await
    }

    async fn continue_run(lf: &LoadedFleet, opts: &RunOptions, id: &str, promote: bool) -> Result<Finished, Failure> {
        let (rec, events) = open(lf, opts, id)?;
        let plan = resumable(&rec, lf, &events, promote)?;
        let waiting = awaiting(&events);
        if let Some(why) = expired(promote, &waiting) {
            rec.say(&why);
            drop(rec);
            return Run::revert_because(lf, opts, id, Some(why)).await;
        }
        let phases = plan.plan.phases();
        let from = first_unpassed(&events, &phases);
        let at = phases.get(from).map(|p| p.0.as_str()).unwrap_or("the end");
        need_yes(opts.yes, &format!("Resume run {} from {at}", rec.id))?;
        let pb_path = PathBuf::from(&plan.playbook_path);
        let pb = load_playbook(&pb_path, &lf.fleet)?;
        let targets: Vec<String> = phases.iter().skip(from).flat_map(|(_, h)| h.clone()).collect();
        // Baseline hosts are reached (and locked) too, but they are only watched: the run's
        // targets are the hosts it has still to change.
        let mut names = targets.clone();
        names.extend(plan.baseline.iter().cloned());
        names.sort();
        names.dedup();
        let hosts: Vec<&Host> = names.iter().filter_map(|n| lf.fleet.host(n)).collect();
        let (lock, broken) = lock(&opts.runs_dir, &rec.id, names.clone(), opts.break_lock)?;
        restart_record(&rec, Some(&plan), &events, &targets)?;
        super::start::record_broken(&rec, broken)?;
        let promoted = promotions(&rec, &events, waiting.filter(|_| promote).map(|w| w.0))?;
        let conc = concurrency(opts, lf);
        let base = pb_path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        let (prepared, failures, conns) =
            preflight::preflight_all(lf, &hosts, &pb, &base, opts.accept_new, conc, None).await;
        if !failures.is_empty() {
            return Err(preflight_failed(&rec, &failures, &names));
        }
        place_markers(&rec, &prepared, opts.break_lock).await?;
        let mut all = names.clone();
        all.extend(changed_hosts(&events));
        let settings_like = approved_calendar(lf, &events, &pb, &hosts);
        let mut run = reopened(lf, opts, rec, plan, &all);
        run.failed_hosts = run
            .plan
            .skipped
            .iter()
            .filter(|(h, _)| !run.plan.frozen.contains(h))
            .count();
        run.conns = conns;
        run.prepared = prepared;
        run.calendar = Some(settings_like);
        run._lock = Some(lock);
        run.promoted = promoted;
        with_playbook(&mut run, lf, &pb)?;
        run.say(&format!("resuming run {} at {at}", run.id()));
        let ending = drive(&mut run, State::Begin(from)).await;
        Ok(run.finish(ending).await)
    }
}

/// A promotion that comes after the wait's `pause_timeout`: why the run reverts instead.
fn expired(promote: bool, waiting: &Option<(String, Option<chrono::DateTime<chrono::Utc>>)>) -> Option<String> {
    let (phase, expires) = waiting.as_ref().filter(|_| promote)?;
    let expires = expires.filter(|e| chrono::Utc::now() > *e)?;
    Some(format!(
        "the wait for promotion after {phase} expired at {} (pause_timeout); reverting instead",
        expires.format("%Y-%m-%d %H:%M UTC")
    ))
}

/// The phases whose promotion wait is over; `promote RUN` ends the wait after `now` (recorded).
fn promotions(rec: &RunDir, events: &[Event], now: Option<String>) -> Result<Vec<String>, Failure> {
    let mut promoted: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Promoted { phase, .. } => Some(phase.clone()),
            _ => None,
        })
        .collect();
    if let Some(phase) = now {
        let by = format!(
            "{}@{}",
            crate::record::lock::username(),
            crate::record::lock::hostname()
        );
        rec.emit(EventKind::Promoted {
            phase: phase.clone(),
            by,
        })
        .map_err(record_err)?;
        promoted.push(phase);
    }
    Ok(promoted)
}

/// What a resumed run takes from the fleet and playbook as they are now: callbacks, pause
/// timeout, per-region windows, the log watch (masked like the start's).
fn with_playbook(run: &mut Run, lf: &LoadedFleet, pb: &crate::config::Playbook) -> Result<(), Failure> {
    run.callbacks = crate::config::controls::CallbackSets::new(&lf.fleet, Some(pb));
    run.pause_timeout = pb.rollout.pause_timeout.map(|d| d.get());
    run.within = pb.rollout.within.clone();
    run.pinned = pb.edits.iter().filter(|e| e.has_pins()).cloned().collect();
    run.watch = pb
        .watch
        .as_ref()
        .filter(|w| w.log.is_some())
        .map(|w| w.compiled().map_err(|e| Failure::input(e.to_string())))
        .transpose()?
        .map(|w| super::start::masked_watch(w, &run.rec));
    Ok(())
}

/// Resuming stops before any host changes when a host fails preflight; the run stays as it was.
fn preflight_failed(rec: &RunDir, failures: &[(String, String)], names: &[String]) -> Failure {
    let list = crate::ui::hosts::grouped_errors(failures, names);
    Failure::new(
        Exit::Preflight,
        rec.secrets().text(&format!(
            "cannot resume: preflight failed:\n{}\nthe run is unchanged; retry, or `bellwether revert {}`",
            list.join("\n"),
            rec.id
        )),
    )
}

/// Put the run's marker back on every host it resumes on (recorded before each is placed); a
/// host another run holds stops the resume.
async fn place_markers(rec: &RunDir, prepared: &BTreeMap<String, Prepared>, break_lock: bool) -> Result<(), Failure> {
    for (name, p) in prepared {
        rec.emit(EventKind::MarkerPlaced { host: name.clone() })
            .map_err(record_err)?;
        match markers::place(&p.conn, &rec.id, break_lock).await {
            Ok(None) => {}
            Ok(Some(old)) => rec
                .emit(EventKind::LockBroken {
                    holder: format!("{name}: stale marker of {old}"),
                })
                .map_err(record_err)?,
            Err(holder) => return Err(Failure::new(Exit::Locked, markers::held(name, &holder))),
        }
    }
    Ok(())
}

/// Only a run that stopped part-way (paused or interrupted) and got as far as a plan can be
/// resumed.
fn resumable(rec: &RunDir, lf: &LoadedFleet, events: &[Event], promote: bool) -> Result<PlanRecord, Failure> {
    let Some(mut record) = super::summary::load_plan(rec) else {
        return Err(Failure::input(format!(
            "{}: no plan.json; the run never got past preflight, start a new rollout",
            rec.dir.display()
        )));
    };
    unmask_commands(&mut record, lf)?;
    let last = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFinished { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    let waiting = last.as_deref() == Some(Outcome::AwaitingPromotion.as_str());
    if promote && !waiting {
        return Err(Failure::input(format!(
            "run {} is not waiting for promotion ({}); see `bellwether status`",
            rec.id,
            last.as_deref().unwrap_or("running or interrupted")
        )));
    }
    if waiting && !promote {
        return Err(Failure::input(format!(
            "run {id} waits for promotion: continue it with `bellwether promote {id}`, or revert it with `bellwether abort {id}`",
            id = rec.id
        )));
    }
    if let Some(outcome) = last.filter(|_| !waiting) {
        if !Outcome::parse(&outcome).is_some_and(Outcome::resumable) {
            return Err(Failure::input(format!(
                "run {} already finished ({outcome}); nothing to resume",
                rec.id
            )));
        }
    }
    Ok(record)
}

/// The phase a run waits after and when the wait expires, if its last end was a wait.
pub(crate) fn awaiting(events: &[Event]) -> Option<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    let last_end = events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::RunFinished { .. }))?;
    events[..last_end].iter().rev().find_map(|e| match &e.kind {
        EventKind::AwaitingPromotion { phase, expires, .. } => Some((phase.clone(), *expires)),
        _ => None,
    })
}

/// The index of the first phase without a `PhasePassed` event (`phases.len()` if all passed).
fn first_unpassed(events: &[Event], phases: &[(String, Vec<String>)]) -> usize {
    let passed: Vec<&String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PhasePassed { phase } => Some(phase),
            _ => None,
        })
        .collect();
    phases
        .iter()
        .position(|(p, _)| !passed.contains(&p))
        .unwrap_or(phases.len())
}

/// The exception approved for this run still holds for it: without it, an emergency fix
/// resumed inside the very freeze it was approved for would pause at once.
fn approved_calendar(
    lf: &LoadedFleet,
    events: &[Event],
    pb: &crate::config::Playbook,
    hosts: &[&Host],
) -> CalendarCheck {
    let exception = events.iter().find_map(|e| match &e.kind {
        EventKind::Gate {
            exception: Some(reason),
            approver: Some(approver),
            ..
        } => Some(crate::calendar::Exception {
            reason: reason.clone(),
            approver: approver.clone(),
        }),
        _ => None,
    });
    CalendarCheck {
        calendar: lf.calendar.clone(),
        request: planner::gate_request(pb, hosts, chrono::Utc::now(), exception),
        offset: chrono::Duration::zero(),
    }
}
