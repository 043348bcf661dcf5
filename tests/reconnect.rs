//! A connection that drops during an observation window is opened again at the start of the
//! next phase (sandbox hosts: `fault down` drops every connection, `clear` accepts again).

mod common;

use common::{latest_has, latest_run_in, observe_started, record, EventKind, Record};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"id = "reconnect-swap"
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
min_lines = 5

[rollout]
canary_hosts = ["h01"]
observe = "5s"
batches = ["100%"]
batch_observe = "2s"
"#;

/// The newest run's record, read typed.
fn latest_record(runs: &Path) -> Record {
    record(&latest_run_in(runs).expect("a run folder"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_during_the_canary_window_is_reopened_for_the_batch() {
    let d = tempfile::tempdir().unwrap();
    let sb = bellwether::sandbox::create(d.path(), 3).await.unwrap();
    let pb = sb.dir.join("playbooks/reconnect.toml");
    std::fs::write(&pb, PLAYBOOK).unwrap();
    let runs = sb.dir.join("runs");
    let child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .arg("--fleet")
        .arg(&sb.fleet)
        .arg("--runs-dir")
        .arg(&runs)
        .args(["rollout", pb.to_str().unwrap(), "--yes"])
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !latest_has(&runs, observe_started("canary")) {
        assert!(t.elapsed() < Duration::from_secs(30), "the canary window never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // h03 (the batch) loses its connection in the middle of the canary window, and is
    // reachable again before the window ends.
    sb.fault("h03", "down").unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sb.fault("h03", "clear").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ev = latest_record(&runs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}\n{ev}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ev.has(|k| matches!(k, EventKind::Reconnected { host, phase } if host == "h03" && phase == "batch 1")),
        "{ev}"
    );
    assert!(
        stdout.contains("h03: the connection had dropped; reconnected"),
        "{stdout}"
    );
    let cfg = std::fs::read_to_string(sb.dir.join("hosts/h03/agent/config.toml")).unwrap();
    assert!(cfg.contains("name = \"claude-sonnet-4-5\""), "{cfg}");
    sb.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_baseline_host_is_left_out_not_blamed_on_another_host() {
    let d = tempfile::tempdir().unwrap();
    let sb = bellwether::sandbox::create(d.path(), 3).await.unwrap();
    let pb = sb.dir.join("playbooks/baseline.toml");
    let text = PLAYBOOK
        .replace(
            "min_lines = 5",
            "min_lines = 5\nbaseline = { hosts = 1, max_error_rate_increase = \"5%\" }",
        )
        .replace("batches = [\"100%\"]", "batches = [\"50%\", \"100%\"]");
    std::fs::write(&pb, text).unwrap();
    let runs = sb.dir.join("runs");
    let child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .arg("--fleet")
        .arg(&sb.fleet)
        .arg("--runs-dir")
        .arg(&runs)
        .args(["rollout", pb.to_str().unwrap(), "--yes"])
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !latest_has(&runs, observe_started("canary")) {
        assert!(t.elapsed() < Duration::from_secs(30), "the canary window never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // h03 is batch 2 and batch 1's baseline; it goes down for good.
    sb.fault("h03", "down").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ev = latest_record(&runs);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{ev}");
    assert!(stdout.contains("batch 1: baseline h03 left out"), "{stdout}");
    assert!(
        stdout.contains("batch 1: passed"),
        "batch 1 is judged without its baseline: {stdout}"
    );
    assert!(
        !ev.has(|k| matches!(k, EventKind::HostFailed { host, .. } if host == "h02")),
        "h02 is not blamed: {ev}"
    );
    assert!(
        ev.has(|k| matches!(k, EventKind::HostFailed { host, .. } if host == "h03")),
        "{ev}"
    );
    sb.fault("h03", "clear").unwrap();
    sb.stop_agents().await;
}
