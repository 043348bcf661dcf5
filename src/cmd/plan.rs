//! `bellwether plan`: everything a rollout would do, read-only.

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::{Global, PlanArgs};
use crate::record::secrets::Secrets;
use crate::rollout::plan::BatchPlan;
use crate::rollout::planner::{self, PlanRequest, Schedule};
use crate::rollout::preflight;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Colour a unified diff for a terminal.
fn colour(diff: &str) -> String {
    diff.lines()
        .map(|l| {
            if l.starts_with("+++") || l.starts_with("---") {
                format!("\x1b[1m{l}\x1b[0m")
            } else if l.starts_with('+') {
                format!("\x1b[32m{l}\x1b[0m")
            } else if l.starts_with('-') {
                format!("\x1b[31m{l}\x1b[0m")
            } else if l.starts_with("@@") {
                format!("\x1b[36m{l}\x1b[0m")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run the plan.
pub async fn run(g: &Global, a: &PlanArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    // The same planner as `rollout`: same calendar decision, emergency profile and batches.
    let req = PlanRequest {
        playbook: a.playbook.clone(),
        canary: a.canary.clone(),
        at: a.at.clone(),
        ..Default::default()
    };
    let settings = planner::settings(&lf, &req)?;
    let gate = planner::decide_for_plan(&lf, &settings);
    let (pb, pb_path) = (&settings.pb, &settings.pb_path);
    let targets = gate.targets.clone();
    let decision = gate.decision.clone();
    let secrets = Secrets::for_run(&lf, Some(pb));
    let conc = context::concurrency(g, &lf);
    let base = pb_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (prepared, failures, conns) =
        preflight::preflight_all(&lf, &targets, pb, &base, g.accept_new, conc, None).await;
    for c in conns.values() {
        c.close().await;
    }
    let order: Vec<String> = targets
        .iter()
        .map(|h| h.name.clone())
        .filter(|n| prepared.get(n).is_some_and(|p| !p.unchanged()))
        .collect();
    let unchanged: Vec<String> = targets
        .iter()
        .map(|h| h.name.clone())
        .filter(|n| prepared.get(n).is_some_and(|p| p.unchanged()))
        .collect();
    let plan = planner::batches(&lf, &settings, &gate, &order)?;
    let mut per_host: BTreeMap<String, String> = BTreeMap::new();
    let mut in_order: Vec<(String, String)> = Vec::new();
    let mut slots = BTreeMap::new();
    let mut slot_lines: Vec<(String, String)> = Vec::new();
    for n in &order {
        let p = &prepared[n];
        let d: String = p
            .files
            .iter()
            .filter(|f| f.changes())
            .map(|f| secrets.diff(&f.path, f.before.as_ref().map(|b| b.bytes.as_slice()), &f.after))
            .collect::<Vec<_>>()
            .join("\n");
        // Blue/green: the diff is against the live slot; where it is staged is said once
        // for all hosts with the same slots, not in every diff.
        if let Some(bg) = &p.blue_green {
            slot_lines.push((n.clone(), bg.describe()));
            slots.insert(n.clone(), bg.clone());
        }
        per_host.insert(n.clone(), d.clone());
        in_order.push((n.clone(), d));
    }
    let schedule = planner::schedule(&settings, &gate, &plan);
    // One block per change, however the lines around it differ from host to host.
    let groups = crate::ui::plan_diffs::group(&in_order);
    let exit = if failures.is_empty() {
        Exit::Done
    } else {
        Exit::Preflight
    };
    if a.json {
        let doc = json!({
            "playbook": pb.id, "tier": pb.tier.to_string(), "component": pb.component,
            "calendar": decision,
            "plan": plan,
            "baseline": planner::baseline(pb, &plan),
            "windows": schedule.phases,
            "estimated_ms": schedule.estimated_ms,
            "unchanged": unchanged,
            "preflight_failures": failures.iter().map(|(h, e)| json!({"host": h, "error": secrets.text(e)})).collect::<Vec<_>>(),
            "diffs": per_host,
            "diff_groups": groups,
            "blue_green": slots,
            "exit": exit.code(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit);
    }
    println!(
        "playbook {} ({} {}), {} target(s)",
        pb.id,
        pb.tier,
        pb.component,
        targets.len()
    );
    println!("calendar: {}", decision.headline());
    for r in &decision.reasons {
        println!("  {r}");
    }
    for (phase, hosts) in plan.phases() {
        println!("{phase}: {}", hosts.join(", "));
    }
    print_schedule(pb, &plan, &schedule);
    for (describe, hosts) in crate::ui::hosts::group_same(&slot_lines) {
        println!(
            "blue_green: {}: {describe}",
            crate::ui::hosts::host_range(&hosts, &order)
        );
    }
    if !unchanged.is_empty() {
        println!("already up to date: {}", unchanged.join(", "));
    }
    let col = g.colored();
    for g in &groups {
        println!("\n== {}", crate::ui::plan_diffs::header(g, &order));
        // The diff holds the host's file contents: escape before colouring.
        let diff = crate::ui::safe::text(&g.diff);
        println!("{}", if col { colour(&diff) } else { diff.to_string() });
        for w in crate::ui::plan_diffs::only_additions(&diff) {
            println!("warning: {w}");
        }
    }
    if !failures.is_empty() {
        println!("\npreflight FAILED on {} host(s):", failures.len());
        let masked: Vec<(String, String)> = failures.iter().map(|(h, e)| (h.clone(), secrets.text(e))).collect();
        let all: Vec<String> = targets.iter().map(|h| h.name.clone()).collect();
        for line in crate::ui::hosts::grouped_errors(&masked, &all) {
            println!("{}", crate::ui::safe::text(&line));
        }
    }
    Ok(exit)
}

/// The baseline, each phase's window and the least time the run takes.
fn print_schedule(pb: &crate::config::Playbook, plan: &BatchPlan, schedule: &Schedule) {
    let dur = |ms: u64| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string();
    let watching = pb.watch.as_ref().is_some_and(|w| w.log.is_some());
    let baseline = planner::baseline(pb, plan);
    if watching && !baseline.is_empty() {
        println!(
            "baseline (watched, unchanged during the canary window): {}",
            baseline.join(", ")
        );
    }
    if schedule.phases.is_empty() {
        return;
    }
    println!("windows:");
    for w in &schedule.phases {
        let mut line = if watching {
            format!("  {}: observe {}", w.phase, dur(w.observe_ms))
        } else {
            format!("  {}: wait {} (no log watch), then health", w.phase, dur(w.observe_ms))
        };
        if let Some(b) = w.before_ms {
            line.push_str(&format!(", after {} of logs before the change", dur(b)));
        }
        if !w.baseline.is_empty() {
            line.push_str(&format!("; compared with {}", w.baseline.join(", ")));
        }
        println!("{line}");
    }
    println!(
        "estimated duration: at least {} (the windows; changing the hosts and health checks add to it)",
        dur(schedule.estimated_ms)
    );
}

#[cfg(test)]
mod addition_tests {
    #[test]
    fn flags_diffs_that_only_add() {
        let add = "--- a/etc/c.toml\n+++ b/etc/c.toml\n@@ -1,2 +1,3 @@\n [model]\n name = \"x\"\n+nmae = \"y\"\n";
        assert_eq!(crate::ui::plan_diffs::only_additions(add).len(), 1);
        let change = "--- a/etc/c.toml\n+++ b/etc/c.toml\n@@ -1,2 +1,2 @@\n [model]\n-name = \"x\"\n+name = \"y\"\n";
        assert!(crate::ui::plan_diffs::only_additions(change).is_empty());
    }
}
