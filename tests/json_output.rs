//! Output for machines against real sshd hosts: `--log-format json` (every stderr line a JSON
//! object, stdout only the command's output) and the commands' `--json` documents.

mod common;

use common::*;
use serde_json::Value;

fn playbook(model: &str) -> String {
    swap_playbook(model, "", "observe = \"2s\"\nbatch_observe = \"1s\"")
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

/// An RFC 3339 timestamp with whole seconds in UTC (`jq`'s `fromdate` reads exactly this).
fn assert_rfc3339(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok(), "{what}: {s}");
    assert!(s.ends_with('Z') && s.len() == 20, "{what}: {s}");
}

#[test]
fn runs_json_timestamps_are_rfc3339_and_ping_exec_check_gate_calendar_have_json() {
    let mut f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook("swap", &playbook("claude-sonnet-4-5"));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // runs --json (was "2026-11-30 04:05:22") and show --json.
    let (code, out, err) = bw(&f, &["runs", "--json"]);
    assert_eq!(code, 0, "{err}");
    let runs: Value = serde_json::from_str(&out).unwrap();
    assert_rfc3339(&runs[0]["started"], "runs --json started");
    let (_, text, _) = bw(&f, &["runs"]);
    let day = &runs[0]["started"].as_str().unwrap()[..10];
    assert!(
        text.contains(&format!("{day} ")),
        "the table keeps the plain form: {text}"
    );
    let (code, out, _) = bw(&f, &["show", "latest", "--json"]);
    assert_eq!(code, 0);
    let show: Value = serde_json::from_str(&out).unwrap();
    assert_rfc3339(&show["run"]["started"], "show --json run.started");

    // exec --json: every host in fleet order, its output by stream and its exit status.
    let script = "echo out-$(basename $PWD); echo err >&2; case $PWD in *home-h02) exit 3;; esac";
    let (code, out, err) = bw(&f, &["exec", "--json", "--", script]);
    assert_eq!(code, 6, "one host failed: {out}\n{err}");
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    let hosts = doc["hosts"].as_array().unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["h01", "h02", "h03"]);
    assert_eq!(hosts[0]["stdout"], serde_json::json!(["out-home-h01"]));
    assert_eq!(hosts[0]["stderr"], serde_json::json!(["err"]));
    assert_eq!(
        (hosts[0]["ok"].as_bool(), hosts[0]["exit_status"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(
        (hosts[1]["ok"].as_bool(), hosts[1]["exit_status"].as_u64()),
        (Some(false), Some(3))
    );
    assert_eq!((doc["succeeded"].as_u64(), doc["total"].as_u64()), (Some(2), Some(3)));

    // check --json: the same facts as the text.
    let (code, out, err) = bw(&f, &["check", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["fleet"]["hosts"], 3);
    assert_eq!(doc["playbooks"][0]["id"], "model-swap");
    assert_eq!(doc["playbooks"][0]["targets"], 3);

    // gate --json: the decision on stdout, the text for people on stderr.
    let mut fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    fleet.push_str(
        "[[freeze]]\nid = \"launch-week\"\nkind = \"soft\"\nstart = \"2030-06-01T00:00:00Z\"\nend = \"2030-06-08T00:00:00Z\"\n",
    );
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let (code, out, err) = bw(&f, &["gate", "--tier", "T2", "--at", "2030-06-03T12:00:00Z", "--json"]);
    assert_eq!(code, 3, "{out}\n{err}");
    let d: Value = serde_json::from_str(&out).expect("stdout is the decision alone");
    assert_eq!(d["decision"], "block");
    assert_rfc3339(&d["at"], "gate at");
    assert!(err.contains("BLOCK: T2 change may not ship"), "{err}");

    // calendar --json: each occurrence in UTC and in the zone asked for.
    let (code, out, err) = bw(
        &f,
        &[
            "calendar",
            "--json",
            "--at",
            "2030-05-30T00:00:00Z",
            "--tz",
            "Europe/Berlin",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_rfc3339(&c["at"], "calendar at");
    let o = &c["occurrences"][0];
    assert_eq!(o["id"], "launch-week");
    assert_eq!(o["start_utc"], "2030-06-01T00:00:00Z");
    assert_eq!(o["start_local"], "2030-06-01T02:00:00+02:00");

    // ping --json: a host that is down is named with why, exit 6.
    f.hosts[2].stop();
    let (code, out, err) = bw(&f, &["ping", "--json"]);
    assert_eq!(code, 6, "{out}\n{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((p["answered"].as_u64(), p["total"].as_u64()), (Some(2), Some(3)));
    assert_eq!(p["hosts"][0]["ok"], true);
    assert!(p["hosts"][0]["handshake_ms"].is_u64());
    assert_eq!(p["hosts"][2]["host"], "h03");
    assert_eq!(p["hosts"][2]["ok"], false);
    assert!(
        p["hosts"][2]["class"].is_string() && p["hosts"][2]["error"].is_string(),
        "{out}"
    );
}
