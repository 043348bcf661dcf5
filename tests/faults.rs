//! The fault matrix, against real sshd hosts running the fake agent. Crash points: the
//! controller dies (abort, like `kill -9`: no cleanup) right after each kind of event that
//! changes a host is durably recorded — `BELLWETHER_CRASH_AFTER=EVENT@HOST` puts the crash
//! exactly there (see src/record/crash.rs) — then `revert RUN` (and `resume RUN` where it
//! applies) must leave every file byte-identical (or fully changed), no marker behind, and
//! the documented exit codes. Host faults: the connection cut during a step.

mod common;

use bellwether::record::{read_events, EventKind};
use common::*;
use std::path::Path;

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

fn playbook(model: &str, extra: &str) -> String {
    let rollout = format!("observe = \"2s\"\nbatch_observe = \"1s\"\nbatches = [\"100%\"]\n{extra}");
    swap_playbook(model, "", &rollout)
}

/// Roll out with the controller crashing right after `point` (EVENT@HOST).
fn crash_after(f: &TestFleet, pb: &Path, point: &str) -> String {
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .env("BELLWETHER_CRASH_AFTER", point);
    let (code, out, err) = run(c);
    assert!(
        code != 0 && code != 1,
        "crashed at {point}, not a normal end ({code})\n{out}\n{err}"
    );
    let run = latest_run(f);
    let evs = read_events(&run).unwrap();
    assert!(
        !evs.iter().any(|e| matches!(e.kind, EventKind::RunFinished { .. })),
        "the crash came before the run's end"
    );
    run.file_name().unwrap().to_string_lossy().to_string()
}

fn markers(f: &TestFleet) -> Vec<String> {
    f.hosts
        .iter()
        .filter(|h| h.home.join(".bellwether.lock").exists())
        .map(|h| h.name.clone())
        .collect()
}

/// Start a rollout of `pb` in the background, its output captured.
fn spawn_rollout(f: &TestFleet, pb: &Path) -> std::process::Child {
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

/// Wait (up to 60 s) until the latest run's record holds an event that `seen` accepts.
fn wait_event(f: &TestFleet, what: &str, seen: impl Fn(&EventKind) -> bool) {
    let t = std::time::Instant::now();
    loop {
        let found = run_dirs(f)
            .last()
            .and_then(|r| read_events(r).ok())
            .is_some_and(|evs| evs.iter().any(|e| seen(&e.kind)));
        if found {
            return;
        }
        assert!(t.elapsed().as_secs() < 60, "{what} never came");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Wait for a spawned run to end: its exit code and its stdout and stderr together.
fn finish(child: std::process::Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn has_model(f: &TestFleet, i: usize, model: &str) -> bool {
    String::from_utf8(f.config(i))
        .unwrap()
        .contains(&format!("name = \"{model}\""))
}

/// Crash, then `revert RUN`: every host byte for byte as before, no marker, exit 0; `status`
/// clean; a second revert has nothing to do.
fn crash_then_revert(model: &str, point: &str) {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    let pb = f.playbook("swap", &playbook(model, ""));
    let id = crash_after(&f, &pb, point);
    assert!(!markers(&f).is_empty(), "the crashed run left its markers");
    let (code, out, err) = bw(&f, &["status"]);
    assert_eq!(code, 5, "status flags the crashed run\n{out}{err}");
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{point}: revert RUN\n{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "{point}: host {i} byte for byte");
    }
    assert_eq!(markers(&f), Vec::<String>::new(), "{point}: no marker left");
    let (code, out, _) = bw(&f, &["status"]);
    assert_eq!(code, 0, "{point}: status clean after the revert\n{out}");
    let (code, out, _) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to revert"), "{out}");
}

/// Crash, then `resume RUN`: every host has the change, no marker, exit 0.
fn crash_then_resume(point: &str) {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook("swap", &playbook(GOOD, ""));
    let id = crash_after(&f, &pb, point);
    let (code, out, err) = bw(&f, &["resume", &id, "--yes"]);
    assert_eq!(code, 0, "{point}: resume RUN\n{out}\n{err}");
    for i in 0..3 {
        assert!(has_model(&f, i, GOOD), "{point}: host {i} has the change");
    }
    assert_eq!(markers(&f), Vec::<String>::new(), "{point}: no marker left");
    assert_eq!(bw(&f, &["status"]).0, 0);
}

#[test]
fn crash_after_write_intent_then_revert() {
    crash_then_revert(GOOD, "write_intent@h01");
}

#[test]
fn crash_after_write_intent_then_resume() {
    crash_then_resume("write_intent@h01");
}

#[test]
fn crash_after_written_then_revert() {
    crash_then_revert(GOOD, "written@h01");
}

#[test]
fn crash_after_apply_then_revert() {
    crash_then_revert(GOOD, "apply@h01");
}

#[test]
fn crash_after_apply_then_resume() {
    crash_then_resume("apply@h01");
}

#[test]
fn crash_after_observe_started_then_revert() {
    crash_then_revert(GOOD, "observe_started");
}

#[test]
fn crash_after_a_batch_write_then_resume() {
    crash_then_resume("written@h03");
}

#[test]
fn crash_after_revert_started_then_revert() {
    crash_then_revert(BROKEN, "revert_started");
}

#[test]
fn crash_after_host_restored_then_revert() {
    crash_then_revert(BROKEN, "host_restored@h01");
}

#[test]
fn crash_after_a_restore_before_the_re_apply_then_revert_re_applies() {
    // The file is back but the agent still runs the broken config: revert RUN re-applies.
    let f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook("swap", &playbook(BROKEN, ""));
    let id = crash_after(&f, &pb, "reverted@h01");
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("re-applied"), "{out}");
    assert_eq!(f.config(0), orig[0]);
    assert_eq!(markers(&f), Vec::<String>::new());
    let evs = read_events(&latest_run(&f)).unwrap();
    assert!(evs.iter().any(
        |e| matches!(&e.kind, EventKind::HostRestored { host, apply_ok: true, health_ok: true } if host == "h01")
    ));
}

#[test]
fn crash_after_marker_placed_before_any_change_then_revert_clears_markers() {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    let pb = f.playbook("swap", &playbook(GOOD, ""));
    let id = crash_after(&f, &pb, "marker_placed@h03");
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o);
    }
    assert_eq!(markers(&f), Vec::<String>::new());
}

/// The host's sshd dies during the canary window (a host that goes away): the run reverts
/// what it can, names the unreachable host and the next command (exit 5); when the host is
/// back, `revert RUN` finishes the job byte for byte.
#[test]
fn a_host_that_drops_mid_run_and_comes_back_is_reverted_by_revert_run() {
    let mut f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(BROKEN, "").replace("observe = \"2s\"", "observe = \"4s\""),
    );
    let child = spawn_rollout(&f, &pb);
    wait_event(
        &f,
        "the canary write",
        |k| matches!(k, EventKind::Written { host, .. } if host == "h01"),
    );
    f.hosts[0].kill_hard();
    let (code, text) = finish(child);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("h01") && text.contains("bellwether revert"), "{text}");
    assert_ne!(
        f.config(0),
        orig[0],
        "h01 still holds the change while it is unreachable"
    );
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    f.hosts[0].restart();
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(f.config(0), orig[0]);
    assert_eq!(f.config(1), orig[1]);
    assert_eq!(markers(&f), Vec::<String>::new());
}

/// blue_green: the crash comes right after the flip is announced; `revert RUN` points the
/// link back at the old slot (or finds it never moved) and leaves the slot's file as it was.
#[test]
fn crash_after_flip_intent_then_revert_points_the_link_back() {
    let f = TestFleet::start(2);
    for h in &f.hosts {
        let agent = h.home.join("agent");
        std::fs::remove_file(agent.join("config.toml")).unwrap();
        std::fs::create_dir_all(agent.join("blue")).unwrap();
        std::fs::write(agent.join("blue/config.toml"), AGENT_CONFIG).unwrap();
        std::os::unix::fs::symlink("blue", agent.join("current")).unwrap();
        std::os::unix::fs::symlink("current/config.toml", agent.join("config.toml")).unwrap();
    }
    f.start_agents();
    let pb = playbook(GOOD, "strategy = \"blue_green\"\n\n[rollout.blue_green]\nlink = \"agent/current\"\nslots = [\"agent/blue\", \"agent/green\"]")
        .replace("path = \"agent/config.toml\"", "path = \"agent/current/config.toml\"");
    let pb = f.playbook("swap-bg", &pb);
    let id = crash_after(&f, &pb, "flip_intent@h01");
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for h in &f.hosts {
        let agent = h.home.join("agent");
        assert_eq!(
            std::fs::read_link(agent.join("current")).unwrap().to_string_lossy(),
            "blue",
            "{}",
            h.name
        );
        assert_eq!(
            std::fs::read_to_string(agent.join("blue/config.toml")).unwrap(),
            AGENT_CONFIG
        );
    }
    assert_eq!(markers(&f), Vec::<String>::new());
}

/// Wait until `file` exists on a host (the remote step under test has begun).
fn wait_file(path: &Path) {
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(t.elapsed().as_secs() < 60, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The connection is cut while the canary's apply runs (the host's sshd and its sessions
/// die, and it is back about a second later): the host fails, the run's revert keeps trying
/// to reconnect until it is back and puts it back byte for byte, exit 1.
#[test]
fn the_connection_cut_during_apply_is_reverted_when_the_host_comes_back() {
    let mut f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = playbook(GOOD, "").replace(
        "command = \"./agentctl restart\"",
        "command = \"if grep -q claude-sonnet-4-5 agent/config.toml; then touch applying; sleep 4; fi; ./agentctl restart\"",
    );
    let pb = f.playbook("cut-apply", &pb);
    let child = spawn_rollout(&f, &pb);
    wait_file(&f.hosts[0].home.join("applying"));
    std::fs::remove_file(f.hosts[0].home.join("applying")).unwrap();
    f.hosts[0].kill_hard();
    // The outage: the revert's first reconnect attempts are refused.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    f.hosts[0].restart();
    let (code, text) = finish(child);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("h01"), "{text}");
    // The revert's apply runs the restored config again (no cut: the flag is gone).
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} byte for byte");
    }
    assert_eq!(markers(&f), Vec::<String>::new());
    // The record says what happened: h01's file was written (the write and apply share one
    // remote command), then its apply failed when the connection was cut.
    let rec = record(&latest_run(&f));
    let written = rec.position(|k| matches!(k, EventKind::Written { host, .. } if host == "h01"));
    let apply = rec.position(|k| matches!(k, EventKind::Apply { host, ok: false, .. } if host == "h01"));
    assert!(
        matches!((written, apply), (Some(w), Some(a)) if w < a),
        "written, then a failed apply: {rec}"
    );
}

/// The connection is cut during the revert itself: the run says which host needs attention
/// and the exact command (exit 5); when the host is back, `revert RUN` finishes the job.
#[test]
fn the_connection_cut_during_a_revert_is_finished_by_revert_run() {
    let mut f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    // The apply waits (once) only when it runs the restored config, i.e. during the revert.
    let pb = playbook(BROKEN, "").replace(
        "command = \"./agentctl restart\"",
        "command = \"if ! grep -q claude-broken-9 agent/config.toml && [ ! -e cut-done ]; then touch reverting cut-done; sleep 4; fi; ./agentctl restart\"",
    );
    let pb = f.playbook("cut-revert", &pb);
    let child = spawn_rollout(&f, &pb);
    wait_file(&f.hosts[0].home.join("reverting"));
    f.hosts[0].kill_hard();
    let (code, text) = finish(child);
    assert_eq!(code, Some(5), "{text}");
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    assert!(
        text.contains("h01") && text.contains(&format!("bellwether revert {id}")),
        "{text}"
    );
    f.hosts[0].restart();
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} byte for byte");
    }
    assert_eq!(markers(&f), Vec::<String>::new());
}

/// A full disk on the canary during the write (here: a file-size limit on the host's sshd,
/// so the temp file cannot be written — the same failure without a mount): nothing is lost,
/// the original stays, the run names the host, exit 1.
#[test]
fn a_full_disk_during_the_write_loses_nothing() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &f.hosts[0].pid().to_string(), "--fsize=200"])
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success());
    let pb = f.playbook("full", &playbook(GOOD, ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("h01") && err.contains("write"), "{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} as it was");
    }
    let leftovers: Vec<_> = std::fs::read_dir(f.hosts[0].home.join("agent"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bellwether."))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left behind");
    assert_eq!(markers(&f), Vec::<String>::new());
}

/// The connection is cut as the canary's write begins (its `write_intent` is on disk), and
/// the host is back a second later. The write is atomic and its last step (the rename) waits
/// for a `go` that only a live session sends, so the script orphaned by the cut cannot
/// replace the file after the revert looked at it: whichever instant the cut lands, the run
/// reverts h01 (or finds it never written), exit 1, and every file is byte for byte as it
/// was, with no temp file left behind.
#[test]
fn the_connection_cut_during_a_write_loses_nothing() {
    let mut f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook("cut-write", &playbook(GOOD, ""));
    let child = spawn_rollout(&f, &pb);
    wait_event(
        &f,
        "the canary's write",
        |k| matches!(k, EventKind::WriteIntent { host, .. } if host == "h01"),
    );
    f.hosts[0].kill_hard();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    f.hosts[0].restart();
    let (code, text) = finish(child);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("h01"), "{text}");
    // Whatever an orphaned script could still do, it has had time to do it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} byte for byte");
    }
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "nothing is left to revert: {out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} byte for byte");
    }
    let leftovers: Vec<_> = std::fs::read_dir(f.hosts[0].home.join("agent"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".bellwether."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_eq!(markers(&f), Vec::<String>::new());
}
