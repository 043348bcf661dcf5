//! Progress of a real rollout, with and without a terminal: without one (cron mail, CI logs)
//! only the plain timestamped lines, no escape sequence or carriage return; on a terminal
//! (a pty from `script`, part of every Debian) the phase line with hosts changed of the total
//! and the observation window's live gate counts, around the same timestamped lines.

mod common;

use common::*;
use std::process::Command;

const PLAYBOOK: &str = r#"id = "model-swap"
tier = "T2"
component = "model"
targets = { groups = ["prod"] }

[[edit]]
path = "agent/config.toml"
set = { "model.name" = "claude-sonnet-4-5" }

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = { file = "agent/agent.log" }
errors = ["ERROR"]
metrics = [{ name = "latency_ms", capture = 'latency_ms=(\d+)', p95_max = 100000 }]
baseline = { hosts = 1, max_error_rate_increase = "1%" }

[rollout]
batches = ["100%"]
observe = "3s"
batch_observe = "2s"
"#;

#[test]
fn without_a_terminal_a_run_prints_plain_lines_only() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", PLAYBOOK);
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        assert!(!text.contains('\x1b'), "{name} has an escape sequence:\n{text}");
        assert!(!text.contains('\r'), "{name} has a carriage return:\n{text}");
        assert!(!text.contains("hosts changed ·"), "{name} has a bar:\n{text}");
    }
    let stamped = regex::Regex::new(r"^\d\d:\d\d:\d\d ").unwrap();
    assert!(
        out.lines()
            .any(|l| stamped.is_match(l) && l.ends_with("canary: passed")),
        "{out}"
    );
}

#[test]
fn on_a_terminal_the_phase_hosts_and_live_gate_counts_are_drawn() {
    // `script` (util-linux, in Debian's essential bsdutils) gives the run a terminal; CI's
    // fresh Debian has it, so a missing one is a failure, not a skip.
    assert!(
        Command::new("sh")
            .args(["-c", "command -v script"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "`script` (util-linux) is needed to give the run a terminal"
    );
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", PLAYBOOK);
    let cmd = format!(
        "{} --fleet {} --runs-dir {} rollout {} --yes",
        env!("CARGO_BIN_EXE_bellwether"),
        f.fleet_path().display(),
        f.runs_dir().display(),
        pb.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("SSH_AUTH_SOCK")
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in [
        "canary [",
        "0/1 hosts changed · changing",
        "1/1 hosts changed · observing",
        "batch 1 [",
        "lines",
        "latency_ms p95 ",
        "h02 (baseline)",
    ] {
        assert!(text.contains(want), "no {want:?} on the terminal:\n{text:?}");
    }
    // The plain lines are still there, each whole, above the bars.
    // (A line printed while the bars show is padded to the width, then the bars follow.)
    assert!(
        text.contains("canary: passed\r\n") || text.contains("canary: passed   "),
        "{text:?}"
    );
    assert!(text.contains("DONE: every target has the change"), "{text:?}");
}
