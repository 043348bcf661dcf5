//! Trust boundaries of the commands that act from a run folder, against real sshd: `revert
//! RUN` and `resume RUN` refuse a folder others could have written.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

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

fn bw(f: &TestFleet, args: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(args);
    run(c)
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
