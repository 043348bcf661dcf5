//! The one planner: playbook and flags, the calendar decision (with `--skip-frozen` and the
//! emergency profile), the canary choice and the batches. `plan`, `rollout` and `resume` all
//! plan through here, so `plan` shows exactly what `rollout` will do.

use super::plan::{make_plan, BatchPlan};
use super::run::CalendarCheck;
use crate::calendar::{decide, parse_at, Decision, Exception, GateRequest, OffPeak, Readiness};
use crate::config::{load::playbook_path, load_playbook, Host, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::value::Dur;
use serde::Serialize;
use std::path::PathBuf;

/// What the operator asked for (the flags of `plan` and `rollout`).
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub playbook: String,
    /// `--canary HOST`.
    pub canary: Option<String>,
    pub observe: Option<String>,
    pub batch_observe: Option<String>,
    /// `--at`: ask the calendar about another moment (rehearsals).
    pub at: Option<String>,
    pub exception: Option<String>,
    pub approver: Option<String>,
    pub skip_frozen: bool,
    pub within: Option<String>,
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
    /// `--canary HOST`.
    pub canary: Option<String>,
}

fn dur(flag: &str, v: &Option<String>) -> Result<Option<u64>, Failure> {
    v.as_deref()
        .map(|s| {
            Dur::parse(s)
                .map(|d| d.get().as_millis() as u64)
                .map_err(|e| Failure::input(format!("{flag}: {e}")))
        })
        .transpose()
}

/// Load the playbook and check the flags; nothing is recorded yet, so errors change nothing.
pub fn settings(lf: &LoadedFleet, a: &PlanRequest) -> Result<Settings, Failure> {
    let pb_path = playbook_path(&a.playbook, &lf.path)?;
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
    if let Some(c) = &a.canary {
        if lf.fleet.host(c).is_none() {
            return Err(Failure::input(format!(
                "--canary {c:?}: no such host in {}; nothing was changed",
                lf.path.display()
            )));
        }
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
        canary: a.canary.clone(),
    })
}

/// The calendar request for a playbook over `hosts`.
pub fn gate_request(
    pb: &Playbook,
    hosts: &[&Host],
    at: chrono::DateTime<chrono::Utc>,
    exception: Option<Exception>,
) -> GateRequest {
    let mut regions: Vec<String> = hosts.iter().filter_map(|h| h.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let has_log = pb.watch.as_ref().is_some_and(|w| w.log.is_some());
    GateRequest {
        tier: pb.tier,
        regions,
        components: vec![pb.component.clone()],
        at,
        exception,
        playbook_id: Some(pb.id.clone()),
        readiness: Some(Readiness {
            has_health: pb.apply.health.is_some(),
            has_log_watch: has_log,
            batch_steps: pb.rollout.batches.len(),
            has_canary: pb.rollout.strategy != crate::config::playbook::Strategy::AllAtOnce,
        }),
    }
}

/// What the calendar lets this run do.
pub struct Gate<'f> {
    /// The hosts the run may touch (frozen regions dropped under `--skip-frozen`).
    pub targets: Vec<&'f Host>,
    /// Asked again before each phase, about the hosts that remain.
    pub req: GateRequest,
    pub decision: Decision,
    /// Hosts left out because their region is frozen, with why.
    pub frozen_skips: Vec<(String, String)>,
    pub emergency: bool,
    /// The canary window, shortened by the calendar's emergency rules when they apply.
    pub observe_ms: u64,
}

impl Gate<'_> {
    /// What later calendar checks ask (each phase of `rollout`, and `resume`).
    pub fn recheck(&self, lf: &LoadedFleet, s: &Settings) -> CalendarCheck {
        CalendarCheck {
            calendar: lf.calendar.clone(),
            request: self.req.clone(),
            offset: s.at - s.now,
        }
    }
}

/// Ask the calendar. A block is an `Err` (exit 3) unless `--skip-frozen` can narrow the run
/// to the open regions; `plan` uses [`decide_for_plan`] instead, which never fails.
pub fn gate<'f>(lf: &'f LoadedFleet, s: &Settings, skip_frozen: bool) -> Result<Gate<'f>, Failure> {
    let mut g = decide_for_plan(lf, s);
    if !g.decision.allowed {
        g.frozen_skips = drop_frozen(&mut g.targets, &g.decision, skip_frozen)?;
        // Re-checks before each phase ask about the hosts that remain: asking about the
        // skipped regions too would find the same freeze and pause before batch 1.
        g.req = gate_request(&s.pb, &g.targets, s.at, s.exception.clone());
    }
    Ok(g)
}

/// The calendar's decision over every target, blocked or not.
pub fn decide_for_plan<'f>(lf: &'f LoadedFleet, s: &Settings) -> Gate<'f> {
    let pb = &s.pb;
    let targets = pb.targets.resolve(&lf.fleet);
    let req = gate_request(pb, &targets, s.at, s.exception.clone());
    let decision = decide(&lf.calendar, &req);
    let emergency = decision.emergency;
    let observe_ms = if emergency {
        let d = std::time::Duration::from_millis(s.observe_ms);
        lf.calendar.emergency.observe(d).as_millis() as u64
    } else {
        s.observe_ms
    };
    Gate {
        targets,
        req,
        decision,
        frozen_skips: Vec::new(),
        emergency,
        observe_ms,
    }
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

/// The canary and the batches over `order` (the hosts to change, in fleet order): the
/// emergency profile sets the canary's size, `--canary` picks it.
pub fn batches(lf: &LoadedFleet, s: &Settings, gate: &Gate<'_>, order: &[String]) -> Result<BatchPlan, Failure> {
    let canary_n = gate.emergency.then(|| lf.calendar.emergency.canary_hosts(order.len()));
    let spec = &s.pb.rollout;
    if spec.region_plan.is_empty() {
        return make_plan(order, spec, s.canary.as_deref(), canary_n).map_err(Failure::input);
    }
    let region_of = |h: &str| lf.fleet.host(h).and_then(|h| h.region.clone());
    super::plan::make_waves(order, spec, &spec.region_plan, region_of, s.canary.as_deref(), canary_n)
        .map_err(Failure::input)
}

/// Baseline hosts watched during the canary window: the first `watch.baseline.hosts` hosts
/// of the batches, still unchanged then.
pub fn baseline(pb: &Playbook, plan: &BatchPlan) -> Vec<String> {
    let k = pb
        .watch
        .as_ref()
        .and_then(|w| w.baseline.as_ref())
        .map(|b| b.hosts)
        .unwrap_or(0);
    // Unchanged hosts of the later phases (the batches, or the first wave's batches and the
    // later waves): the canary is compared with them.
    plan.phases().into_iter().skip(1).flat_map(|(_, h)| h).take(k).collect()
}

/// Baseline hosts for phase `idx` after the canary: unchanged hosts of later phases first
/// (the true control), then hosts that already took the change and passed (so the last
/// batch of a run during a fleet-wide outage is compared with hosts showing the same outage,
/// not judged alone).
pub fn phase_baseline(phases: &[(String, Vec<String>)], idx: usize, k: usize) -> Vec<String> {
    let later = phases.iter().skip(idx + 1).flat_map(|(_, h)| h.iter().cloned());
    let earlier = phases.iter().take(idx).flat_map(|(_, h)| h.iter().cloned());
    later.chain(earlier).take(k).collect()
}

/// One phase of the plan with its timing, as the run will go through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseWindow {
    pub phase: String,
    pub hosts: Vec<String>,
    /// Logs recorded before the change (the canary, with a log watch and `watch.before`).
    pub before_ms: Option<u64>,
    /// The observation window (a plain wait without a log watch), then health.
    pub observe_ms: u64,
    /// Unchanged (or already passed) hosts compared with this phase; empty without a log
    /// watch.
    pub baseline: Vec<String>,
}

/// The phases' windows and the least time the run takes: the windows alone, before any
/// host is changed, health-checked or reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub phases: Vec<PhaseWindow>,
    pub estimated_ms: u64,
}

/// The windows of `plan` as the run will use them (the canary's shortened by the emergency
/// profile when it applies), with the baseline hosts of each phase.
pub fn schedule(s: &Settings, gate: &Gate<'_>, plan: &BatchPlan) -> Schedule {
    let pb = &s.pb;
    let watching = pb.watch.as_ref().is_some_and(|w| w.log.is_some());
    let canary_base = baseline(pb, plan);
    let phases = plan.phases();
    let windows: Vec<PhaseWindow> = phases
        .iter()
        .enumerate()
        .map(|(i, (name, hosts))| {
            let is_canary = name == "canary";
            let base = match (watching, is_canary) {
                (false, _) => Vec::new(),
                (true, true) => canary_base.clone(),
                (true, false) => phase_baseline(&phases, i, canary_base.len()),
            };
            let before = pb
                .watch
                .as_ref()
                .and_then(|w| w.before)
                .map(|d| d.get().as_millis() as u64);
            PhaseWindow {
                phase: name.clone(),
                hosts: hosts.clone(),
                before_ms: before.filter(|_| is_canary && watching),
                observe_ms: if is_canary { gate.observe_ms } else { s.batch_observe_ms },
                baseline: base,
            }
        })
        .collect();
    let estimated_ms = windows.iter().map(|w| w.observe_ms + w.before_ms.unwrap_or(0)).sum();
    Schedule {
        phases: windows,
        estimated_ms,
    }
}
