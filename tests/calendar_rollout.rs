//! The release calendar driving real rollouts: a freeze blocks before any host is touched, a
//! T0 exception runs with the emergency profile and is on record, a freeze that starts
//! mid-run pauses at the batch boundary and `resume` finishes later, `--skip-frozen` works
//! around a regional freeze, and `--within` refuses to start outside its window.
//!
//! Test hosts' regions by index: h01 us-east-1, h02 eu-west-1, h03 ap-south-1, h04 us-east-1...

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";

/// A model-swap playbook of `tier` with the test's `[rollout]` lines (short windows).
fn playbook(tier: &str, rollout: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "{tier}"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{GOOD}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5

[rollout]
{rollout}
"#
    )
}

/// Append calendar tables (`[[freeze]]`, `[emergency]`) at the end of the fleet file.
fn add_calendar(f: &TestFleet, toml: &str) {
    let mut s = std::fs::read_to_string(f.fleet_path()).unwrap();
    s.push_str(toml);
    std::fs::write(f.fleet_path(), s).unwrap();
}

fn freeze(id: &str, kind: &str, start: &str, end: &str, regions: &str) -> String {
    format!(
        "\n[[freeze]]\nid = \"{id}\"\nkind = \"{kind}\"\nstart = \"{start}\"\nend = \"{end}\"\nregions = [{regions}]\ncomponents = [\"model\"]\n"
    )
}

fn rollout(f: &TestFleet, pb: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.arg("rollout").arg(pb).arg("--yes").args(extra);
    run(c)
}

fn originals(f: &TestFleet) -> Vec<Vec<u8>> {
    (0..f.hosts.len()).map(|i| f.config(i)).collect()
}

fn has_change(f: &TestFleet, i: usize) -> bool {
    String::from_utf8(f.config(i))
        .unwrap()
        .contains(&format!("name = \"{GOOD}\""))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn no_markers(f: &TestFleet) {
    for h in &f.hosts {
        assert!(!h.home.join(".bellwether.lock").exists(), "{}: no run marker", h.name);
    }
}

#[test]
fn t2_inside_a_soft_freeze_is_blocked_before_any_host_is_touched() {
    let mut f = TestFleet::start(3);
    add_calendar(
        &f,
        &freeze(
            "launch-week",
            "soft",
            "2030-06-01T00:00:00Z",
            "2030-06-08T00:00:00Z",
            "",
        ),
    );
    let orig = originals(&f);
    let pb = f.playbook("swap", &playbook("T2", ""));
    let (code, out, err) = rollout(&f, &pb, &["--at", "2030-06-03T12:00:00Z"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("calendar: block T2 at 2030-06-03T12:00:00Z"), "{out}");
    assert!(err.contains("blocked by the calendar"), "{err}");
    assert!(err.contains("soft freeze `launch-week`"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(originals(&f), orig, "configs identical");
    no_markers(&f);
    assert!(run_dirs(&f).is_empty(), "no run was started");
    assert_eq!(locks_held(&f.runs_dir()), 0, "lock released");
    // The gate is decided before connecting: with every host down the answer is still the
    // freeze (exit 3), not an unreachable host (exit 6).
    for h in &mut f.hosts {
        h.stop();
    }
    let (code, out, err) = rollout(&f, &pb, &["--at", "2030-06-03T12:00:00Z"]);
    assert_eq!(code, 3, "{out}\n{err}");
    // Outside the window the same playbook would proceed (to preflight, which now fails).
    let (code, out, err) = rollout(&f, &pb, &["--at", "2030-06-09T12:00:00Z"]);
    assert_eq!(code, 6, "{out}\n{err}");
}

#[test]
fn t0_in_a_hard_freeze_needs_an_exception_and_then_runs_the_emergency_profile() {
    let f = TestFleet::start(3);
    add_calendar(
        &f,
        &(freeze("peak", "hard", "2030-11-27T00:00:00Z", "2030-11-30T00:00:00Z", "")
            + "\n[emergency]\nmin_observe = \"3s\"\n"),
    );
    f.start_agents();
    let orig = originals(&f);
    // The playbook asks for 2 canaries and a 1s look; the emergency profile overrides both.
    let pb = f.playbook(
        "hotfix",
        &playbook(
            "T0",
            "canary = 2\nobserve = \"1s\"\nbatch_observe = \"1s\"\nbatches = [\"100%\"]",
        ),
    );
    let at = "2030-11-28T09:00:00Z";
    let (code, out, err) = rollout(&f, &pb, &["--at", at]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("only with an exception"), "{err}");
    assert_eq!(originals(&f), orig);
    assert!(run_dirs(&f).is_empty());

    let t = Instant::now();
    let (code, out, err) = rollout(
        &f,
        &pb,
        &["--at", at, "--exception", "outage fix", "--approver", "alice"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..3 {
        assert!(has_change(&f, i), "host {i} changed");
    }
    assert!(t.elapsed() >= Duration::from_secs(3), "observed at least min_observe");
    let run = latest_run(&f);
    let plan: serde_json::Value = serde_json::from_str(&read(&run.join("plan.json"))).unwrap();
    assert_eq!(plan["emergency"], true);
    assert_eq!(
        plan["plan"]["canary"],
        serde_json::json!(["h01"]),
        "5% of 3, at least 1"
    );
    assert_eq!(plan["observe_ms"], 3000);
    let ev = record(&run);
    let Some(EventKind::Gate {
        allowed,
        emergency,
        exception,
        approver,
        scope,
        rollback,
        ..
    }) = ev.kinds().find(|k| matches!(k, EventKind::Gate { .. }))
    else {
        panic!("a gate event: {ev}");
    };
    assert!(*allowed, "{ev}");
    assert!(*emergency, "{ev}");
    assert_eq!(exception.as_deref(), Some("outage fix"));
    assert_eq!(approver.as_deref(), Some("alice"));
    let run_id = run.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        rollback.as_deref(),
        Some(format!("bellwether revert {run_id}").as_str()),
        "the rollback lever is recorded"
    );
    assert!(scope.as_deref().unwrap().starts_with("T0 "), "{scope:?}");
    assert!(
        ev.has(
            |k| matches!(k, EventKind::ObserveStarted { phase, hosts, window_ms: 3000, .. }
            if phase == "canary" && hosts == &["h01"])
        ),
        "{ev}"
    );
    let decision: serde_json::Value = serde_json::from_str(&read(&run.join("decision.json"))).unwrap();
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["emergency"], true);
    assert_eq!(decision["exception_reason"], "outage fix");
    assert_eq!(decision["approver"], "alice");
    assert_eq!(decision["windows"][0]["id"], "peak");
    assert_eq!(decision["windows"][0]["effect"], "allows_with_exception");
    let summary = read(&run.join("summary.md"));
    assert!(summary.contains("outage fix") && summary.contains("alice"), "{summary}");
    assert!(
        summary.contains(&format!("rollback: `bellwether revert {run_id}`")),
        "{summary}"
    );
    assert!(summary.contains("outcome: **done** (exit 0)"), "{summary}");
}

#[test]
fn a_hard_freeze_starting_mid_run_pauses_at_the_batch_boundary_and_resume_finishes() {
    let f = TestFleet::start(3);
    // "Now" is 2s before the freeze: the canary starts outside it, batch 1 would start inside.
    add_calendar(
        &f,
        &freeze("incident", "hard", "2030-03-10T12:00:02Z", "2030-03-11T00:00:00Z", ""),
    );
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook("T2", "observe = \"3s\"\nbatch_observe = \"1s\"\nbatches = [\"100%\"]"),
    );
    let (code, out, err) = rollout(&f, &pb, &["--at", "2030-03-10T12:00:00Z"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(has_change(&f, 0), "the canary keeps the change (it passed its gates)");
    assert_eq!(f.config(1), orig[1], "batch host untouched");
    assert_eq!(f.config(2), orig[2], "batch host untouched");
    no_markers(&f);
    let run_dir = latest_run(&f);
    let ev = record(&run_dir);
    assert!(
        ev.has(|k| matches!(k, EventKind::PhasePassed { phase } if phase == "canary")),
        "{ev}"
    );
    let paused = ev
        .kinds()
        .find_map(|k| match k {
            EventKind::Paused { reason } => Some(reason),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a paused event: {ev}"));
    assert!(paused.contains("hard freeze `incident`"), "{paused}");
    assert!(
        !ev.has(|k| matches!(k, EventKind::Written { host, .. } if host == "h02")),
        "{ev}"
    );
    assert_eq!(ev.outcome(), Some("paused"), "{ev}");
    assert!(err.contains("paused before batch 1"), "{err}");
    assert!(err.contains("bellwether resume"), "{err}");
    // A paused run keeps its changes on purpose: status says so, and it is not a problem.
    let mut c = f.bw();
    c.args(["status"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("change(s) kept") && !out.contains("not put back"), "{out}");

    // Resume evaluates the calendar at the real time, when the window is not active.
    let id = run_dir.file_name().unwrap().to_string_lossy().to_string();
    let mut c = f.bw();
    c.args(["resume", &id, "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..3 {
        assert!(has_change(&f, i), "host {i} changed after resume");
    }
    let ev = record(&run_dir);
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
    assert_eq!(
        ev.count(|k| matches!(k, EventKind::Written { host, .. } if host == "h01")),
        1,
        "the canary is not written twice: {ev}"
    );
    no_markers(&f);
}

#[test]
fn skip_frozen_proceeds_outside_a_regional_freeze_and_records_the_skipped_hosts() {
    let f = TestFleet::start(3);
    add_calendar(
        &f,
        &freeze(
            "eu-maintenance",
            "hard",
            "2030-06-01T00:00:00Z",
            "2030-06-08T00:00:00Z",
            "\"eu-west-1\"",
        ),
    );
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook("T2", "observe = \"2s\"\nbatch_observe = \"1s\"\nbatches = [\"100%\"]"),
    );
    let at = ["--at", "2030-06-03T12:00:00Z"];
    let (code, out, err) = rollout(&f, &pb, &at);
    assert_eq!(
        code, 3,
        "without --skip-frozen the whole rollout is blocked: {out}\n{err}"
    );
    assert!(err.contains("eu-maintenance"), "{err}");
    assert_eq!(originals(&f), orig);
    assert!(run_dirs(&f).is_empty());

    let (code, out, err) = rollout(&f, &pb, &[at[0], at[1], "--skip-frozen"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(has_change(&f, 0), "h01 (us-east-1) changed");
    assert_eq!(f.config(1), orig[1], "h02 (eu-west-1, frozen) untouched");
    assert!(has_change(&f, 2), "h03 (ap-south-1) changed");
    assert!(out.contains("plan: skipped h02: region eu-west-1 is frozen"), "{out}");
    let run = latest_run(&f);
    let ev = record(&run);
    assert!(
        ev.has(|k| matches!(k, EventKind::Skipped { host, reason }
            if host == "h02" && reason == "region eu-west-1 is frozen")),
        "{ev}"
    );
    assert!(!ev.has(|k| file_host(k) == Some("h02")), "h02 never written: {ev}");
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
    let plan: serde_json::Value = serde_json::from_str(&read(&run.join("plan.json"))).unwrap();
    assert_eq!(plan["skipped"][0][0], "h02");
    let summary = read(&run.join("summary.md"));
    assert!(summary.contains("skipped h02: region eu-west-1 is frozen"), "{summary}");
}

#[test]
fn within_an_off_peak_window_refuses_to_start_outside_it() {
    let f = TestFleet::start(2);
    let orig = originals(&f);
    let pb = f.playbook("swap", &playbook("T2", ""));
    let (code, out, err) = rollout(
        &f,
        &pb,
        &["--within", "02:00-05:00 UTC", "--at", "2030-06-03T12:00:00Z"],
    );
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("outside the allowed window 02:00-05:00 UTC"), "{err}");
    assert!(err.contains("next opening 2030-06-04 02:00 UTC"), "{err}");
    assert_eq!(originals(&f), orig);
    assert!(run_dirs(&f).is_empty());
    no_markers(&f);
    // Inside the window it goes ahead (a dry run: plan and preflight, nothing changed).
    let (code, out, err) = rollout(
        &f,
        &pb,
        &[
            "--within",
            "02:00-05:00 UTC",
            "--at",
            "2030-06-03T03:30:00Z",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(originals(&f), orig);
}

#[test]
fn hosts_skipped_for_a_frozen_region_do_not_use_up_max_failed_hosts() {
    let f = TestFleet::start(3);
    add_calendar(
        &f,
        &freeze(
            "eu-maintenance",
            "hard",
            "2030-06-01T00:00:00Z",
            "2030-06-08T00:00:00Z",
            "\"eu-west-1\"",
        ),
    );
    // h03 (batch 1) cannot serve the new model; one failed host is within the budget.
    std::fs::write(f.hosts[2].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook(
            "T2",
            "observe = \"2s\"\nbatch_observe = \"2s\"\nbatches = [\"100%\"]\nmax_failed_hosts = 1",
        ),
    );
    let (code, out, err) = rollout(&f, &pb, &["--at", "2030-06-03T12:00:00Z", "--skip-frozen"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(has_change(&f, 0), "the canary keeps the change");
    assert_eq!(f.config(1), orig[1], "h02 (frozen) untouched");
    assert_eq!(f.config(2), orig[2], "h03 failed and was put back");
    assert!(
        out.contains("within max_failed_hosts = 1; reverting just those"),
        "{out}"
    );
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| matches!(k, EventKind::Reverted { host, .. } if host == "h03")),
        "{ev}"
    );
    assert!(
        !ev.has(|k| matches!(k, EventKind::Reverted { host, .. } if host == "h01")),
        "{ev}"
    );
}

#[test]
fn resuming_an_exception_run_inside_the_freeze_keeps_its_exception() {
    let f = TestFleet::start(2);
    // A hard freeze active right now (resume has no --at: it decides at the real time).
    let now = chrono::Utc::now();
    let ts = |d: i64| (now + chrono::Duration::hours(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    add_calendar(
        &f,
        &(freeze("incident", "hard", &ts(-1), &ts(1), "") + "\n[emergency]\nmin_observe = \"4s\"\n"),
    );
    f.start_agents();
    let pb = f.playbook("hotfix", &playbook("T0", "observe = \"1s\"\nbatch_observe = \"1s\""));
    let mut c = f.bw();
    c.arg("rollout")
        .arg(&pb)
        .args(["--yes", "--exception", "outage fix", "--approver", "alice"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!has_change(&f, 1), "killed before batch 1");
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    let mut c = f.bw();
    c.args(["resume", &id, "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(
        code, 0,
        "the approved exception still holds for its own run: {out}\n{err}"
    );
    assert!(has_change(&f, 0) && has_change(&f, 1), "{out}");
    let ev = record(&latest_run(&f));
    assert!(!ev.has(|k| matches!(k, EventKind::Paused { .. })), "{ev}");
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
}
