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
                s.started.to_string(),
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
    // Read-only: the record's free text is masked already, identifiers are exact.
    let run = RunDir::open(
        &g.runs_dir(),
        id,
        crate::record::secrets::Secrets::default(),
        crate::record::run_dir::Progress::Quiet,
    )
    .map_err(|e| Failure::input(e.to_string()))?;
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
        let summary =
            crate::rollout::summary::render(&run.id, &events, crate::rollout::summary::load_plan(&run).as_ref())
                + &crate::rollout::summary_logs::logs_section(&run.dir, &events);
        print!("{}", crate::ui::safe::text(&summary));
    }
    Ok(Exit::Done)
}

/// `show RUN --log [HOST]`: the log lines the run kept (`logs/HOST.log`), as written —
/// masked, one line per log line with its receive time and window. Host-sent text: control
/// characters are escaped before they reach a terminal.
pub fn show_log(g: &Global, id: &str, host: Option<&str>) -> Result<Exit, Failure> {
    let dir = run_dir::resolve(&g.runs_dir(), id).map_err(|e| Failure::input(e.to_string()))?;
    let logs = dir.join("logs");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&logs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let kept: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .collect();
    if let Some(h) = host {
        let want = logs.join(crate::record::logs::log_file_name(h));
        if !want.exists() {
            return Err(Failure::input(format!(
                "run {}: no log kept for {h}; kept: {}",
                dir.display(),
                if kept.is_empty() {
                    "none".to_string()
                } else {
                    kept.join(", ")
                }
            )));
        }
        files = vec![want];
    }
    if files.is_empty() {
        println!(
            "run {}: no log lines were kept (watch.keep_log, or no log watch)",
            dir.display()
        );
        return Ok(Exit::Done);
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for f in &files {
        let text = std::fs::read(f).map_err(|e| Failure::input(format!("{}: {e}", f.display())))?;
        if files.len() > 1 {
            let _ = writeln!(out, "==> {} <==", f.display());
        }
        for line in String::from_utf8_lossy(&text).lines() {
            let safe: String = line
                .chars()
                .flat_map(|c| {
                    if c.is_control() && c != '\t' {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect();
            if writeln!(out, "{safe}").is_err() {
                return Ok(Exit::Done); // `| head` closed the pipe
            }
        }
    }
    Ok(Exit::Done)
}

/// `status`: the lock holder, runs that left hosts changed, and run markers left on hosts by
/// runs that are no longer alive (they block the next rollout on those hosts with exit 4).
pub fn status(g: &Global, json: bool) -> Result<Exit, Failure> {
    let runs = g.runs_dir();
    let locks: Vec<_> = crate::record::lock::read_all(&runs)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let alive = |id: &str| locks.iter().any(|l| l.run_id == id && !l.is_stale());
    let waiting = crate::rollout::waiting_runs(&runs);
    let is_waiting = |id: &str| waiting.iter().any(|w| w.run == id);
    // A process that waits (`--wait`) reverts its run by itself once the wait expires.
    let expired: Vec<&String> = waiting
        .iter()
        .filter(|w| w.expired() && w.waiter.is_none())
        .map(|w| &w.run)
        .collect();
    let mut attention = Vec::new();
    let mut stale_markers: Vec<(String, Vec<String>)> = Vec::new();
    let mut damaged = Vec::new();
    for id in run_dir::list_ids(&runs) {
        let evs = match read_events(&runs.join(&id)) {
            Ok(e) => e,
            Err(e) => {
                damaged.push((id, e.to_string()));
                continue;
            }
        };
        let s = summarize(&id, &evs);
        let left = crate::rollout::revert::Outstanding::from_events(&evs);
        let pending = crate::record::history::restart_pending(&evs);
        let n = left.files.len() + left.flips.len();
        // A run whose process is going (a resume, a promotion) is not left over.
        if s.outcome != "done" && !is_waiting(&id) && !alive(&id) && (n > 0 || !pending.is_empty()) {
            attention.push((id.clone(), s.outcome, n.max(pending.len())));
        }
        let held = crate::record::history::markers_held(&evs);
        if !held.is_empty() && !alive(&id) && !is_waiting(&id) {
            stale_markers.push((id, held));
        }
    }
    // For monitoring: exit 5 when a run left hosts in a state nobody chose (a paused run is
    // waiting on the calendar on purpose, so it does not count), or left markers that block
    // the next rollout, or its record cannot be read.
    let needs = attention.iter().any(|(_, outcome, _)| outcome != "paused")
        || !stale_markers.is_empty()
        || !damaged.is_empty()
        || !expired.is_empty();
    if json {
        let doc = serde_json::json!({
            "locks": locks,
            "unfinished": attention.iter().map(|(i, o, n)| serde_json::json!({"run": i, "outcome": o, "changes_outstanding": n})).collect::<Vec<_>>(),
            "stale_markers": stale_markers.iter().map(|(i, h)| serde_json::json!({"run": i, "hosts": h})).collect::<Vec<_>>(),
            "damaged_records": damaged.iter().map(|(i, e)| serde_json::json!({"run": i, "error": e})).collect::<Vec<_>>(),
            "awaiting_promotion": waiting.iter().map(|w| serde_json::json!({"run": w.run, "after": w.after, "since": w.since, "expires": w.expires, "expired": w.expired(), "waiting_pid": w.waiter.as_ref().map(|l| l.pid)})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
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
        let what = if outcome == "paused" { "kept" } else { "not put back" };
        println!("run {id} ({outcome}) left {n} change(s) {what} (files, links or an unfinished re-apply): {next}");
    }
    for (id, hosts) in &stale_markers {
        println!(
            "run {id} is no longer running but its marker is still on {} host(s): {} (the next rollout there exits 4); clear it with `bellwether revert {id}`",
            hosts.len(),
            hosts.join(", ")
        );
    }
    for (id, e) in &damaged {
        println!("run {id}: the record cannot be read: {}", crate::ui::safe::text(e));
    }
    for w in &waiting {
        println!("{}", waiting_line(w));
    }
    Ok(if needs { Exit::NeedsAttention } else { Exit::Done })
}

/// One line for a run waiting for promotion, with the two ways on.
fn waiting_line(w: &crate::rollout::Waiting) -> String {
    let id = &w.run;
    let fmt = |e: &chrono::DateTime<chrono::Utc>| e.format("%Y-%m-%d %H:%M UTC").to_string();
    let until = match (&w.expires, &w.waiter) {
        (Some(e), Some(l)) => format!(
            " (until {}; then its process, pid {}, reverts it by itself)",
            fmt(e),
            l.pid
        ),
        (Some(e), None) if w.expired() => format!("; its pause_timeout EXPIRED at {}: `bellwether abort {id}`", fmt(e)),
        (Some(e), None) => format!(" (until {})", fmt(e)),
        (None, Some(l)) => format!(" (in process pid {})", l.pid),
        (None, None) => String::new(),
    };
    format!(
        "run {id} waits for promotion after {} since {}{until}: `bellwether promote {id}` or `bellwether abort {id}`",
        w.after,
        fmt(&w.since)
    )
}
