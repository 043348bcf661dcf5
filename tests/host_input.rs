//! What hosts send back is bounded and inert, against real sshd: a config that is a FIFO, a
//! link to `/dev/zero` or a huge file is refused by name; command output and lines are capped;
//! a log line cannot end a log watch; escape sequences reach no terminal raw; secrets in log
//! lines and health output are masked before anything is cut.

mod common;

use bellwether::ssh::exec::{MAX_LINE_BYTES, MAX_OUTPUT_BYTES, TRUNCATED};
use bellwether::ssh::files::MAX_FILE_BYTES;
use bellwether::ssh::{Connection, Endpoint, SshError};
use common::*;
use std::time::{Duration, Instant};

fn endpoint(f: &TestFleet, i: usize) -> Endpoint {
    let h = &f.hosts[i];
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut ep = Endpoint::new(&h.name, &h.addr, &user);
    ep.port = h.port;
    ep.identities = vec![f.key.clone()];
    ep.known_hosts = vec![f.known_hosts.clone()];
    ep.use_agent = false;
    ep.connect_timeout = Duration::from_secs(5);
    ep
}

/// A playbook changing the model, watching `log` (a `command` or `file` source), with `health`.
fn playbook(log: &str, health: &str) -> String {
    format!(
        r#"id = "hostile"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "claude-sonnet-4-5" }}

[apply]
command = "./agentctl restart"
health = "{health}"
health_timeout = "3s"

[watch]
log = {log}
errors = ["ERROR"]
min_lines = 3

[rollout]
observe = "3s"
batch_observe = "2s"
"#
    )
}

#[test]
fn a_fifo_a_link_to_dev_zero_or_a_huge_config_is_refused_naming_host_and_path() {
    let f = TestFleet::start(4);
    let cfg = |i: usize| f.hosts[i].home.join("agent/config.toml");
    std::fs::remove_file(cfg(0)).unwrap();
    let st = std::process::Command::new("mkfifo").arg(cfg(0)).status().unwrap();
    assert!(st.success());
    std::fs::remove_file(cfg(1)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cfg(1)).unwrap();
    // Sparse: 17 MiB on paper, nothing on disk.
    std::fs::File::create(cfg(2))
        .unwrap()
        .set_len(MAX_FILE_BYTES as u64 + (1 << 20))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    rt.block_on(async {
        for (i, want) in [(0, "FIFO"), (1, "character device"), (2, "larger")] {
            let c = Connection::open(&endpoint(&f, i)).await.unwrap();
            let e = c.read_file("agent/config.toml").await.unwrap_err();
            assert!(
                matches!(
                    (&e, i),
                    (SshError::NotRegularFile { .. }, 0 | 1) | (SshError::FileTooLarge { .. }, 2)
                ),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(want) && msg.contains("agent/config.toml") && msg.contains(&f.hosts[i].name),
                "{msg}"
            );
        }
        // A regular file just under the limit still reads whole.
        let c = Connection::open(&endpoint(&f, 3)).await.unwrap();
        let big = vec![b'a'; MAX_FILE_BYTES];
        std::fs::write(cfg(3), &big).unwrap();
        assert_eq!(
            c.read_file("agent/config.toml").await.unwrap().unwrap().bytes.len(),
            MAX_FILE_BYTES
        );
    });
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "no read hangs: {:?}",
        t.elapsed()
    );
    std::fs::write(cfg(3), AGENT_CONFIG).unwrap();
    let pb = f.playbook("swap", &playbook("{ file = \"agent/agent.log\" }", "./agentctl status"));
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["plan", pb.to_str().unwrap()]);
        c
    });
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(out.contains("preflight FAILED on 3 host(s)"), "{out}");
    assert!(
        out.contains("agent/config.toml on h01 is a FIFO (named pipe), not a regular file"),
        "{out}"
    );
    assert!(out.contains("agent/config.toml on h02 is a character device"), "{out}");
    assert!(
        out.contains("agent/config.toml on h03 is larger than the 16 MiB"),
        "{out}"
    );
}

#[test]
fn command_output_is_capped_and_lines_are_cut_with_a_marker() {
    let f = TestFleet::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out = c
            .run(
                "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo after",
                None,
                Duration::from_secs(30),
                Some(tx),
            )
            .await
            .unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(out.stdout.len(), MAX_OUTPUT_BYTES, "kept up to the cap");
        assert!(out.stdout_dropped > 0);
        assert!(out.stdout_text().ends_with(TRUNCATED));
        let mut lines = Vec::new();
        while let Some((_, l)) = rx.recv().await {
            lines.push(l);
        }
        assert_eq!(lines.len(), 2, "the long line, cut, then `after`");
        assert_eq!(lines[0].len(), MAX_LINE_BYTES + TRUNCATED.len());
        assert!(lines[0].ends_with(TRUNCATED));
        assert_eq!(lines[1], "after");

        // A log source that never sends a newline still yields a (cut) line, and the next one.
        let mut s = c
            .stream("head -c 200000 /dev/zero | tr '\\0' y; echo; echo next; sleep 30", None)
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), MAX_LINE_BYTES + TRUNCATED.len());
        let next = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap();
        assert_eq!(next.as_deref(), Some("next"));
        s.cancel().await;
    });
    // The same through `exec`: the line is cut, the host's next line is printed.
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "--", "head -c 100000 /dev/zero | tr '\\0' z; echo; echo after"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    let long = out.lines().find(|l| l.contains("zzz")).unwrap();
    assert!(
        long.len() < MAX_LINE_BYTES + 64 && long.ends_with(TRUNCATED),
        "{}",
        long.len()
    );
    assert!(out.contains("h01 | after"), "{out}");
}

#[test]
fn a_log_line_holding_the_old_end_of_log_sentinel_does_not_end_the_watch() {
    let f = TestFleet::start(2);
    f.start_agents();
    // The text the tail used to send itself to say "this stream ended": NUL, then EOF.
    for h in &f.hosts {
        std::fs::write(
            h.home.join("logsrc.sh"),
            "while :; do printf 'INFO request ok latency_ms=5\\n\\000EOF\\n'; sleep 0.1; done\n",
        )
        .unwrap();
    }
    let pb = f.playbook(
        "sentinel",
        &playbook("{ command = \"sh logsrc.sh\" }", "./agentctl status"),
    );
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
        c
    });
    assert_eq!(code, 0, "a forged sentinel must not fail the canary:\n{out}\n{err}");
    assert!(!out.contains("the log command ended"), "{out}");
    let ev = record(&latest_run(&f));
    assert_eq!(ev.outcome(), Some("done"), "{ev}");
}

#[test]
fn escape_sequences_from_a_host_are_printed_escaped() {
    let f = TestFleet::start(1);
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args([
            "exec",
            "--",
            "printf '\\033[31mred\\033]0;pwned\\007\\r\\n'; printf '\\033[2J' >&2; exit 3",
        ]);
        c
    });
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(!out.contains('\x1b') && !err.contains('\x1b'), "{out:?}\n{err:?}");
    assert!(!out.contains('\x07'), "{out:?}");
    assert!(out.contains("h01 | \\x1b[31mred\\x1b]0;pwned\\x07"), "{out}");
    assert!(out.contains("h01 ! \\x1b[2J"), "{out}");
}

#[test]
fn hostile_log_lines_and_health_output_are_escaped_and_masked_before_they_are_cut() {
    let f = TestFleet::start(2);
    f.start_agents();
    // An error line quoting an escape sequence and a mid-line password; an error line whose
    // token straddles the 500-character cut (cut first, `sk-ABCDE…` would be too short to
    // look like a token and would leak).
    let straddle = format!("ERROR {} sk-ABCDEFGHIJKLMNOP", "a".repeat(490));
    for h in &f.hosts {
        std::fs::write(
            h.home.join("hostile.sh"),
            format!(
                "while :; do printf 'ERROR \\033[2J\\033]0;pwned\\007 login failed password=hunter2xyz user=bob\\n{straddle}\\nINFO ok\\n'; sleep 0.1; done\n"
            ),
        )
        .unwrap();
        std::fs::write(h.home.join("clean.sh"), "while :; do echo 'INFO ok'; sleep 0.1; done\n").unwrap();
        // With the new model, the canary's health fails with output whose end is kept (2000
        // characters): cut first, the key name would fall off and the value show.
        std::fs::write(
            h.home.join("health.sh"),
            format!(
                "[ $(basename $PWD) = home-h01 ] && grep -q claude-sonnet-4-5 agent/config.toml || exit 0\nprintf '%s' 'x{}'; echo ' api_key=SECRETVALUE12345'; exit 1\n",
                "y".repeat(1990)
            ),
        )
        .unwrap();
    }
    let rollout = |log: &str, health: &str| {
        let pb = f.playbook("hostile", &playbook(log, health));
        run({
            let mut c = f.bw();
            c.args(["rollout", pb.to_str().unwrap(), "--yes"]);
            c
        })
    };
    let show = || {
        let (code, show, err) = run({
            let mut c = f.bw();
            c.args(["show", "latest"]);
            c
        });
        assert_eq!(code, 0, "{err}");
        show
    };
    let everything = |out: &str, show: &str| {
        let run_dir = latest_run(&f);
        let mut all = raw_events(&run_dir);
        all.push_str(&std::fs::read_to_string(run_dir.join("matched.log")).unwrap_or_default());
        all.push_str(&std::fs::read_to_string(run_dir.join("summary.md")).unwrap());
        all.push_str(show);
        all.push_str(out);
        all
    };

    let (code, out, err) = rollout("{ command = \"sh hostile.sh\" }", "./agentctl status");
    assert_eq!(code, 1, "{out}\n{err}");
    let shown = show();
    for (what, text) in [("rollout stdout", &out), ("rollout stderr", &err), ("show", &shown)] {
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{what}: {text:?}");
    }
    assert!(shown.contains("\\x1b[2J"), "show quotes the line, escaped:\n{shown}");
    let all = everything(&out, &shown);
    assert!(all.contains("password=••••"), "{all}");
    for secret in ["hunter2xyz", "sk-ABCDE"] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }

    let (code, out, err) = rollout("{ command = \"sh clean.sh\" }", "sh health.sh");
    assert_eq!(code, 1, "{out}\n{err}");
    let all = everything(&out, &show());
    assert!(all.contains("api_key=••••"), "{all}");
    assert!(!all.contains("SECRETVALUE"), "leaked:\n{all}");
}
