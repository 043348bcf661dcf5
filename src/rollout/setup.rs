//! Starting a run: calendar gate, confirmation, lock, connections, preflight, plan record.

use super::ctx::{self, RunCtx};
use super::engine::CalendarCheck;
use super::host::{self, Prepared};
use super::plan::BatchPlan;
use super::record_plan::{FilePlan, HostPlan, PlanRecord};
use crate::calendar::{Decision, Exception, GateRequest, Readiness};
use crate::cmd::context;
use crate::config::{Host, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, Endpoint};
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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

/// Print a calendar decision for people.
pub fn print_decision(d: &Decision, json: bool) {
    ctx::say(json, &format!("calendar: {}", d.headline()));
    for r in &d.reasons {
        ctx::say(json, &format!("  {r}"));
    }
}

type PreflightResult = (String, Result<Prepared, String>, Option<Arc<Connection>>);

/// Connect to and preflight every host; returns prepared hosts and failures.
pub async fn preflight_all(
    lf: &LoadedFleet,
    hosts: &[&Host],
    pb: &Playbook,
    base: &Path,
    accept_new: bool,
    concurrency: usize,
) -> (
    BTreeMap<String, Prepared>,
    Vec<(String, String)>,
    BTreeMap<String, Arc<Connection>>,
) {
    let results: Vec<PreflightResult> = stream::iter(hosts.iter())
        .map(|h| {
            use tracing::Instrument;
            let span = tracing::info_span!("host", host = %h.name);
            async move {
                let ep = context::endpoint(lf, h, accept_new);
                let r = match Connection::open(&ep).await {
                    Ok(c) => {
                        let c = Arc::new(c);
                        tracing::debug!(handshake_ms = c.handshake.as_millis() as u64, "connected");
                        (h.name.clone(), host::preflight(c.clone(), h, pb, base).await, Some(c))
                    }
                    Err(e) => (h.name.clone(), Err(format!("{} ({})", e, e.class())), None),
                };
                match &r.1 {
                    Ok(p) => tracing::info!(files = p.files.len(), unchanged = p.unchanged(), "preflight ok"),
                    Err(e) => tracing::warn!(error = %crate::record::secrets::redact(e), "preflight failed"),
                }
                r
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

/// The unified, redacted diff of one planned file.
pub fn file_diff(path: &str, before: Option<&[u8]>, after: &[u8]) -> String {
    crate::rollout::diff_text(path, before, after)
}

/// Build the plan record from prepared hosts.
#[allow(clippy::too_many_arguments)]
pub fn plan_record(
    run_id: &str,
    pb: &Playbook,
    pb_path: &Path,
    order: &[String],
    prepared: &BTreeMap<String, Prepared>,
    plan: BatchPlan,
    observe_ms: u64,
    batch_observe_ms: u64,
    emergency: bool,
    skipped: Vec<(String, String)>,
    unchanged: Vec<String>,
) -> PlanRecord {
    let k = pb
        .watch
        .as_ref()
        .and_then(|w| w.baseline.as_ref())
        .map(|b| b.hosts)
        .unwrap_or(0);
    let baseline: Vec<String> = plan.batches.iter().flatten().take(k).cloned().collect();
    let mut hosts = BTreeMap::new();
    for name in order {
        let Some(p) = prepared.get(name) else { continue };
        hosts.insert(
            name.clone(),
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
                        diff: file_diff(&f.path, f.before.as_ref().map(|b| b.bytes.as_slice()), &f.after),
                    })
                    .collect(),
            },
        );
    }
    PlanRecord {
        run_id: run_id.to_string(),
        playbook_id: pb.id.clone(),
        playbook_path: pb_path.display().to_string(),
        tier: pb.tier.to_string(),
        component: pb.component.clone(),
        plan,
        baseline,
        observe_ms,
        batch_observe_ms,
        before_ms: pb
            .watch
            .as_ref()
            .and_then(|w| w.before)
            .map(|d| d.get().as_millis() as u64),
        max_failed_hosts: pb.rollout.max_failed_hosts,
        emergency,
        skipped,
        frozen: Vec::new(),
        unchanged,
        hosts,
    }
}

/// Make the run context once everything is prepared.
#[allow(clippy::too_many_arguments)]
pub fn context(
    run: RunDir,
    record: PlanRecord,
    conns: BTreeMap<String, Arc<Connection>>,
    endpoints: BTreeMap<String, Endpoint>,
    prepared: BTreeMap<String, Prepared>,
    pb: &Playbook,
    concurrency: usize,
    calendar: Option<CalendarCheck>,
    json: bool,
) -> Result<RunCtx, Failure> {
    let watch = match &pb.watch {
        Some(w) if w.log.is_some() => Some(w.compiled().map_err(|e| Failure::input(e.to_string()))?),
        _ => None,
    };
    let json_plan =
        serde_json::to_vec_pretty(&record).map_err(|e| Failure::new(Exit::NeedsAttention, e.to_string()))?;
    run.write("plan.json", &json_plan)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot write plan.json: {e}")))?;
    Ok(RunCtx {
        run,
        record,
        conns,
        endpoints,
        prepared,
        watch,
        concurrency,
        interrupt: ctx::interrupts(),
        calendar,
        json,
    })
}

/// The SSH endpoint of each host, for reconnecting during the run.
pub fn endpoints(lf: &LoadedFleet, hosts: &[&Host], accept_new: bool) -> BTreeMap<String, Endpoint> {
    hosts
        .iter()
        .map(|h| (h.name.clone(), context::endpoint(lf, h, accept_new)))
        .collect()
}

/// Emit helper that maps a record failure to exit 5.
pub fn emit(run: &RunDir, kind: EventKind) -> Result<(), Failure> {
    run.emit(kind)
        .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot write the run record: {e}")))
}
