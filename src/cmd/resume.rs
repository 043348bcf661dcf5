//! `bellwether resume RUN`: continue an interrupted or paused run from its first phase that
//! did not pass, with the same plan, exception and failure handling as the original run.

use super::context;
use super::reopen::{connect, endpoints, need_yes, open, unmask_commands};
use crate::config::{load_playbook, Host, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::record::lock::username;
use crate::record::{read_events, Event, EventKind, RunDir};
use crate::rollout::ctx::{say, RunCtx};
use crate::rollout::engine::{run_phases, CalendarCheck};
use crate::rollout::host::Prepared;
use crate::rollout::markers;
use crate::rollout::record_plan::PlanRecord;
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Continue an interrupted run from its first phase that did not pass.
pub async fn resume(g: &Global, id: &str, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let (run, events, record) = resumable(g, &lf, id)?;
    let phases = record.plan.phases();
    let from = first_unpassed(&events, &phases);
    let at = phases.get(from).map(|p| p.0.as_str()).unwrap_or("the end");
    need_yes(yes, &format!("Resume run {} from {at}", run.id))?;
    let pb_path = PathBuf::from(&record.playbook_path);
    let pb = load_playbook(&pb_path, &lf.fleet)?;
    let mut names: Vec<String> = phases.iter().skip(from).flat_map(|(_, h)| h.clone()).collect();
    names.extend(record.baseline.iter().cloned());
    names.sort();
    names.dedup();
    let hosts: Vec<&Host> = names.iter().filter_map(|n| lf.fleet.host(n)).collect();
    let (_lock, _) = super::rollout::lock(&g.runs_dir(), &run.id, names.clone(), true)?;
    let _ = run.emit(EventKind::RunStarted {
        run_id: run.id.clone(),
        playbook: pb.id.clone(),
        playbook_path: record.playbook_path.clone(),
        tier: pb.tier.to_string(),
        component: pb.component.clone(),
        user: username(),
        pid: std::process::id(),
        targets: names.clone(),
        resumed: true,
    });
    let conc = context::concurrency(g, &lf);
    let (prepared, conns) = prepare_again(g, &lf, &run, &hosts, &pb, &pb_path, conc).await?;
    let cal = approved_calendar(&lf, &events, &pb, &hosts);
    let (conns, endpoints) = with_earlier_hosts(g, &lf, &events, conns, &names).await;
    let mut ctx = RunCtx {
        run,
        record,
        conns,
        endpoints,
        prepared,
        watch: None,
        concurrency: conc,
        interrupt: crate::rollout::ctx::interrupts(),
        calendar: Some(cal),
        json: false,
    };
    if let Some(w) = pb.watch.as_ref().filter(|w| w.log.is_some()) {
        ctx.watch = Some(w.compiled().map_err(|e| Failure::input(e.to_string()))?);
    }
    say(false, &format!("resuming run {} at {at}", ctx.run.id));
    let o = run_phases(&mut ctx, from, true).await;
    super::rollout::finish(&mut ctx, o, false).await
}

/// Only a run that stopped part-way (paused or interrupted) and got as far as a plan can be
/// resumed; its events and plan (with secrets re-rendered) come back for the next steps.
fn resumable(g: &Global, lf: &LoadedFleet, id: &str) -> Result<(RunDir, Vec<Event>, PlanRecord), Failure> {
    let run = open(g, id)?;
    let events = read_events(&run.dir).map_err(|e| Failure::input(e.to_string()))?;
    let mut record = crate::rollout::summary::load_plan(&run).ok_or_else(|| {
        Failure::input(format!(
            "{}: no plan.json; the run never got past preflight, start a new rollout",
            run.dir.display()
        ))
    })?;
    unmask_commands(&mut record, lf)?;
    if let Some(EventKind::RunFinished { outcome, .. }) = events
        .iter()
        .rev()
        .map(|e| &e.kind)
        .find(|k| matches!(k, EventKind::RunFinished { .. }))
    {
        if outcome != "paused" && outcome != "interrupted" {
            return Err(Failure::input(format!(
                "run {} already finished ({outcome}); nothing to resume",
                run.id
            )));
        }
    }
    Ok((run, events, record))
}

/// The index of the first phase without a `PhasePassed` event (`phases.len()` if all passed).
fn first_unpassed(events: &[Event], phases: &[(String, Vec<String>)]) -> usize {
    let passed: Vec<String> = events
        .iter()
        .filter_map(|e| {
            if let EventKind::PhasePassed { phase } = &e.kind {
                Some(phase.clone())
            } else {
                None
            }
        })
        .collect();
    phases
        .iter()
        .position(|(p, _)| !passed.contains(p))
        .unwrap_or(phases.len())
}

/// Hosts may have changed while the run stood still, so the remaining ones are preflighted
/// again and marked as this run's; any failure stops here with the run unchanged.
async fn prepare_again(
    g: &Global,
    lf: &LoadedFleet,
    run: &RunDir,
    hosts: &[&Host],
    pb: &Playbook,
    pb_path: &std::path::Path,
    conc: usize,
) -> Result<(BTreeMap<String, Prepared>, BTreeMap<String, Arc<Connection>>), Failure> {
    let base = pb_path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let (prepared, failures, conns) =
        crate::rollout::setup::preflight_all(lf, hosts, pb, &base, g.accept_new, conc).await;
    if !failures.is_empty() {
        let list = failures
            .iter()
            .map(|(h, e)| format!("  {h}: {e}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Failure::new(
            Exit::Preflight,
            format!(
                "cannot resume: preflight failed:\n{list}\nthe run is unchanged; retry, or `bellwether revert {}`",
                run.id
            ),
        ));
    }
    for p in prepared.values() {
        if let Err(holder) = markers::place(&p.conn, &run.id, true).await {
            return Err(Failure::new(
                Exit::Locked,
                format!("{} is held by run {holder}", p.name),
            ));
        }
    }
    Ok((prepared, conns))
}

/// The exception approved for this run still holds for it: without it, an emergency
/// fix resumed inside the very freeze it was approved for would pause at once.
fn approved_calendar(lf: &LoadedFleet, events: &[Event], pb: &Playbook, hosts: &[&Host]) -> CalendarCheck {
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
    let req = crate::rollout::setup::gate_request(pb, hosts, chrono::Utc::now(), exception);
    CalendarCheck {
        calendar: lf.calendar.clone(),
        request: req,
        offset: chrono::Duration::zero(),
    }
}

/// Hosts changed before the interruption are not re-prepared, but a failure from here on
/// must be able to revert them too: connect to them as well.
async fn with_earlier_hosts(
    g: &Global,
    lf: &LoadedFleet,
    events: &[Event],
    conns: BTreeMap<String, Arc<Connection>>,
    names: &[String],
) -> (
    BTreeMap<String, Arc<Connection>>,
    BTreeMap<String, crate::ssh::Endpoint>,
) {
    let earlier: Vec<String> = crate::record::history::changed_hosts(events)
        .into_iter()
        .filter(|h| !conns.contains_key(h))
        .collect();
    let (earlier_conns, _) = connect(g, lf, &earlier).await;
    let mut conns = conns;
    conns.extend(earlier_conns);
    let mut all_names = names.to_vec();
    all_names.extend(earlier);
    (conns, endpoints(g, lf, &all_names))
}
