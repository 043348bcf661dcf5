//! The fleet's `command_timeout` limits bellwether's own remote commands (preflight, markers,
//! file reads and writes): a host whose preflight hangs fails within it, and nothing changes.
//! It replaced a fixed 20 s that busy fleets outgrew (bench/README.md).

mod common;

use common::*;
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"id = "push-restart"
tier = "T1"
component = "config"
targets = { groups = ["prod"] }

[[edit]]
path = "agent/config.toml"
set = { "model.name" = "claude-sonnet-4-5" }

[apply]
command = "./agentctl restart"
health = "./agentctl status"

[rollout]
strategy = "all_at_once"
batch_observe = "0s"
"#;

/// Open `fifo` for reading and close it, so a writer blocked on opening it goes on and ends.
fn unblock(fifo: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
}

#[test]
fn a_hung_preflight_fails_within_the_fleets_command_timeout() {
    let f = TestFleet::start(2);
    f.start_agents();
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet.replacen("[defaults]\n", "[defaults]\ncommand_timeout = \"2s\"\n", 1);
    std::fs::write(f.fleet_path(), fleet).unwrap();
    // A FIFO where h02's run marker goes: placing the marker blocks opening it for writing.
    let fifo = f.hosts[1].home.join(".bellwether.lock");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let before = [f.config(0), f.config(1)];
    let pb = f.playbook("push", PLAYBOOK);
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let t = Instant::now();
    let (code, out, err) = run(c);
    let took = t.elapsed();
    unblock(&fifo);
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(err.contains("timed out after 2s"), "{out}\n{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}, not ~2s: {err}");
    assert_eq!([f.config(0), f.config(1)], before, "nothing changed");
}
