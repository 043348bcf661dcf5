//! `bellwether revert RUN` and `bellwether resume RUN`: finishing a run from its folder.

use super::context;
use crate::cli::Global;
use crate::config::{load_playbook, Host};
use crate::exit::{Exit, Failure};
use crate::record::lock::username;
use crate::record::{read_events, EventKind, RunDir};
use crate::rollout::ctx::{interactive, say, RunCtx};
use crate::rollout::engine::{revert_all, run_phases, CalendarCheck};
use crate::rollout::markers;
use crate::rollout::revert::Outstanding;
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn open(g: &Global, id: &str) -> Result<RunDir, Failure> {
    RunDir::open(&g.runs_dir(), id).map_err(|e| Failure::input(e.to_string()))
}

fn need_yes(yes: bool, what: &str) -> Result<(), Failure> {
    if !yes && !interactive() {
        return Err(Failure::input(format!(
            "refusing to {what} without --yes: there is no terminal to confirm on"
        )));
    }
    if !yes {
        use std::io::Write;
        print!("{what}? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut l = String::new();
        let _ = std::io::stdin().read_line(&mut l);
        if !matches!(l.trim(), "y" | "Y" | "yes") {
            return Err(Failure::input("not confirmed: nothing was changed"));
        }
    }
    Ok(())
}

async fn connect(
    g: &Global,
    lf: &crate::config::LoadedFleet,
    names: &[String],
) -> (BTreeMap<String, Arc<Connection>>, Vec<String>) {
    let mut conns = BTreeMap::new();
    let mut missing = Vec::new();
    let hosts: Vec<&Host> = names.iter().filter_map(|n| lf.fleet.host(n)).collect();
    for n in names {
        if lf.fleet.host(n).is_none() {
            missing.push(format!("{n}: no longer in {}", lf.path.display()));
        }
    }
    let eps: Vec<_> = hosts.iter().map(|h| context::endpoint(lf, h, g.accept_new)).collect();
    let res = crate::ssh::pool::connect_all(&eps, context::concurrency(g, lf)).await;
    for (ep, r) in eps.iter().zip(res) {
        match r {
            Ok(c) => {
                conns.insert(ep.name.clone(), c);
            }
            Err(e) => missing.push(format!("{}: {e}", ep.name)),
        }
    }
    (conns, missing)
}

/// The endpoints of the named fleet hosts (for reconnecting).
fn endpoints(g: &Global, lf: &crate::config::LoadedFleet, names: &[String]) -> BTreeMap<String, crate::ssh::Endpoint> {
    names
        .iter()
        .filter_map(|n| lf.fleet.host(n))
        .map(|h| (h.name.clone(), context::endpoint(lf, h, g.accept_new)))
        .collect()
}

/// Put back every file the run changed and every link it flipped, not yet restored.
pub async fn revert(g: &Global, id: &str, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let run = open(g, id)?;
    let events = read_events(&run.dir).map_err(|e| Failure::input(e.to_string()))?;
    let todo = Outstanding::from_events(&events);
    let pending = crate::record::history::restart_pending(&events);
    if todo.is_empty() && !pending.is_empty() {
        return restart_only(g, &lf, run, &pending, yes).await;
    }
    if todo.is_empty() {
        // Still clear this run's host markers (a run killed before changing anything leaves them).
        let targets: Vec<String> = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::RunStarted { targets, .. } => Some(targets.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let (conns, _) = connect(g, &lf, &targets).await;
        for c in conns.values() {
            markers::remove(c, &run.id, false).await;
            c.close().await;
        }
        println!(
            "run {}: nothing to revert (every file it changed and every link it flipped is already restored)",
            run.id
        );
        return Ok(Exit::Done);
    }
    let hosts: Vec<String> = todo.hosts().into_iter().collect();
    let what = match (todo.files.len(), todo.flips.len()) {
        (n, 0) => format!("{n} file(s)"),
        (0, m) => format!("{m} link(s)"),
        (n, m) => format!("{n} file(s) and {m} link(s)"),
    };
    need_yes(
        yes,
        &format!("Revert {what} on {} host(s) changed by run {}", hosts.len(), run.id),
    )?;
    let (_lock, _) = super::rollout::lock(&g.runs_dir(), &run.id, hosts.clone(), true)?;
    let (conns, unreachable) = connect(g, &lf, &hosts).await;
    let plan = crate::rollout::summary::load_plan(&run);
    let Some(mut record) = plan else {
        return Err(Failure::new(Exit::NeedsAttention, format!("{}: plan.json is missing; cannot know the apply/health commands. Restore the files from {}/snapshots by hand", run.dir.display(), run.dir.display())));
    };
    unmask_commands(&mut record, &lf)?;
    let _ = run.emit(EventKind::RunStarted {
        run_id: run.id.clone(),
        playbook: record.playbook_id.clone(),
        playbook_path: record.playbook_path.clone(),
        tier: record.tier.clone(),
        component: record.component.clone(),
        user: username(),
        pid: std::process::id(),
        targets: hosts.clone(),
        resumed: true,
    });
    let conc = context::concurrency(g, &lf);
    let endpoints = endpoints(g, &lf, &hosts);
    let mut ctx = RunCtx {
        run,
        record,
        conns,
        endpoints,
        prepared: BTreeMap::new(),
        watch: None,
        concurrency: conc,
        interrupt: crate::rollout::ctx::interrupts(),
        calendar: None,
        json: false,
    };
    for u in &unreachable {
        say(false, &format!("cannot reach {u}"));
    }
    let reason = format!("revert of run {} requested by {}", ctx.run.id, username());
    let o = revert_all(&mut ctx, &reason).await;
    for c in ctx.conns.values() {
        markers::remove(c, &ctx.run.id, false).await;
    }
    // A host unreachable at first that the revert reached after all (it reconnects) is fine;
    // one still unreachable failed its revert, so `o` says so.
    let unreachable: Vec<String> = unreachable
        .into_iter()
        .filter(|u| {
            let name = u.split(':').next().unwrap_or_default();
            ctx.conns.get(name).is_none_or(|c| c.is_closed())
        })
        .collect();
    let (exit, outcome) = if o.exit == Exit::Reverted && unreachable.is_empty() {
        (Exit::Done, "reverted")
    } else {
        (Exit::NeedsAttention, "revert_failed")
    };
    let _ = ctx.run.emit(EventKind::RunFinished {
        outcome: outcome.into(),
        exit: exit.code(),
        message: o.message.clone(),
    });
    crate::rollout::summary::write(&ctx.run);
    say(false, &o.message);
    if exit == Exit::Done {
        Ok(Exit::Done)
    } else {
        Err(Failure::new(
            exit,
            format!(
                "{}{}\nretry with: bellwether revert {}",
                o.message,
                if unreachable.is_empty() {
                    String::new()
                } else {
                    format!("\nunreachable: {}", unreachable.join("; "))
                },
                ctx.run.id
            ),
        ))
    }
}

/// `plan.json` is written with secrets masked, so a command that had a secret spliced in
/// (`--auth {{ vars.api_token }}`) is recorded as `--auth ••••`. Before running recorded
/// commands, re-render those from the playbook and the fleet (which hold the real values).
fn unmask_commands(
    record: &mut crate::rollout::record_plan::PlanRecord,
    lf: &crate::config::LoadedFleet,
) -> Result<(), Failure> {
    let masked = |c: &Option<String>| c.as_deref().is_some_and(|c| c.contains(crate::edit::MASK));
    let needs = record.hosts.values().any(|h| {
        masked(&h.apply)
            || masked(&h.health)
            || h.on_revert
                .iter()
                .chain(h.after_hooks.iter())
                .any(|c| c.contains(crate::edit::MASK))
    });
    if !needs {
        return Ok(());
    }
    let pb = crate::config::load_playbook(std::path::Path::new(&record.playbook_path), &lf.fleet).map_err(|e| {
        Failure::new(
            Exit::NeedsAttention,
            format!(
                "the recorded commands hold masked secrets and the playbook to re-render them cannot be loaded: {e}"
            ),
        )
    })?;
    for (name, hp) in record.hosts.iter_mut() {
        let Some(host) = lf.fleet.host(name) else { continue };
        let ctx = crate::rollout::host::template_ctx(host);
        let render = |t: &str| {
            crate::edit::render(t, &ctx).map_err(|e| Failure::new(Exit::NeedsAttention, format!("{name}: {e}")))
        };
        hp.apply = pb.apply.command.as_deref().map(render).transpose()?;
        hp.health = pb.apply.health.as_deref().map(render).transpose()?;
        hp.on_revert = pb.hooks.on_revert.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
        hp.after_hooks = pb.hooks.after.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// Finish a revert that was cut short after the files were put back: re-run apply and health
/// on those hosts, recorded, so the agents really run the restored config.
async fn restart_only(
    g: &Global,
    lf: &crate::config::LoadedFleet,
    run: RunDir,
    hosts: &[String],
    yes: bool,
) -> Result<Exit, Failure> {
    need_yes(
        yes,
        &format!(
            "Re-apply the restored config on {} host(s) of run {}",
            hosts.len(),
            run.id
        ),
    )?;
    let (_lock, _) = super::rollout::lock(&g.runs_dir(), &run.id, hosts.to_vec(), true)?;
    let mut record = crate::rollout::summary::load_plan(&run).ok_or_else(|| {
        Failure::new(
            Exit::NeedsAttention,
            format!("{}: plan.json is missing", run.dir.display()),
        )
    })?;
    unmask_commands(&mut record, lf)?;
    let (conns, unreachable) = connect(g, lf, hosts).await;
    let mut bad: Vec<String> = unreachable;
    for h in hosts {
        let (Some(c), Some(p)) = (conns.get(h), record.hosts.get(h)) else {
            continue;
        };
        let apply = crate::rollout::host::apply(
            &run,
            c,
            h,
            p.apply.as_deref(),
            std::time::Duration::from_millis(p.apply_timeout_ms),
        )
        .await;
        let health = match &apply {
            Ok(()) => {
                crate::rollout::host::health(
                    &run,
                    c,
                    h,
                    p.health.as_deref(),
                    std::time::Duration::from_millis(p.health_timeout_ms),
                )
                .await
            }
            Err(e) => Err(e.clone()),
        };
        let _ = run.emit(EventKind::HostRestored {
            host: h.clone(),
            apply_ok: apply.is_ok(),
            health_ok: health.is_ok(),
        });
        match health {
            Ok(()) => say(false, &format!("{h}: restored config re-applied, healthy")),
            Err(e) => bad.push(format!("{h}: {e}")),
        }
        markers::remove(c, &run.id, false).await;
    }
    let (exit, outcome, message) = if bad.is_empty() {
        (
            Exit::Done,
            "reverted",
            format!("re-applied the restored config on {} host(s)", hosts.len()),
        )
    } else {
        (
            Exit::NeedsAttention,
            "revert_failed",
            format!("re-apply failed: {}", bad.join("; ")),
        )
    };
    let _ = run.emit(EventKind::RunFinished {
        outcome: outcome.into(),
        exit: exit.code(),
        message: message.clone(),
    });
    crate::rollout::summary::write(&run);
    if exit == Exit::Done {
        say(false, &message);
        Ok(exit)
    } else {
        Err(Failure::new(
            exit,
            format!("{message}\nretry with: bellwether revert {}", run.id),
        ))
    }
}

/// Continue an interrupted run from its first phase that did not pass.
pub async fn resume(g: &Global, id: &str, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let run = open(g, id)?;
    let events = read_events(&run.dir).map_err(|e| Failure::input(e.to_string()))?;
    let mut record = crate::rollout::summary::load_plan(&run).ok_or_else(|| {
        Failure::input(format!(
            "{}: no plan.json; the run never got past preflight, start a new rollout",
            run.dir.display()
        ))
    })?;
    unmask_commands(&mut record, &lf)?;
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
    let phases = record.plan.phases();
    let from = phases
        .iter()
        .position(|(p, _)| !passed.contains(p))
        .unwrap_or(phases.len());
    need_yes(
        yes,
        &format!(
            "Resume run {} from {}",
            run.id,
            phases.get(from).map(|p| p.0.as_str()).unwrap_or("the end")
        ),
    )?;
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
    let base = pb_path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let (prepared, failures, conns) =
        crate::rollout::setup::preflight_all(&lf, &hosts, &pb, &base, g.accept_new, conc).await;
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
    // The exception approved for this run still holds for it: without it, an emergency
    // fix resumed inside the very freeze it was approved for would pause at once.
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
    let req = crate::rollout::setup::gate_request(&pb, &hosts, chrono::Utc::now(), exception);
    let cal = CalendarCheck {
        calendar: lf.calendar.clone(),
        request: req,
        offset: chrono::Duration::zero(),
    };
    // Hosts changed before the interruption are not re-prepared, but a failure from here on
    // must be able to revert them too: connect to them as well.
    let earlier: Vec<String> = crate::record::history::changed_hosts(&events)
        .into_iter()
        .filter(|h| !conns.contains_key(h))
        .collect();
    let (earlier_conns, _) = connect(g, &lf, &earlier).await;
    let mut conns = conns;
    conns.extend(earlier_conns);
    let mut all_names = names.clone();
    all_names.extend(earlier);
    let endpoints = endpoints(g, &lf, &all_names);
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
    say(
        false,
        &format!(
            "resuming run {} at {}",
            ctx.run.id,
            phases.get(from).map(|p| p.0.as_str()).unwrap_or("the end")
        ),
    );
    let o = run_phases(&mut ctx, from, true).await;
    super::rollout::finish(&mut ctx, o, false).await
}
