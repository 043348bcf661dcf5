//! `bellwether rollout`: gate, confirm, lock, preflight, then the phases (rollout/engine.rs).

use super::context;
use crate::calendar::{decide, parse_at, Exception, OffPeak};
use crate::cli::{Global, RolloutArgs};
use crate::config::units::Dur;
use crate::config::{load::playbook_path, load_playbook};
use crate::exit::{Exit, Failure};
use crate::record::lock::{hostname, username, Lock, LockError, LockInfo};
use crate::record::{new_run_id, EventKind, RunDir};
use crate::rollout::ctx::{interactive, say};
use crate::rollout::engine::{run_phases, CalendarCheck, Outcome};
use crate::rollout::markers;
use crate::rollout::plan::make_plan;
use crate::rollout::setup::{self, emit};
use std::io::Write;
use std::path::Path;

fn dur(flag: &str, v: &Option<String>) -> Result<Option<u64>, Failure> {
    v.as_deref()
        .map(|s| {
            Dur::parse(s)
                .map(|d| d.get().as_millis() as u64)
                .map_err(|e| Failure::input(format!("{flag}: {e}")))
        })
        .transpose()
}

/// Take the local lock or explain who holds it (exit 4).
pub fn lock(
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

/// Run the rollout.
pub async fn run(g: &Global, a: &RolloutArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    // Absolute, so `resume RUN` finds the playbook from any directory.
    let pb_path = playbook_path(&a.playbook, &lf.path);
    let pb_path = pb_path.canonicalize().unwrap_or(pb_path);
    let pb = load_playbook(&pb_path, &lf.fleet)?;
    let observe_ms = dur("--observe", &a.observe)?.unwrap_or(pb.rollout.observe.get().as_millis() as u64);
    let batch_observe_ms =
        dur("--batch-observe", &a.batch_observe)?.unwrap_or(pb.rollout.batch_observe.get().as_millis() as u64);
    if a.exception.is_some() != a.approver.is_some() {
        return Err(Failure::input(
            "--exception and --approver go together: name the reason and who approved it",
        ));
    }
    if !a.yes && !a.dry_run && !interactive() {
        return Err(Failure::input("refusing to roll out without --yes: there is no terminal to confirm on (cron/CI must pass --yes); nothing was changed"));
    }
    let now = chrono::Utc::now();
    let at = match &a.at {
        Some(s) => parse_at(s, now).map_err(|e| Failure::input(format!("--at: {e}")))?,
        None => now,
    };
    if let Some(w) = &a.within {
        let op: OffPeak = w.parse().map_err(|e| Failure::input(format!("--within: {e}")))?;
        if !op.contains(at) {
            return Err(Failure::new(
                Exit::Blocked,
                format!(
                    "outside the allowed window {w}: not starting (next opening {}); nothing was changed",
                    op.next_start(at).format("%Y-%m-%d %H:%M UTC")
                ),
            ));
        }
    }
    let mut targets = pb.targets.resolve(&lf.fleet);
    let exception = a
        .exception
        .clone()
        .zip(a.approver.clone())
        .map(|(reason, approver)| Exception { reason, approver });
    let mut req = setup::gate_request(&pb, &targets, at, exception.clone());
    let decision = decide(&lf.calendar, &req);
    setup::print_decision(&decision, a.json);
    let mut frozen_skips = Vec::new();
    if !decision.allowed {
        let skippable = a.skip_frozen && !decision.blocked_everywhere;
        if !skippable {
            return Err(Failure::new(
                Exit::Blocked,
                format!("blocked by the calendar: {}; nothing was changed", decision.summary()),
            ));
        }
        targets.retain(|h| {
            let ok = decision.allows_region(h.region.as_deref());
            if !ok {
                frozen_skips.push((
                    h.name.clone(),
                    format!("region {} is frozen", h.region.clone().unwrap_or_default()),
                ));
            }
            ok
        });
        if targets.is_empty() {
            return Err(Failure::new(
                Exit::Blocked,
                "every target is in a frozen region; nothing was changed",
            ));
        }
        // Re-checks before each batch ask about the hosts that remain: asking about the
        // skipped regions too would find the same freeze and pause before batch 1.
        req = setup::gate_request(&pb, &targets, at, exception.clone());
    }
    let emergency = decision.emergency;
    let observe_ms = if emergency {
        lf.calendar
            .emergency
            .observe(std::time::Duration::from_millis(observe_ms))
            .as_millis() as u64
    } else {
        observe_ms
    };
    let run_id = new_run_id(&pb.id);
    let runs = g.runs_dir();
    let names: Vec<String> = targets.iter().map(|h| h.name.clone()).collect();
    let (_lock, broken) = lock(&runs, &run_id, names.clone(), a.break_lock)?;
    let run = RunDir::create(&runs, &run_id)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot create the run folder: {e}")))?;
    emit(
        &run,
        EventKind::RunStarted {
            run_id: run_id.clone(),
            playbook: pb.id.clone(),
            playbook_path: pb_path.display().to_string(),
            tier: pb.tier.to_string(),
            component: pb.component.clone(),
            user: username(),
            pid: std::process::id(),
            targets: names.clone(),
            resumed: false,
        },
    )?;
    if let Some(b) = broken {
        emit(&run, EventKind::LockBroken { holder: b.describe() })?;
    }
    emit(
        &run,
        EventKind::Gate {
            allowed: true,
            summary: decision.summary(),
            exception: exception.as_ref().map(|e| e.reason.clone()),
            approver: exception.as_ref().map(|e| e.approver.clone()),
            emergency,
            owner: exception.as_ref().and(pb.owner.clone()),
            scope: exception
                .as_ref()
                .map(|_| format!("{} {} in {}", pb.tier, pb.component, decision.regions.join(", "))),
            rollback: exception.as_ref().map(|_| format!("bellwether revert {run_id}")),
        },
    )?;
    let _ = run.write(
        "decision.json",
        &serde_json::to_vec_pretty(&decision).unwrap_or_default(),
    );
    say(
        a.json,
        &format!(
            "run {run_id}: {} ({} {}), {} target(s)",
            pb.id,
            pb.tier,
            pb.component,
            targets.len()
        ),
    );
    let conc = context::concurrency(g, &lf).min(pb.rollout.concurrency.unwrap_or(usize::MAX));
    let base = pb_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (prepared, failures, conns) = setup::preflight_all(&lf, &targets, &pb, &base, g.accept_new, conc).await;
    for (h, why) in &failures {
        emit(
            &run,
            EventKind::Preflight {
                host: h.clone(),
                ok: false,
                detail: why.clone(),
            },
        )?;
    }
    let finish_early = |run: &RunDir, outcome: &str, exit: Exit, msg: &str| {
        let _ = run.emit(EventKind::RunFinished {
            outcome: outcome.into(),
            exit: exit.code(),
            message: msg.into(),
        });
        crate::rollout::summary::write(run);
    };
    let remove_markers = || async {
        for p in prepared.values() {
            markers::remove(&p.conn, &run_id, false).await;
        }
    };
    let max_failed = pb.rollout.max_failed_hosts;
    if !failures.is_empty() && (failures.len() > max_failed || prepared.is_empty()) {
        let list = failures
            .iter()
            .map(|(h, e)| format!("  {h}: {e}"))
            .collect::<Vec<_>>()
            .join("\n");
        let msg = format!(
            "preflight failed on {} of {} host(s); nothing was changed:\n{list}",
            failures.len(),
            targets.len()
        );
        finish_early(&run, "preflight_failed", Exit::Preflight, &msg);
        return Err(Failure::new(Exit::Preflight, msg));
    }
    for (name, p) in &prepared {
        emit(
            &run,
            EventKind::Preflight {
                host: name.clone(),
                ok: true,
                detail: format!("{} file(s) to check", p.files.len()),
            },
        )?;
    }
    let frozen: Vec<String> = frozen_skips.iter().map(|(h, _)| h.clone()).collect();
    let mut skipped = frozen_skips;
    skipped.extend(failures.iter().cloned());
    for (h, r) in &skipped {
        emit(
            &run,
            EventKind::Skipped {
                host: h.clone(),
                reason: r.clone(),
            },
        )?;
    }
    let mut unchanged = Vec::new();
    let mut order = Vec::new();
    for n in &names {
        match prepared.get(n) {
            Some(p) if p.unchanged() => {
                unchanged.push(n.clone());
                emit(&run, EventKind::Unchanged { host: n.clone() })?;
            }
            Some(_) => order.push(n.clone()),
            None => {}
        }
    }
    let canary_n = emergency.then(|| lf.calendar.emergency.canary_hosts(order.len()));
    let plan = make_plan(&order, &pb.rollout, a.canary.as_deref(), canary_n).map_err(Failure::input)?;
    let mut record = setup::plan_record(
        &run_id,
        &pb,
        &pb_path,
        &order,
        &prepared,
        plan,
        observe_ms,
        batch_observe_ms,
        emergency,
        skipped,
        unchanged.clone(),
    );
    record.frozen = frozen;
    print_plan(&record, a.json);
    if order.is_empty() {
        let msg = format!(
            "nothing to do: all {} reachable target(s) already have the change",
            unchanged.len()
        );
        let _ = run.write("plan.json", &serde_json::to_vec_pretty(&record).unwrap_or_default());
        finish_early(&run, "done", Exit::Done, &msg);
        say(a.json, &msg);
        return Ok(Exit::Done);
    }
    if a.dry_run || (!a.yes && !confirm(&record)) {
        let _ = run.write("plan.json", &serde_json::to_vec_pretty(&record).unwrap_or_default());
        let (outcome, msg) = if a.dry_run {
            ("dry_run", "dry run: nothing was changed")
        } else {
            ("declined", "not confirmed: nothing was changed")
        };
        finish_early(&run, outcome, Exit::Done, msg);
        say(a.json, msg);
        return if a.dry_run {
            Ok(Exit::Done)
        } else {
            Err(Failure::input(msg))
        };
    }
    // Run markers go on only now, when the run will change hosts: a dry run, a declined
    // confirmation or bad input never leaves one behind.
    let mut marker_fail = Vec::new();
    for (name, p) in &prepared {
        match markers::place(&p.conn, &run_id, a.break_lock).await {
            Ok(None) => {}
            Ok(Some(old)) => emit(
                &run,
                EventKind::LockBroken {
                    holder: format!("{name}: stale marker of {old}"),
                },
            )?,
            Err(holder) => marker_fail.push((name.clone(), holder)),
        }
    }
    if !marker_fail.is_empty() {
        remove_markers().await;
        let msg = format!(
            "another run is working on {} host(s): {}; nothing was changed. If that run was killed, finish it (bellwether revert RUN) or rerun with --break-lock",
            marker_fail.len(),
            marker_fail
                .iter()
                .map(|(h, w)| format!("{h} (run {w})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        finish_early(&run, "locked", Exit::Locked, &msg);
        return Err(Failure::new(Exit::Locked, msg));
    }
    let cal = CalendarCheck {
        calendar: lf.calendar.clone(),
        request: req,
        offset: at - now,
    };
    let endpoints = setup::endpoints(&lf, &targets, g.accept_new);
    let mut ctx = setup::context(run, record, conns, endpoints, prepared, &pb, conc, Some(cal), a.json)?;
    let outcome = run_phases(&mut ctx, 0, false).await;
    finish(&mut ctx, outcome, a.json).await
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

fn print_plan(r: &crate::rollout::record_plan::PlanRecord, json: bool) {
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

fn confirm(r: &crate::rollout::record_plan::PlanRecord) -> bool {
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
