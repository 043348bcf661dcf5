//! Preflight of every target (connect, read, compute, check — nothing changes) and the plan
//! record built from it: which hosts change, in which phase, with which commands.

use super::finish::finish_early;
use super::host::{self, Prepared};
use super::outcome::{Ending, Outcome};
use super::planner::{self, Gate, Settings};
use super::record_plan::{FilePlan, HostPlan, PlanRecord};
use super::run::RunOptions;
use crate::config::{Host, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::record::secrets::Secrets;
use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, Endpoint};
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type PreflightResult = (String, Result<Prepared, String>, Option<Arc<Connection>>);

/// Prepared hosts, failures (host, why) and the open connections.
pub type Preflighted = (
    BTreeMap<String, Prepared>,
    Vec<(String, String)>,
    BTreeMap<String, Arc<Connection>>,
);

/// Connect to and preflight every host, `concurrency` at once.
pub async fn preflight_all(
    lf: &LoadedFleet,
    hosts: &[&Host],
    pb: &Playbook,
    base: &Path,
    accept_new: bool,
    concurrency: usize,
    marker: Option<&str>,
) -> Preflighted {
    let results: Vec<PreflightResult> = stream::iter(hosts.iter())
        .map(|h| {
            use tracing::Instrument;
            let span = tracing::info_span!("host", host = %h.name);
            async move {
                let ep = crate::ssh::fleet::endpoint(lf, h, accept_new);
                match Connection::open(&ep).await {
                    Ok(c) => {
                        let c = Arc::new(c);
                        tracing::debug!(handshake_ms = c.handshake.as_millis() as u64, "connected");
                        (
                            h.name.clone(),
                            host::preflight(c.clone(), h, pb, base, marker).await,
                            Some(c),
                        )
                    }
                    Err(e) => (h.name.clone(), Err(format!("{} ({})", e, e.class())), None),
                }
            }
            .instrument(span)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut ok = BTreeMap::new();
    let mut bad = Vec::new();
    let mut conns = BTreeMap::new();
    for (name, r, c) in results {
        if let Some(c) = c {
            conns.insert(name.clone(), c);
        }
        match r {
            Ok(p) => {
                ok.insert(name, p);
            }
            Err(e) => bad.push((name, e)),
        }
    }
    bad.sort();
    (ok, bad, conns)
}

fn record_err(e: std::io::Error) -> Failure {
    Failure::new(Exit::NeedsAttention, format!("cannot write the run record: {e}"))
}

/// Preflight the run's targets; more failures than `max_failed_hosts` (or no host left at
/// all) end the run here, recorded, with nothing changed.
pub(crate) async fn preflight(
    lf: &LoadedFleet,
    opts: &RunOptions,
    s: &Settings,
    gate: &Gate<'_>,
    rec: &RunDir,
    conc: usize,
) -> Result<Preflighted, Failure> {
    let base = s.pb_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // The run's marker is placed by each host's preflight command (recorded first: every
    // path that ends the run takes it off again).
    for h in &gate.targets {
        rec.emit(EventKind::MarkerPlaced { host: h.name.clone() })
            .map_err(record_err)?;
    }
    let (mut prepared, mut failures, conns) =
        preflight_all(lf, &gate.targets, &s.pb, &base, opts.accept_new, conc, Some(&rec.id)).await;
    // A host that could not be reached never got one.
    for h in gate.targets.iter().filter(|h| !conns.contains_key(&h.name)) {
        rec.emit(EventKind::MarkerReleased { host: h.name.clone() })
            .map_err(record_err)?;
    }
    // Up-to-date hosts are never written: their pins are checked now, before any change.
    super::pins::at_preflight(rec, &s.pb.edits, &mut prepared, &mut failures).map_err(record_err)?;
    for (h, why) in &failures {
        rec.emit(EventKind::Preflight {
            host: h.clone(),
            ok: false,
            detail: why.clone(),
        })
        .map_err(record_err)?;
    }
    for (name, p) in &prepared {
        rec.emit(EventKind::Preflight {
            host: name.clone(),
            ok: true,
            detail: format!("{} file(s) to check", p.files.len()),
        })
        .map_err(record_err)?;
    }
    let max_failed = s.pb.rollout.max_failed_hosts;
    if !failures.is_empty() && (failures.len() > max_failed || prepared.is_empty()) {
        // Twelve hosts missing the same file is one line, not twelve.
        let order: Vec<String> = gate.targets.iter().map(|h| h.name.clone()).collect();
        let list = crate::ui::hosts::grouped_errors(&failures, &order);
        let msg = format!(
            "preflight failed on {} of {} host(s); nothing was changed:\n{}",
            failures.len(),
            gate.targets.len(),
            list.join("\n")
        );
        release_all(rec, &conns).await;
        finish_early(rec, Ending::new(Outcome::PreflightFailed, msg.clone()))?;
        return Err(Failure::new(Exit::Preflight, rec.secrets().text(&msg)));
    }
    Ok((prepared, failures, conns))
}

/// Take the run's marker off every host preflight reached (a run that ends before changing
/// anything), then close the connections.
pub(crate) async fn release_all(rec: &RunDir, conns: &BTreeMap<String, Arc<Connection>>) {
    let hosts: Vec<String> = conns.keys().cloned().collect();
    let kept = super::markers::release(rec, conns, &hosts).await;
    for (h, why) in kept {
        rec.say(&format!(
            "{h}: the run marker could not be removed ({why}); `bellwether status` lists it"
        ));
    }
    for c in conns.values() {
        c.close().await;
    }
}

/// What the run will change, as shown to the operator and written to `plan.json`.
pub(crate) struct Planned {
    pub(crate) record: PlanRecord,
    /// Hosts that will be changed, in fleet order.
    pub(crate) order: Vec<String>,
    /// Reachable hosts that already have the change.
    pub(crate) unchanged: Vec<String>,
}

/// Split the hosts to change into phases, record the skipped and up-to-date ones, and show
/// the plan.
pub(crate) fn plan(
    lf: &LoadedFleet,
    s: &Settings,
    gate: &Gate<'_>,
    rec: &RunDir,
    prepared: &BTreeMap<String, Prepared>,
    failures: &[(String, String)],
) -> Result<Planned, Failure> {
    let frozen: Vec<String> = gate.frozen_skips.iter().map(|(h, _)| h.clone()).collect();
    let mut skipped = gate.frozen_skips.clone();
    skipped.extend(failures.iter().cloned());
    for (h, r) in &skipped {
        rec.emit(EventKind::Skipped {
            host: h.clone(),
            reason: r.clone(),
        })
        .map_err(record_err)?;
    }
    let mut order = Vec::new();
    let mut unchanged = Vec::new();
    for h in &gate.targets {
        match prepared.get(&h.name) {
            Some(p) if p.unchanged() => {
                unchanged.push(h.name.clone());
                let files = p
                    .files
                    .iter()
                    .map(|f| crate::record::events::SlotFile {
                        path: f.path.clone(),
                        sha256: Some(f.after_sha.clone()),
                    })
                    .collect();
                rec.emit(EventKind::Unchanged {
                    host: h.name.clone(),
                    files,
                })
                .map_err(record_err)?;
            }
            Some(_) => order.push(h.name.clone()),
            None => {}
        }
    }
    let batch_plan = planner::batches(lf, s, gate, &order)?;
    let mut record = plan_record(rec, s, &order, prepared, batch_plan, gate, skipped, unchanged.clone());
    record.frozen = frozen;
    record.regions = regions_of(lf, gate, &record.skipped);
    show_plan(rec, &record);
    Ok(Planned {
        record,
        order,
        unchanged,
    })
}

/// The region of every target, the skipped ones included (for the summary's sections).
fn regions_of(lf: &LoadedFleet, gate: &Gate<'_>, skipped: &[(String, String)]) -> BTreeMap<String, String> {
    skipped
        .iter()
        .map(|(h, _)| h.as_str())
        .chain(gate.targets.iter().map(|h| h.name.as_str()))
        .filter_map(|n| Some((n.to_string(), lf.fleet.host(n)?.region.clone()?)))
        .collect()
}

/// Build the plan record from prepared hosts.
#[allow(clippy::too_many_arguments)]
fn plan_record(
    rec: &RunDir,
    s: &Settings,
    order: &[String],
    prepared: &BTreeMap<String, Prepared>,
    plan: super::plan::BatchPlan,
    gate: &Gate<'_>,
    skipped: Vec<(String, String)>,
    unchanged: Vec<String>,
) -> PlanRecord {
    let pb = &s.pb;
    let baseline = planner::baseline(pb, &plan);
    let hosts = order
        .iter()
        .filter_map(|n| prepared.get(n).map(|p| (n.clone(), host_plan(pb, p, rec.secrets()))))
        .collect();
    PlanRecord {
        run_id: rec.id.clone(),
        playbook_id: pb.id.clone(),
        playbook_path: s.pb_path.display().to_string(),
        tier: pb.tier.to_string(),
        component: pb.component.clone(),
        plan,
        baseline,
        observe_ms: gate.observe_ms,
        batch_observe_ms: s.batch_observe_ms,
        before_ms: pb
            .watch
            .as_ref()
            .and_then(|w| w.before)
            .map(|d| d.get().as_millis() as u64),
        max_failed_hosts: pb.rollout.max_failed_hosts,
        emergency: gate.emergency,
        skipped,
        frozen: Vec::new(),
        unchanged,
        hosts,
        regions: BTreeMap::new(),
    }
}

/// One host's plan: its rendered commands (exact in memory; masked when written) and files.
fn host_plan(pb: &Playbook, p: &Prepared, secrets: &Secrets) -> HostPlan {
    HostPlan {
        apply: p.apply.clone(),
        health: p.health.clone(),
        apply_timeout_ms: pb.apply.timeout.get().as_millis() as u64,
        health_timeout_ms: pb.apply.health_timeout.get().as_millis() as u64,
        on_revert: p.on_revert.clone(),
        after_hooks: p.after_hooks.clone(),
        log_command: p.log_command.clone(),
        blue_green: p.blue_green.clone(),
        files: p
            .files
            .iter()
            .map(|f| FilePlan {
                path: f.path.clone(),
                before: f.before.as_ref().map(|b| b.sha256.clone()),
                after: f.after_sha.clone(),
                diff: secrets.diff(&f.path, f.before.as_ref().map(|b| b.bytes.as_slice()), &f.after),
            })
            .collect(),
    }
}

/// The plan for people: phases, baseline, blue/green slots, skipped and up-to-date hosts.
fn show_plan(rec: &RunDir, r: &PlanRecord) {
    for (phase, hosts) in r.plan.phases() {
        rec.say(&format!("plan: {phase}: {}", hosts.join(", ")));
    }
    if !r.baseline.is_empty() {
        rec.say(&format!(
            "plan: baseline (watched, unchanged during the canary window): {}",
            r.baseline.join(", ")
        ));
    }
    // One line for all hosts with the same slots, not one per host.
    let slots: Vec<(String, String)> = r
        .hosts
        .iter()
        .filter_map(|(h, p)| p.blue_green.as_ref().map(|bg| (h.clone(), bg.describe())))
        .collect();
    let names: Vec<String> = r.hosts.keys().cloned().collect();
    for (describe, hosts) in crate::ui::hosts::group_same(&slots) {
        rec.say(&format!(
            "plan: blue_green: {}: {describe}",
            crate::ui::hosts::host_range(&hosts, &names)
        ));
    }
    for (h, why) in &r.skipped {
        rec.say(&format!("plan: skipped {h}: {why}"));
    }
    if !r.unchanged.is_empty() {
        rec.say(&format!("plan: already up to date: {}", r.unchanged.join(", ")));
    }
}

/// The SSH endpoint of each host, for reconnecting during the run.
pub fn endpoints(lf: &LoadedFleet, hosts: &[&Host], accept_new: bool) -> BTreeMap<String, Endpoint> {
    hosts
        .iter()
        .map(|h| (h.name.clone(), crate::ssh::fleet::endpoint(lf, h, accept_new)))
        .collect()
}
