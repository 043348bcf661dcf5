//! `summary.md`: the run for people — outcome, timeline, per-host hashes and gate results,
//! a section per region (summary_regions.rs), the canary's metrics before and after, the
//! first error lines that failed a gate.

use super::record_plan::PlanRecord;
use super::summary_tables::{FileRow, HostVerdicts, LinkRow, Tables};
use crate::record::history::summarize;
use crate::record::{read_events, Event, EventKind, RunDir};
use crate::watch::Verdict;
use std::collections::BTreeMap;
use std::fmt::Write;

fn short(sha: &Option<String>) -> String {
    sha.as_deref()
        .map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "(absent)".into())
}

/// One timeline line for an event, or None for events the timeline leaves out.
fn describe(ev: &Event) -> Option<String> {
    let k = &ev.kind;
    describe_start(k)
        .or_else(|| describe_phase(k))
        .or_else(|| describe_revert(k))
        .or_else(|| describe_link(k))
        .or_else(|| describe_control(k))
}

/// Promotion waits, promotions and controller callbacks.
fn describe_control(k: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match k {
        AwaitingPromotion { phase, next, expires } => format!(
            "{phase} passed; waiting for promotion before {next}{}",
            expires
                .map(|e| format!(" (expires {})", e.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default()
        ),
        Promoted { phase, by } => format!("promoted after {phase} by {by}"),
        Aborted { phase, by } => format!("aborted by {by} while waiting after {phase}"),
        PromotionExpired { phase, expires } => format!(
            "the wait for promotion after {phase} expired at {} (pause_timeout): reverting by itself",
            expires.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Callback {
            callback,
            source,
            phase,
            ok,
            detail,
            ..
        } => format!(
            "callback {callback} ({}{}): {}",
            source.as_str(),
            phase.as_deref().map(|p| format!(", {p}")).unwrap_or_default(),
            if *ok {
                "ok".to_string()
            } else {
                format!("FAILED: {detail}")
            }
        ),
        _ => return None,
    })
}

/// How the run began: start, calendar gate, lock, preflight failures, skipped hosts.
fn describe_start(k: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match k {
        RunStarted {
            playbook,
            targets,
            resumed,
            ..
        } => format!(
            "{} {playbook} on {} target(s)",
            if *resumed { "resumed" } else { "started" },
            targets.len()
        ),
        Gate {
            summary,
            exception,
            approver,
            owner,
            rollback,
            ..
        } => match (exception, approver) {
            (Some(r), Some(a)) => format!(
                "calendar: {summary} (exception: {r}; approved by {a}; owner {}; rollback: `{}`)",
                owner.as_deref().unwrap_or("(none)"),
                rollback.as_deref().unwrap_or("bellwether revert RUN")
            ),
            _ => format!("calendar: {summary}"),
        },
        LockBroken { holder } => format!("broke a stale lock held by {holder}"),
        Preflight {
            host,
            ok: false,
            detail,
        } => format!("preflight failed on {host}: {detail}"),
        Skipped { host, reason } => format!("skipped {host}: {reason}"),
        _ => return None,
    })
}

/// A phase: its hosts changed, observed and judged, and how it stopped.
fn describe_phase(k: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match k {
        PhaseStarted { phase, hosts } => format!("{phase} started: {}", hosts.join(", ")),
        Written { host, path, .. } => format!("{host}: wrote {path}"),
        Apply {
            host,
            ok: false,
            detail,
            ..
        } => format!("{host}: apply FAILED: {detail}"),
        Health {
            host,
            ok: false,
            detail,
            ..
        } => format!("{host}: health FAILED: {detail}"),
        ObserveStarted { phase, window_ms, .. } => format!("{phase}: observing for {}s", window_ms / 1000),
        Verdict {
            phase, host, passed, ..
        } => format!(
            "{phase}: {host} {}",
            if *passed {
                "passed its gates"
            } else {
                "FAILED its gates"
            }
        ),
        HostFailed { host, phase, reason } => format!("{phase}: {host} failed: {reason}"),
        PinCheck {
            host,
            path,
            at,
            ok: false,
            detail,
            ..
        } => format!("{host}: pins of {path} do not hold ({at}): {detail}"),
        PhasePassed { phase } => format!("{phase} passed"),
        Paused { reason } => format!("paused: {reason}"),
        Interrupted { reason } => format!("interrupted: {reason}"),
        _ => return None,
    })
}

/// Putting hosts back, and the run's end.
fn describe_revert(k: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match k {
        RevertStarted { hosts, .. } => format!("revert started on {}", hosts.join(", ")),
        Reverted { host, path, .. } => format!("{host}: restored {path} (verified)"),
        RevertFailed { host, path, error } => format!("{host}: revert of {path} FAILED: {error}"),
        HostRestored {
            host,
            apply_ok,
            health_ok,
        } => format!(
            "{host}: after restore apply {} health {}",
            ok(*apply_ok),
            ok(*health_ok)
        ),
        RunFinished { outcome, exit, message } => format!("finished: {outcome} (exit {exit}): {message}"),
        _ => return None,
    })
}

/// Blue/green staging and flips, and connections that dropped.
fn describe_link(k: &EventKind) -> Option<String> {
    use EventKind::*;
    Some(match k {
        StageStarted { host, live, idle } => format!("{host}: staging {idle} as a copy of {live}"),
        Staged { host, path, .. } => format!("{host}: staged {path}"),
        Flipped { host, link, target } => format!("{host}: flipped {link} to {target}"),
        FlipFailed { host, link, error, .. } => format!("{host}: flip of {link} FAILED: {error}"),
        FlippedBack { host, link, target, .. } => format!("{host}: flipped {link} back to {target} (verified)"),
        Reconnected { host, phase } => format!("{phase}: {host}: connection dropped, reconnected"),
        ReconnectFailed { host, phase, error } => {
            format!("{phase}: {host}: connection dropped, reconnect FAILED: {error}")
        }
        _ => return None,
    })
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "FAILED"
    }
}

fn metrics_line(v: &Verdict) -> String {
    let s = &v.stats;
    let mut out = format!("{} lines, {} errors", s.lines, s.error_lines);
    if let Some(r) = s.error_rate {
        let _ = write!(out, " ({:.2}%)", r * 100.0);
    }
    for m in &s.metrics {
        if let (Some(p50), Some(p95)) = (m.p50, m.p95) {
            let _ = write!(out, ", {} p50 {p50} p95 {p95}", m.name);
        }
    }
    out
}

/// Render the summary text from a run's events and plan.
pub fn render(id: &str, events: &[Event], plan: Option<&PlanRecord>) -> String {
    let mut o = String::new();
    render_header(&mut o, id, events, plan);
    if let Some(p) = plan {
        render_plan(&mut o, p);
    }
    let t = Tables::from_events(events);
    render_files(&mut o, &t.files);
    render_links(&mut o, &t.links);
    render_gates(&mut o, &t.verdicts);
    if let Some(p) = plan {
        super::summary_regions::render(&mut o, events, p, &t.verdicts);
    }
    if let Some(b) = &t.before_metrics {
        render_canary_metrics(&mut o, b, &t.verdicts, plan);
    }
    render_failures(&mut o, &t.first_errors);
    render_timeline(&mut o, events);
    o
}

/// The top lines answer "what ran and how did it end" before any detail.
fn render_header(o: &mut String, id: &str, events: &[Event], plan: Option<&PlanRecord>) {
    let s = summarize(id, events);
    let _ = writeln!(o, "# Run {id}\n");
    let _ = writeln!(o, "- playbook: {}", s.playbook);
    if let Some(p) = plan {
        let _ = writeln!(o, "- tier / component: {} / {}", p.tier, p.component);
    }
    let _ = writeln!(o, "- started: {} UTC", s.started);
    let _ = writeln!(
        o,
        "- outcome: **{}**{}",
        s.outcome,
        s.exit.map(|e| format!(" (exit {e})")).unwrap_or_default()
    );
    if !s.message.is_empty() {
        let _ = writeln!(o, "- {}", s.message);
    }
    let _ = writeln!(
        o,
        "- hosts changed: {}, reverted: {}\n",
        s.hosts_changed, s.hosts_reverted
    );
}

/// The planned phases, so a reader can tell how far the run got.
fn render_plan(o: &mut String, p: &PlanRecord) {
    let _ = writeln!(o, "## Plan\n");
    for (phase, hosts) in p.plan.phases() {
        let _ = writeln!(o, "- {phase}: {}", hosts.join(", "));
    }
    if !p.baseline.is_empty() {
        let _ = writeln!(
            o,
            "- baseline (unchanged, compared during the canary window): {}",
            p.baseline.join(", ")
        );
    }
    let _ = writeln!(o);
}

/// Hashes per file, so a revert can be checked byte for byte without the tool.
fn render_files(o: &mut String, files: &BTreeMap<(String, String), FileRow>) {
    if files.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Hosts\n");
    let _ = writeln!(o, "| host | file | sha256 before | sha256 after | state |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for ((h, p), (b, a, state)) in files {
        let _ = writeln!(o, "| {h} | `{p}` | {} | {} | {} |", short(b), short(a), state);
    }
    let _ = writeln!(o);
}

/// Blue/green links, whose before/after is a target path rather than a hash.
fn render_links(o: &mut String, links: &BTreeMap<(String, String), LinkRow>) {
    if links.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Links (blue/green)\n");
    let _ = writeln!(o, "| host | link | target before | target set | state |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for ((h, l), (from, to, state)) in links {
        let _ = writeln!(o, "| {h} | `{l}` | `{from}` | `{to}` | {state} |");
    }
    let _ = writeln!(o);
}

/// Every gate result with its numbers, so a pass is as explainable as a failure.
fn render_gates(o: &mut String, verdicts: &HostVerdicts) {
    if verdicts.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Gates\n");
    for (h, vs) in verdicts {
        for (phase, passed, v) in vs {
            let detail = v.as_ref().map(metrics_line).unwrap_or_default();
            let _ = writeln!(
                o,
                "- {h} ({phase}): {} — {detail}",
                if *passed { "passed" } else { "FAILED" }
            );
        }
    }
    let _ = writeln!(o);
}

/// The canary's logs before and after the change side by side: the comparison it exists for.
fn render_canary_metrics(o: &mut String, before: &Verdict, verdicts: &HostVerdicts, plan: Option<&PlanRecord>) {
    let canary = plan.and_then(|p| p.plan.canary.first().cloned()).unwrap_or_default();
    let after = verdicts
        .get(&canary)
        .and_then(|v| v.iter().find(|x| x.0 == "canary"))
        .and_then(|x| x.2.as_ref());
    let _ = writeln!(o, "## Canary metrics ({canary})\n");
    let _ = writeln!(o, "- before the change: {}", metrics_line(before));
    if let Some(a) = after {
        let _ = writeln!(o, "- after the change: {}", metrics_line(a));
    }
    let _ = writeln!(o);
}

/// The first breaches only: enough to start investigating without flooding the summary.
fn render_failures(o: &mut String, first_errors: &[String]) {
    if first_errors.is_empty() {
        return;
    }
    let _ = writeln!(o, "## What failed\n");
    for e in first_errors.iter().take(10) {
        let _ = writeln!(o, "- {e}");
    }
    let _ = writeln!(o);
}

/// Every notable event in order, for reconstructing what happened when.
fn render_timeline(o: &mut String, events: &[Event]) {
    let _ = writeln!(o, "## Timeline (UTC)\n");
    for ev in events {
        if let Some(d) = describe(ev) {
            let _ = writeln!(o, "- {} {}", ev.ts.format("%H:%M:%S%.3f"), d);
        }
    }
}

/// Load a run's plan record, if present.
pub fn load_plan(run: &RunDir) -> Option<PlanRecord> {
    std::fs::read(run.dir.join("plan.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// (Re)write `summary.md` for a run folder. The summary is derived from the events (which
/// stay the source of truth), so a summary that cannot be written is reported, not fatal.
pub fn write(run: &RunDir) {
    let events = match read_events(&run.dir) {
        Ok(e) => e,
        Err(e) => {
            run.say(&format!("cannot write summary.md: {e}"));
            return;
        }
    };
    let plan = load_plan(run);
    let mut text = render(&run.id, &events, plan.as_ref());
    text.push_str(&super::summary_logs::logs_section(&run.dir, &events));
    if let Err(e) = run.write_text("summary.md", &text) {
        run.say(&format!("cannot write summary.md: {e}"));
    }
}
