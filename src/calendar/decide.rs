//! The gate: may a change of some tier start (or continue) now, in these regions?
//!
//! One function answers for `gate` (CI), `rollout` and `plan` (at start and before each batch),
//! so the three can never disagree. The answer names every window that mattered and every
//! reason, because a blocked release with no explanation just gets forced through.

use super::spec::{CalendarSpec, EmergencyProfile, FreezeKind, FreezeWindow};
use super::tiers::{Permit, Tier};
use super::time::show_utc;
use super::window::Span;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An operator's request to pass a freeze: why, and who signed off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub reason: String,
    pub approver: String,
}

impl Exception {
    /// An exception counts only with both a reason and an approver: it is the audit record.
    pub fn is_complete(&self) -> bool {
        !self.reason.trim().is_empty() && !self.approver.trim().is_empty()
    }
}

/// What the playbook defines, for the tier requirements (canary, readiness checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Readiness {
    pub has_health: bool,
    pub has_log_watch: bool,
    /// Steps of the batch plan, the canary included.
    pub batch_steps: usize,
    pub has_canary: bool,
}

/// Batch-plan steps a tier with `readiness = true` needs (the seed's "full readiness gate").
pub const MIN_BATCH_STEPS: usize = 3;

impl Readiness {
    /// What the readiness checks miss, in words for the decision's reasons.
    pub fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.has_health {
            out.push("a health command".to_string());
        }
        if !self.has_log_watch {
            out.push("a log watch".to_string());
        }
        if self.batch_steps < MIN_BATCH_STEPS {
            out.push(format!(
                "a batch plan with at least {MIN_BATCH_STEPS} steps (has {})",
                self.batch_steps
            ));
        }
        out
    }
}

/// The question put to the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRequest {
    pub tier: Tier,
    /// Regions the change touches; empty means unknown/all, so every regional freeze applies.
    pub regions: Vec<String>,
    /// Components the change touches; empty means unknown/all.
    pub components: Vec<String>,
    pub at: DateTime<Utc>,
    pub exception: Option<Exception>,
    pub playbook_id: Option<String>,
    /// `None` when no playbook is known (a bare `gate --tier`): requirements go unchecked.
    pub readiness: Option<Readiness>,
}

/// What a window did to this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The tier may proceed inside this window.
    Allows,
    /// The tier proceeds inside this window because of the exception.
    AllowsWithException,
    /// The tier may not proceed (in the window's regions).
    Blocks,
}

/// An active window that covers the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowHit {
    pub id: String,
    pub kind: FreezeKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub regions: Vec<String>,
    pub components: Vec<String>,
    pub note: Option<String>,
    pub vendor: Option<String>,
    pub effect: Effect,
}

/// The gate's answer, serialised as the CI decision file `change_freeze_decision.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// "allow" or "block", for people and `jq`.
    pub decision: &'static str,
    pub allowed: bool,
    pub tier: Tier,
    pub at: DateTime<Utc>,
    pub playbook_id: Option<String>,
    /// The request's regions and components (empty: all/unknown).
    pub regions: Vec<String>,
    pub components: Vec<String>,
    pub windows: Vec<WindowHit>,
    /// Regions frozen for this tier: `--skip-frozen` may proceed on hosts elsewhere.
    pub blocked_regions: Vec<String>,
    /// Blocked regardless of region (a global freeze, an unmet requirement, a broken window).
    pub blocked_everywhere: bool,
    /// The change passes a freeze only through the exception: roll with `emergency_profile`.
    pub emergency: bool,
    pub emergency_profile: Option<EmergencyProfile>,
    pub approver: Option<String>,
    pub exception_reason: Option<String>,
    pub reasons: Vec<String>,
}

impl Decision {
    /// May hosts in `region` be changed? A host with no region is only allowed when the whole
    /// decision is, since it cannot be shown to lie outside the frozen regions.
    pub fn allows_region(&self, region: Option<&str>) -> bool {
        match region {
            _ if self.allowed => true,
            Some(r) if !self.blocked_everywhere => !self.blocked_regions.iter().any(|b| b.eq_ignore_ascii_case(r)),
            _ => false,
        }
    }

    /// One line for the terminal: `allow T2 at ...: reason; reason`.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.headline(), self.reasons.join("; "))
    }

    /// The verdict without its reasons, `allow T2 at ...`, for output that lists the reasons
    /// on lines of their own (printing both repeated every reason).
    pub fn headline(&self) -> String {
        format!("{} {} at {}", self.decision, self.tier, show_utc(self.at))
    }
}

/// Decide whether `req` may proceed under `cal`. Assumes a validated calendar, but fails
/// closed on a window it cannot read rather than ignore a freeze.
pub fn decide(cal: &CalendarSpec, req: &GateRequest) -> Decision {
    let rule = cal.rule(req.tier);
    let mut d = Decision::open(req);
    if req.exception.as_ref().is_some_and(|e| !e.is_complete()) {
        d.reasons
            .push("the exception is incomplete: it needs both a reason and an approver".to_string());
    }
    for w in cal.freeze.iter().filter(|w| w.covers(&req.regions, &req.components)) {
        let span = match w.active_at(req.at) {
            Ok(Some(span)) => span,
            Ok(None) => continue,
            Err(e) => {
                d.blocked_everywhere = true;
                d.reasons.push(format!(
                    "freeze window `{}` is invalid ({e}); the gate fails closed until it is fixed",
                    w.id
                ));
                continue;
            }
        };
        let (effect, reason) = verdict(cal, rule.permit(w.kind), req, w, span);
        d.reasons.push(reason);
        match effect {
            Effect::Blocks => block_scope(&mut d, &w.regions, &req.regions),
            Effect::AllowsWithException => d.emergency = true,
            Effect::Allows => {}
        }
        d.windows.push(WindowHit {
            id: w.id.clone(),
            kind: w.kind,
            start: span.0,
            end: span.1,
            regions: w.regions.clone(),
            components: w.components.clone(),
            note: w.note.clone(),
            vendor: w.vendor.clone(),
            effect,
        });
    }
    if d.windows.is_empty() && !d.blocked_everywhere {
        d.reasons.push(format!(
            "no freeze window covering this change is active at {}",
            show_utc(req.at)
        ));
    }
    check_requirements(&mut d, rule.canary, rule.readiness, req);
    d.allowed = !d.blocked_everywhere && d.blocked_regions.is_empty();
    d.decision = if d.allowed { "allow" } else { "block" };
    if d.allowed && d.emergency {
        d.emergency_profile = Some(cal.emergency);
    }
    d
}

impl Decision {
    /// An allowing decision with nothing found yet, carrying the request's record fields.
    fn open(req: &GateRequest) -> Decision {
        Decision {
            decision: "allow",
            allowed: true,
            tier: req.tier,
            at: req.at,
            playbook_id: req.playbook_id.clone(),
            regions: req.regions.clone(),
            components: req.components.clone(),
            windows: Vec::new(),
            blocked_regions: Vec::new(),
            blocked_everywhere: false,
            emergency: false,
            emergency_profile: None,
            approver: req.exception.as_ref().map(|e| e.approver.clone()),
            exception_reason: req.exception.as_ref().map(|e| e.reason.clone()),
            reasons: Vec::new(),
        }
    }
}

/// What one active window does to the request, and the sentence that says so.
fn verdict(cal: &CalendarSpec, permit: Permit, req: &GateRequest, w: &FreezeWindow, span: Span) -> (Effect, String) {
    let what = describe(w.kind, &w.id, span, &w.regions);
    let tier = req.tier;
    match (permit, req.exception.as_ref().filter(|e| e.is_complete())) {
        (Permit::Allow, _) => (Effect::Allows, format!("{what} allows {tier}")),
        (Permit::Exception, Some(e)) => (
            Effect::AllowsWithException,
            format!(
                "{tier} passes {what} under an exception approved by {}: {}",
                e.approver, e.reason
            ),
        ),
        (Permit::Exception, None) => (
            Effect::Blocks,
            format!("{what} lets {tier} through only with an exception (--exception REASON --approver NAME)"),
        ),
        (Permit::Block, _) => {
            let lift = if req.exception.is_some() {
                "; an exception does not lift it"
            } else {
                ""
            };
            (
                Effect::Blocks,
                format!("{what} blocks {tier} ({}){lift}", admitted(cal, w.kind)),
            )
        }
    }
}

/// Record the regions a blocking window freezes: the window's regions the request touches,
/// or all of them when the request's regions are unknown; a global window blocks everything.
fn block_scope(d: &mut Decision, window_regions: &[String], request_regions: &[String]) {
    if window_regions.is_empty() {
        d.blocked_everywhere = true;
        return;
    }
    let hit: Vec<&String> = if request_regions.is_empty() {
        window_regions.iter().collect()
    } else {
        request_regions
            .iter()
            .filter(|r| window_regions.iter().any(|w| w.trim().eq_ignore_ascii_case(r.trim())))
            .collect()
    };
    for r in hit {
        if !d.blocked_regions.iter().any(|b| b.eq_ignore_ascii_case(r)) {
            d.blocked_regions.push(r.clone());
        }
    }
}

/// Canary and readiness requirements of the tier, checked when the playbook is known.
fn check_requirements(d: &mut Decision, canary: bool, readiness: bool, req: &GateRequest) {
    let Some(r) = req.readiness else {
        if canary || readiness {
            d.reasons.push(format!(
                "{} requirements (canary/readiness) not checked: no playbook given",
                req.tier
            ));
        }
        return;
    };
    if canary && !r.has_canary {
        d.blocked_everywhere = true;
        d.reasons.push(format!(
            "{} requires a canary step, but the playbook has none",
            req.tier
        ));
    }
    if readiness {
        let missing = r.missing();
        if !missing.is_empty() {
            d.blocked_everywhere = true;
            d.reasons.push(format!(
                "{} requires the readiness checks; missing: {}",
                req.tier,
                missing.join(", ")
            ));
        }
    }
}

/// `hard freeze `id` (START to END, regions a, b)` for reasons.
fn describe(kind: FreezeKind, id: &str, span: Span, regions: &[String]) -> String {
    let scope = if regions.is_empty() {
        String::new()
    } else {
        format!(", regions {}", regions.join(", "))
    };
    format!(
        "{kind} freeze `{id}` ({} to {}{scope})",
        show_utc(span.0),
        show_utc(span.1)
    )
}

/// Which tiers a freeze of `kind` admits under this calendar, e.g. "admits T0 with an exception".
fn admitted(cal: &CalendarSpec, kind: FreezeKind) -> String {
    let parts: Vec<String> = Tier::ALL
        .iter()
        .filter_map(|t| match cal.rule(*t).permit(kind) {
            Permit::Allow => Some(t.to_string()),
            Permit::Exception => Some(format!("{t} with an exception")),
            Permit::Block => None,
        })
        .collect();
    if parts.is_empty() {
        "admits no tier".to_string()
    } else {
        format!("admits only {}", parts.join(", "))
    }
}
