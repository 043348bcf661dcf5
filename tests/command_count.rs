//! How many remote commands a rollout starts per host (each is a shell start on a possibly
//! busy host): 3 for a zero-window rollout with apply and health — preflight (read, checks
//! and the run marker in one script), the write with apply then health (one script), the
//! marker's release. Counted by the controller (`remote_commands` event), against real sshd.

mod common;

use common::*;

fn playbook(tier: &str, rollout: &str) -> String {
    format!(
        r#"id = "push-restart"
tier = "{tier}"
component = "config"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "claude-sonnet-4-5" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[rollout]
{rollout}
"#
    )
}

fn per_host(f: &TestFleet) -> std::collections::BTreeMap<String, u32> {
    remote_commands(f).0
}

#[test]
fn a_zero_window_rollout_starts_three_remote_commands_per_host() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook(
        "push",
        &playbook("T1", "strategy = \"all_at_once\"\nbatch_observe = \"0s\""),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let counts = per_host(&f);
    eprintln!("remote commands per host (all_at_once, zero window): {counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (h, n) in &counts {
        assert_eq!(*n, 3, "{h}: {n} remote commands (3): {counts:?}");
    }
}

#[test]
fn a_canary_rollout_with_zero_windows_also_stays_at_three() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook(
        "push",
        &playbook("T2", "observe = \"0s\"\nbatch_observe = \"0s\"\nbatches = [\"100%\"]"),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    for (h, n) in per_host(&f) {
        assert_eq!(n, 3, "{h}: {n} remote commands (3)");
    }
}
