//! `Run::start`: everything before the state machine takes over — calendar gate, lock and run
//! folder, preflight of every target, the plan (recorded and shown), the confirmation, and
//! the run markers. Nothing on any host changes before the plan is confirmed.

use super::finish::{finish_early, Finished};
use super::host::Prepared;
use super::machine::{drive, State};
use super::outcome::{Ending, Outcome};
use super::planner::{self, Gate, PlanRequest, Settings};
use super::record_plan::PlanRecord;
use super::run::{interactive, interrupts, Run, RunOptions};
use super::{markers, preflight};
use crate::config::LoadedFleet;
use crate::exit::{Exit, Failure};
use crate::record::lock::{hostname, username, Lock, LockError, LockInfo};
use crate::record::run_dir::Progress;
use crate::record::secrets::Secrets;
use crate::record::{new_run_id, EventKind, RunDir};
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// What `rollout` asks for beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub plan: PlanRequest,
    pub dry_run: bool,
    pub break_lock: bool,
}

fn record_err(e: std::io::Error) -> Failure {
    Failure::new(Exit::NeedsAttention, format!("cannot write the run record: {e}"))
}

impl Run {
    /// Plan, confirm and run a rollout to its end.
    pub async fn start(lf: &LoadedFleet, opts: &RunOptions, req: &StartRequest) -> Result<Finished, Failure> {
        if !opts.yes && !req.dry_run && !interactive() {
            return Err(Failure::input("refusing to roll out without --yes: there is no terminal to confirm on (cron/CI must pass --yes); nothing was changed"));
        }
        let s = planner::settings(lf, &req.plan)?;
        let progress = Progress::for_output(opts.json);
        let gate = planner::gate(lf, &s, req.plan.skip_frozen).inspect_err(|_| {
            // The operator sees why before the error line.
            show_decision(progress, &planner::decide_for_plan(lf, &s));
        })?;
        show_decision(progress, &gate);
        check_canary(&s, &gate)?;
        let secrets = Secrets::for_run(lf, Some(&s.pb));
        let (lock, rec) = open_run(opts, &s, &gate, secrets, progress, req.break_lock)?;
        let conc = concurrency(opts, lf).min(s.pb.rollout.concurrency.unwrap_or(usize::MAX));
        let (prepared, failures, conns) = preflight::preflight(lf, opts, &s, &gate, &rec, conc).await?;
        settle_markers(&rec, &prepared, &conns, req.break_lock).await?;
        let mut planned = preflight::plan(lf, &s, &gate, &rec, &prepared, &failures)?;
        if let Some(done) = stop_before_change(&rec, opts, req, &mut planned, &conns).await? {
            return Ok(done);
        }
        let mut run = Run {
            plan: planned.record,
            conns,
            endpoints: preflight::endpoints(lf, &gate.targets, opts.accept_new),
            prepared,
            watch: compiled_watch(&s)?.map(|w| masked_watch(w, &rec)),
            concurrency: conc,
            interrupt: interrupts(),
            calendar: Some(gate.recheck(lf, &s)),
            resumed: false,
            failed_hosts: 0,
            left_alone: Vec::new(),
            tails: None,
            changed_at: Default::default(),
            _lock: Some(lock),
            callbacks: crate::config::controls::CallbackSets::new(&lf.fleet, Some(&s.pb)),
            promoted: Vec::new(),
            wait_for_promotion: opts.wait,
            pause_timeout: s.pb.rollout.pause_timeout.map(|d| d.get()),
            within: s.pb.rollout.within.clone(),
            pinned: s.pb.edits.iter().filter(|e| e.has_pins()).cloned().collect(),
            rec,
        };
        run.failed_hosts = run
            .plan
            .skipped
            .iter()
            .filter(|(h, _)| !run.plan.frozen.contains(h))
            .count();
        write_plan(&run.rec, &mut run.plan).map_err(record_err)?;
        let start = serde_json::json!({"targets": run.plan.plan.all(), "playbook": run.plan.playbook_id});
        let ending = match super::callbacks::call(&run, super::callbacks::Milestone::Start, None, None, start).await {
            Ok(_) => drive(&mut run, State::Begin(0)).await,
            Err(e) => super::machine::record_failed(&mut run, &e.0).await,
        };
        Ok(run.finish(ending).await)
    }
}

/// `--canary HOST` must be one of the targets the calendar left: checked before the run
/// folder exists, so a typo leaves nothing behind.
fn check_canary(s: &Settings, gate: &Gate<'_>) -> Result<(), Failure> {
    match &s.canary {
        Some(c) if !gate.targets.iter().any(|h| &h.name == c) => Err(Failure::input(format!(
            "--canary {c:?} is not one of this playbook's targets (or its region is skipped); nothing was changed"
        ))),
        _ => Ok(()),
    }
}

/// The log watch, compiled once for the run.
pub(crate) fn compiled_watch(s: &Settings) -> Result<Option<crate::watch::CompiledWatch>, Failure> {
    match &s.pb.watch {
        Some(w) if w.log.is_some() => Ok(Some(w.compiled().map_err(|e| Failure::input(e.to_string()))?)),
        _ => Ok(None),
    }
}

/// The watch with the run's secret masker on the error lines it keeps (masked before cut).
pub(crate) fn masked_watch(w: crate::watch::CompiledWatch, rec: &RunDir) -> crate::watch::CompiledWatch {
    let secrets = rec.secrets().clone();
    w.with_mask(move |line| secrets.text(line))
}

/// Concurrency in force: `-j`, else the fleet's.
pub(crate) fn concurrency(opts: &RunOptions, lf: &LoadedFleet) -> usize {
    opts.concurrency.unwrap_or(lf.fleet.defaults.concurrency).max(1)
}

/// `plan.json`: identifiers exact, free text (diffs, commands) masked. The diffs have been
/// shown by then and nothing else in the run reads them: they are moved into the copy written
/// (not cloned, and not held for the rest of the run: a few KiB a host, a fifth of the
/// controller's memory at 1,000 hosts). Called once per run.
pub(crate) fn write_plan(rec: &RunDir, plan: &mut PlanRecord) -> std::io::Result<()> {
    let diffs: Vec<Vec<String>> = plan
        .hosts
        .values_mut()
        .map(|hp| hp.files.iter_mut().map(|f| std::mem::take(&mut f.diff)).collect())
        .collect();
    let mut masked = plan.masked(rec.secrets());
    for (hp, diffs) in masked.hosts.values_mut().zip(diffs) {
        for (f, mut d) in hp.files.iter_mut().zip(diffs) {
            rec.secrets().mask(&mut d);
            f.diff = d;
        }
    }
    rec.write(
        "plan.json",
        &serde_json::to_vec_pretty(&masked).map_err(std::io::Error::other)?,
    )
}

fn show_decision(p: Progress, g: &Gate<'_>) {
    p.line(&format!("calendar: {}", g.decision.headline()));
    for r in &g.decision.reasons {
        p.line(&format!("  {r}"));
    }
}

/// Take the local lock or explain who holds it (exit 4).
pub(crate) fn lock(
    runs: &Path,
    run_id: &str,
    hosts: Vec<String>,
    break_lock: bool,
) -> Result<(Lock, Option<LockInfo>), Failure> {
    let info = LockInfo {
        run_id: run_id.to_string(),
        user: username(),
        pid: std::process::id(),
        host: hostname(),
        started: chrono::Utc::now(),
        hosts,
    };
    match Lock::acquire(runs, info, break_lock) {
        Ok(x) => Ok(x),
        Err(LockError::Held(h, stale)) => Err(Failure::new(
            Exit::Locked,
            format!(
                "another run is working on some of the same hosts (lock in {}): {}{}",
                runs.join(".locks").display(),
                h.describe(),
                if stale {
                    ". Its process is gone: if it was killed, finish or revert it first (bellwether revert RUN), then rerun with --break-lock"
                } else {
                    ""
                }
            ),
        )),
        Err(LockError::Io(e)) => Err(Failure::new(
            Exit::NeedsAttention,
            format!("cannot take the lock in {}: {e}", runs.display()),
        )),
    }
}

/// `--break-lock` removed another run's stale lock: say so in the record.
pub(crate) fn record_broken(rec: &RunDir, broken: Option<LockInfo>) -> Result<(), Failure> {
    match broken {
        Some(b) => rec
            .emit(EventKind::LockBroken { holder: b.describe() })
            .map_err(record_err),
        None => Ok(()),
    }
}

/// Lock the hosts, then create the run folder and record the start and the gate in it, so
/// every later step (even a preflight failure) is in the record.
fn open_run(
    opts: &RunOptions,
    s: &Settings,
    gate: &Gate<'_>,
    secrets: Secrets,
    progress: Progress,
    break_lock: bool,
) -> Result<(Lock, RunDir), Failure> {
    let pb = &s.pb;
    let run_id = new_run_id(&pb.id);
    let names: Vec<String> = gate.targets.iter().map(|h| h.name.clone()).collect();
    let (lock, broken) = lock(&opts.runs_dir, &run_id, names.clone(), break_lock)?;
    let rec = RunDir::create(&opts.runs_dir, &run_id, secrets, progress)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot create the run folder: {e}")))?;
    rec.emit(EventKind::RunStarted {
        run_id: run_id.clone(),
        playbook: pb.id.clone(),
        playbook_path: s.pb_path.display().to_string(),
        tier: pb.tier.to_string(),
        component: pb.component.clone(),
        user: username(),
        pid: std::process::id(),
        targets: names,
        resumed: false,
    })
    .map_err(record_err)?;
    if let Some(b) = broken {
        rec.emit(EventKind::LockBroken { holder: b.describe() })
            .map_err(record_err)?;
    }
    record_gate(&rec, s, gate)?;
    rec.say(&format!(
        "run {run_id}: {} ({} {}), {} target(s)",
        pb.id,
        pb.tier,
        pb.component,
        gate.targets.len()
    ));
    Ok((lock, rec))
}

/// An exception's reason, approver, owner, scope and rollback go in the record, so an
/// emergency change can be audited afterwards.
fn record_gate(rec: &RunDir, s: &Settings, gate: &Gate<'_>) -> Result<(), Failure> {
    let exception = &s.exception;
    let decision = &gate.decision;
    rec.emit(EventKind::Gate {
        allowed: true,
        summary: decision.summary(),
        exception: exception.as_ref().map(|e| e.reason.clone()),
        approver: exception.as_ref().map(|e| e.approver.clone()),
        emergency: gate.emergency,
        owner: exception.as_ref().and(s.pb.owner.clone()),
        scope: exception
            .as_ref()
            .map(|_| format!("{} {} in {}", s.pb.tier, s.pb.component, decision.regions.join(", "))),
        rollback: exception.as_ref().map(|_| format!("bellwether revert {}", rec.id)),
    })
    .map_err(record_err)?;
    rec.write_free_json("decision.json", decision).map_err(record_err)
}

/// A run with nothing to do, a dry run or a declined confirmation ends here, recorded with its
/// plan; `None` means the run goes on to change hosts.
async fn stop_before_change(
    rec: &RunDir,
    opts: &RunOptions,
    req: &StartRequest,
    p: &mut preflight::Planned,
    conns: &BTreeMap<String, Arc<Connection>>,
) -> Result<Option<Finished>, Failure> {
    show_changes(rec, &p.record, &p.order);
    let ending = if p.order.is_empty() {
        Ending::new(
            Outcome::Done,
            format!(
                "nothing to do: all {} reachable target(s) already have the change",
                p.unchanged.len()
            ),
        )
    } else if req.dry_run {
        Ending::new(Outcome::DryRun, "dry run: nothing was changed")
    } else if !opts.yes && !confirm(&p.record) {
        Ending::new(Outcome::Declined, "not confirmed: nothing was changed")
    } else {
        return Ok(None);
    };
    write_plan(rec, &mut p.record).map_err(record_err)?;
    rec.say(&ending.message);
    preflight::release_all(rec, conns).await;
    finish_early(rec, ending).map(Some)
}

/// Preflight placed the run's marker on every host it reached (in the same command). A host
/// another run holds ends this run here (exit 4) — unless `--break-lock` and that run is gone
/// — after taking its own markers back: nothing was changed.
async fn settle_markers(
    rec: &RunDir,
    prepared: &BTreeMap<String, Prepared>,
    conns: &BTreeMap<String, Arc<Connection>>,
    break_lock: bool,
) -> Result<(), Failure> {
    let mut held_by_other = Vec::new();
    for (name, p) in prepared {
        let Some(holder) = p.marker_held.clone() else { continue };
        match markers::after_held(&p.conn, &rec.id, holder, break_lock).await {
            Ok(Some(old)) => rec
                .emit(EventKind::LockBroken {
                    holder: format!("{name}: stale marker of {old}"),
                })
                .map_err(record_err)?,
            Ok(None) => {}
            Err(holder) => held_by_other.push((name.clone(), holder)),
        }
    }
    if held_by_other.is_empty() {
        return Ok(());
    }
    preflight::release_all(rec, conns).await;
    let msg = format!(
        "another run is working on {} host(s): {}; nothing was changed. If that run was killed, finish it (bellwether revert RUN) or rerun with --break-lock",
        held_by_other.len(),
        held_by_other
            .iter()
            .map(|(h, w)| format!("{h} (run {w})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    finish_early(rec, Ending::new(Outcome::Locked, msg.clone()))?;
    Err(Failure::new(Exit::Locked, msg))
}

/// The same diff summary and warnings `plan` shows, in every mode (a terminal, `--yes`,
/// `--dry-run`), before anything is asked or changed: one block per change, hosts named as
/// ranges, and a warning when a change only adds lines (a misspelt key such as `model.nmae`).
fn show_changes(rec: &RunDir, r: &PlanRecord, order: &[String]) {
    use crate::ui::plan_diffs;
    let diffs: Vec<(String, String)> = order
        .iter()
        .filter_map(|h| {
            r.hosts.get(h).map(|p| {
                (
                    h.clone(),
                    p.files
                        .iter()
                        .map(|f| f.diff.as_str())
                        .filter(|d| !d.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })
        })
        .collect();
    for g in plan_diffs::group(&diffs) {
        rec.say(&format!("diff {}:", plan_diffs::header(&g, order)));
        for line in g.diff.lines() {
            rec.say(&format!("  {line}"));
        }
        for w in plan_diffs::only_additions(&g.diff) {
            rec.say(&format!("warning: {w}"));
        }
    }
}

/// Ask before touching anything (the diffs were shown just before).
fn confirm(r: &PlanRecord) -> bool {
    print!("Roll {} out to {} host(s)? [y/N] ", r.playbook_id, r.plan.all().len());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}
