//! `bellwether rollout`: gate, confirm, lock, preflight, then the phases (rollout/engine.rs).
//! The steps before any host is contacted live in `rollout_start.rs`.

use super::context;
use super::rollout_start::{self as start, Gate, Settings, Started};
use crate::config::LoadedFleet;
use crate::exit::{Exit, Failure};
use crate::options::{Global, RolloutArgs};
use crate::record::{EventKind, RunDir};
use crate::rollout::ctx::say;
use crate::rollout::engine::{run_phases, CalendarCheck, Outcome};
use crate::rollout::host::Prepared;
use crate::rollout::markers;
use crate::rollout::plan::make_plan;
use crate::rollout::record_plan::PlanRecord;
use crate::rollout::setup::{self, emit};
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Kept here too: `revert` and `resume` take the same lock as a rollout.
pub use super::rollout_start::lock;

/// Run the rollout.
pub async fn run(g: &Global, a: &RolloutArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let s = start::settings(&lf, a)?;
    let gate = start::gate(&lf, &s, a)?;
    let started = start::open_run(g, a, &s, &gate)?;
    let conc = context::concurrency(g, &lf).min(s.pb.rollout.concurrency.unwrap_or(usize::MAX));
    let (prepared, failures, conns) = preflight(g, &lf, &s, &gate, &started.run, conc).await?;
    let planned = plan(a, &lf, &s, &gate, &started, &prepared, &failures)?;
    if let Some(end) = stop_before_change(&started.run, a, &planned) {
        return end;
    }
    place_markers(&started.run, &started.run_id, &prepared, a.break_lock).await?;
    let Started { lock: _lock, run, .. } = started;
    let cal = CalendarCheck {
        calendar: lf.calendar.clone(),
        request: gate.req,
        offset: s.at - s.now,
    };
    let endpoints = setup::endpoints(&lf, &gate.targets, g.accept_new);
    let mut ctx = setup::context(
        run,
        planned.record,
        conns,
        endpoints,
        prepared,
        &s.pb,
        conc,
        Some(cal),
        a.json,
    )?;
    let outcome = run_phases(&mut ctx, 0, false).await;
    finish(&mut ctx, outcome, a.json).await
}

/// Record how a run ended that never reached the phases, and write its summary.
fn finish_early(run: &RunDir, outcome: &str, exit: Exit, msg: &str) {
    let _ = run.emit(EventKind::RunFinished {
        outcome: outcome.into(),
        exit: exit.code(),
        message: msg.into(),
    });
    crate::rollout::summary::write(run);
}

/// Hosts that passed preflight, hosts that did not (with why), and the open connections.
type Preflighted = (
    BTreeMap<String, Prepared>,
    Vec<(String, String)>,
    BTreeMap<String, Arc<Connection>>,
);

/// Connect to and check every target; more failures than `max_failed_hosts` (or no host
/// left at all) end the run here, recorded, with nothing changed.
async fn preflight(
    g: &Global,
    lf: &LoadedFleet,
    s: &Settings,
    gate: &Gate<'_>,
    run: &RunDir,
    conc: usize,
) -> Result<Preflighted, Failure> {
    let base = s.pb_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (prepared, failures, conns) = setup::preflight_all(lf, &gate.targets, &s.pb, &base, g.accept_new, conc).await;
    for (h, why) in &failures {
        emit(
            run,
            EventKind::Preflight {
                host: h.clone(),
                ok: false,
                detail: why.clone(),
            },
        )?;
    }
    let max_failed = s.pb.rollout.max_failed_hosts;
    if !failures.is_empty() && (failures.len() > max_failed || prepared.is_empty()) {
        let list = failures
            .iter()
            .map(|(h, e)| format!("  {h}: {e}"))
            .collect::<Vec<_>>()
            .join("\n");
        let msg = format!(
            "preflight failed on {} of {} host(s); nothing was changed:\n{list}",
            failures.len(),
            gate.targets.len()
        );
        finish_early(run, "preflight_failed", Exit::Preflight, &msg);
        return Err(Failure::new(Exit::Preflight, msg));
    }
    Ok((prepared, failures, conns))
}

/// What the run will change, as shown to the operator and written to `plan.json`.
struct Planned {
    record: PlanRecord,
    /// Hosts that will be changed, in fleet order.
    order: Vec<String>,
    /// Reachable hosts that already have the change.
    unchanged: Vec<String>,
}

/// Record every host's preflight result, then split the hosts to change into phases and
/// print the plan.
fn plan(
    a: &RolloutArgs,
    lf: &LoadedFleet,
    s: &Settings,
    gate: &Gate<'_>,
    started: &Started,
    prepared: &BTreeMap<String, Prepared>,
    failures: &[(String, String)],
) -> Result<Planned, Failure> {
    let run = &started.run;
    for (name, p) in prepared {
        emit(
            run,
            EventKind::Preflight {
                host: name.clone(),
                ok: true,
                detail: format!("{} file(s) to check", p.files.len()),
            },
        )?;
    }
    let frozen: Vec<String> = gate.frozen_skips.iter().map(|(h, _)| h.clone()).collect();
    let mut skipped = gate.frozen_skips.clone();
    skipped.extend(failures.iter().cloned());
    for (h, r) in &skipped {
        emit(
            run,
            EventKind::Skipped {
                host: h.clone(),
                reason: r.clone(),
            },
        )?;
    }
    let (order, unchanged) = split_unchanged(run, &started.names, prepared)?;
    let canary_n = gate.emergency.then(|| lf.calendar.emergency.canary_hosts(order.len()));
    let batch_plan = make_plan(&order, &s.pb.rollout, a.canary.as_deref(), canary_n).map_err(Failure::input)?;
    let mut record = setup::plan_record(
        &started.run_id,
        &s.pb,
        &s.pb_path,
        &order,
        prepared,
        batch_plan,
        gate.observe_ms,
        s.batch_observe_ms,
        gate.emergency,
        skipped,
        unchanged.clone(),
    );
    record.frozen = frozen;
    print_plan(&record, a.json);
    Ok(Planned {
        record,
        order,
        unchanged,
    })
}

/// Hosts that already have the change are recorded and left out of the phases; the rest,
/// in fleet order, are the ones to change. Returns (to change, already up to date).
fn split_unchanged(
    run: &RunDir,
    names: &[String],
    prepared: &BTreeMap<String, Prepared>,
) -> Result<(Vec<String>, Vec<String>), Failure> {
    let mut unchanged = Vec::new();
    let mut order = Vec::new();
    for n in names {
        match prepared.get(n) {
            Some(p) if p.unchanged() => {
                unchanged.push(n.clone());
                emit(run, EventKind::Unchanged { host: n.clone() })?;
            }
            Some(_) => order.push(n.clone()),
            None => {}
        }
    }
    Ok((order, unchanged))
}

/// A run with nothing to do, a dry run or a declined confirmation ends here, recorded with its
/// plan; `None` means the run goes on to change hosts.
fn stop_before_change(run: &RunDir, a: &RolloutArgs, p: &Planned) -> Option<Result<Exit, Failure>> {
    let record = &p.record;
    if p.order.is_empty() {
        let msg = format!(
            "nothing to do: all {} reachable target(s) already have the change",
            p.unchanged.len()
        );
        let _ = run.write("plan.json", &serde_json::to_vec_pretty(record).unwrap_or_default());
        finish_early(run, "done", Exit::Done, &msg);
        say(a.json, &msg);
        return Some(Ok(Exit::Done));
    }
    if a.dry_run || (!a.yes && !confirm(record)) {
        let _ = run.write("plan.json", &serde_json::to_vec_pretty(record).unwrap_or_default());
        let (outcome, msg) = if a.dry_run {
            ("dry_run", "dry run: nothing was changed")
        } else {
            ("declined", "not confirmed: nothing was changed")
        };
        finish_early(run, outcome, Exit::Done, msg);
        say(a.json, msg);
        return Some(if a.dry_run {
            Ok(Exit::Done)
        } else {
            Err(Failure::input(msg))
        });
    }
    None
}

/// Run markers go on only now, when the run will change hosts: a dry run, a declined
/// confirmation or bad input never leaves one behind. A host held by another run ends this
/// one (exit 4) after taking back the markers it did place.
async fn place_markers(
    run: &RunDir,
    run_id: &str,
    prepared: &BTreeMap<String, Prepared>,
    break_lock: bool,
) -> Result<(), Failure> {
    let mut marker_fail = Vec::new();
    for (name, p) in prepared {
        match markers::place(&p.conn, run_id, break_lock).await {
            Ok(None) => {}
            Ok(Some(old)) => emit(
                run,
                EventKind::LockBroken {
                    holder: format!("{name}: stale marker of {old}"),
                },
            )?,
            Err(holder) => marker_fail.push((name.clone(), holder)),
        }
    }
    if !marker_fail.is_empty() {
        for p in prepared.values() {
            markers::remove(&p.conn, run_id, false).await;
        }
        let msg = format!(
            "another run is working on {} host(s): {}; nothing was changed. If that run was killed, finish it (bellwether revert RUN) or rerun with --break-lock",
            marker_fail.len(),
            marker_fail
                .iter()
                .map(|(h, w)| format!("{h} (run {w})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        finish_early(run, "locked", Exit::Locked, &msg);
        return Err(Failure::new(Exit::Locked, msg));
    }
    Ok(())
}

/// Record the outcome, write the summary, remove markers, print the end, map the exit.
pub async fn finish(ctx: &mut crate::rollout::ctx::RunCtx, o: Outcome, json: bool) -> Result<Exit, Failure> {
    if o.exit != Exit::NeedsAttention || o.outcome != "interrupted" {
        for c in ctx.conns.values() {
            markers::remove(c, &ctx.run.id, false).await;
        }
    }
    let _ = ctx.run.emit(EventKind::RunFinished {
        outcome: o.outcome.to_string(),
        exit: o.exit.code(),
        message: o.message.clone(),
    });
    crate::rollout::summary::write(&ctx.run);
    for c in ctx.conns.values() {
        c.close().await;
    }
    let where_ = ctx.run.dir.join("summary.md");
    if json {
        let doc = serde_json::json!({"run_id": ctx.run.id, "outcome": o.outcome, "exit": o.exit.code(), "message": o.message, "record": ctx.run.dir});
        println!("{doc}");
    } else {
        say(false, &format!("{}: {}", o.outcome.to_uppercase(), o.message));
        say(false, &format!("record: {}", where_.display()));
    }
    if o.exit == Exit::Done {
        Ok(Exit::Done)
    } else {
        Err(Failure::new(
            o.exit,
            format!("run {} {}: {}", ctx.run.id, o.outcome, o.message),
        ))
    }
}

/// The plan for people: phases, baseline, blue/green slots, skipped and up-to-date hosts.
fn print_plan(r: &PlanRecord, json: bool) {
    for (phase, hosts) in r.plan.phases() {
        say(json, &format!("plan: {phase}: {}", hosts.join(", ")));
    }
    if !r.baseline.is_empty() {
        say(
            json,
            &format!(
                "plan: baseline (watched, unchanged during the canary window): {}",
                r.baseline.join(", ")
            ),
        );
    }
    for (h, p) in &r.hosts {
        if let Some(bg) = &p.blue_green {
            say(json, &format!("plan: {h}: {}", bg.describe()));
        }
    }
    for (h, why) in &r.skipped {
        say(json, &format!("plan: skipped {h}: {why}"));
    }
    if !r.unchanged.is_empty() {
        say(json, &format!("plan: already up to date: {}", r.unchanged.join(", ")));
    }
}

/// Show one host's diff (every host gets the same change) and ask before touching anything.
fn confirm(r: &PlanRecord) -> bool {
    if let Some((_, p)) = r.hosts.iter().next() {
        for f in &p.files {
            println!("{}", f.diff);
        }
    }
    print!("Roll {} out to {} host(s)? [y/N] ", r.playbook_id, r.plan.all().len());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}
