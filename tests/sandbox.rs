//! The sandbox and demo: a real canary rollout over SSH with no sshd, and fault injection.

mod common;

use bellwether::ssh::{Connection, Endpoint, SshError, WriteOptions};
use common::{record, run_dirs_in, EventKind};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bw() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bellwether"));
    c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

#[test]
fn demo_promotes_the_good_change_and_reverts_the_bad_one() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let out = bw().args(["demo", "--dir"]).arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two runs recorded: the good one done (exit 0), the bad one reverted (exit 1).
    let runs = run_dirs_in(&dir.join("runs"));
    assert_eq!(runs.len(), 2);
    let good = record(&runs[0]);
    let bad = record(&runs[1]);
    assert_eq!(good.finished(), Some(("done", 0)), "{good}");
    assert_eq!(bad.finished(), Some(("reverted", 1)), "{bad}");
    assert!(
        bad.has(|k| matches!(k, EventKind::Reverted { host, verified: true, .. } if host == "h01")),
        "{bad}"
    );
    // Every host ends on the good model, byte for byte what the first run wrote.
    for i in 1..=8 {
        let cfg = std::fs::read_to_string(dir.join(format!("hosts/h{i:02}/agent/config.toml"))).unwrap();
        assert!(
            cfg.contains("name = \"claude-sonnet-4-5\"      # the model this agent talks to"),
            "h{i:02}: {cfg}"
        );
    }
    let after_good = good
        .kinds()
        .find_map(|k| match k {
            EventKind::Written { host, sha256, .. } if host == "h01" => Some(sha256),
            _ => None,
        })
        .unwrap_or_else(|| panic!("h01 written in the first run: {good}"));
    let h01 = std::fs::read(dir.join("hosts/h01/agent/config.toml")).unwrap();
    assert_eq!(
        after_good,
        &bellwether::ssh::sha256_hex(&h01),
        "h01 is back to exactly the first run's bytes"
    );
    assert!(stdout.contains("demo finished"), "{stdout}");
    assert_readme_sample_matches(&stdout);
    assert!(
        !stdout.contains("sk-ant-sandbox-not-a-real-key"),
        "no secret in the output"
    );
}

/// The README's tour shows the demo's broken run and its record: every line of those sample
/// blocks must be a line the demo prints now. Numbers are left out of the comparison
/// (timings, counts, ids and hashes' digits differ from run to run) and `...` stands for
/// text the README elides.
fn assert_readme_sample_matches(demo: &str) {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("**A run**").expect("the README's run sample");
    let end = start
        + readme[start..]
            .find("Beside it:")
            .expect("the end of the record sample");
    let num = regex::Regex::new(r"\d+(\.\d+)?").unwrap();
    let norm = |l: &str| num.replace_all(l.trim_end(), "N").to_string();
    let printed: Vec<String> = demo.lines().map(norm).collect();
    let mut in_block = false;
    let mut checked = 0;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        let pattern = format!("^{}$", regex::escape(&norm(line)).replace(r"\.\.\.", ".*"));
        let re = regex::Regex::new(&pattern).unwrap();
        assert!(
            printed.iter().any(|p| re.is_match(p)),
            "README line not printed by the demo:\n{line}\n--- demo output ---\n{demo}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "the README's sample blocks were found ({checked} lines)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_during_a_write_leaves_the_original_intact() {
    let d = tempfile::tempdir().unwrap();
    let sb = bellwether::sandbox::create(d.path(), 1).await.unwrap();
    let fleet = std::fs::read_to_string(&sb.fleet).unwrap();
    let field = |k: &str| {
        fleet
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split('=')
            .nth(1)
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let mut ep = Endpoint::new("h01", &field("address"), "agent");
    ep.port = field("port").parse().unwrap();
    ep.identities = vec![sb.dir.join("id_ed25519")];
    ep.known_hosts = vec![sb.dir.join("known_hosts")];
    ep.use_agent = false;
    ep.connect_timeout = Duration::from_secs(5);
    let conn = Connection::open(&ep).await.unwrap();
    let path = sb.hosts[0].home.join("agent/config.toml");
    let original = std::fs::read(&path).unwrap();
    sb.fault("h01", "drop-write").unwrap();
    let big = vec![b'x'; 1024 * 1024];
    let err = conn
        .write_file("agent/config.toml", &big, &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SshError::Disconnected(_) | SshError::NoExitStatus { .. } | SshError::Protocol(_)
        ),
        "reported failed: {err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), original, "the original file is intact");
    // And the host recovers: a new connection writes fine.
    let conn = Connection::open(&ep).await.unwrap();
    conn.write_file("agent/config.toml", b"new\n", &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
    // No temp files are left behind by the interrupted upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bellwether"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    sb.stop_agents().await;
}

#[test]
fn sandbox_up_fault_down_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("sb");
    let out = bw()
        .args(["sandbox", "up", "--hosts", "3", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Whatever happens below, the background sandbox process is stopped at the end.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = bw().args(["sandbox", "down", "--dir"]).arg(&self.0).output();
        }
    }
    let _down = Down(dir.clone());
    let fleet = dir.join("fleet.toml");
    let ping = |expect: i32| {
        let out = bw().arg("--fleet").arg(&fleet).arg("ping").output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(expect),
            "{s}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    };
    assert!(ping(0).contains("3 of 3 hosts answered"));
    let out = bw()
        .args(["sandbox", "fault", "h02", "down", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = ping(6);
    assert!(s.contains("2 of 3 hosts answered"), "{s}");
    let out = bw()
        .args(["sandbox", "fault", "h02", "clear", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    ping(0);
    // Commands run in each host's own home.
    let out = bw()
        .arg("--fleet")
        .arg(&fleet)
        .args(["exec", "--", "./agentctl model"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("h03 | claude-sonnet-4"), "{s}");
    let out = bw()
        .args(["sandbox", "fault", "h09", "errors", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown host is bad input");
    let out = bw().args(["sandbox", "down", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("control.sock").exists());
    let out = bw().arg("--fleet").arg(&fleet).arg("ping").output().unwrap();
    assert_ne!(out.status.code(), Some(0), "hosts are gone after down");
}

/// A `sandbox up` whose background process is stopped when the test ends, however it ends.
struct Up(std::path::PathBuf);

impl Up {
    fn start(dir: &std::path::Path, hosts: usize) -> Up {
        let out = bw()
            .args(["sandbox", "up", "--hosts", &hosts.to_string(), "--dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        Up(dir.to_path_buf())
    }

    fn exec(&self, target: &str, command: &str) -> (Option<i32>, String) {
        let out = bw()
            .arg("--fleet")
            .arg(self.0.join("fleet.toml"))
            .args(["exec", target, "--", command])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.0.join(format!("hosts/{host}/agent/agent.log"))).unwrap()
    }

    /// Wait until `host`'s log, past its first `from` bytes, has a line matching `pred`.
    fn wait_log(&self, host: &str, from: usize, pred: impl Fn(&str) -> bool) -> String {
        let t = std::time::Instant::now();
        loop {
            let log = self.log(host);
            if log[from..].lines().any(&pred) {
                return log[from..].to_string();
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{host}: {}", &log[from..]);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = bw().args(["sandbox", "down", "--dir"]).arg(&self.0).output();
    }
}

#[test]
fn three_hundred_hosts_come_up_and_all_answer_a_ping() {
    let d = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let sb = Up::start(&d.path().join("sb"), 300);
    let out = bw()
        .arg("--fleet")
        .arg(sb.0.join("fleet.toml"))
        .args(["-j", "50", "ping"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.contains("300 of 300 hosts answered"), "{s}");
    // Every agent is running and logging on its own, without a process per host.
    for h in ["h01", "h150", "h300"] {
        sb.wait_log(h, 0, |l| l.starts_with("INFO request ok model=claude-sonnet-4 "));
    }
    eprintln!("300 hosts up and pinged in {:?}", t.elapsed());
}

#[test]
fn sandbox_agents_keep_the_agentctl_semantics_over_ssh() {
    let d = tempfile::tempdir().unwrap();
    let sb = Up::start(&d.path().join("sb"), 3);
    // A broken model, picked up by a restart, logs `model not found` from then on.
    let from = sb.log("h02").len();
    let (code, out) = sb.exec(
        "h02",
        "sed -i 's/\"claude-sonnet-4\"/\"claude-broken-9\"/' agent/config.toml && ./agentctl restart && ./agentctl status && ./agentctl model",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("h02 | claude-broken-9"), "{out}");
    let after = sb.wait_log("h02", from, |l| l == "ERROR model not found: claude-broken-9");
    // The old agent may log a line or two between `from` and the restart's stop.
    let mut lines = after
        .lines()
        .skip_while(|l| l.starts_with("INFO request ok model=claude-sonnet-4 "));
    assert_eq!(
        lines.next(),
        Some("INFO agent started model=claude-broken-9"),
        "{after}"
    );
    assert!(
        lines.all(|l| l == "ERROR model not found: claude-broken-9"),
        "no line of the old model after the restart returned: {after}"
    );
    // Another host is untouched.
    assert!(!sb.log("h01").contains("ERROR"), "{}", sb.log("h01"));
    // A model no longer listed as broken is healthy after the next restart.
    let from = sb.log("h02").len();
    let (code, out) = sb.exec("h02", "echo other > agent/broken_models && ./agentctl restart");
    assert_eq!(code, Some(0), "{out}");
    sb.wait_log("h02", from, |l| {
        l.starts_with("INFO request ok model=claude-broken-9 latency_ms=")
    });
    // A fault file written on the host is read within a second or so.
    let from = sb.log("h03").len();
    let (code, out) = sb.exec("h03", "echo slow > agent/fault");
    assert_eq!(code, Some(0), "{out}");
    sb.wait_log("h03", from, |l| l.ends_with("latency_ms=2500"));
    // Stopped: status fails and the log stays still; start brings it back.
    let (code, out) = sb.exec("h01", "./agentctl stop && ./agentctl status");
    assert_ne!(code, Some(0), "status fails on a stopped agent: {out}");
    let still = sb.log("h01");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sb.log("h01"), still, "a stopped agent logs nothing");
    let (code, out) = sb.exec("h01", "./agentctl start && ./agentctl status");
    assert_eq!(code, Some(0), "{out}");
    // Outside the sandbox's SSH, agentctl says where it works instead of hanging.
    let out = Command::new("sh")
        .arg(sb.0.join("hosts/h01/agentctl"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the sandbox's SSH"));
}
