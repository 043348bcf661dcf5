//! Output for machines against real sshd hosts: `--log-format json` (every stderr line a JSON
//! object, stdout only the command's output) and the commands' `--json` documents.

mod common;

use common::*;
use serde_json::Value;

fn playbook(model: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{model}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5

[rollout]
observe = "2s"
batch_observe = "1s"
"#
    )
}

fn bw(f: &TestFleet, args: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(args);
    run(c)
}

/// Every stderr line parsed; panics on a line that is not a JSON object with `ts` and `level`.
fn json_lines(err: &str) -> Vec<Value> {
    err.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{err}"));
            assert!(v["ts"].is_string() && v["level"].is_string(), "{l}");
            let ts = v["ts"].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "ts is RFC 3339: {l}");
            v
        })
        .collect()
}

fn find(lines: &[Value], pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    lines.iter().find(|v| pred(v))
}

#[test]
fn log_format_json_puts_every_line_on_stderr_as_json_and_nothing_else_on_stdout() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("claude-sonnet-4-5"));
    let (code, out, err) = bw(&f, &["--log-format", "json", "rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out, "",
        "stdout carries only the command's output (none without --json)"
    );
    let lines = json_lines(&err);
    let run_id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    // Events carry their own fields, the run id and the phase under way.
    let written = find(&lines, |v| v["event"] == "written" && v["host"] == "h01").expect("h01 written");
    assert_eq!(written["phase"], "canary", "{written}");
    assert_eq!(written["run_id"], run_id.as_str(), "{written}");
    assert!(
        written["path"].is_string() && written["sha256"].is_string(),
        "{written}"
    );
    let b1 = find(&lines, |v| v["event"] == "written" && v["host"] == "h02").expect("h02 written");
    assert_eq!(b1["phase"], "batch 1", "{b1}");
    // Progress lines name the phase and the host they are about.
    let verdict_line = find(&lines, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("canary: h01: ") && m.contains(" lines, "))
    })
    .expect("the canary's progress line");
    assert_eq!(verdict_line["phase"], "canary", "{verdict_line}");
    assert_eq!(verdict_line["host"], "h01", "{verdict_line}");
    let finished = find(&lines, |v| v["event"] == "run_finished").expect("run_finished");
    assert_eq!(finished["outcome"], "done");
    assert_eq!(finished["exit"], 0);
    let last = find(&lines, |v| {
        v["outcome"] == "done" && v["message"].as_str().is_some_and(|m| m.starts_with("DONE"))
    });
    assert!(last.is_some_and(|v| v["exit"] == 0), "{err}");

    // With --json as well, stdout is exactly the one document.
    let pb2 = f.playbook("back", &playbook("claude-sonnet-4"));
    let (code, out, err) = bw(
        &f,
        &[
            "--log-format",
            "json",
            "rollout",
            pb2.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(doc["outcome"], "done");
    json_lines(&err);

    // A failure: the final error line is JSON with the exit code.
    let (code, out, err) = bw(&f, &["--log-format", "json", "plan", "model-swp"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(out, "");
    let lines = json_lines(&err);
    let e = lines.last().unwrap();
    assert_eq!(e["level"], "error");
    assert_eq!(e["exit"], 2);
    assert!(e["message"].as_str().unwrap().contains("no such playbook"), "{e}");
}

#[test]
fn a_failed_run_in_json_ends_with_its_outcome_and_exit_on_stderr() {
    let f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("broken", &playbook("claude-broken-9"));
    let (code, out, err) = bw(&f, &["--log-format", "json", "rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(out, "");
    let lines = json_lines(&err);
    let failed = find(&lines, |v| v["event"] == "host_failed").expect("host_failed");
    assert_eq!(
        (failed["host"].as_str(), failed["phase"].as_str()),
        (Some("h01"), Some("canary"))
    );
    let reverted = find(&lines, |v| v["event"] == "reverted").expect("reverted");
    assert_eq!(reverted["phase"], "revert", "{reverted}");
    assert_eq!(reverted["host"], "h01");
    let e = lines.last().unwrap();
    assert_eq!(
        (e["level"].as_str(), e["exit"].as_i64()),
        (Some("error"), Some(1)),
        "{e}"
    );
}
