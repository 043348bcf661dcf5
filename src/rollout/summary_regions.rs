//! `summary.md`'s section per region, for a run rolled region by region (`region_plan`) or
//! over targets in more than one region: each region's hosts, its canary, its phases and
//! gate results, and what came of it (changed, kept, reverted, not reached).

use super::plan::BatchPlan;
use super::record_plan::PlanRecord;
use super::revert::Outstanding;
use super::summary_tables::HostVerdicts;
use crate::record::{Event, EventKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What one host holds at the end of the record, as a word for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostState {
    /// Still changed although the run ended badly (a failed or cut-short revert).
    NotPutBack,
    Reverted,
    /// Changed, and the run has not finished (paused, waiting for promotion): kept.
    Kept,
    Changed,
    NotReached,
    UpToDate,
    Skipped,
}

impl HostState {
    fn word(self) -> &'static str {
        match self {
            HostState::NotPutBack => "NOT put back",
            HostState::Reverted => "reverted",
            HostState::Kept => "kept",
            HostState::Changed => "changed",
            HostState::NotReached => "not reached",
            HostState::UpToDate => "up to date",
            HostState::Skipped => "skipped",
        }
    }
}

/// What the record says about every host, gathered once for all regions.
struct Facts<'a> {
    plan: &'a PlanRecord,
    /// Phase of each host, as planned.
    role: BTreeMap<String, String>,
    holding: BTreeSet<String>,
    reverted: BTreeSet<String>,
    /// The run's last outcome (None: still running or killed).
    outcome: Option<String>,
    started: BTreeSet<String>,
    passed: BTreeSet<String>,
    failed: BTreeMap<String, Vec<String>>,
}

impl<'a> Facts<'a> {
    fn new(events: &[Event], plan: &'a PlanRecord) -> Facts<'a> {
        let mut f = Facts {
            plan,
            role: BTreeMap::new(),
            holding: Outstanding::from_events(events).hosts(),
            reverted: BTreeSet::new(),
            outcome: None,
            started: BTreeSet::new(),
            passed: BTreeSet::new(),
            failed: BTreeMap::new(),
        };
        for (phase, hosts) in plan.plan.phases() {
            for h in hosts {
                f.role.insert(h, phase.clone());
            }
        }
        events.iter().for_each(|e| f.add(&e.kind));
        f
    }

    fn add(&mut self, k: &EventKind) {
        match k {
            EventKind::Reverted {
                host, verified: true, ..
            }
            | EventKind::FlippedBack {
                host, verified: true, ..
            } => {
                self.reverted.insert(host.clone());
            }
            EventKind::PhaseStarted { phase, .. } => {
                self.started.insert(phase.clone());
            }
            EventKind::PhasePassed { phase } => {
                self.passed.insert(phase.clone());
            }
            EventKind::HostFailed { phase, host, .. } => {
                self.failed.entry(phase.clone()).or_default().push(host.clone())
            }
            EventKind::RunFinished { outcome, .. } => self.outcome = Some(outcome.clone()),
            _ => {}
        }
    }

    fn state(&self, host: &str) -> HostState {
        if self.holding.contains(host) {
            return match self.outcome.as_deref() {
                Some("done") => HostState::Changed,
                Some("revert_failed" | "record_failed" | "interrupted") => HostState::NotPutBack,
                _ => HostState::Kept,
            };
        }
        if self.reverted.contains(host) {
            HostState::Reverted
        } else if self.plan.unchanged.iter().any(|h| h == host) {
            HostState::UpToDate
        } else if self.plan.skipped.iter().any(|(h, _)| h == host) {
            HostState::Skipped
        } else {
            HostState::NotReached
        }
    }
}

/// The regions in rollout order: the plan's waves, then any other region by name.
fn region_order(plan: &PlanRecord) -> Vec<String> {
    let mut order: Vec<String> = plan.plan.waves.iter().map(|w| w.region.clone()).collect();
    let mut rest: Vec<String> = plan.regions.values().filter(|r| !order.contains(r)).cloned().collect();
    rest.sort();
    rest.dedup();
    order.extend(rest);
    order
}

/// A section per region when the run went region by region or spans several regions.
pub(super) fn render(o: &mut String, events: &[Event], plan: &PlanRecord, verdicts: &HostVerdicts) {
    let regions = region_order(plan);
    if plan.plan.waves.is_empty() && regions.len() < 2 {
        return;
    }
    let facts = Facts::new(events, plan);
    let _ = writeln!(o, "## Regions\n");
    for r in &regions {
        let hosts: Vec<&String> = plan.regions.iter().filter(|(_, x)| *x == r).map(|(h, _)| h).collect();
        render_region(o, r, &hosts, &facts, verdicts);
    }
}

fn render_region(o: &mut String, region: &str, hosts: &[&String], f: &Facts, verdicts: &HostVerdicts) {
    let states: Vec<HostState> = hosts.iter().map(|h| f.state(h)).collect();
    let head = states.iter().min().map(|s| s.word()).unwrap_or("no targets");
    let mut counts: BTreeMap<HostState, usize> = BTreeMap::new();
    states.iter().for_each(|s| *counts.entry(*s).or_default() += 1);
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {}", s.word())).collect();
    let _ = writeln!(o, "### {region}: {head}\n");
    let _ = writeln!(o, "- outcome: **{head}** ({})", counts.join(", "));
    let names: Vec<&str> = hosts.iter().map(|h| h.as_str()).collect();
    let _ = writeln!(o, "- hosts: {}", names.join(", "));
    let canary: Vec<&str> = names
        .iter()
        .copied()
        .filter(|h| f.role.get(*h).is_some_and(|p| BatchPlan::is_canary(p)))
        .collect();
    let canary = if canary.is_empty() {
        "none in this region".to_string()
    } else {
        canary.join(", ")
    };
    let _ = writeln!(o, "- canary: {canary}");
    let _ = writeln!(o, "- phases: {}", phases_line(region, &names, f));
    let _ = writeln!(o, "\n| host | phase | gates | state |\n|---|---|---|---|");
    for (h, s) in hosts.iter().zip(&states) {
        let role = f.role.get(h.as_str()).map(String::as_str).unwrap_or("-");
        let _ = writeln!(o, "| {h} | {role} | {} | {} |", gates_cell(verdicts, h), s.word());
    }
    let _ = writeln!(o);
}

/// The region's phases (a wave's, or the run's phases its hosts were in) and how each went.
fn phases_line(region: &str, hosts: &[&str], f: &Facts) -> String {
    let phases: Vec<String> = f
        .plan
        .plan
        .phases()
        .into_iter()
        .filter(|(p, hs)| BatchPlan::wave_of(p) == Some(region) || hs.iter().any(|h| hosts.contains(&h.as_str())))
        .map(|(p, _)| p)
        .collect();
    if phases.is_empty() {
        return "none".into();
    }
    let line: Vec<String> = phases
        .iter()
        .map(|p| {
            let how = match f.failed.get(p) {
                Some(hs) => format!("FAILED on {}", hs.join(", ")),
                None if f.passed.contains(p) => "passed".into(),
                None if f.started.contains(p) => "started".into(),
                None => "not started".into(),
            };
            format!("{p} {how}")
        })
        .collect();
    line.join("; ")
}

/// Every gate result of a host: "canary passed (12 lines, 0 errors)".
fn gates_cell(verdicts: &HostVerdicts, host: &str) -> String {
    let Some(vs) = verdicts.get(host) else {
        return "-".into();
    };
    let cells: Vec<String> = vs
        .iter()
        .map(|(phase, passed, v)| {
            let stats = v
                .as_ref()
                .map(|v| format!(" ({} lines, {} errors)", v.stats.lines, v.stats.error_lines))
                .unwrap_or_default();
            format!("{phase} {}{stats}", if *passed { "passed" } else { "FAILED" })
        })
        .collect();
    cells.join("; ")
}
