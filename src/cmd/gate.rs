//! `bellwether gate`: may a change of this tier ship now? The calendar's entry point for CI.
//!
//! The answer comes from the same [`decide`] that `rollout` and `plan` call, so a CI job and
//! the rollout itself can never disagree. This file only gathers the request (from flags, or
//! from a playbook), prints the decision for people and writes it as JSON for machines.

use super::context;
use super::gate_names::Known;
use crate::calendar::time::{show_in, show_utc};
use crate::calendar::{
    decide, operator_zone, parse_at, CalendarSpec, Decision, Effect, Exception, GateRequest, Readiness, Tier, WindowHit,
};
use crate::cmd::calendar::{bad_at, is_utc};
use crate::config::load::playbook_path;
use crate::config::playbook::Strategy;
use crate::config::{load_calendar, load_playbook, Fleet, LoadedFleet, Playbook};
use crate::exit::{Exit, Failure};
use crate::options::{GateArgs, Global};
use crate::ui::out_file::{self, Destination};
use chrono::Utc;
use chrono_tz::Tz;
use std::fmt::Write as _;
use std::path::Path;

/// What a playbook says about its change: the gate's defaults when `--playbook` is given.
struct Change {
    id: String,
    tier: Tier,
    component: String,
    /// Regions of the targeted hosts; empty when any target has no region (unknown = all).
    regions: Vec<String>,
    readiness: Readiness,
    /// Things the operator should know about how the request was formed.
    notes: Vec<String>,
}

/// Run the gate: exit 0 when the change may ship, 3 when the calendar blocks it.
pub fn run(g: &Global, a: &GateArgs) -> Result<Exit, Failure> {
    if a.tier.is_none() && a.playbook.is_none() {
        return Err(no_tier());
    }
    // Flags first: a typo should fail before any file is read.
    let tier = match a.tier.as_deref() {
        Some(t) => Some(t.parse::<Tier>().map_err(|e| Failure::input(format!("--tier: {e}")))?),
        None => None,
    };
    let at = match a.at.as_deref() {
        Some(s) => parse_at(s, Utc::now()).map_err(bad_at)?,
        None => Utc::now(),
    };
    let exception = exception(a)?;
    let (calendar, fleet, change) = load(g, a)?;
    // Before deciding: a misspelt name would overlap no window and turn into an ALLOW.
    let playbooks = g.fleet.parent().unwrap_or(Path::new(".")).join("playbooks");
    let component = change.as_ref().map(|c| c.component.as_str());
    Known::gather(&calendar, fleet.as_ref().map(|f| &f.fleet), &playbooks, component).check(&a.region, &a.component)?;
    let tier = match (tier, &change) {
        (Some(t), _) => t,
        (None, Some(c)) => c.tier,
        (None, None) => return Err(no_tier()),
    };
    let req = GateRequest {
        tier,
        regions: pick(&a.region, change.as_ref().map(|c| c.regions.clone())),
        components: pick(&a.component, change.as_ref().map(|c| vec![c.component.clone()])),
        at,
        exception,
        playbook_id: change.as_ref().map(|c| c.id.clone()),
        readiness: change.as_ref().map(|c| c.readiness),
    };
    let decision = decide(&calendar, &req);
    let written = match &a.out {
        Some(out) => Some((out.as_path(), write_decision(out, &decision)?)),
        None => None,
    };
    let notes = change.map(|c| c.notes).unwrap_or_default();
    let text = render(&decision, operator_zone(), &notes, written);
    let to_stdout = matches!(written, Some((_, Destination::Stdout)));
    if a.json && !to_stdout {
        // The same document `--out` writes; people read the text on stderr.
        write_decision(Path::new("-"), &decision)?;
    }
    if to_stdout || a.json {
        // stdout carries the JSON alone, so `gate --out - | jq` works; people read stderr.
        crate::ui::log::notice(None, text.trim_end());
    } else {
        print!("{text}");
    }
    Ok(if decision.allowed { Exit::Done } else { Exit::Blocked })
}

/// Without a tier there is nothing to decide.
fn no_tier() -> Failure {
    Failure::input(
        "gate needs the change's tier: give --tier T0|T1|T2|T3, or --playbook PLAYBOOK to take \
         tier, component and regions from the playbook",
    )
}

/// The flag's values when given (they override the playbook's), else the playbook's.
fn pick(flag: &[String], from_playbook: Option<Vec<String>>) -> Vec<String> {
    if flag.is_empty() {
        from_playbook.unwrap_or_default()
    } else {
        flag.to_vec()
    }
}

/// `--exception` and `--approver` go together: the pair is the audit record of the exception.
fn exception(a: &GateArgs) -> Result<Option<Exception>, Failure> {
    for (flag, value) in [("--exception", &a.exception), ("--approver", &a.approver)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Failure::input(format!(
                "{flag} is empty; an exception needs a reason and the name of who approved it"
            )));
        }
    }
    match (&a.exception, &a.approver) {
        (None, None) => Ok(None),
        (Some(reason), Some(approver)) => Ok(Some(Exception {
            reason: reason.trim().to_string(),
            approver: approver.trim().to_string(),
        })),
        (Some(_), None) => Err(Failure::input(
            "--exception needs --approver NAME: an exception is recorded with who approved it",
        )),
        (None, Some(_)) => Err(Failure::input(
            "--approver needs --exception \"REASON\": an exception is recorded with why it is needed",
        )),
    }
}

/// The calendar to judge by, the fleet, and the playbook's change if one is named. The fleet
/// is only required when needed, so a CI job holding just a calendar file can run
/// `gate --calendar FILE`; a fleet that is there anyway still lends its region names.
fn load(g: &Global, a: &GateArgs) -> Result<(CalendarSpec, Option<LoadedFleet>, Option<Change>), Failure> {
    if let (Some(file), None) = (&a.calendar, &a.playbook) {
        let calendar = load_calendar(file)?;
        // Not needed for the decision, so a fleet that does not load is left out rather than
        // failing the gate; fewer known names can only make the gate stricter.
        let fleet = g.fleet.exists().then(|| context::fleet(g).ok()).flatten();
        return Ok((calendar, fleet, None));
    }
    if !g.fleet.exists() {
        return Err(Failure::input(format!(
            "no fleet file at {}: the gate reads the calendar from the fleet (give --fleet FILE or \
             set BELLWETHER_FLEET), or give the calendar itself with --calendar FILE",
            g.fleet.display()
        )));
    }
    let lf = context::fleet(g)?;
    let calendar = match &a.calendar {
        Some(file) => load_calendar(file)?,
        None => lf.calendar.clone(),
    };
    let change = match &a.playbook {
        Some(arg) => {
            let pb = load_playbook(&playbook_path(arg, &lf.path)?, &lf.fleet)?;
            Some(change(&pb, &lf.fleet))
        }
        None => None,
    };
    Ok((calendar, Some(lf), change))
}

/// Tier, component, regions and readiness facts of a playbook, against the fleet it targets.
fn change(pb: &Playbook, fleet: &Fleet) -> Change {
    let hosts = pb.targets.resolve(fleet);
    let mut notes = Vec::new();
    let unplaced: Vec<&str> = hosts
        .iter()
        .filter(|h| h.region.is_none())
        .map(|h| h.name.as_str())
        .collect();
    let regions = if unplaced.is_empty() {
        let mut r: Vec<String> = hosts.iter().filter_map(|h| h.region.clone()).collect();
        r.sort();
        r.dedup();
        r
    } else {
        // A host with no region cannot be shown to lie outside a regional freeze: judge the
        // change as touching every region rather than let it slip past one.
        notes.push(format!(
            "targets without a region ({}): every regional freeze applies",
            unplaced.join(", ")
        ));
        Vec::new()
    };
    let r = &pb.rollout;
    Change {
        id: pb.id.clone(),
        tier: pb.tier,
        component: pb.component.clone(),
        regions,
        readiness: Readiness {
            has_health: pb.apply.health.as_deref().is_some_and(|h| !h.trim().is_empty()),
            has_log_watch: pb.watch.as_ref().is_some_and(|w| w.log.is_some()),
            batch_steps: r.batches.len(),
            has_canary: r.strategy == Strategy::Canary && r.canary.of(hosts.len()) >= 1,
        },
        notes,
    }
}

/// Write the decision as pretty JSON where `--out` says: `-` or `/dev/stdout` is stdout, a
/// regular file is replaced atomically (a CI artifact upload or `jq` in the next step never
/// sees half a file), a symlink or FIFO is written through (see [`out_file`]).
fn write_decision(path: &Path, d: &Decision) -> Result<Destination, Failure> {
    let fail =
        |e: &dyn std::fmt::Display| Failure::input(format!("cannot write the decision file {}: {e}", path.display()));
    let mut text = serde_json::to_string_pretty(d).map_err(|e| fail(&e))?;
    text.push('\n');
    out_file::write_output(path, text.as_bytes()).map_err(|e| fail(&e))
}

/// The decision for people: verdict, tier and time, each window that mattered, the reasons.
fn render(d: &Decision, zone: Tz, notes: &[String], out: Option<(&Path, Destination)>) -> String {
    let mut s = String::new();
    let (word, verb) = if d.allowed {
        ("ALLOW", "may ship")
    } else {
        ("BLOCK", "may not ship")
    };
    let local = if is_utc(zone) {
        String::new()
    } else {
        format!(" ({})", show_in(d.at, zone))
    };
    let _ = writeln!(s, "{word}: {} change {verb} at {}{local}", d.tier, show_utc(d.at));
    let playbook = d
        .playbook_id
        .as_deref()
        .map(|p| format!("playbook {p}, "))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "  change: tier {}, {playbook}regions {}, components {}",
        d.tier,
        all(&d.regions),
        all(&d.components)
    );
    for n in notes {
        let _ = writeln!(s, "  note: {n}");
    }
    if d.windows.is_empty() {
        let _ = writeln!(s, "  windows: none active for this change");
    }
    for w in &d.windows {
        render_window(&mut s, w);
    }
    render_outcome(&mut s, d);
    let _ = writeln!(s, "  reasons:");
    for r in &d.reasons {
        let _ = writeln!(s, "    - {r}");
    }
    match out {
        Some((_, Destination::Stdout)) => s.push_str("  decision written to stdout\n"),
        Some((_, Destination::Stderr)) => s.push_str("  decision written to stderr\n"),
        Some((p, Destination::File)) => {
            let _ = writeln!(s, "  decision written to {}", p.display());
        }
        None => {}
    }
    s
}

/// One deciding window: id, kind and effect, its UTC span, scope, vendor and note.
fn render_window(s: &mut String, w: &WindowHit) {
    let effect = match w.effect {
        Effect::Allows => "allows this tier",
        Effect::AllowsWithException => "allows this tier under the exception",
        Effect::Blocks => "blocks",
    };
    let _ = writeln!(s, "  window {}: {} freeze, {effect}", w.id, w.kind);
    let _ = writeln!(s, "    {} -> {} (UTC)", show_utc(w.start), show_utc(w.end));
    let _ = writeln!(
        s,
        "    regions: {}  components: {}",
        all(&w.regions),
        all(&w.components)
    );
    if let Some(v) = &w.vendor {
        let _ = writeln!(s, "    vendor: {v}");
    }
    if let Some(n) = &w.note {
        let _ = writeln!(s, "    note: {n}");
    }
}

/// Frozen regions (what `--skip-frozen` would skip) and the exception with its profile.
fn render_outcome(s: &mut String, d: &Decision) {
    if !d.blocked_regions.is_empty() && !d.blocked_everywhere {
        let _ = writeln!(
            s,
            "  frozen regions: {} (rollout --skip-frozen may proceed on hosts elsewhere)",
            d.blocked_regions.join(", ")
        );
    }
    if let (Some(reason), Some(approver)) = (&d.exception_reason, &d.approver) {
        let _ = writeln!(s, "  exception: {reason:?}, approved by {approver}");
    }
    if let Some(p) = &d.emergency_profile {
        let _ = writeln!(
            s,
            "  emergency profile: canary {}% of targets (at least {} host{}), observe at least {}",
            p.canary_percent,
            p.min_canary_hosts,
            if p.min_canary_hosts == 1 { "" } else { "s" },
            p.min_observe
        );
    }
}

/// A scope list for people: its names, or "all" when empty.
fn all(v: &[String]) -> String {
    if v.is_empty() {
        "all".to_string()
    } else {
        v.join(", ")
    }
}
