//! The rollout against real sshd hosts running the fake agent: canary, batches, gates,
//! verified revert, crash recovery, locking, interrupts.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

fn playbook(model: &str, extra_watch: &str, rollout: &str) -> String {
    swap_playbook(model, extra_watch, &with_defaults(rollout))
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
        let expect = String::from_utf8(orig.clone())
            .unwrap()
            .replace("name = \"claude-sonnet-4\"", &format!("name = \"{GOOD}\""));
        assert_eq!(now, expect, "host {i}: only the model line changes, comments kept");
    }
    let run = latest_run(&f);
    let ev = record(&run);
    // Canary first, then three batches, each passed.
    let phases: Vec<&str> = ev
        .kinds()
        .filter_map(|k| match k {
            EventKind::PhasePassed { phase } => Some(phase.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(phases.len(), 4, "{ev}");
    assert_eq!(phases[0], "canary", "{ev}");
    let canary_written = ev
        .position(|k| matches!(k, EventKind::Written { host, .. } if host == "h01"))
        .expect("canary written");
    let canary_passed = ev
        .position(|k| matches!(k, EventKind::PhasePassed { phase } if phase == "canary"))
        .expect("canary passed");
    let batch_written = ev
        .position(|k| matches!(k, EventKind::Written { host, .. } if host != "h01"))
        .expect("batch host written");
    assert!(
        canary_written < canary_passed && canary_passed < batch_written,
        "canary passes before any batch host is written: {ev}"
    );
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("outcome: **done** (exit 0)"), "{summary}");
    assert!(summary.contains("hosts changed: 12, reverted: 0"), "{summary}");
    assert!(run.join("plan.json").exists());
    assert!(run.join("snapshots").read_dir().unwrap().count() == 12);
    {
        use std::os::unix::fs::PermissionsExt;
        let snap = walk(&run.join("snapshots")).pop().unwrap();
        assert_eq!(
            std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777,
            0o600,
            "snapshots are owner-only"
        );
        assert_eq!(
            std::fs::metadata(run.join("snapshots")).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    // The secret in the config is in no record file.
    for entry in walk(&run) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).to_string();
        if entry.starts_with(run.join("snapshots")) {
            continue; // snapshots are the operator's own bytes, kept for revert
        }
        assert!(
            !text.contains("sk-ant-test-SECRET-123"),
            "secret leaked into {}",
            entry.display()
        );
    }
    // No run markers are left on the hosts, and the lock is released.
    assert!(!f.hosts[0].home.join(".bellwether.lock").exists());
    assert_eq!(locks_held(&f.runs_dir()), 0, "lock released");
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
    assert!(
        t.elapsed() < Duration::from_secs(18),
        "fails fast, not at the end of the 20s window: {:?}",
        t.elapsed()
    );
    for (i, orig) in originals.iter().enumerate() {
        assert_eq!(&f.config(i), orig, "host {i} restored byte for byte");
    }
    let ev = record(&latest_run(&f));
    assert!(
        !ev.has(|k| file_host(k).is_some_and(|h| h != "h01")),
        "no other host touched: {ev}"
    );
    assert!(
        ev.has(|k| matches!(k, EventKind::Reverted { host, verified: true, .. } if host == "h01")),
        "{ev}"
    );
    let summary = std::fs::read_to_string(latest_run(&f).join("summary.md")).unwrap();
    assert!(
        summary.contains("model not found: claude-broken-9"),
        "first error line in the summary: {summary}"
    );
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
    // The old agent's last lines (logged before the restart) may still be arriving when the
    // window opens on a loaded machine; a working agent logs ~30 lines in the 3 s window.
    let pb = f.playbook(
        "silent",
        &playbook("silent-model", "", "").replace("min_lines = 5", "min_lines = 15"),
    );
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(f.config(0), orig);
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| breaches(k).iter().any(|b| b.gate == GateKind::Silence)),
        "{ev}"
    );
}

#[test]
fn sigint_mid_canary_reverts_and_exits_1() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"60s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::PhaseStarted { .. }),
        Duration::from_secs(20),
    );
    wait_for_event(&f, |k| matches!(k, EventKind::Health { .. }), Duration::from_secs(20));
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.config(0), orig);
    let ev = record(&latest_run(&f));
    assert!(ev.has(|k| matches!(k, EventKind::Interrupted { .. })), "{ev}");
}

#[test]
fn second_sigint_leaves_hosts_as_they_are_and_says_how_to_finish() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    // A slow apply keeps the revert busy long enough for the second Ctrl-C to land in it.
    let pb = playbook(GOOD, "", "observe = \"60s\"").replace(
        "command = \"./agentctl restart\"",
        "command = \"./agentctl restart; sleep 3\"",
    );
    let pb = f.playbook("swap", &pb);
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::ObserveStarted { .. }),
        Duration::from_secs(30),
    );
    unsafe { libc_kill(child.id() as i32, 2) };
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::RevertStarted { .. }),
        Duration::from_secs(20),
    );
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    let run = latest_run(&f);
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains("hosts were left as they are") && stderr.contains(&format!("bellwether revert {id}")),
        "{stderr}"
    );
    let ev = record(&run);
    assert!(
        ev.has(|k| matches!(k, EventKind::Interrupted { reason } if reason.contains("second interrupt during revert"))),
        "{ev}"
    );
    assert!(
        !ev.has(|k| matches!(k, EventKind::HostRestored { .. })),
        "the revert was cut short: {ev}"
    );
    let (code, out, err) = run_cmd(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    // The revert finished the cut-short part: the restored config is applied and healthy.
    let ev = record(&run);
    assert!(
        ev.has(|k| matches!(
            k,
            EventKind::HostRestored { host, apply_ok: true, health_ok: true } if host == "h01"
        )),
        "{ev}"
    );
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[allow(dead_code)]
fn spawn(c: &mut Command) -> std::process::Child {
    c.spawn().unwrap()
}

fn originals(f: &TestFleet) -> Vec<Vec<u8>> {
    (0..f.hosts.len()).map(|i| f.config(i)).collect()
}

fn assert_all_restored(f: &TestFleet, orig: &[Vec<u8>]) {
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host h{:02} restored byte for byte", i + 1);
    }
}

#[test]
fn failure_in_the_second_batch_reverts_every_changed_host() {
    let f = TestFleet::start(6);
    // h04 (alone in batch 2) cannot serve the new model.
    std::fs::write(f.hosts[3].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook("swap", &playbook(GOOD, "", "batches = [\"25%\", \"50%\", \"100%\"]"));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let ev = record(&latest_run(&f));
    for h in ["h01", "h02", "h03", "h04"] {
        assert!(
            ev.has(|k| matches!(k, EventKind::Reverted { host, .. } if host == h)),
            "{h} reverted: {ev}"
        );
    }
    assert!(
        !ev.has(|k| matches!(k, EventKind::Written { host, .. } if host == "h05")),
        "batch 3 never started: {ev}"
    );
    assert!(out.contains("batch 2 failed on h04"), "{out}");
}

#[test]
fn p95_latency_gate_fails_a_slow_model_and_passes_a_fast_one() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let gate = "metrics = [{ name = \"latency_ms\", capture = 'latency_ms=(\\d+)', p95_max = 800 }]";
    let pb = f.playbook("slow", &playbook("slow-model", gate, ""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| breaches(k)
            .iter()
            .any(|b| b.gate == GateKind::Metric && b.message.contains("p95"))),
        "{ev}"
    );
    let pb = f.playbook("fast", &playbook(GOOD, gate, ""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn error_rate_gate_fails_a_flaky_model_and_passes_under_a_looser_limit() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "flaky",
        &playbook("flaky-model", "max_errors = 1000\nmax_error_rate = \"3%\"", ""),
    );
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| breaches(k).iter().any(|b| b.gate == GateKind::ErrorRate)),
        "{ev}"
    );
    let pb = f.playbook(
        "flaky2",
        &playbook("flaky-model", "max_errors = 1000\nmax_error_rate = \"25%\"", ""),
    );
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn baseline_outage_everywhere_passes_canary_only_errors_fail() {
    let f = TestFleet::start(4);
    for h in &f.hosts {
        std::fs::write(h.home.join("agent/outage"), "").unwrap();
    }
    f.start_agents();
    let base = "baseline = { hosts = 2, max_error_rate_increase = \"5%\" }";
    let pb = f.playbook("outage", &playbook(GOOD, base, "observe = \"4s\""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(
        code, 0,
        "a provider outage on every host must not fail the canary:\n{out}\n{err}"
    );
    // Now the outage is over, and the canary alone is broken.
    for h in &f.hosts {
        std::fs::remove_file(h.home.join("agent/outage")).unwrap();
    }
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook("canary-only", &playbook(BROKEN, base, "observe = \"4s\""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| matches!(k, EventKind::ObserveStarted { baseline, .. } if baseline == &["h02", "h03"])),
        "{ev}"
    );
}

#[test]
fn kill_9_during_batch_1_then_revert_run_restores_every_changed_host() {
    let f = TestFleet::start(5);
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook(GOOD, "", "batches = [\"50%\", \"100%\"]\nbatch_observe = \"60s\""),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("batch 1"), Duration::from_secs(40));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert_ne!(f.config(1), orig[1], "batch 1 host was changed before the kill");
    let run_id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    // `status` flags it for monitoring (exit 5) with the exact command.
    let (code, out, _) = run_cmd(&f, &["status"]);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("STALE") && out.contains(&format!("bellwether revert {run_id}")),
        "{out}"
    );
    let (code, out, err) = run_cmd(&f, &["revert", &run_id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    assert_eq!(run_cmd(&f, &["status"]).0, 0, "nothing left to attend to");

    assert!(!f.hosts[0].home.join(".bellwether.lock").exists(), "markers removed");
    let (code, out, _) = run_cmd(&f, &["revert", &run_id, "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to revert"), "{out}");
}

#[test]
fn resume_after_a_kill_in_the_canary_window_completes_the_rollout() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"6s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    let (code, out, err) = run_cmd(&f, &["resume", &run_id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..3 {
        assert!(
            String::from_utf8(f.config(i))
                .unwrap()
                .contains(&format!("name = \"{GOOD}\"")),
            "host {i}"
        );
    }
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| matches!(k, EventKind::RunStarted { resumed: true, .. })),
        "{ev}"
    );
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
}

#[test]
fn a_second_rollout_while_one_runs_exits_4_naming_the_holder() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"30s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = c.spawn().unwrap();
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::ObserveStarted { .. }),
        Duration::from_secs(30),
    );
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 4, "{out}\n{err}");
    let run_id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    assert!(
        err.contains(&run_id) && err.contains("started") && err.contains(&format!("pid {}", child.id())),
        "{err}"
    );
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn host_unreachable_in_batch_2_reverts_everything_with_max_failed_hosts_0() {
    let mut f = TestFleet::start(5);
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook(
            GOOD,
            "",
            "observe = \"5s\"\nbatches = [\"50%\", \"100%\"]\nmax_failed_hosts = 0",
        ),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(30));
    f.hosts[3].kill_hard(); // h04, in batch 2
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in [0, 1, 2, 4] {
        assert_eq!(f.config(i), orig[i], "host {i}");
    }
    assert!(
        stdout.contains("batch 2") && stdout.contains("h04") && stdout.contains("connection was lost"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every changed host (3) was reverted and verified"),
        "{stdout}"
    );
}

#[test]
fn failing_before_hook_writes_nothing_and_secrets_stay_out_of_every_output() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let pb = playbook(GOOD, "", "").replace(
        "[rollout]",
        "[hooks]\nbefore = [\"echo 'upstream said: api_key = sk-ant-test-SECRET-123' >&2; exit 4\"]\n\n[rollout]",
    );
    let pb = f.playbook("hook", &pb);
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let run = latest_run(&f);
    let ev = record(&run);
    assert!(ev.has(|k| matches!(k, EventKind::Hook { ok: false, .. })), "{ev}");
    assert!(
        !ev.has(|k| matches!(k, EventKind::WriteIntent { .. })),
        "nothing was written: {ev}"
    );
    assert!(
        out.contains("before-hook") && out.contains("nothing was written"),
        "{out}"
    );
    // The bytes on disk, not the parsed record: the secret must be masked in the file itself.
    let raw = raw_events(&run);
    for text in [raw, std::fs::read_to_string(run.join("summary.md")).unwrap(), out, err] {
        assert!(!text.contains("sk-ant-test-SECRET-123"), "secret leaked: {text}");
    }
}

#[test]
fn a_killed_run_leaves_stale_markers_that_break_lock_clears() {
    let f = TestFleet::start(2);
    f.start_agents();
    // A marker as a killed bellwether on this machine would leave it.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(
        f.hosts[1].home.join(".bellwether.lock"),
        format!("20260101T000000000Z-old u@{host} 999999999\n"),
    )
    .unwrap();
    let pb = f.playbook("swap", &playbook(GOOD, "", ""));
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        err.contains("h02 (run 20260101T000000000Z-old") && err.contains("--break-lock"),
        "{err}"
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes", "--break-lock"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let ev = record(&latest_run(&f));
    assert!(ev.has(|k| matches!(k, EventKind::LockBroken { .. })), "{ev}");
    assert!(!f.hosts[1].home.join(".bellwether.lock").exists());
}

#[test]
fn preflight_refuses_a_file_whose_directory_does_not_exist() {
    let f = TestFleet::start(2);
    let orig = originals(&f);
    let pb = playbook(GOOD, "", "").replace(
        "[apply]",
        "[[edit]]\npath = \"no-such-dir/extra.env\"\nset = { MODEL = \"x\" }\ncreate = true\n\n[apply]",
    );
    let pb = f.playbook("nodir", &pb);
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(err.contains("directory no-such-dir does not exist"), "{err}");
    assert_all_restored(&f, &orig);
}

#[test]
fn a_failure_after_resume_reverts_hosts_changed_before_the_interruption_too() {
    let f = TestFleet::start(4);
    // h04 (alone in batch 2) cannot serve the new model.
    std::fs::write(f.hosts[3].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "swap",
        &playbook(GOOD, "", "batches = [\"50%\", \"100%\"]\nbatch_observe = \"6s\""),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("batch 1"), Duration::from_secs(40));
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    // Resume from another directory: the record holds an absolute playbook path.
    let mut c = f.bw();
    c.current_dir("/").args(["resume", &run_id, "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    assert!(
        out.contains("every changed host (4) was reverted and verified"),
        "{out}"
    );
}

#[test]
fn a_secret_fleet_var_spliced_into_a_command_never_reaches_output_or_records() {
    let f = TestFleet::start(2);
    f.start_agents();
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet.replace(
        "groups = [\"prod\"]\n",
        "groups = [\"prod\"]\nvars = { api_token = \"tok-VERYSECRET-42\" }\n",
    );
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let pb = playbook(GOOD, "", "").replace(
        "command = \"./agentctl restart\"",
        "command = \"echo using --auth {{ vars.api_token }}; test {{ vars.api_token }} = tok-VERYSECRET-42 && ./agentctl restart\"",
    );
    let pb = f.playbook("secret", &pb);
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    let run = latest_run(&f);
    // The bytes on disk (events.jsonl raw), not the parsed record: nothing may hold the secret.
    let mut texts = vec![out, err];
    for name in ["events.jsonl", "plan.json", "summary.md"] {
        texts.push(std::fs::read_to_string(run.join(name)).unwrap());
    }
    let (_, plan_out, _) = run_cmd(&f, &["plan", pb.to_str().unwrap(), "--json"]);
    texts.push(plan_out);
    for t in &texts {
        assert!(!t.contains("tok-VERYSECRET-42"), "secret leaked: {t}");
    }
    let ev = record(&run);
    assert!(
        ev.has(|k| matches!(k, EventKind::Apply { command, .. } if command.contains("--auth ••••"))),
        "the command is recorded, masked: {ev}"
    );
    // `revert RUN` works from the record: the masked commands are re-rendered with the real
    // secret (the apply command checks it), so the revert applies and verifies.
    let orig_after = f.config(0);
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    let (code, out, err) = run_cmd(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_ne!(f.config(0), orig_after, "the completed change was rolled back");
    assert!(!out.contains("tok-VERYSECRET-42") && !err.contains("tok-VERYSECRET-42"));
}

#[test]
fn dry_run_and_bad_canary_leave_no_marker_behind() {
    let f = TestFleet::start(2);
    let pb = f.playbook("swap", &playbook(GOOD, "", ""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes", "--canary", "h99"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--canary \"h99\""), "{err}");
    // Validated before the run exists: no folder that `runs` would list as interrupted.
    assert!(run_dirs(&f).is_empty(), "a bad --canary leaves no run folder");
    let (code, out, _) = {
        let mut c = f.bw();
        c.args(["runs"]);
        run(c)
    };
    assert_eq!(code, 0);
    assert!(!out.contains("interrupted"), "{out}");
    // A host of the fleet that the playbook does not target is refused the same way.
    std::fs::write(
        f.fleet_path(),
        std::fs::read_to_string(f.fleet_path())
            .unwrap()
            .replacen("groups = [\"prod\"]", "groups = [\"staging\"]", 1),
    )
    .unwrap();
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes", "--canary", "h01"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not one of this playbook's targets"), "{err}");
    assert!(run_dirs(&f).is_empty(), "still no run folder");
    std::fs::write(
        f.fleet_path(),
        std::fs::read_to_string(f.fleet_path())
            .unwrap()
            .replacen("groups = [\"staging\"]", "groups = [\"prod\"]", 1),
    )
    .unwrap();
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--dry-run"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    for h in &f.hosts {
        assert!(!h.home.join(".bellwether.lock").exists(), "{} has a marker", h.name);
    }
    // And a real run right after is not blocked by anything left over.
    f.start_agents();
    let (code, out, err) = rollout(&f, pb.to_str().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn sigterm_mid_canary_reverts_like_ctrl_c() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"60s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::ObserveStarted { .. }),
        Duration::from_secs(30),
    );
    unsafe { libc_kill(child.id() as i32, 15) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGTERM: stopping promotion"));
    // A window cut short is not a passed one.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("gates passed"), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert_eq!(f.config(0), orig);
}

#[test]
fn rollouts_of_disjoint_hosts_run_side_by_side_overlapping_ones_do_not() {
    let f = TestFleet::start(3);
    f.start_agents();
    let only = |id: &str, host: &str, observe: &str| {
        playbook(GOOD, "", &format!("observe = \"{observe}\""))
            .replace(
                "targets = { groups = [\"prod\"] }",
                &format!("targets = {{ hosts = [\"{host}\"] }}"),
            )
            .replace("id = \"model-swap\"", &format!("id = \"{id}\""))
    };
    let first = f.playbook("first", &only("swap-h01", "h01", "30s"));
    let mut c = f.bw();
    c.args(["rollout", first.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = c.spawn().unwrap();
    wait_for_event(
        &f,
        |k| matches!(k, EventKind::ObserveStarted { .. }),
        Duration::from_secs(30),
    );
    let second = f.playbook("second", &only("swap-h02", "h02", "2s"));
    let (code, out, err) = rollout(&f, second.to_str().unwrap());
    assert_eq!(code, 0, "h02 is not h01: {out}\n{err}");
    let all = f.playbook("all", &playbook(GOOD, "", ""));
    let (code, out, err) = rollout(&f, all.to_str().unwrap());
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains("swap-h01"), "{err}");
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(locks_held(&f.runs_dir()), 0);
}

#[test]
fn the_log_watch_follows_a_rotated_log_file() {
    let f = TestFleet::start(2);
    f.start_agents();
    // 6 s at ~10 lines/s: only a watch that follows the new file after rotation sees 40 lines.
    let pb = f.playbook(
        "rotate",
        &playbook(GOOD, "", "observe = \"6s\"\nbatch_observe = \"6s\"").replace("min_lines = 5", "min_lines = 40"),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    let log = f.hosts[0].home.join("agent/agent.log");
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        f.hosts[0].home.join("agent/agent.log").exists(),
        "the agent wrote a new log after the rotation"
    );
}

#[test]
fn dry_run_and_a_yes_run_show_plans_diff_summary_and_warnings_first() {
    let f = TestFleet::start(3);
    f.start_agents();
    // A misspelt key: the change only adds a line, which plan warns about.
    let pb = f.playbook("typo", &playbook(GOOD, "", "").replace("model.name", "model.nmae"));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--dry-run"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("same diff"), "one block for the three hosts:\n{out}");
    assert!(out.contains(&format!("+nmae = \"{GOOD}\"")), "the diff itself:\n{out}");
    assert!(out.contains("warning:") && out.contains("only adds lines"), "{out}");
    assert!(out.find("only adds lines") < out.find("dry run: nothing was changed"));
    // With --yes too (cron mail shows what was rolled), before the first host is touched.
    let pb = f.playbook("swap", &playbook(GOOD, "", "observe = \"1s\""));
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let diff_at = out.find(&format!("+name = \"{GOOD}\"")).expect("the diff is shown");
    assert!(diff_at < out.find("canary: 1 host(s)").unwrap(), "{out}");
}
