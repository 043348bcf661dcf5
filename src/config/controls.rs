//! The controls the seeds ask for, as playbook settings: controller callbacks (the operator's
//! own tooling, run on the controller at the run's milestones), and their validation.

use crate::config::error::Invalid;
use crate::value::{Dur, FieldPath};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[callbacks]`: local commands run on the controller with the run's event as JSON on stdin
/// and `BELLWETHER_RUN_ID`, `BELLWETHER_OUTCOME`, `BELLWETHER_PHASE` in the environment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Callbacks {
    /// When the run starts changing hosts (its markers are placed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_start: Option<String>,
    /// After the canary passes and after each batch passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_promote: Option<String>,
    /// When the run starts putting hosts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_revert: Option<String>,
    /// When the run ends, whatever the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_finish: Option<String>,
    /// blue_green: after a phase's hosts were flipped to the new slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_cutover: Option<String>,
    /// A failing `on_promote` stops the promotion and reverts the run (exit 1).
    #[serde(default)]
    pub veto: bool,
    /// Time limit of each callback (default 30s); one that runs longer is killed and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl Callbacks {
    /// The time limit in force.
    pub fn limit(&self) -> Duration {
        self.timeout.map(|d| d.get()).unwrap_or(Duration::from_secs(30))
    }

    /// Empty commands and zero time limits are mistakes.
    pub fn validate(&self, at: &FieldPath) -> Vec<Invalid> {
        let mut out = Vec::new();
        for (k, v) in [
            ("on_start", &self.on_start),
            ("on_promote", &self.on_promote),
            ("on_revert", &self.on_revert),
            ("on_finish", &self.on_finish),
            ("on_cutover", &self.on_cutover),
        ] {
            if v.as_deref().is_some_and(|c| c.trim().is_empty()) {
                out.push(Invalid::new(at.key(k), "is empty; remove it or give a command"));
            }
        }
        if self.timeout.is_some_and(|d| d.get().is_zero()) {
            out.push(Invalid::new(at.key("timeout"), "must be longer than 0s"));
        }
        if self.veto && self.on_promote.is_none() {
            out.push(Invalid::new(
                at.key("veto"),
                "needs an `on_promote` callback to veto with",
            ));
        }
        out
    }
}

/// When the run may go on after a phase passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Promote {
    /// Go on by itself once the gates pass.
    #[default]
    Auto,
    /// Stop after the canary and wait for `bellwether promote RUN`.
    Manual,
}

/// The callbacks of a run: the fleet's (for every playbook), then the playbook's.
#[derive(Debug, Clone, Default)]
pub struct CallbackSets {
    pub fleet: Callbacks,
    pub playbook: Callbacks,
}

impl CallbackSets {
    /// The fleet's and, when it could be loaded, the playbook's.
    pub fn new(fleet: &crate::config::Fleet, pb: Option<&crate::config::Playbook>) -> CallbackSets {
        CallbackSets {
            fleet: fleet.callbacks.clone(),
            playbook: pb.map(|p| p.callbacks.clone()).unwrap_or_default(),
        }
    }
}
