//! `bellwether revert RUN` and `bellwether resume RUN`: finishing a run from its folder.
//! Resuming lives in `resume.rs`; what both share (reopening a run) in `reopen.rs`.

use super::context;
use super::reopen::{connect, endpoints, need_yes, open, unmask_commands};
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::record::lock::username;
use crate::record::{read_events, Event, EventKind, RunDir};
use crate::rollout::ctx::{say, RunCtx};
use crate::rollout::engine::{revert_all, Outcome};
use crate::rollout::markers;
use crate::rollout::record_plan::HostPlan;
use crate::rollout::revert::Outstanding;
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Kept at its old path: the CLI calls `revert::resume`.
pub use super::resume::resume;

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
        return Ok(nothing_to_revert(g, &lf, &run, &events).await);
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
    let mut ctx = revert_ctx(g, &lf, run, conns, &hosts)?;
    for u in &unreachable {
        say(false, &format!("cannot reach {u}"));
    }
    let reason = format!("revert of run {} requested by {}", ctx.run.id, username());
    let o = revert_all(&mut ctx, &reason).await;
    for c in ctx.conns.values() {
        markers::remove(c, &ctx.run.id, false).await;
    }
    finish_revert(&ctx, o, unreachable)
}

/// Still clear this run's host markers (a run killed before changing anything leaves them).
async fn nothing_to_revert(g: &Global, lf: &crate::config::LoadedFleet, run: &RunDir, events: &[Event]) -> Exit {
    let targets: Vec<String> = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RunStarted { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let (conns, _) = connect(g, lf, &targets).await;
    for c in conns.values() {
        markers::remove(c, &run.id, false).await;
        c.close().await;
    }
    println!(
        "run {}: nothing to revert (every file it changed and every link it flipped is already restored)",
        run.id
    );
    Exit::Done
}

/// The revert runs the apply/health commands recorded in the plan (secrets re-rendered), and
/// is recorded in the run's own folder as a resumed start.
fn revert_ctx(
    g: &Global,
    lf: &crate::config::LoadedFleet,
    run: RunDir,
    conns: BTreeMap<String, Arc<Connection>>,
    hosts: &[String],
) -> Result<RunCtx, Failure> {
    let plan = crate::rollout::summary::load_plan(&run);
    let Some(mut record) = plan else {
        return Err(Failure::new(Exit::NeedsAttention, format!("{}: plan.json is missing; cannot know the apply/health commands. Restore the files from {}/snapshots by hand", run.dir.display(), run.dir.display())));
    };
    unmask_commands(&mut record, lf)?;
    let _ = run.emit(EventKind::RunStarted {
        run_id: run.id.clone(),
        playbook: record.playbook_id.clone(),
        playbook_path: record.playbook_path.clone(),
        tier: record.tier.clone(),
        component: record.component.clone(),
        user: username(),
        pid: std::process::id(),
        targets: hosts.to_vec(),
        resumed: true,
    });
    let conc = context::concurrency(g, lf);
    let endpoints = endpoints(g, lf, hosts);
    Ok(RunCtx {
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
    })
}

/// Record and report the revert's end: only a verified revert of every host is a success.
fn finish_revert(ctx: &RunCtx, o: Outcome, unreachable: Vec<String>) -> Result<Exit, Failure> {
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
        match reapply(&run, c, h, p).await {
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

/// Apply, then health only if apply worked; both results are recorded so the summary shows
/// which step a host that is still wrong failed at.
async fn reapply(run: &RunDir, c: &Connection, h: &str, p: &HostPlan) -> Result<(), String> {
    let apply = crate::rollout::host::apply(
        run,
        c,
        h,
        p.apply.as_deref(),
        std::time::Duration::from_millis(p.apply_timeout_ms),
    )
    .await;
    let health = match &apply {
        Ok(()) => {
            crate::rollout::host::health(
                run,
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
        host: h.to_string(),
        apply_ok: apply.is_ok(),
        health_ok: health.is_ok(),
    });
    health
}
