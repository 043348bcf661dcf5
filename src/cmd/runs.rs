//! `bellwether runs`, `show RUN` and `status`: reading the run records.

use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::record::history::{outstanding, summarize};
use crate::record::{read_events, run_dir, RunDir};

/// `runs`: one line per run.
pub fn list(g: &Global, json: bool) -> Result<Exit, Failure> {
    let runs = g.runs_dir();
    let ids = run_dir::list_ids(&runs);
    let sums: Vec<_> = ids
        .iter()
        .map(|id| summarize(id, &read_events(&runs.join(id)).unwrap_or_default()))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&sums).unwrap_or_default());
        return Ok(Exit::Done);
    }
    if sums.is_empty() {
        println!("no runs in {}", runs.display());
        return Ok(Exit::Done);
    }
    let rows: Vec<Vec<String>> = sums
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.playbook.clone(),
                s.started.clone(),
                s.outcome.clone(),
                s.hosts_changed.to_string(),
                s.hosts_reverted.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::ui::table::render(
            &["RUN", "PLAYBOOK", "STARTED (UTC)", "OUTCOME", "CHANGED", "REVERTED"],
            &rows
        )
    );
    Ok(Exit::Done)
}

/// `show RUN`: the summary (regenerated from the events, so it is current after a revert).
pub fn show(g: &Global, id: &str, json: bool) -> Result<Exit, Failure> {
    let run = RunDir::open(&g.runs_dir(), id).map_err(|e| Failure::input(e.to_string()))?;
    let events = read_events(&run.dir).map_err(|e| Failure::input(format!("{}: {e}", run.dir.display())))?;
    if json {
        let doc = serde_json::json!({
            "run": summarize(&run.id, &events),
            "plan": crate::rollout::summary::load_plan(&run),
            "outstanding": outstanding(&events),
            "outstanding_links": crate::rollout::revert::Outstanding::from_events(&events).flips,
            "restart_pending": crate::record::history::restart_pending(&events),
            "events": events,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!(
            "{}",
            crate::rollout::summary::render(&run.id, &events, crate::rollout::summary::load_plan(&run).as_ref())
        );
    }
    Ok(Exit::Done)
}

/// `status`: the lock holder and runs that left hosts changed.
pub fn status(g: &Global, json: bool) -> Result<Exit, Failure> {
    let runs = g.runs_dir();
    let locks: Vec<_> = crate::record::lock::read_all(&runs)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let mut attention = Vec::new();
    for id in run_dir::list_ids(&runs) {
        let evs = read_events(&runs.join(&id)).unwrap_or_default();
        let s = summarize(&id, &evs);
        let left = crate::rollout::revert::Outstanding::from_events(&evs);
        let pending = crate::record::history::restart_pending(&evs);
        let n = left.files.len() + left.flips.len();
        if s.outcome != "done" && (n > 0 || !pending.is_empty()) {
            attention.push((id, s.outcome, n.max(pending.len())));
        }
    }
    if json {
        let doc = serde_json::json!({"locks": locks, "unfinished": attention.iter().map(|(i, o, n)| serde_json::json!({"run": i, "outcome": o, "changes_outstanding": n})).collect::<Vec<_>>()});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        let needs = attention.iter().any(|(_, outcome, _)| outcome != "paused");
        return Ok(if needs { Exit::NeedsAttention } else { Exit::Done });
    }
    if locks.is_empty() {
        println!("no run in progress");
    }
    for l in &locks {
        println!(
            "in progress: {} on {}{}",
            l.describe(),
            l.hosts.join(", "),
            if l.is_stale() { " — STALE (process gone)" } else { "" }
        );
    }
    for (id, outcome, n) in &attention {
        let next = if outcome == "paused" || outcome == "interrupted" || outcome.starts_with("running") {
            format!("`bellwether resume {id}` or `bellwether revert {id}`")
        } else {
            format!("`bellwether revert {id}`")
        };
        println!(
            "run {id} ({outcome}) left {n} change(s) not put back (files, links or an unfinished re-apply): {next}"
        );
    }
    // For monitoring: exit 5 when a run left hosts in a state nobody chose (a paused run is
    // waiting on the calendar on purpose, so it does not count).
    if attention.iter().any(|(_, outcome, _)| outcome != "paused") {
        return Ok(Exit::NeedsAttention);
    }
    Ok(Exit::Done)
}
