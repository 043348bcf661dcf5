//! `playbooks/NAME.toml`: one change — what to edit, how to apply and judge it, how to roll it.

use super::error::Invalid;
use super::targets::TargetSpec;
use crate::calendar::Tier;
use crate::edit::spec::EditSpec;
use crate::value::{Dur, FieldPath, Percent};
use crate::watch::WatchSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A playbook file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    pub tier: Tier,
    /// What the change touches (model, provider, config, prompts, ...); freezes may scope to it.
    pub component: String,
    #[serde(default)]
    pub targets: TargetSpec,
    #[serde(rename = "edit")]
    pub edits: Vec<EditSpec>,
    #[serde(default)]
    pub apply: ApplySpec,
    #[serde(default)]
    pub watch: Option<WatchSpec>,
    #[serde(default)]
    pub rollout: RolloutSpec,
    #[serde(default)]
    pub hooks: Hooks,
    /// Extra key-name regexes whose values are secrets (added to the defaults).
    #[serde(default)]
    pub redact: Vec<String>,
    /// Commands run on the controller at the run's milestones (the operator's own tooling).
    #[serde(default)]
    pub callbacks: super::controls::Callbacks,
    /// Write through a config symlink whose target belongs to someone other than the owner
    /// of the link's directory. Off by default: such a link may have been planted by a less
    /// privileged user to aim a root write at a file of their choosing.
    #[serde(default)]
    pub follow_links: bool,
}

/// How the host picks the change up and how its health is judged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplySpec {
    /// e.g. `systemctl restart {{ vars.agent_unit }}`; templated per host.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default = "d60")]
    pub timeout: Dur,
    /// Exit 0 means healthy; retried until `health_timeout`.
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default = "d30")]
    pub health_timeout: Dur,
}

fn d60() -> Dur {
    Dur(Duration::from_secs(60))
}
fn d30() -> Dur {
    Dur(Duration::from_secs(30))
}
fn d10m() -> Dur {
    Dur(Duration::from_secs(600))
}
fn d2m() -> Dur {
    Dur(Duration::from_secs(120))
}

impl Default for ApplySpec {
    fn default() -> Self {
        ApplySpec {
            command: None,
            timeout: d60(),
            health: None,
            health_timeout: d30(),
        }
    }
}

/// How the change moves through the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One host (or a few) first, observed, then batches.
    #[default]
    Canary,
    /// Stage into the idle slot, flip a symlink; revert flips back.
    BlueGreen,
    /// Every target in one batch, still observed and reverted on failure.
    AllAtOnce,
}

/// A host count or a percentage of targets: `1`, `"5%"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Amount {
    Count(usize),
    Percent(f64),
    /// `"pause"` in `batches`: stop before the next batch and wait for `bellwether promote`.
    Pause,
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0 => Ok(Amount::Count(n as usize)),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "{n} is negative; expected a host count or a percentage like \"10%\""
            ))),
            Raw::S(s) if s.trim() == "pause" => Ok(Amount::Pause),
            Raw::S(s) => {
                if let Ok(n) = s.trim().parse::<usize>() {
                    return Ok(Amount::Count(n));
                }
                Percent::parse(&s)
                    .map(|p| Amount::Percent(p.0))
                    .map_err(serde::de::Error::custom)
            }
        }
    }
}

impl Amount {
    /// Resolve against `total` hosts; percentages round up (10% of 3 hosts is 1 host).
    pub fn of(&self, total: usize) -> usize {
        match self {
            Amount::Count(n) => (*n).min(total),
            Amount::Percent(p) => ((total as f64) * p / 100.0).ceil() as usize,
            Amount::Pause => 0,
        }
    }
}

/// `[rollout]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    #[serde(default)]
    pub strategy: Strategy,
    /// How many hosts form the canary (count or percent of targets).
    #[serde(default = "one")]
    pub canary: Amount,
    /// Preferred canary hosts, in order (first reachable one wins).
    #[serde(default)]
    pub canary_hosts: Vec<String>,
    /// How long the canary is watched before promotion.
    #[serde(default = "d10m")]
    pub observe: Dur,
    /// Cumulative share of the remaining hosts changed after each batch; ends at 100%.
    #[serde(default = "default_batches")]
    pub batches: Vec<Amount>,
    #[serde(default = "d2m")]
    pub batch_observe: Dur,
    /// Hosts that may fail (unreachable at preflight, or failing in a batch) before the run
    /// reverts; 0 means any failure reverts.
    #[serde(default)]
    pub max_failed_hosts: usize,
    /// Hosts changed at once within a batch (default: the fleet's concurrency).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub blue_green: Option<BlueGreenSpec>,
    /// `"manual"`: stop after the canary passes and wait for `bellwether promote RUN`.
    #[serde(default)]
    pub promote: super::controls::Promote,
    /// A run waiting for promotion longer than this is reverted (`promote` reverts instead
    /// of promoting; `abort --expired` reverts every such run, e.g. from cron).
    #[serde(default)]
    pub pause_timeout: Option<Dur>,
    /// Roll region by region in this order, each region with its own canary and batches.
    #[serde(default)]
    pub region_plan: Vec<String>,
    /// Per-region off-peak windows (`{ "us-east-1" = "02:00-05:00 America/New_York" }`): a
    /// region outside its window pauses the run at that region's boundary.
    #[serde(default)]
    pub within: std::collections::BTreeMap<String, String>,
}

fn one() -> Amount {
    Amount::Count(1)
}
fn default_batches() -> Vec<Amount> {
    vec![Amount::Percent(10.0), Amount::Percent(50.0), Amount::Percent(100.0)]
}

impl RolloutSpec {
    /// The observation windows a run judges hosts over, with their settings' names: the
    /// canary's (not with `all_at_once`) and the batches'.
    pub fn windows(&self) -> Vec<(&'static str, Duration)> {
        let canary = (self.strategy != Strategy::AllAtOnce).then_some(("rollout.observe", self.observe.get()));
        canary
            .into_iter()
            .chain([("rollout.batch_observe", self.batch_observe.get())])
            .collect()
    }
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            strategy: Strategy::Canary,
            canary: one(),
            canary_hosts: Vec::new(),
            observe: d10m(),
            batches: default_batches(),
            batch_observe: d2m(),
            max_failed_hosts: 0,
            concurrency: None,
            blue_green: None,
            promote: Default::default(),
            pause_timeout: None,
            region_plan: Vec::new(),
            within: Default::default(),
        }
    }
}

/// `"pause"` steps: never last (nothing would follow), never two in a row. A pause first in the
/// list waits after the canary, like `promote = "manual"`.
fn validate_pauses(batches: &[Amount], at: &FieldPath) -> Vec<Invalid> {
    let mut out = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        if *b != Amount::Pause {
            continue;
        }
        if i + 1 == batches.len() {
            out.push(Invalid::new(
                at.index(i),
                "a \"pause\" must come before a batch: nothing follows it",
            ));
        } else if i > 0 && batches[i - 1] == Amount::Pause {
            out.push(Invalid::new(at.index(i), "two \"pause\" steps in a row"));
        }
    }
    out
}

/// `[rollout.blue_green]`: two slot directories and the symlink that names the live one.
///
/// Edits name their files through the link (`/etc/agent/current/config.toml`); the result is
/// staged into the idle slot and the link is flipped to it, so a revert is one flip back.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlueGreenSpec {
    /// The symlink the agent reads through, e.g. `/etc/agent/current`.
    pub link: String,
    /// The two slot directories, e.g. `["/etc/agent/blue", "/etc/agent/green"]`.
    pub slots: [String; 2],
}

/// A path without trailing slashes (`agent/blue/` and `agent/blue` name one slot).
pub fn trim_slashes(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') {
        "/"
    } else {
        t
    }
}

impl BlueGreenSpec {
    /// The part of `path` below the link (`agent/current/a/b.toml` -> `a/b.toml`), if any.
    pub fn below_link<'p>(link: &str, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(trim_slashes(link))
            .and_then(|r| r.strip_prefix('/'))
            .map(|r| r.trim_start_matches('/'))
            .filter(|r| !r.is_empty())
    }

    fn validate(&self, at: &FieldPath, edits: &[EditSpec]) -> Vec<Invalid> {
        let mut out = Vec::new();
        let link = trim_slashes(&self.link);
        let slots = [trim_slashes(&self.slots[0]), trim_slashes(&self.slots[1])];
        let bad = |p: &str| p.is_empty() || p == "/" || p.contains('\n') || p.split('/').any(|c| c == "..");
        if bad(link) {
            out.push(Invalid::new(
                at.key("link"),
                "must name the symlink (not empty, not \"/\", no \"..\" and no newline)",
            ));
        }
        for (i, s) in slots.iter().enumerate() {
            if bad(s) {
                out.push(Invalid::new(
                    at.key("slots").index(i),
                    "must name a slot directory (not empty, not \"/\", no \"..\" and no newline)",
                ));
            } else if *s == link || s.starts_with(&format!("{link}/")) || link.starts_with(&format!("{s}/")) {
                out.push(Invalid::new(
                    at.key("slots").index(i),
                    format!("the slot {s:?} and the link {link:?} must be separate paths"),
                ));
            }
        }
        if slots[0] == slots[1] {
            out.push(Invalid::new(
                at.key("slots"),
                "the two slots must be different directories",
            ));
        }
        // Templated paths are checked once rendered, at preflight.
        if !link.contains("{{") {
            for (i, e) in edits.iter().enumerate() {
                if !e.path.contains("{{") && Self::below_link(link, &e.path).is_none() {
                    out.push(Invalid::new(
                        FieldPath::root().key("edit").index(i).key("path"),
                        format!(
                            "with strategy \"blue_green\" every edit names its file through the link, e.g. \"{link}/config.toml\"; {:?} is not below {link:?}",
                            e.path
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// Commands run on each host around the change (templated like `apply.command`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run before a host's files are written; a failure stops that host (nothing written).
    #[serde(default)]
    pub before: Vec<String>,
    /// Run after a host passed apply and health.
    #[serde(default)]
    pub after: Vec<String>,
    /// Run on each host after it was reverted.
    #[serde(default)]
    pub on_revert: Vec<String>,
}

impl Playbook {
    /// Semantic checks beyond types: edits, batches, watch, strategy-specific fields.
    pub fn validate(&self) -> Vec<Invalid> {
        let root = FieldPath::root();
        let mut out = Vec::new();
        if self.id.trim().is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            out.push(Invalid::new(
                root.key("id"),
                "must be non-empty and use only letters, digits, '-', '_' and '.'",
            ));
        }
        for (i, r) in self.redact.iter().enumerate() {
            if let Err(e) = regex::Regex::new(r) {
                out.push(Invalid::new(
                    root.key("redact").index(i),
                    format!("invalid regex {r:?}: {e}"),
                ));
            }
        }
        if self.edits.is_empty() {
            out.push(Invalid::new(root.key("edit"), "a playbook needs at least one [[edit]]"));
        }
        for (i, e) in self.edits.iter().enumerate() {
            out.extend(e.validate(&root.key("edit").index(i)));
        }
        if let Some(w) = &self.watch {
            out.extend(w.validate(&root.key("watch")));
        }
        let r = &self.rollout;
        let rp = root.key("rollout");
        if r.batches.is_empty() {
            out.push(Invalid::new(
                rp.key("batches"),
                "needs at least one step, and the last must be \"100%\"",
            ));
        }
        let mut last = 0.0;
        for (i, b) in r.batches.iter().enumerate() {
            if let Amount::Percent(p) = b {
                if *p <= last {
                    out.push(Invalid::new(
                        rp.key("batches").index(i),
                        format!("batch steps are cumulative and must increase: {p}% after {last}%"),
                    ));
                }
                last = *p;
            }
        }
        out.extend(validate_pauses(&r.batches, &rp.key("batches")));
        for (region, w) in &r.within {
            if let Err(e) = w.parse::<crate::calendar::OffPeak>() {
                out.push(Invalid::new(rp.key("within").key(region), e.to_string()));
            }
        }
        out.extend(self.callbacks.validate(&root.key("callbacks")));
        if let Some(Amount::Percent(p)) = r.batches.last() {
            if *p < 100.0 {
                out.push(Invalid::new(
                    rp.key("batches").index(r.batches.len() - 1),
                    format!("the batch plan ends at {p}%; the last step must be \"100%\" so every target is covered"),
                ));
            }
        } else if let Some(Amount::Count(_)) = r.batches.last() {
            out.push(Invalid::new(
                rp.key("batches").index(r.batches.len() - 1),
                "the last batch step must be \"100%\" so every target is covered",
            ));
        }
        if matches!(r.canary, Amount::Pause) {
            out.push(Invalid::new(
                rp.key("canary"),
                "\"pause\" is a batch step; for a pause after the canary set promote = \"manual\"",
            ));
        }
        if matches!(r.canary, Amount::Count(0)) && r.strategy != Strategy::AllAtOnce {
            out.push(Invalid::new(
                rp.key("canary"),
                "the canary and blue_green strategies need at least 1 canary host",
            ));
        }
        if r.concurrency == Some(0) {
            out.push(Invalid::new(rp.key("concurrency"), "must be at least 1"));
        }
        for (at, c) in self.commands() {
            if let Err(e) = crate::edit::command_template::check_command(c) {
                out.push(Invalid::new(at, e.to_string()));
            }
        }
        match (&r.strategy, &r.blue_green) {
            (Strategy::BlueGreen, None) => out.push(Invalid::new(
                rp.key("strategy"),
                "strategy \"blue_green\" needs a [rollout.blue_green] table with `link` and `slots`",
            )),
            (Strategy::BlueGreen, Some(bg)) => out.extend(bg.validate(&rp.key("blue_green"), &self.edits)),
            _ => {}
        }
        out
    }

    /// The command templates, with where each is: their values are shell-quoted when
    /// rendered (`edit::command_template`), unlike paths and file contents.
    pub fn commands(&self) -> Vec<(FieldPath, &str)> {
        let root = FieldPath::root();
        let mut out = Vec::new();
        let apply = root.key("apply");
        out.extend(self.apply.command.as_deref().map(|c| (apply.key("command"), c)));
        out.extend(self.apply.health.as_deref().map(|c| (apply.key("health"), c)));
        let log = self.watch.as_ref().and_then(|w| w.log.as_ref());
        out.extend(
            log.and_then(|l| l.command.as_deref())
                .map(|c| (root.key("watch").key("log").key("command"), c)),
        );
        let hooks = [
            ("before", &self.hooks.before),
            ("after", &self.hooks.after),
            ("on_revert", &self.hooks.on_revert),
        ];
        for (kind, list) in hooks {
            for (i, c) in list.iter().enumerate() {
                out.push((root.key("hooks").key(kind).index(i), c.as_str()));
            }
        }
        out
    }

    /// The apply command's timeout.
    pub fn apply_timeout(&self) -> Duration {
        self.apply.timeout.get()
    }
}
