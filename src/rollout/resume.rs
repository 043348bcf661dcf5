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
        let (rec, events) = open(lf, opts, id)?;
        let plan = resumable(&rec, lf, &events)?;
        let phases = plan.plan.phases();
        let from = first_unpassed(&events, &phases);
        let at = phases.get(from).map(|p| p.0.as_str()).unwrap_or("the end");
        need_yes(opts.yes, &format!("Resume run {} from {at}", rec.id))?;
        let pb_path = PathBuf::from(&plan.playbook_path);
        let pb = load_playbook(&pb_path, &lf.fleet)?;
        let mut names: Vec<String> = phases.iter().skip(from).flat_map(|(_, h)| h.clone()).collect();
        names.extend(plan.baseline.iter().cloned());
        names.sort();
        names.dedup();
        let hosts: Vec<&Host> = names.iter().filter_map(|n| lf.fleet.host(n)).collect();
        let (lock, _) = lock(&opts.runs_dir, &rec.id, names.clone(), true)?;
        restart_record(&rec, Some(&plan), &events, &names)?;
        let conc = concurrency(opts, lf);
        let base = pb_path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        let (prepared, failures, conns) = preflight::preflight_all(lf, &hosts, &pb, &base, opts.accept_new, conc).await;
        if !failures.is_empty() {
            return Err(preflight_failed(&rec, &failures));
        }
        place_markers(&rec, &prepared).await?;
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
        run.watch = pb
            .watch
            .as_ref()
            .filter(|w| w.log.is_some())
            .map(|w| w.compiled().map_err(|e| Failure::input(e.to_string())))
            .transpose()?;
        run.say(&format!("resuming run {} at {at}", run.id()));
        let ending = drive(&mut run, State::Begin(from)).await;
        Ok(run.finish(ending).await)
    }
}

/// Resuming stops before any host changes when a host fails preflight; the run stays as it was.
fn preflight_failed(rec: &RunDir, failures: &[(String, String)]) -> Failure {
    let list: Vec<String> = failures.iter().map(|(h, e)| format!("  {h}: {e}")).collect();
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
async fn place_markers(rec: &RunDir, prepared: &BTreeMap<String, Prepared>) -> Result<(), Failure> {
    for (name, p) in prepared {
        rec.emit(EventKind::MarkerPlaced { host: name.clone() })
            .map_err(record_err)?;
        if let Err(holder) = markers::place(&p.conn, &rec.id, true).await {
            return Err(Failure::new(Exit::Locked, format!("{name} is held by run {holder}")));
        }
    }
    Ok(())
}

/// Only a run that stopped part-way (paused or interrupted) and got as far as a plan can be
/// resumed.
fn resumable(rec: &RunDir, lf: &LoadedFleet, events: &[Event]) -> Result<PlanRecord, Failure> {
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
    if let Some(outcome) = last {
        if !Outcome::parse(&outcome).is_some_and(Outcome::resumable) {
            return Err(Failure::input(format!(
                "run {} already finished ({outcome}); nothing to resume",
                rec.id
            )));
        }
    }
    Ok(record)
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
