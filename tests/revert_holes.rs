//! The holes the run state machine closed, each against real sshd hosts running the fake
//! agent: masking never corrupts what revert reads back; finishing a run by any path takes
//! its markers off every host; a host the run never wrote is left alone (not "repair by
//! hand"); a record write that fails stops the run and puts back what it changed.

mod common;

use bellwether::record::{read_events, Event, EventKind};
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

fn playbook(path: &str, model: &str, rollout: &str, hooks: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "{path}"
set = {{ "model.name" = "{model}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5

{hooks}

[rollout]
{rollout}
"#
    )
}

fn cmd(f: &TestFleet, args: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(args);
    run(c)
}

fn spawn_rollout(f: &TestFleet, pb: &Path) -> Child {
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().unwrap()
}

/// The latest run's events, typed (an unreadable record fails the test).
fn record(f: &TestFleet) -> Vec<Event> {
    read_events(&latest_run(f)).unwrap()
}

/// Wait until the latest run has an event matching `pred`.
fn wait_until(f: &TestFleet, what: &str, limit: Duration, pred: impl Fn(&EventKind) -> bool) {
    let t = Instant::now();
    loop {
        let hit = run_dirs(f)
            .last()
            .and_then(|r| read_events(r).ok())
            .is_some_and(|evs| evs.iter().any(|e| pred(&e.kind)));
        if hit {
            return;
        }
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn observing(phase: &'static str) -> impl Fn(&EventKind) -> bool {
    move |k| matches!(k, EventKind::ObserveStarted { phase: p, .. } if p == phase)
}

fn markers_on(f: &TestFleet) -> Vec<String> {
    f.hosts
        .iter()
        .filter(|h| h.home.join(".bellwether.lock").exists())
        .map(|h| h.name.clone())
        .collect()
}

fn run_id(f: &TestFleet) -> String {
    latest_run(f).file_name().unwrap().to_string_lossy().to_string()
}

/// Case 1: a host var whose NAME looks secret, used in an edit path: the record keeps the path
/// exact (only free text is masked), so the failed canary is put back byte for byte.
#[test]
fn a_secret_named_var_in_the_path_does_not_defeat_revert() {
    let f = TestFleet::start(2);
    // Each host's var holds an absolute directory (long enough to be masked by value).
    let mut fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    for h in &f.hosts {
        let dir = h.home.join("agent");
        fleet = fleet.replace(
            &format!("name = \"{}\"\n", h.name),
            &format!(
                "name = \"{}\"\nvars = {{ tls_key_dir = \"{}\" }}\n",
                h.name,
                dir.display()
            ),
        );
    }
    std::fs::write(f.fleet_path(), fleet).unwrap();
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook(
        "swap",
        &playbook("{{ vars.tls_key_dir }}/config.toml", BROKEN, "observe = \"3s\"", ""),
    );
    let (code, out, err) = cmd(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "the canary fails and is reverted\n{out}\n{err}");
    assert_eq!(f.config(0), orig, "the canary's config is back byte for byte");
    assert!(!out.contains("changed by someone else"), "{out}");
    let evs = record(&f);
    let real = f.hosts[0].home.join("agent/config.toml").display().to_string();
    assert!(
        evs.iter()
            .any(|e| matches!(&e.kind, EventKind::WriteIntent { host, path, .. } if host == "h01" && *path == real)),
        "the write intent names the real path"
    );
    assert!(
        evs.iter().any(|e| matches!(&e.kind, EventKind::Reverted { host, path, verified: true, .. } if host == "h01" && *path == real)),
        "the revert names the real path and is verified"
    );
    // Free text still hides the secret-named value.
    let dir = f.hosts[0].home.join("agent").display().to_string();
    for e in &evs {
        if let EventKind::RunFinished { message, .. } | EventKind::HostFailed { reason: message, .. } = &e.kind {
            assert!(!message.contains(&dir), "masked in free text: {message}");
        }
    }
    let id = run_id(&f);
    let (code, out, err) = cmd(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to revert"), "{out}");
}

/// A damaged line in the middle of the record is an error for `revert`, never skipped.
#[test]
fn revert_refuses_a_record_with_a_damaged_line() {
    let f = TestFleet::start(1);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("agent/config.toml", BROKEN, "observe = \"2s\"", ""));
    let (code, ..) = cmd(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1);
    let ev = latest_run(&f).join("events.jsonl");
    let text = std::fs::read_to_string(&ev).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "{\"ts\":\"2026-11-30T00:00:00Z\",\"event\":\"write_in");
    std::fs::write(&ev, lines.join("\n") + "\n").unwrap();
    let (code, out, err) = cmd(&f, &["revert", &run_id(&f), "--yes"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("events.jsonl:4:"), "names the file and line: {err}");
}

/// Case 2: `kill -9` during batch 1, then `revert RUN`: every config is back AND every host the
/// run marked — changed or not yet — is free for the next rollout.
#[test]
fn kill_9_in_batch_1_then_revert_run_clears_every_marker() {
    let f = TestFleet::start(6);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..6).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(
            "agent/config.toml",
            GOOD,
            "observe = \"2s\"\nbatches = [\"40%\", \"100%\"]\nbatch_observe = \"60s\"",
            "",
        ),
    );
    let mut child = spawn_rollout(&f, &pb);
    wait_until(&f, "batch 1 window", Duration::from_secs(60), observing("batch 1"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(markers_on(&f).len(), 6, "the killed run marked every host");
    assert_eq!(f.config(5), orig[5], "the last batch was not reached");
    let id = run_id(&f);
    let (code, out, err) = cmd(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} restored");
    }
    assert_eq!(markers_on(&f), Vec::<String>::new(), "no marker outlives the revert");
    let evs = record(&f);
    let released = evs
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MarkerReleased { .. }))
        .count();
    assert_eq!(released, 6, "each release is recorded");
    let (code, out, _) = cmd(&f, &["status"]);
    assert_eq!(code, 0, "{out}");
    // The next rollout is not blocked by the killed run (exit 4 before the fix).
    let (code, out, err) = cmd(&f, &["rollout", pb.to_str().unwrap(), "--yes", "--batch-observe", "1s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(markers_on(&f), Vec::<String>::new(), "a finished run leaves no marker");
}

/// `status` names the markers a dead run left on hosts it never changed.
#[test]
fn status_lists_the_markers_of_a_run_that_is_no_longer_alive() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("agent/config.toml", GOOD, "observe = \"60s\"", ""));
    let mut child = spawn_rollout(&f, &pb);
    wait_until(&f, "canary window", Duration::from_secs(60), observing("canary"));
    child.kill().unwrap();
    child.wait().unwrap();
    let id = run_id(&f);
    let (code, out, _) = cmd(&f, &["status"]);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("marker") && out.contains("h03") && out.contains(&format!("bellwether revert {id}")),
        "{out}"
    );
}

/// Ctrl-C twice during a revert (the revert stops, exit 5), then `revert RUN`: every host is
/// put back and every marker is gone (issue: h02.. kept the marker, next rollout exit 4).
#[test]
fn double_interrupt_during_revert_then_revert_run_clears_every_marker() {
    let f = TestFleet::start(4);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    // A slow on_revert hook keeps the revert going long enough to interrupt it.
    let pb = f.playbook(
        "swap",
        &playbook(
            "agent/config.toml",
            GOOD,
            "observe = \"60s\"",
            "[hooks]\non_revert = [\"sleep 20\"]",
        ),
    );
    let mut child = spawn_rollout(&f, &pb);
    wait_until(&f, "canary window", Duration::from_secs(60), observing("canary"));
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    wait_until(&f, "the revert", Duration::from_secs(30), |k| {
        matches!(k, EventKind::Reverted { .. })
    });
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(5), "stopped during revert: needs attention");
    let id = run_id(&f);
    let (code, out, err) = cmd(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} restored");
    }
    assert_eq!(markers_on(&f), Vec::<String>::new(), "no marker outlives the revert");
    let (code, out, _) = cmd(&f, &["status"]);
    assert_eq!(code, 0, "{out}");
}

/// Case 3: someone edits h03 during the canary window: the write to h03 is refused, h03 is "left
/// alone" (never written: no hand repair), the hosts that were written are reverted, exit 1.
#[test]
fn a_host_edited_by_someone_else_is_left_alone_not_reported_for_repair() {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(
            "agent/config.toml",
            GOOD,
            "observe = \"4s\"\nbatches = [\"100%\"]\nbatch_observe = \"2s\"",
            "",
        ),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_until(&f, "canary window", Duration::from_secs(60), observing("canary"));
    let hand = [orig[2].clone(), b"# tuned by hand during the canary\n".to_vec()].concat();
    std::fs::write(f.hosts[2].home.join("agent/config.toml"), &hand).unwrap();
    let out = child.wait_with_output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "reverted, not needs-attention\n{so}\n{se}");
    assert_eq!(f.config(0), orig[0], "canary reverted");
    assert_eq!(f.config(1), orig[1], "h02 reverted");
    assert_eq!(f.config(2), hand, "h03 keeps the hand edit: the run never wrote it");
    let all = format!("{so}\n{se}");
    assert!(
        !all.contains("restore by hand") && !all.contains("revert FAILED"),
        "{all}"
    );
    assert!(all.contains("left alone") && all.contains("h03"), "{all}");
    let evs = record(&f);
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::WriteRefused { host, .. } if host == "h03")));
    assert!(!evs.iter().any(|e| matches!(e.kind, EventKind::RevertFailed { .. })));
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::RunFinished { outcome, exit: 1, .. } if outcome == "reverted")));
    assert_eq!(markers_on(&f), Vec::<String>::new());
}

/// Case 4: a record write that fails stops the run and reverts what it changed: here the snapshot
/// of h02's file cannot be saved (its folder name is taken by a file), so batch 1 stops
/// before writing h02, and the canary is put back.
#[test]
fn a_record_write_that_fails_stops_the_run_and_reverts() {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(
            "agent/config.toml",
            GOOD,
            "observe = \"4s\"\nbatches = [\"100%\"]\nbatch_observe = \"2s\"",
            "",
        ),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_until(&f, "canary window", Duration::from_secs(60), observing("canary"));
    std::fs::write(latest_run(&f).join("snapshots/h02"), "not a folder").unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(5), "record failed: needs attention\n{all}");
    assert!(all.contains("run record"), "{all}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} as it was");
    }
    let evs = record(&f);
    assert!(
        !evs.iter()
            .any(|e| matches!(&e.kind, EventKind::WriteIntent { host, .. } if host == "h02")),
        "h02 never written"
    );
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Reverted { host, verified: true, .. } if host == "h01")));
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::RunFinished { outcome, .. } if outcome == "record_failed")));
}
