//! The canary's own log kept with the run (`logs/HOST.log`), against real sshd hosts running
//! the fake agent: the whole window (the `before` recording too) with receive times, the
//! baseline hosts beside it, secrets masked, the cap held with a chatty agent, `show --log`.

mod common;

use bellwether::record::{read_events, EventKind};
use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";

fn playbook(watch_extra: &str, rollout: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
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
{watch_extra}

[rollout]
batches = ["100%"]
batch_observe = "1s"
{rollout}
"#
    )
}

fn tagged(text: &str, window: &str) -> usize {
    text.lines().filter(|l| l.contains(&format!(" [{window}] "))).count()
}

fn wait_canary_window(f: &TestFleet) {
    let t = Instant::now();
    loop {
        let seen = run_dirs(f).last().and_then(|r| read_events(r).ok()).is_some_and(|evs| {
            evs.iter()
                .any(|e| matches!(&e.kind, EventKind::ObserveStarted { phase, .. } if phase == "canary"))
        });
        if seen {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "canary window");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_passing_canary_keeps_its_whole_window_with_the_baseline_beside_it() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook(
        "swap",
        &playbook("before = \"2s\"\nbaseline = { hosts = 1 }", "observe = \"4s\""),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_canary_window(&f);
    // A secret the agent prints mid-window must not reach the record.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(f.hosts[0].home.join("agent/agent.log"))
        .unwrap();
    writeln!(log, "INFO provider config api_key = \"sk-ant-test-SECRET-123\" loaded").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rd = latest_run(&f);
    let canary = std::fs::read_to_string(rd.join("logs/h01.log")).unwrap();
    // The agent logs every ~100 ms: ~20 lines before, ~40 in the canary window (± the
    // window's edges and the restart).
    let (before, during) = (tagged(&canary, "before"), tagged(&canary, "canary"));
    assert!((10..=30).contains(&before), "before window: {before} lines\n{canary}");
    assert!((20..=60).contains(&during), "canary window: {during} lines\n{canary}");
    let first = canary.lines().next().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(first.split(' ').next().unwrap()).is_ok(),
        "each line starts with its receive time: {first}"
    );
    assert!(canary.contains("api_key = \"••••\""), "the secret line is kept, masked");
    assert!(!canary.contains("sk-ant-test-SECRET-123"));
    let base = std::fs::read_to_string(rd.join("logs/h02.log")).unwrap();
    assert!(
        tagged(&base, "canary") >= 20,
        "the baseline's lines for the same window\n{base}"
    );
    assert!(
        !rd.join("logs/h03.log").exists(),
        "batch hosts keep only error lines by default"
    );
    let summary = std::fs::read_to_string(rd.join("summary.md")).unwrap();
    assert!(summary.contains("[logs/h01.log](logs/h01.log)"), "{summary}");
    // `show --log HOST` prints it; an unknown host is bad input naming what was kept.
    let id = rd.file_name().unwrap().to_string_lossy().to_string();
    let mut c = f.bw();
    c.args(["show", &id, "--log", "h01"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert_eq!(tagged(&out, "canary"), during);
    let mut c = f.bw();
    c.args(["show", &id, "--log", "h99"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2);
    assert!(err.contains("h01") && err.contains("h02"), "{err}");
}

#[test]
fn a_chatty_agent_is_capped_and_the_file_says_so() {
    let f = TestFleet::start(2);
    f.start_agents();
    // A long window that ends when the blob's last line (an error) arrives: the stream is in
    // order, so every chatty line before it has been through the log file by then, however
    // slow the machine (no race between the window's end and the reading).
    let pb = f.playbook("swap", &playbook("max_errors = 0", "observe = \"60s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_canary_window(&f);
    // ~6 MiB of log lines at once: more than the 4 MiB cap.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(f.hosts[0].home.join("agent/agent.log"))
        .unwrap();
    let line = format!("INFO chatty {}\n", "x".repeat(100));
    let blob = line.repeat(60_000);
    log.write_all(blob.as_bytes()).unwrap();
    log.write_all(b"ERROR the end of the chatter\n").unwrap();
    drop(log);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the end of the chatter"),
        "the window ended at the last line: {err}"
    );
    let rd = latest_run(&f);
    let meta = std::fs::metadata(rd.join("logs/h01.log")).unwrap();
    let cap = bellwether::record::logs::CAP_BYTES;
    assert!(meta.len() <= cap + 200, "capped: {} bytes", meta.len());
    let text = std::fs::read_to_string(rd.join("logs/h01.log")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("more line(s) not kept") && last.contains(&cap.to_string()),
        "the cap and the dropped lines are stated at the end: {last}"
    );
}

/// The tails start before the change and are running on the host when it is made: an error
/// the agent logs the instant it restarts (here, by the apply command itself) fails the
/// canary at once. (A slow `tail` start is `tests/ssh.rs`'s
/// `a_watched_file_is_followed_from_where_it_was_when_the_stream_started`.)
#[test]
fn an_error_logged_the_instant_the_agent_restarts_fails_the_canary() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = playbook("max_errors = 0", "observe = \"30s\"").replace(
        "command = \"./agentctl restart\"",
        "command = \"./agentctl restart && echo 'ERROR cannot load the model at start-up' >> agent/agent.log\"",
    );
    let pb = f.playbook("swap", &pb);
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let t = Instant::now();
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("cannot load the model at start-up"),
        "{out}\n{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "failed fast, not at the window's end"
    );
    assert_eq!(f.config(0), f.config(1), "the canary was put back");
}

#[test]
fn keep_log_errors_keeps_no_log_files() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("keep_log = \"errors\"", "observe = \"2s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!latest_run(&f).join("logs").exists());
}

#[test]
fn a_failed_canary_summary_quotes_the_lines_around_its_first_error() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook(
        "swap",
        &playbook("", "observe = \"3s\"").replace(GOOD, "claude-broken-9"),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{out}\n{err}");
    let rd = latest_run(&f);
    let summary = std::fs::read_to_string(rd.join("summary.md")).unwrap();
    let quote = summary
        .split("Around the first error on h01:")
        .nth(1)
        .unwrap_or_else(|| panic!("a quote around the first error\n{summary}"));
    assert!(quote.contains("ERROR model not found: claude-broken-9"), "{summary}");
    assert!(quote.contains(" [canary] "), "{summary}");
}
