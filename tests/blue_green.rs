//! `strategy = "blue_green"` against real sshd hosts: the agent reads its config through
//! `agent/current -> blue`; a rollout stages `agent/green` and flips the link, a failed gate
//! (or `revert RUN` after a kill) flips it back.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

/// Give every host `agent/blue/config.toml`, `agent/current -> blue`, and make the agent's
/// own `agent/config.toml` a symlink through the link, so the fake agent reads the live slot.
fn blue_green_fleet(n: usize) -> TestFleet {
    let f = TestFleet::start(n);
    for h in &f.hosts {
        let agent = h.home.join("agent");
        std::fs::remove_file(agent.join("config.toml")).unwrap();
        std::fs::create_dir_all(agent.join("blue")).unwrap();
        std::fs::write(agent.join("blue/config.toml"), AGENT_CONFIG).unwrap();
        std::os::unix::fs::symlink("blue", agent.join("current")).unwrap();
        std::os::unix::fs::symlink("current/config.toml", agent.join("config.toml")).unwrap();
    }
    f
}

fn playbook(model: &str, rollout: &str) -> String {
    let has = |k: &str| rollout.lines().any(|l| l.trim_start().starts_with(&format!("{k} ")));
    let mut r = rollout.to_string();
    if !has("observe") {
        r.push_str("\nobserve = \"3s\"");
    }
    if !has("batch_observe") {
        r.push_str("\nbatch_observe = \"2s\"");
    }
    format!(
        r#"id = "model-swap-bg"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/current/config.toml"
set = {{ "model.name" = "{model}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5

[rollout]
strategy = "blue_green"
{r}

[rollout.blue_green]
link = "agent/current"
slots = ["agent/blue", "agent/green"]
"#
    )
}

fn agent(f: &TestFleet, i: usize) -> PathBuf {
    f.hosts[i].home.join("agent")
}

fn link(f: &TestFleet, i: usize) -> String {
    std::fs::read_link(agent(f, i).join("current"))
        .unwrap()
        .to_string_lossy()
        .to_string()
}

fn slot_config(f: &TestFleet, i: usize, slot: &str) -> Option<String> {
    std::fs::read_to_string(agent(f, i).join(slot).join("config.toml")).ok()
}

fn with_model(model: &str) -> String {
    AGENT_CONFIG.replace("name = \"claude-sonnet-4\"", &format!("name = \"{model}\""))
}

/// The model the running fake agent last said it started with.
fn running_model(f: &TestFleet, i: usize) -> String {
    let log = std::fs::read_to_string(agent(f, i).join("agent.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.strip_prefix("INFO agent started model="))
        .next_back()
        .unwrap_or_default()
        .to_string()
}

/// Nothing bellwether builds beside the slots or the link is left behind.
fn assert_no_leftovers(f: &TestFleet, i: usize) {
    for e in std::fs::read_dir(agent(f, i)).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        assert!(!name.contains(".bellwether"), "h{:02}: left behind {name}", i + 1);
    }
}

fn run_id(f: &TestFleet) -> String {
    latest_run(f).file_name().unwrap().to_string_lossy().to_string()
}

/// Start a rollout in the background and SIGKILL it once an event matches `at`.
fn rollout_killed_at(f: &TestFleet, pb: &Path, at: impl Fn(&EventKind) -> bool) {
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(f, at, Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
}

#[test]
fn plan_and_rollout_say_the_slots_once_for_all_hosts_that_share_them() {
    let f = blue_green_fleet(3);
    let pb = f.playbook("bg", &playbook(GOOD, ""));
    let slots = "live slot agent/blue, stage into idle slot agent/green, then flip agent/current: blue -> green";
    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("\nblue_green: h01, h02, h03: {slots}\n")),
        "{out}"
    );
    assert_eq!(out.matches("live slot").count(), 1, "one line, not one per host: {out}");
    assert!(out.contains("== h01, h02, h03: same diff"), "{out}");
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(" plan: blue_green: h01, h02, h03: {slots}\n")),
        "{out}"
    );
    assert_eq!(out.matches("live slot").count(), 1, "{out}");
    for i in 0..3 {
        assert_eq!(link(&f, i), "blue", "a dry run flips nothing");
    }
}

#[test]
fn good_change_stages_green_flips_every_link_and_leaves_blue_untouched() {
    let f = blue_green_fleet(4);
    f.start_agents();
    let pb = f.playbook("bg", &playbook(GOOD, ""));
    // `plan` shows the diff against the live slot and where it would be staged.
    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("live slot agent/blue, stage into idle slot agent/green, then flip agent/current: blue -> green"),
        "{out}"
    );
    assert!(out.contains("+name = \"claude-sonnet-4-5\""), "{out}");
    assert!(out.contains("agent/current/config.toml"), "{out}");
    assert!(!agent(&f, 0).join("green").exists(), "plan changes nothing");

    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..4 {
        assert_eq!(link(&f, i), "green", "h{:02}", i + 1);
        assert_eq!(slot_config(&f, i, "green").unwrap(), with_model(GOOD), "h{:02}", i + 1);
        assert_eq!(
            slot_config(&f, i, "blue").unwrap(),
            AGENT_CONFIG,
            "h{:02}: blue untouched byte for byte",
            i + 1
        );
        assert_eq!(running_model(&f, i), GOOD, "h{:02} restarted on green", i + 1);
        assert_no_leftovers(&f, i);
    }
    let run = latest_run(&f);
    let ev = record(&run);
    // The flip is announced before it happens, with the old target, and verified after.
    let intent = ev.position(|k| {
        matches!(k, EventKind::FlipIntent { host, link, from, to, .. }
            if host == "h01" && link == "agent/current" && from == "blue" && to == "green")
    });
    let flipped = ev.position(|k| {
        matches!(k, EventKind::Flipped { host, link, target }
            if host == "h01" && link == "agent/current" && target == "green")
    });
    let staged = ev.position(|k| {
        matches!(k, EventKind::Staged { host, path, .. }
            if host == "h01" && path == "agent/green/config.toml")
    });
    let (Some(intent), Some(flipped), Some(staged)) = (intent, flipped, staged) else {
        panic!("staged, flip_intent and flipped for h01: {ev}");
    };
    assert!(staged < intent && intent < flipped, "{ev}");
    assert!(
        !ev.has(|k| matches!(k, EventKind::WriteIntent { .. })),
        "the live slot is never written: {ev}"
    );
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("hosts changed: 4, reverted: 0"), "{summary}");
    assert!(
        summary.contains("| h01 | `agent/current` | `blue` | `green` | flipped |"),
        "{summary}"
    );
    // A second run finds every host up to date (the live slot has the change).
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("already have the change"), "{out}");
}

#[test]
fn broken_model_fails_the_canary_which_flips_back_to_blue() {
    let f = blue_green_fleet(4);
    f.start_agents();
    let pb = f.playbook("bg-broken", &playbook(BROKEN, "observe = \"20s\""));
    let t = Instant::now();
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(t.elapsed() < Duration::from_secs(18), "fails fast: {:?}", t.elapsed());
    // The canary points back at blue, verified; green is staged but not live.
    assert_eq!(link(&f, 0), "blue");
    assert_eq!(slot_config(&f, 0, "green").unwrap(), with_model(BROKEN));
    assert_eq!(running_model(&f, 0), "claude-sonnet-4", "apply re-ran on blue");
    for i in 0..4 {
        assert_eq!(slot_config(&f, i, "blue").unwrap(), AGENT_CONFIG, "h{:02}", i + 1);
        assert_eq!(link(&f, i), "blue", "h{:02}", i + 1);
        assert_no_leftovers(&f, i);
    }
    for i in 1..4 {
        assert!(!agent(&f, i).join("green").exists(), "h{:02} untouched", i + 1);
    }
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| {
            matches!(k, EventKind::FlippedBack { host, link, target, verified: true }
                if host == "h01" && link == "agent/current" && target == "blue")
        }),
        "{ev}"
    );
    assert!(
        !ev.has(|k| matches!(k, EventKind::StageStarted { host, .. } if host == "h02")),
        "h02 never staged: {ev}"
    );
    assert_eq!(ev.outcome(), Some("reverted"), "{ev}");
    assert!(
        out.contains("every changed host (1) was reverted and verified"),
        "{out}"
    );
}

#[test]
fn kill_9_in_a_batch_window_then_revert_run_flips_every_link_back() {
    let f = blue_green_fleet(5);
    f.start_agents();
    let pb = f.playbook(
        "bg",
        &playbook(GOOD, "batches = [\"50%\", \"100%\"]\nbatch_observe = \"60s\""),
    );
    rollout_killed_at(&f, &pb, observe_started("batch 1"));
    assert_eq!(link(&f, 0), "green", "the canary was flipped before the kill");
    assert_eq!(link(&f, 1), "green", "batch 1 was flipped before the kill");
    let id = run_id(&f);
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..5 {
        assert_eq!(link(&f, i), "blue", "h{:02}", i + 1);
        assert_eq!(slot_config(&f, i, "blue").unwrap(), AGENT_CONFIG, "h{:02}", i + 1);
        assert_eq!(running_model(&f, i), "claude-sonnet-4", "h{:02}", i + 1);
    }
    assert!(!f.hosts[0].home.join(".bellwether.lock").exists(), "markers removed");
    let ev = record(&latest_run(&f));
    assert_eq!(ev.count(|k| matches!(k, EventKind::FlippedBack { .. })), 3, "{ev}");
    let (code, out, _) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to revert"), "{out}");
}

#[test]
fn a_link_repointed_by_someone_else_is_not_touched_by_revert() {
    let f = blue_green_fleet(2);
    f.start_agents();
    let pb = f.playbook("bg", &playbook(GOOD, "observe = \"60s\""));
    rollout_killed_at(&f, &pb, observe_started("canary"));
    assert_eq!(link(&f, 0), "green");
    // Someone points h01 at a third directory after the kill.
    let a = agent(&f, 0);
    std::fs::create_dir_all(a.join("hotfix")).unwrap();
    std::fs::remove_file(a.join("current")).unwrap();
    std::os::unix::fs::symlink("hotfix", a.join("current")).unwrap();
    let id = run_id(&f);
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(err.contains("h01") && err.contains("not touching it"), "{err}");
    assert_eq!(link(&f, 0), "hotfix", "left as someone else set it");
    // Once it points where this run set it again, the revert finishes.
    std::fs::remove_file(a.join("current")).unwrap();
    std::os::unix::fs::symlink("green", a.join("current")).unwrap();
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(link(&f, 0), "blue");
}

#[test]
fn a_flip_back_refused_because_the_old_slot_changed_does_not_suggest_a_revert_that_cannot_help() {
    let f = blue_green_fleet(2);
    f.start_agents();
    let pb = f.playbook("bg", &playbook(GOOD, "observe = \"60s\""));
    rollout_killed_at(&f, &pb, observe_started("canary"));
    assert_eq!(link(&f, 0), "green");
    // Someone restages blue on h01 after the kill: flipping back would not bring the old
    // config back.
    std::fs::write(agent(&f, 0).join("blue/config.toml"), with_model("claude-hotfix-1")).unwrap();
    let id = run_id(&f);
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(err.contains("h01") && err.contains("flip by hand"), "{err}");
    assert!(
        err.contains(&format!(
            "These need a person: `bellwether revert {id}` would refuse them the same way"
        )),
        "{err}"
    );
    assert!(
        !err.to_lowercase().contains("retry with"),
        "no retry that cannot help: {err}"
    );
    assert_eq!(link(&f, 0), "green", "not touched");
    // Once the slot holds what it held at the flip, the revert finishes.
    std::fs::write(agent(&f, 0).join("blue/config.toml"), AGENT_CONFIG).unwrap();
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(
        code, 0,
        "once the slot holds what it held, the revert finishes: {out}\n{err}"
    );
    assert_eq!(link(&f, 0), "blue");
}

#[test]
fn resume_after_a_kill_in_the_canary_window_keeps_the_flip_and_finishes() {
    let f = blue_green_fleet(3);
    f.start_agents();
    let pb = f.playbook("bg", &playbook(GOOD, "observe = \"8s\""));
    rollout_killed_at(&f, &pb, observe_started("canary"));
    assert_eq!(link(&f, 0), "green");
    let id = run_id(&f);
    let (code, out, err) = bw(&f, &["resume", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..3 {
        assert_eq!(link(&f, i), "green", "h{:02}", i + 1);
        assert_eq!(slot_config(&f, i, "green").unwrap(), with_model(GOOD));
        assert_eq!(slot_config(&f, i, "blue").unwrap(), AGENT_CONFIG);
    }
    let ev = record(&latest_run(&f));
    // h01 was flipped once, before the kill; the resumed run did not restage it.
    assert_eq!(
        ev.count(|k| matches!(k, EventKind::FlipIntent { host, .. } if host == "h01")),
        1,
        "{ev}"
    );
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
}

#[test]
fn preflight_fails_when_a_host_has_no_link_and_nothing_changes() {
    let f = blue_green_fleet(3);
    std::fs::remove_file(agent(&f, 2).join("current")).unwrap();
    let pb = f.playbook("bg", &playbook(GOOD, ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        err.contains("h03: agent/current does not exist; a blue_green playbook needs agent/current to be a symlink to one of its slots agent/blue or agent/green"),
        "{err}"
    );
    for i in 0..3 {
        assert!(!agent(&f, i).join("green").exists(), "h{:02}", i + 1);
        assert_eq!(slot_config(&f, i, "blue").unwrap(), AGENT_CONFIG);
    }
    assert_eq!(link(&f, 0), "blue");
    // A link to neither slot is refused the same way, naming where it points.
    std::os::unix::fs::symlink("elsewhere", agent(&f, 2).join("current")).unwrap();
    let (code, _, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("h03: agent/current points at \"elsewhere\"")
            && err.contains("which is neither slot agent/blue nor agent/green"),
        "{err}"
    );
}

#[test]
fn an_edit_outside_the_link_is_bad_input() {
    let f = blue_green_fleet(1);
    let pb = playbook(GOOD, "").replace(
        "path = \"agent/current/config.toml\"",
        "path = \"agent/blue/config.toml\"",
    );
    let pb = f.playbook("bg-outside", &pb);
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("every edit names its file through the link"), "{err}");
}
