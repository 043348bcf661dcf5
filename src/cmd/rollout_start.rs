//! Starting `bellwether rollout`: arguments, calendar gate, lock and run folder — everything
//! decided before any host is contacted.

use crate::calendar::{decide, parse_at, Decision, Exception, GateRequest, OffPeak};
use crate::config::{load::playbook_path, load_playbook, Host, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::options::{Global, RolloutArgs};
use crate::record::lock::{hostname, username, Lock, LockError, LockInfo};
use crate::record::{new_run_id, EventKind, RunDir};
use crate::rollout::ctx::{interactive, say};
use crate::rollout::setup::{self, emit};
use crate::value::Dur;
use std::path::{Path, PathBuf};

fn dur(flag: &str, v: &Option<String>) -> Result<Option<u64>, Failure> {
    v.as_deref()
        .map(|s| {
            Dur::parse(s)
                .map(|d| d.get().as_millis() as u64)
                .map_err(|e| Failure::input(format!("{flag}: {e}")))
        })
        .transpose()
}

/// The playbook and flags, checked once so bad input fails before the calendar is asked.
pub struct Settings {
    /// Absolute, so `resume RUN` finds the playbook from any directory.
    pub pb_path: PathBuf,
    pub pb: Playbook,
    pub observe_ms: u64,
    pub batch_observe_ms: u64,
    /// The real clock when the run started; `at - now` shifts later calendar checks.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The moment the calendar is asked about (`--at`, for rehearsals; else `now`).
    pub at: chrono::DateTime<chrono::Utc>,
    pub exception: Option<Exception>,
}

/// Load the playbook and check the flags; nothing is recorded yet, so errors change nothing.
pub fn settings(lf: &LoadedFleet, a: &RolloutArgs) -> Result<Settings, Failure> {
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
    let exception = a
        .exception
        .clone()
        .zip(a.approver.clone())
        .map(|(reason, approver)| Exception { reason, approver });
    Ok(Settings {
        pb_path,
        pb,
        observe_ms,
        batch_observe_ms,
        now,
        at,
        exception,
    })
}

/// What the calendar let this run do.
pub struct Gate<'f> {
    /// The hosts the run may touch (frozen regions dropped under `--skip-frozen`).
    pub targets: Vec<&'f Host>,
    /// Asked again before each batch, about the hosts that remain.
    pub req: GateRequest,
    pub decision: Decision,
    /// Hosts left out because their region is frozen, with why.
    pub frozen_skips: Vec<(String, String)>,
    pub emergency: bool,
    /// The canary window, shortened by the calendar's emergency rules when they apply.
    pub observe_ms: u64,
}

/// Ask the calendar; a block ends the run here, before there is a run folder to record it in.
pub fn gate<'f>(lf: &'f LoadedFleet, s: &Settings, a: &RolloutArgs) -> Result<Gate<'f>, Failure> {
    let pb = &s.pb;
    let mut targets = pb.targets.resolve(&lf.fleet);
    let mut req = setup::gate_request(pb, &targets, s.at, s.exception.clone());
    let decision = decide(&lf.calendar, &req);
    setup::print_decision(&decision, a.json);
    let mut frozen_skips = Vec::new();
    if !decision.allowed {
        frozen_skips = drop_frozen(&mut targets, &decision, a.skip_frozen)?;
        // Re-checks before each batch ask about the hosts that remain: asking about the
        // skipped regions too would find the same freeze and pause before batch 1.
        req = setup::gate_request(pb, &targets, s.at, s.exception.clone());
    }
    let emergency = decision.emergency;
    let observe_ms = if emergency {
        lf.calendar
            .emergency
            .observe(std::time::Duration::from_millis(s.observe_ms))
            .as_millis() as u64
    } else {
        s.observe_ms
    };
    Ok(Gate {
        targets,
        req,
        decision,
        frozen_skips,
        emergency,
        observe_ms,
    })
}

/// Under `--skip-frozen` a partial freeze only narrows the run; anything else blocks it.
fn drop_frozen(
    targets: &mut Vec<&Host>,
    decision: &Decision,
    skip_frozen: bool,
) -> Result<Vec<(String, String)>, Failure> {
    let skippable = skip_frozen && !decision.blocked_everywhere;
    if !skippable {
        return Err(Failure::new(
            Exit::Blocked,
            format!("blocked by the calendar: {}; nothing was changed", decision.summary()),
        ));
    }
    let mut frozen_skips = Vec::new();
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
    Ok(frozen_skips)
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

/// A run that holds its lock and has a folder recording it.
pub struct Started {
    pub run: RunDir,
    pub run_id: String,
    /// The targets' names, in fleet order.
    pub names: Vec<String>,
    /// Held until the run ends: dropping it releases the hosts to other runs. Declared last
    /// so it is dropped last.
    pub lock: Lock,
}

/// Lock the hosts, then create the run folder and record the start and the gate in it, so
/// every later step (even a preflight failure) is in the record.
pub fn open_run(g: &Global, a: &RolloutArgs, s: &Settings, gate: &Gate<'_>) -> Result<Started, Failure> {
    let pb = &s.pb;
    let run_id = new_run_id(&pb.id);
    let runs = g.runs_dir();
    let names: Vec<String> = gate.targets.iter().map(|h| h.name.clone()).collect();
    let (lock, broken) = lock(&runs, &run_id, names.clone(), a.break_lock)?;
    let run = RunDir::create(&runs, &run_id)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot create the run folder: {e}")))?;
    emit(
        &run,
        EventKind::RunStarted {
            run_id: run_id.clone(),
            playbook: pb.id.clone(),
            playbook_path: s.pb_path.display().to_string(),
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
    record_gate(&run, &run_id, s, gate)?;
    say(
        a.json,
        &format!(
            "run {run_id}: {} ({} {}), {} target(s)",
            pb.id,
            pb.tier,
            pb.component,
            gate.targets.len()
        ),
    );
    Ok(Started {
        run,
        run_id,
        names,
        lock,
    })
}

/// An exception's reason, approver, owner, scope and rollback go in the record, so an
/// emergency change can be audited afterwards.
fn record_gate(run: &RunDir, run_id: &str, s: &Settings, gate: &Gate<'_>) -> Result<(), Failure> {
    let pb = &s.pb;
    let exception = &s.exception;
    let decision = &gate.decision;
    emit(
        run,
        EventKind::Gate {
            allowed: true,
            summary: decision.summary(),
            exception: exception.as_ref().map(|e| e.reason.clone()),
            approver: exception.as_ref().map(|e| e.approver.clone()),
            emergency: gate.emergency,
            owner: exception.as_ref().and(pb.owner.clone()),
            scope: exception
                .as_ref()
                .map(|_| format!("{} {} in {}", pb.tier, pb.component, decision.regions.join(", "))),
            rollback: exception.as_ref().map(|_| format!("bellwether revert {run_id}")),
        },
    )?;
    let _ = run.write(
        "decision.json",
        &serde_json::to_vec_pretty(decision).unwrap_or_default(),
    );
    Ok(())
}
