//! The rollout against real sshd hosts running the fake agent: canary, batches, gates,
//! verified revert, crash recovery, locking, interrupts.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

fn playbook(model: &str, extra_watch: &str, rollout: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{model}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5
{extra_watch}

[rollout]
{rollout}
"#,
        rollout = with_defaults(rollout)
    )
}

/// The test's rollout lines plus short default windows for any it does not set.
fn with_defaults(rollout: &str) -> String {
    let has = |k: &str| rollout.lines().any(|l| l.trim_start().starts_with(&format!("{k} ")));
    let mut s = rollout.to_string();
    if !has("observe") {
        s.push_str("\nobserve = \"3s\"");
    }
    if !has("batch_observe") {
        s.push_str("\nbatch_observe = \"2s\"");
    }
    s
}

fn rollout(f: &TestFleet, pb: &str) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(["rollout", pb, "--yes"]);
    run(c)
}

fn latest_run(f: &TestFleet) -> std::path::PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(f.runs_dir()).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    runs.sort();
    runs.pop().expect("a run folder")
}

fn events(run: &std::path::Path) -> String {
    std::fs::read_to_string(run.join("events.jsonl")).unwrap()
}

#[test]
fn good_change_on_twelve_hosts_canary_then_batches() {
    let f = TestFleet::start(12);
    f.start_agents();
    let originals: Vec<Vec<u8>> = (0..12).map(|i| f.config(i)).collect();
    let pb = f.playbook("swap", &playbook(GOOD, "", "batches = [\"25%\", \"50%\", \"100%\"]"));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, orig) in originals.iter().enumerate() {
        let now = String::from_utf8(f.config(i)).unwrap();
        let expect = String::from_utf8(orig.clone()).unwrap().replace("name = \"claude-sonnet-4\"", &format!("name = \"{GOOD}\""));
        assert_eq!(now, expect, "host {i}: only the model line changes, comments kept");
    }
    let run = latest_run(&f);
    let ev = events(&run);
    // Canary first, then three batches, each passed.
    let phases: Vec<&str> = ev.lines().filter(|l| l.contains("\"event\":\"phase_passed\"")).collect();
    assert_eq!(phases.len(), 4, "{ev}");
    assert!(phases[0].contains("\"canary\""));
    let canary_written = ev.find("\"event\":\"written\",\"host\":\"h01\"").expect("canary written");
    let canary_passed = ev.find("\"phase\":\"canary\"}").unwrap_or(0).max(ev.find("phase_passed").unwrap());
    let batch_written = ev.find("\"event\":\"written\",\"host\":\"h02\"").expect("batch host written");
    assert!(canary_written < canary_passed && canary_passed < batch_written, "canary passes before any batch host is written");
    assert!(ev.contains("\"outcome\":\"done\""));
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("outcome: **done** (exit 0)"), "{summary}");
    assert!(summary.contains("hosts changed: 12, reverted: 0"), "{summary}");
    assert!(run.join("plan.json").exists());
    assert!(run.join("snapshots").read_dir().unwrap().count() == 12);
    // The secret in the config is in no record file.
    for entry in walk(&run) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).to_string();
        if entry.starts_with(run.join("snapshots")) {
            continue; // snapshots are the operator's own bytes, kept for revert
        }
        assert!(!text.contains("sk-ant-test-SECRET-123"), "secret leaked into {}", entry.display());
    }
    // No run markers are left on the hosts, and the lock is released.
    assert!(!f.hosts[0].home.join(".bellwether.lock").exists());
    assert!(!f.runs_dir().join("lock.json").exists());
    // `runs` lists it; `show` prints the summary.
    let (code, out, _) = run_cmd(&f, &["runs"]);
    assert_eq!(code, 0);
    assert!(out.contains("model-swap") && out.contains("done"), "{out}");
    let (code, out, _) = run_cmd(&f, &["show", "latest"]);
    assert_eq!(code, 0);
    assert!(out.contains("# Run "), "{out}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn run_cmd(f: &TestFleet, args: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(args);
    run(c)
}

#[test]
fn bad_model_fails_the_canary_which_is_restored_byte_for_byte() {
    let f = TestFleet::start(4);
    f.start_agents();
    let originals: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    let pb = f.playbook("broken", &playbook(BROKEN, "", "observe = \"20s\""));
    let t = Instant::now();
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(t.elapsed() < Duration::from_secs(18), "fails fast, not at the end of the 20s window: {:?}", t.elapsed());
    for (i, orig) in originals.iter().enumerate() {
        assert_eq!(&f.config(i), orig, "host {i} restored byte for byte");
    }
    let ev = events(&latest_run(&f));
    assert!(!ev.contains("\"host\":\"h02\",\"path\""), "no other host touched: {ev}");
    assert!(ev.contains("\"event\":\"reverted\",\"host\":\"h01\""), "{ev}");
    assert!(ev.contains("\"verified\":true"));
    let summary = std::fs::read_to_string(latest_run(&f).join("summary.md")).unwrap();
    assert!(summary.contains("model not found: claude-broken-9"), "first error line in the summary: {summary}");
    let matched = std::fs::read_to_string(latest_run(&f).join("matched.log")).unwrap();
    assert!(matched.contains(" h01 ERROR model not found"), "{matched}");
}

#[test]
fn non_tty_without_yes_refuses_and_changes_nothing() {
    let f = TestFleet::start(1);
    let orig = f.config(0);
    let pb = f.playbook("swap", &playbook(GOOD, "", ""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap()]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(f.config(0), orig);
}

#[test]
fn silent_agent_fails_the_silence_gate() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook("silent", &playbook("silent-model", "", ""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(f.config(0), orig);
    let ev = events(&latest_run(&f));
    assert!(ev.contains("\"gate\":\"silence\""), "{ev}");
}

#[test]
fn sigint_mid_canary_reverts_and_exits_1() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"60s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for(&f, "\"event\":\"phase_started\"", Duration::from_secs(20));
    wait_for(&f, "\"event\":\"health\"", Duration::from_secs(20));
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.config(0), orig);
    assert!(events(&latest_run(&f)).contains("\"event\":\"interrupted\""));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Wait until the latest run's events contain `needle`.
fn wait_for(f: &TestFleet, needle: &str, limit: Duration) {
    let t = Instant::now();
    loop {
        if let Ok(rd) = std::fs::read_dir(f.runs_dir()) {
            let mut runs: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
            runs.sort();
            if let Some(r) = runs.pop() {
                if std::fs::read_to_string(r.join("events.jsonl")).unwrap_or_default().contains(needle) {
                    return;
                }
            }
        }
        assert!(t.elapsed() < limit, "timed out waiting for {needle}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(dead_code)]
fn spawn(c: &mut Command) -> std::process::Child {
    c.spawn().unwrap()
}
