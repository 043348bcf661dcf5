//! Trust boundaries of the commands that act from a run folder, against real sshd: `revert
//! RUN` and `resume RUN` refuse a folder others could have written, and break another run's
//! stale lock or marker only when asked (`--break-lock`), recording it.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const GOOD: &str = "claude-sonnet-4-5";

fn playbook(observe: &str) -> String {
    format!(
        r#"id = "trust"
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
min_lines = 3

[rollout]
observe = "{observe}"
batch_observe = "2s"
"#
    )
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn has_change(f: &TestFleet, i: usize) -> bool {
    String::from_utf8(f.config(i)).unwrap().contains(GOOD)
}

#[test]
fn a_run_folder_others_could_write_is_refused_by_revert_and_resume() {
    let f = TestFleet::start(1);
    f.start_agents();
    let pb = f.playbook("trust", &playbook("2s"));
    // A umask that makes files group-writable by default (user private groups): the run's own
    // folder must still come out trusted.
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
    // SAFETY: umask is async-signal-safe and only changes the child's file creation mask.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o002);
            Ok(())
        });
    }
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(has_change(&f, 0));
    let run_dir = latest_run(&f);
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_string();
    let snapshot = std::fs::read_dir(run_dir.join("snapshots/h01"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    for (path, mode, cmd, says) in [
        (run_dir.join("events.jsonl"), 0o664, "revert", "writable by its group"),
        (run_dir.join("plan.json"), 0o646, "resume", "writable by everyone"),
        (snapshot.clone(), 0o666, "revert", "writable by its group and everyone"),
        (run_dir.clone(), 0o775, "revert", "writable by its group"),
    ] {
        let before = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        chmod(&path, mode);
        let (code, out, err) = bw(&f, &[cmd, &id, "--yes"]);
        assert_eq!(code, 2, "{cmd} with {}: {out}\n{err}", path.display());
        assert!(
            err.contains(&format!("refusing to use {}", path.display())) && err.contains(says),
            "{err}"
        );
        assert!(err.contains("chmod go-w"), "says the fix: {err}");
        assert!(has_change(&f, 0), "no host touched");
        chmod(&path, before);
    }

    // Owned by someone else (tests run as root, so the file can be given away).
    let plan = run_dir.join("plan.json");
    std::os::unix::fs::chown(&plan, Some(65534), None).unwrap();
    let (code, _, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plan.json") && err.contains("owned by uid 65534"), "{err}");
    assert!(has_change(&f, 0));
    std::os::unix::fs::chown(&plan, Some(0), None).unwrap();

    let (code, out, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 0, "the folder is trusted again: {out}\n{err}");
    assert_eq!(f.config(0), AGENT_CONFIG.as_bytes());
}

/// A lock file of another run whose process is gone (same machine, dead pid).
fn stale_lock(f: &TestFleet, run_id: &str, hosts: &[&str]) -> std::path::PathBuf {
    let dir = f.runs_dir().join(".locks");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{run_id}.json"));
    let doc = serde_json::json!({
        "run_id": run_id, "user": "someone", "pid": 999_999_999u32, "host": this_machine(),
        "started": "2026-01-01T00:00:00Z", "hosts": hosts,
    });
    std::fs::write(&p, doc.to_string()).unwrap();
    p
}

fn this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn lock_broken(run_dir: &Path) -> Vec<String> {
    record(run_dir)
        .kinds()
        .filter_map(|k| match k {
            EventKind::LockBroken { holder } => Some(holder.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn revert_and_resume_break_another_runs_stale_lock_or_marker_only_with_break_lock() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("trust", &playbook("6s"));
    // Killed in the canary window: h01 changed, both hosts carry the run's marker.
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for_event(&f, observe_started("canary"), Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    let run_dir = latest_run(&f);
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_string();

    // Another run, long dead, left its lock naming h01.
    let other = stale_lock(&f, "20260101T000000000Z-other", &["h01"]);
    for cmd in ["resume", "revert"] {
        let (code, out, err) = bw(&f, &[cmd, &id, "--yes"]);
        assert_eq!(code, 4, "{cmd} without --break-lock: {out}\n{err}");
        assert!(
            err.contains("20260101T000000000Z-other") && err.contains("--break-lock"),
            "{err}"
        );
        assert!(other.exists(), "{cmd} left the other run's lock alone");
    }
    assert!(lock_broken(&run_dir).is_empty());

    // Another run's marker, its process gone, on h02 (which resume would change next).
    let marker = f.hosts[1].home.join(".bellwether.lock");
    let foreign = format!("20260101T000000000Z-other someone@{} 999999999\n", this_machine());
    std::fs::write(&marker, &foreign).unwrap();
    std::fs::remove_file(&other).unwrap();
    let (code, out, err) = bw(&f, &["resume", &id, "--yes"]);
    assert_eq!(code, 4, "resume without --break-lock: {out}\n{err}");
    assert!(
        err.contains("h02 is held by run 20260101T000000000Z-other") && err.contains("--break-lock"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        foreign,
        "the marker is left alone"
    );
    assert!(!has_change(&f, 1));

    // With the flag: the stale lock and the stale marker are broken, each recorded.
    let other = stale_lock(&f, "20260101T000000000Z-other", &["h01"]);
    let (code, out, err) = bw(&f, &["resume", &id, "--yes", "--break-lock"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!other.exists(), "--break-lock removed the stale lock");
    assert!(has_change(&f, 0) && has_change(&f, 1));
    let broken = lock_broken(&run_dir);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].starts_with("run 20260101T000000000Z-other"), "{broken:?}");
    assert!(
        broken[1].starts_with("h02: stale marker of 20260101T000000000Z-other"),
        "{broken:?}"
    );
    assert!(!marker.exists(), "the run released its own marker at the end");

    // revert of the finished run: the same rule for the lock.
    let other = stale_lock(&f, "20260102T000000000Z-other", &["h02"]);
    let (code, _, err) = bw(&f, &["revert", &id, "--yes"]);
    assert_eq!(code, 4, "{err}");
    assert!(other.exists());
    let (code, out, err) = bw(&f, &["revert", &id, "--yes", "--break-lock"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!other.exists());
    assert!(lock_broken(&run_dir)
        .iter()
        .any(|b| b.contains("20260102T000000000Z-other")));
    assert_eq!(f.config(0), AGENT_CONFIG.as_bytes());
    assert_eq!(f.config(1), AGENT_CONFIG.as_bytes());
}

#[test]
fn concurrent_accept_new_records_each_host_key_once_in_whole_lines() {
    let f = TestFleet::start(6);
    std::fs::write(&f.known_hosts, "").unwrap();
    // Two processes accept the same six unknown keys at the same time.
    let spawn = || {
        let mut c = f.bw();
        c.args(["ping", "--accept-new"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&f.known_hosts).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "one line per host, none twice, none torn:\n{text}");
    for h in &f.hosts {
        let want = h.known_hosts_line();
        assert_eq!(lines.iter().filter(|l| **l == want).count(), 1, "{want}\n{text}");
    }
    // And they verify: no --accept-new now.
    let (code, out, err) = bw(&f, &["ping"]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn the_sandbox_folder_is_private_and_another_users_folder_is_refused() {
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bellwether"));
        c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1").stdin(Stdio::null());
        c
    };
    let d = tempfile::tempdir().unwrap();
    // Another user's folder (tests run as root, so one can be made): refused, nothing written.
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    for args in [
        &["sandbox", "up", "--hosts", "1", "--dir"][..],
        &["demo", "--hosts", "1", "--dir"][..],
    ] {
        let mut c = bin();
        c.args(args).arg(&theirs);
        let (code, out, err) = run(c);
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(err.contains("owned by uid 65534") && err.contains("--dir"), "{err}");
        assert_eq!(
            std::fs::read_dir(&theirs).unwrap().count(),
            0,
            "{args:?} wrote nothing there"
        );
    }
    // A new folder, even with a umask that hides nothing: 0700, the key 0600.
    let mine = d.path().join("new").join("sandbox");
    let mut c = bin();
    c.args(["sandbox", "up", "--hosts", "1", "--dir"]).arg(&mine);
    // SAFETY: umask is async-signal-safe and only changes the child's file creation mask.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let (dir_mode, key_mode) = (mode(&mine), mode(&mine.join("id_ed25519")));
    let mut c = bin();
    c.args(["sandbox", "down", "--dir"]).arg(&mine);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(dir_mode, 0o700);
    assert_eq!(key_mode, 0o600);
}
