//! `plan.json`: the frozen plan of a run, with each host's rendered commands, so `revert` and
//! `resume` work from the run folder even if the playbook changes later.

use super::plan::BatchPlan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A file change as planned (hashes and a redacted diff).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilePlan {
    pub path: String,
    pub before: Option<String>,
    pub after: String,
    pub diff: String,
}

/// One host's plan.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct HostPlan {
    pub apply: Option<String>,
    pub health: Option<String>,
    pub apply_timeout_ms: u64,
    pub health_timeout_ms: u64,
    #[serde(default)]
    pub on_revert: Vec<String>,
    #[serde(default)]
    pub after_hooks: Vec<String>,
    pub log_command: Option<String>,
    /// File paths name the file through the link; `before` is the live slot's file.
    pub files: Vec<FilePlan>,
    /// `strategy = "blue_green"`: the slots and the flip, as preflight found them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<super::slots::BlueGreenHost>,
}

/// The whole plan record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRecord {
    pub run_id: String,
    pub playbook_id: String,
    pub playbook_path: String,
    pub tier: String,
    pub component: String,
    pub plan: BatchPlan,
    pub baseline: Vec<String>,
    pub observe_ms: u64,
    pub batch_observe_ms: u64,
    pub before_ms: Option<u64>,
    pub max_failed_hosts: usize,
    pub emergency: bool,
    pub skipped: Vec<(String, String)>,
    /// The skipped hosts that were skipped only because their region is frozen
    /// (`--skip-frozen`): not failures, so they do not use up `max_failed_hosts`.
    #[serde(default)]
    pub frozen: Vec<String>,
    pub unchanged: Vec<String>,
    pub hosts: BTreeMap<String, HostPlan>,
    /// The region of every target that has one (for `summary.md`'s per-region sections).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, String>,
}

impl PlanRecord {
    /// The record as written to `plan.json`: identifiers (hosts, paths, hashes, slots) exact,
    /// free text masked — diffs and command lines, which may have a secret spliced in
    /// (`revert`/`resume` re-render masked commands from the playbook).
    pub fn masked(&self, s: &crate::record::secrets::Secrets) -> PlanRecord {
        let mut out = self.clone();
        for hp in out.hosts.values_mut() {
            for c in [&mut hp.apply, &mut hp.health, &mut hp.log_command]
                .into_iter()
                .flatten()
            {
                s.mask(c);
            }
            hp.on_revert
                .iter_mut()
                .chain(hp.after_hooks.iter_mut())
                .for_each(|c| s.mask(c));
            hp.files.iter_mut().for_each(|f| s.mask(&mut f.diff));
        }
        out.skipped.iter_mut().for_each(|(_, why)| s.mask(why));
        out
    }
}
