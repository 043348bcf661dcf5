//! What bellwether says, against real sshd hosts: wording in the middle of a sentence, who
//! holds a lock, what a resumed run counts, a failure's reason said once per stream, and
//! identical preflight errors said once for the hosts that share them.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn playbook(model: &str, rollout: &str) -> String {
    swap_playbook(
        model,
        "baseline = { hosts = 1, max_error_rate_increase = \"1%\" }",
        rollout,
    )
}

/// The binary as cron runs it: no `$USER` or `$LOGNAME`.
fn bw_cron(f: &TestFleet, args: &[&str]) -> Command {
    let mut c = f.bw();
    c.args(args).env_remove("USER").env_remove("LOGNAME");
    c
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn run_id(f: &TestFleet) -> String {
    latest_run(f).file_name().unwrap().to_string_lossy().to_string()
}

#[test]
fn without_user_in_the_environment_the_holder_is_user_at_machine_and_refusals_read_as_sentences() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("claude-sonnet-4-5", "observe = \"60s\""));
    let mut c = bw_cron(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(30));
    let me = format!("{}@{}", whoami(), machine());
    // The host marker and the lock both name user@machine (was `uid 0@vm`, which the stale
    // marker check could not even parse).
    let marker = std::fs::read_to_string(f.hosts[0].home.join(".bellwether.lock")).unwrap();
    let fields: Vec<&str> = marker.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{marker}");
    assert_eq!(fields[1], me, "{marker}");
    let (code, out, err) = run(bw_cron(&f, &["rollout", pb.to_str().unwrap(), "--yes"]));
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains(&format!("by {} (pid {}", whoami(), child.id())), "{err}");
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| matches!(k, EventKind::RunStarted { user, .. } if *user == whoami())),
        "{ev}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Without --yes and without a terminal: refused, in one sentence.
    let id = run_id(&f);
    let (code, _, err) = run(bw_cron(&f, &["revert", &id]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "refusing to revert 1 file(s) and 0 link(s) on 1 host(s) changed by run {id} without --yes"
        )),
        "{err}"
    );
    let (code, _, err) = run(bw_cron(&f, &["resume", &id]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("refusing to resume run {id} from canary without --yes")),
        "{err}"
    );
    let (code, out, err) = run(bw_cron(&f, &["revert", &id, "--yes"]));
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn a_resumed_run_counts_the_hosts_it_has_left_to_change_not_its_baseline() {
    let f = TestFleet::start(4);
    f.start_agents();
    // Canary h01, batch 1 h02 (also the canary's baseline), batch 2 h03 and h04.
    let pb = f.playbook(
        "swap",
        &playbook(
            "claude-sonnet-4-5",
            "observe = \"2s\"\nbatches = [\"25%\", \"100%\"]\nbatch_observe = \"6s\"",
        ),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("batch 2"), Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    let id = run_id(&f);
    let mut c = f.bw();
    c.args(["resume", &id, "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let ev = record(&latest_run(&f));
    let resumed: Vec<&Vec<String>> = ev
        .kinds()
        .filter_map(|k| match k {
            EventKind::RunStarted {
                resumed: true, targets, ..
            } => Some(targets),
            _ => None,
        })
        .collect();
    assert_eq!(resumed, vec![&vec!["h03".to_string(), "h04".to_string()]], "{ev}");
    let summary = std::fs::read_to_string(latest_run(&f).join("summary.md")).unwrap();
    assert!(summary.contains("resumed model-swap on 2 target(s)"), "{summary}");
}

#[test]
fn a_failure_reason_is_said_once_on_stdout_and_once_on_stderr() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("broken", &playbook("claude-broken-9", "observe = \"3s\""));
    let (code, out, err) = run(bw_cron(&f, &["rollout", pb.to_str().unwrap(), "--yes"]));
    assert_eq!(code, 1, "{out}\n{err}");
    let reason = "error lines (max 0)";
    assert_eq!(out.matches(reason).count(), 1, "once, as the revert begins: {out}");
    assert_eq!(err.matches(reason).count(), 1, "once, in the error line: {err}");
    assert!(out.contains("REVERTING 1 host(s): canary failed on h01: "), "{out}");
    assert!(
        out.contains(" REVERTED: every changed host (1) was reverted and verified\n"),
        "{out}"
    );
    assert!(
        err.contains("error: run ") && err.contains(" reverted: canary failed on h01: "),
        "{err}"
    );
}

#[test]
fn identical_preflight_errors_are_said_once_for_every_host_that_has_them() {
    let f = TestFleet::start(4);
    for h in &f.hosts {
        std::fs::remove_file(h.home.join("agent/config.toml")).unwrap();
    }
    let pb = f.playbook("swap", &playbook("claude-sonnet-4-5", ""));
    let (code, out, err) = run(bw_cron(&f, &["rollout", pb.to_str().unwrap(), "--yes"]));
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        err.contains("preflight failed on 4 of 4 host(s); nothing was changed"),
        "{err}"
    );
    assert!(err.contains("\n  h01..h04 (4 hosts): same error: "), "{err}");
    assert_eq!(err.matches("agent/config.toml").count(), 1, "said once: {err}");
    let (code, out, err) = run(bw_cron(&f, &["plan", pb.to_str().unwrap()]));
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        out.contains("preflight FAILED on 4 host(s):\n  h01..h04 (4 hosts): same error: "),
        "{out}"
    );
    assert_eq!(out.matches("agent/config.toml").count(), 1, "said once: {out}");
}
