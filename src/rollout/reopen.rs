//! `Run::revert` and `Run::resume`: reopening a recorded run from its folder alone — its
//! events (read strictly: a damaged line is an error, never skipped), its plan (commands
//! re-rendered where the record masked a secret), connections to every host it touched.
//! `Run::resume` itself is in `resume.rs`.

use super::finish::Finished;
use super::machine::revert_all;
use super::outcome::{Ending, Outcome};
use super::preflight;
use super::record_plan::{HostPlan, PlanRecord};
use super::revert::Outstanding;
use super::run::{interactive, interrupts, Run, RunOptions};
use super::start::{concurrency, lock, record_broken};
use crate::config::{load_playbook, Host, LoadedFleet};
use crate::exit::{Exit, Failure};
use crate::record::history::{last_start, markers_held, records_markers, restart_pending};
use crate::record::lock::username;
use crate::record::run_dir::Progress;
use crate::record::secrets::Secrets;
use crate::record::{read_events, Event, EventKind, RunDir};
use std::collections::{BTreeMap, BTreeSet};

/// Changing hosts again needs `--yes` or a "y" on a terminal; cron without `--yes` is refused.
pub(super) fn need_yes(yes: bool, what: &str) -> Result<(), Failure> {
    if !yes && !interactive() {
        // `what` is worded as a prompt ("Revert 2 file(s) …?"); mid-sentence it is lower case.
        let mut c = what.chars();
        let what = c
            .next()
            .map(|f| f.to_lowercase().chain(c).collect::<String>())
            .unwrap_or_default();
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

/// The run folder and its events; a damaged record stops here (exit 2), before any host.
pub(super) fn open(lf: &LoadedFleet, opts: &RunOptions, id: &str) -> Result<(RunDir, Vec<Event>), Failure> {
    let dir = crate::record::run_dir::resolve(&opts.runs_dir, id).map_err(|e| Failure::input(e.to_string()))?;
    crate::record::trust::check_trusted(&dir).map_err(|e| Failure::input(e.to_string()))?;
    let events = read_events(&dir).map_err(|e| Failure::input(e.to_string()))?;
    let pb = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { playbook_path, .. } => {
            load_playbook(std::path::Path::new(playbook_path), &lf.fleet).ok()
        }
        _ => None,
    });
    let secrets = Secrets::for_run(lf, pb.as_ref());
    let rec = RunDir::open(&opts.runs_dir, id, secrets, Progress::for_output(opts.json))
        .map_err(|e| Failure::input(e.to_string()))?;
    Ok((rec, events))
}

/// `plan.json` with the commands a masked secret hid re-rendered from the playbook.
fn load_plan(rec: &RunDir, lf: &LoadedFleet) -> Result<PlanRecord, Failure> {
    let mut record = super::summary::load_plan(rec).ok_or_else(|| {
        Failure::new(
            Exit::NeedsAttention,
            format!(
                "{}: plan.json is missing; cannot know the apply/health commands. Restore the files from {}/snapshots by hand",
                rec.dir.display(),
                rec.dir.display()
            ),
        )
    })?;
    unmask_commands(&mut record, lf)?;
    Ok(record)
}

pub(super) fn record_err(e: std::io::Error) -> Failure {
    Failure::new(Exit::NeedsAttention, format!("cannot write the run record: {e}"))
}

/// Record that this process takes the run over (`resumed: true`).
pub(super) fn restart_record(
    rec: &RunDir,
    plan: Option<&PlanRecord>,
    events: &[Event],
    targets: &[String],
) -> Result<(), Failure> {
    let (playbook, playbook_path, tier, component) = match plan {
        Some(p) => (
            p.playbook_id.clone(),
            p.playbook_path.clone(),
            p.tier.clone(),
            p.component.clone(),
        ),
        None => events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::RunStarted {
                    playbook,
                    playbook_path,
                    tier,
                    component,
                    ..
                } => Some((playbook.clone(), playbook_path.clone(), tier.clone(), component.clone())),
                _ => None,
            })
            .unwrap_or_default(),
    };
    rec.emit(EventKind::RunStarted {
        run_id: rec.id.clone(),
        playbook,
        playbook_path,
        tier,
        component,
        user: username(),
        pid: std::process::id(),
        targets: targets.to_vec(),
        resumed: true,
    })
    .map_err(record_err)
}

/// A reopened run with no prepared hosts (revert works from the record alone).
pub(super) fn reopened(lf: &LoadedFleet, opts: &RunOptions, rec: RunDir, plan: PlanRecord, hosts: &[String]) -> Run {
    let targets: Vec<&Host> = hosts.iter().filter_map(|n| lf.fleet.host(n)).collect();
    Run {
        rec,
        plan,
        conns: BTreeMap::new(),
        endpoints: preflight::endpoints(lf, &targets, opts.accept_new),
        prepared: BTreeMap::new(),
        watch: None,
        concurrency: concurrency(opts, lf),
        interrupt: interrupts(),
        calendar: None,
        resumed: true,
        failed_hosts: 0,
        left_alone: Vec::new(),
        tails: None,
        changed_at: Default::default(),
        _lock: None,
        callbacks: crate::config::controls::CallbackSets::new(&lf.fleet, None),
        promoted: Vec::new(),
        wait_for_promotion: opts.wait,
        pause_timeout: None,
        within: Default::default(),
        pinned: Vec::new(),
    }
}

/// What `revert RUN` will do, as the confirmation question; None: nothing at all.
fn revert_question(id: &str, todo: &Outstanding, pending: usize, marked: usize) -> Option<String> {
    Some(match (todo.files.len(), todo.flips.len(), pending) {
        (0, 0, 0) if marked == 0 => return None,
        (0, 0, 0) => format!("Clear run {id}'s marker from {marked} host(s)"),
        (0, 0, p) => format!("Re-apply the restored config on {p} host(s) of run {id}"),
        (n, m, _) => format!(
            "Revert {n} file(s) and {m} link(s) on {} host(s) changed by run {id}",
            todo.hosts().len()
        ),
    })
}

/// Hosts that still carry the run's marker (every target, for records that predate marker
/// events: removal only ever takes this run's own marker).
fn marker_hosts(events: &[Event]) -> Vec<String> {
    if records_markers(events) {
        markers_held(events)
    } else {
        last_start(events).map(|(_, t)| t).unwrap_or_default()
    }
}

impl Run {
    /// `revert RUN`: put back every file the run changed and every link it flipped that is not
    /// restored yet, re-apply where a revert was cut short, and take the run's markers off
    /// every host it placed them on.
    pub async fn revert(lf: &LoadedFleet, opts: &RunOptions, id: &str) -> Result<Finished, Failure> {
        Run::revert_because(lf, opts, id, None).await
    }

    /// `revert RUN` with the reason recorded (`abort RUN`, an expired promotion wait).
    pub async fn revert_because(
        lf: &LoadedFleet,
        opts: &RunOptions,
        id: &str,
        why: Option<String>,
    ) -> Result<Finished, Failure> {
        let (rec, events) = open(lf, opts, id)?;
        let todo = Outstanding::from_events(&events);
        let pending = restart_pending(&events);
        let marked = marker_hosts(&events);
        let mut hosts: BTreeSet<String> = todo.hosts();
        hosts.extend(pending.iter().cloned());
        hosts.extend(marked.iter().cloned());
        let Some(what) = revert_question(&rec.id, &todo, pending.len(), marked.len()) else {
            rec.say(&format!(
                "run {}: nothing to revert (every file it changed and every link it flipped is already restored)",
                rec.id
            ));
            return Ok(Finished {
                run_id: rec.id.clone(),
                dir: rec.dir.clone(),
                ending: Ending::new(Outcome::Reverted, "nothing to revert"),
            });
        };
        need_yes(opts.yes, &what)?;
        let hosts: Vec<String> = hosts.into_iter().collect();
        let (lock, broken) = lock(&opts.runs_dir, &rec.id, hosts.clone(), opts.break_lock)?;
        let plan = if todo.is_empty() && pending.is_empty() {
            super::summary::load_plan(&rec).unwrap_or_else(|| empty_plan(&rec.id))
        } else {
            load_plan(&rec, lf)?
        };
        restart_record(&rec, Some(&plan), &events, &hosts)?;
        record_broken(&rec, broken)?;
        let mut run = reopened(lf, opts, rec, plan, &hosts);
        run._lock = Some(lock);
        let pb = load_playbook(std::path::Path::new(&run.plan.playbook_path), &lf.fleet).ok();
        run.callbacks = crate::config::controls::CallbackSets::new(&lf.fleet, pb.as_ref());
        let ending = if !todo.is_empty() {
            let reason = why.unwrap_or_else(|| format!("revert of run {} requested by {}", run.id(), username()));
            revert_all(&mut run, &reason).await
        } else if !pending.is_empty() {
            run.restart_only(&pending).await
        } else {
            Ending::new(
                Outcome::Reverted,
                "nothing was left changed; the run's markers are cleared",
            )
        };
        Ok(run.finish(ending).await)
    }

    /// Finish a revert that was cut short after the files were put back: re-run apply and
    /// health on those hosts, recorded, so the agents really run the restored config.
    async fn restart_only(&mut self, hosts: &[String]) -> Ending {
        super::reconnect::reconnect_for_revert(self, hosts).await;
        let mut bad = Vec::new();
        for h in hosts {
            let (Some(c), Some(p)) = (self.conns.get(h).cloned(), self.plan.hosts.get(h).cloned()) else {
                bad.push(format!("{h}: not reachable"));
                continue;
            };
            match reapply(&self.rec, &c, h, &p).await {
                Ok(()) => self.say(&format!("{h}: restored config re-applied, healthy")),
                Err(e) => bad.push(format!("{h}: {e}")),
            }
        }
        if bad.is_empty() {
            Ending::new(
                Outcome::Reverted,
                format!("re-applied the restored config on {} host(s)", hosts.len()),
            )
        } else {
            Ending::new(
                Outcome::RevertFailed,
                format!(
                    "re-apply failed: {}\nretry with: bellwether revert {}",
                    bad.join("; "),
                    self.id()
                ),
            )
        }
    }
}

/// Apply, then health only if apply worked; both results are recorded so the summary shows
/// which step a host that is still wrong failed at.
async fn reapply(rec: &RunDir, c: &crate::ssh::Connection, h: &str, p: &HostPlan) -> Result<(), String> {
    let ms = std::time::Duration::from_millis;
    let apply = super::host::apply(rec, c, h, p.apply.as_deref(), ms(p.apply_timeout_ms))
        .await
        .map_err(|e| e.to_string());
    let health = match &apply {
        Ok(()) => super::host::health(rec, c, h, p.health.as_deref(), ms(p.health_timeout_ms))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    rec.emit(EventKind::HostRestored {
        host: h.to_string(),
        apply_ok: apply.is_ok(),
        health_ok: health.is_ok(),
    })
    .map_err(|e| format!("cannot write the run record: {e}"))?;
    health
}

/// A plan for a run that never got one (killed before preflight ended): only markers to clear.
fn empty_plan(id: &str) -> PlanRecord {
    PlanRecord {
        run_id: id.to_string(),
        playbook_id: String::new(),
        playbook_path: String::new(),
        tier: String::new(),
        component: String::new(),
        plan: super::plan::BatchPlan::default(),
        baseline: vec![],
        observe_ms: 0,
        batch_observe_ms: 0,
        before_ms: None,
        max_failed_hosts: 0,
        emergency: false,
        skipped: vec![],
        frozen: vec![],
        unchanged: vec![],
        hosts: BTreeMap::new(),
        regions: BTreeMap::new(),
    }
}

/// `plan.json` is written with free text masked, so a command that had a secret spliced in
/// (`--auth {{ vars.api_token }}`) is recorded as `--auth ••••`. Before running recorded
/// commands, re-render those from the playbook and the fleet (which hold the real values).
pub(super) fn unmask_commands(record: &mut PlanRecord, lf: &LoadedFleet) -> Result<(), Failure> {
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
    let pb = load_playbook(std::path::Path::new(&record.playbook_path), &lf.fleet).map_err(|e| {
        Failure::new(
            Exit::NeedsAttention,
            format!(
                "the recorded commands hold masked secrets and the playbook to re-render them cannot be loaded: {e}"
            ),
        )
    })?;
    for (name, hp) in record.hosts.iter_mut() {
        let Some(host) = lf.fleet.host(name) else { continue };
        let ctx = super::host::template_ctx(host);
        let render = |t: &str| {
            crate::edit::render_command(t, &ctx).map_err(|e| Failure::new(Exit::NeedsAttention, format!("{name}: {e}")))
        };
        hp.apply = pb.apply.command.as_deref().map(render).transpose()?;
        hp.health = pb.apply.health.as_deref().map(render).transpose()?;
        hp.on_revert = pb.hooks.on_revert.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
        hp.after_hooks = pb.hooks.after.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
    }
    Ok(())
}
