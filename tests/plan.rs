//! `bellwether plan` against real sshd hosts: the calendar decision, the batch plan, grouped
//! unified diffs, preflight failures (exit 6), secret redaction, and that nothing on any host
//! changes; plus `rollout` refusing to start when preflight fails anywhere.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SECRET: &str = "sk-ant-test-SECRET-123";

/// A T2 model-swap playbook with the given `[[edit]]` tables (default rollout: canary 1, then
/// 10% / 50% / 100%).
fn playbook(edits: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

{edits}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]

[rollout]
observe = "2s"
batch_observe = "1s"
"#
    )
}

const SWAP: &str = r#"[[edit]]
path = "agent/config.toml"
set = { "model.name" = "claude-sonnet-4-5" }"#;

fn plan(f: &TestFleet, pb: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.arg("plan").arg(pb).args(extra);
    run(c)
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// Every host's home: all files, byte for byte.
fn homes(f: &TestFleet) -> Vec<BTreeMap<PathBuf, Vec<u8>>> {
    f.hosts.iter().map(|h| tree(&h.home)).collect()
}

fn assert_homes_unchanged(f: &TestFleet, before: &[BTreeMap<PathBuf, Vec<u8>>]) {
    for (i, (h, b)) in f.hosts.iter().zip(before).enumerate() {
        let now = tree(&h.home);
        let names_before: Vec<_> = b.keys().collect();
        let names_now: Vec<_> = now.keys().collect();
        assert_eq!(
            names_now, names_before,
            "host {i}: no file added or removed (markers, temp files)"
        );
        assert!(&now == b, "host {i}: every file byte-identical");
        assert!(!h.home.join(".bellwether.lock").exists());
    }
}

#[test]
fn plan_on_ten_hosts_prints_calendar_batches_and_grouped_diffs_and_changes_nothing() {
    let f = TestFleet::start(10);
    // h05's config differs (another temperature), so its diff context differs too.
    let odd = AGENT_CONFIG.replace("temperature = 0.2", "temperature = 0.7");
    std::fs::write(f.hosts[4].home.join("agent/config.toml"), &odd).unwrap();
    let before = homes(&f);
    let pb = f.playbook("swap", &playbook(SWAP));
    let (code, out, err) = plan(&f, &pb, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("playbook model-swap (T2 model), 10 target(s)"), "{out}");
    let cal = out
        .lines()
        .find(|l| l.starts_with("calendar: "))
        .expect("a calendar line");
    assert!(cal.starts_with("calendar: allow T2 at "), "{cal}");
    assert!(!out.contains("not evaluated"), "{out}");
    assert!(out.contains("no freeze window covering this change is active"), "{out}");
    // Canary 1, then 10% / 50% / 100% of the other 9.
    assert!(out.contains("\ncanary: h01\n"), "{out}");
    assert!(out.contains("\nbatch 1: h02\n"), "{out}");
    assert!(out.contains("\nbatch 2: h03, h04, h05, h06\n"), "{out}");
    assert!(out.contains("\nbatch 3: h07, h08, h09, h10\n"), "{out}");
    // One group: the same change on all ten hosts. h05's context differs (its temperature),
    // which the header names and a `~` marks. (Issue 16 item 8 changed this: it used to be
    // two blocks, `h01..h04, h06..h10 (9 hosts): same diff` and `h05`.)
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headers,
        vec!["== h01..h10 (10 hosts): same change (context differs on h05; lines marked ~ are h01's)"],
        "{out}"
    );
    let d = section(&out, headers[0]);
    assert!(d.contains("--- a/agent/config.toml\n+++ b/agent/config.toml\n"), "{d}");
    assert!(
        d.contains("\n-name = \"claude-sonnet-4\"      # the model this agent talks to\n"),
        "{d}"
    );
    assert!(
        d.contains("\n+name = \"claude-sonnet-4-5\"      # the model this agent talks to\n"),
        "{d}"
    );
    assert!(d.contains("\n~temperature = 0.2\n"), "{d}");
    assert!(
        d.contains("\n provider = \"anthropic\"\n"),
        "shared context unmarked: {d}"
    );
    assert!(!out.contains("preflight FAILED"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    assert_homes_unchanged(&f, &before);

    // Inside a soft freeze the decision printed is the block, naming the window.
    let mut fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    fleet.push_str(
        "[[freeze]]\nid = \"launch-week\"\nkind = \"soft\"\nstart = \"2030-06-01T00:00:00Z\"\nend = \"2030-06-08T00:00:00Z\"\n",
    );
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let (code, out, err) = plan(&f, &pb, &["--at", "2030-06-03T12:00:00Z"]);
    assert_eq!(code, 0, "plan itself is read-only and succeeds: {out}\n{err}");
    assert!(out.contains("\ncalendar: block T2 at 2030-06-03T12:00:00Z\n"), "{out}");
    assert!(out.contains("soft freeze `launch-week`"), "{out}");
    assert_homes_unchanged(&f, &before);
}

#[test]
fn a_change_next_to_a_per_host_line_is_one_block_and_the_exception_is_named() {
    let f = TestFleet::start(6);
    // Each host's id sits right above the edited key, so every diff's context differs; h04
    // runs another model, so its change is another change.
    for (i, h) in f.hosts.iter().enumerate() {
        let mut cfg = AGENT_CONFIG.replace("[model]\n", &format!("[model]\nid = \"h{:02}\"\n", i + 1));
        if i == 3 {
            cfg = cfg.replace("name = \"claude-sonnet-4\"", "name = \"claude-opus-4\"");
        }
        std::fs::write(h.home.join("agent/config.toml"), cfg).unwrap();
    }
    let before = homes(&f);
    let pb = f.playbook("swap", &playbook(SWAP));
    let (code, out, err) = plan(&f, &pb, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headers,
        vec![
            "== h01..h06 except h04 (5 hosts): same change (context differs per host; lines marked ~ are h01's)",
            "== h04",
        ],
        "{out}"
    );
    let shared = section(&out, headers[0]);
    assert!(
        shared.contains("\n [model]\n~id = \"h01\"\n-name = \"claude-sonnet-4\""),
        "{shared}"
    );
    assert_eq!(
        shared.matches("id = \"h0").count(),
        1,
        "the per-host line is shown once: {shared}"
    );
    let h04 = section(&out, headers[1]);
    assert!(h04.contains("\n id = \"h04\"\n-name = \"claude-opus-4\""), "{h04}");
    // --json keeps every host's own diff and adds the groups.
    let (code, out, err) = plan(&f, &pb, &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["diffs"]["h03"].as_str().unwrap().contains(" id = \"h03\""), "{out}");
    let groups = doc["diff_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{out}");
    assert_eq!(
        groups[0]["hosts"],
        serde_json::json!(["h01", "h02", "h03", "h05", "h06"])
    );
    assert_eq!(
        groups[0]["context_differs"],
        serde_json::json!(["h02", "h03", "h05", "h06"])
    );
    assert_homes_unchanged(&f, &before);
}

#[test]
fn plan_shows_the_baseline_each_window_and_an_estimated_duration() {
    let f = TestFleet::start(4);
    let text = playbook(SWAP).replace(
        "errors = [\"ERROR\"]",
        "errors = [\"ERROR\"]\nbefore = \"1s\"\nbaseline = { hosts = 2, max_error_rate_increase = \"1%\" }",
    );
    let pb = f.playbook("swap", &text);
    let (code, out, err) = plan(&f, &pb, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Canary h01, then 10% / 50% / 100% of the other three; the same planner as rollout.
    for line in [
        "\ncanary: h01\nbatch 1: h02\nbatch 2: h03\nbatch 3: h04\n",
        "\nbaseline (watched, unchanged during the canary window): h02, h03\n",
        "\nwindows:\n",
        "\n  canary: observe 2s, after 1s of logs before the change; compared with h02, h03\n",
        "\n  batch 1: observe 1s; compared with h03, h04\n",
        "\n  batch 2: observe 1s; compared with h04, h01\n",
        "\n  batch 3: observe 1s; compared with h01, h02\n",
        "\nestimated duration: at least 6s (",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    let (code, out, err) = plan(&f, &pb, &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["baseline"], serde_json::json!(["h02", "h03"]));
    assert_eq!(doc["estimated_ms"], 6000);
    let w = doc["windows"].as_array().unwrap();
    assert_eq!(w.len(), 4, "{out}");
    assert_eq!(w[0]["phase"], "canary");
    assert_eq!(w[0]["observe_ms"], 2000);
    assert_eq!(w[0]["before_ms"], 1000);
    assert_eq!(w[0]["baseline"], serde_json::json!(["h02", "h03"]));
    assert_eq!(w[3]["phase"], "batch 3");
    assert_eq!(w[3]["hosts"], serde_json::json!(["h04"]));
    assert_eq!(w[3]["before_ms"], serde_json::Value::Null);
    // The same baseline is what a run records.
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--dry-run"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest_run(&f).join("plan.json")).unwrap()).unwrap();
    assert_eq!(recorded["baseline"], doc["baseline"]);
}

/// The lines after `header` up to the next `== ` header or preflight section.
fn section(out: &str, header: &str) -> String {
    let start = out.find(header).unwrap() + header.len();
    let rest = &out[start..];
    let end = rest
        .find("\n== ")
        .or_else(|| rest.find("\npreflight"))
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn plan_json_is_one_document_with_plan_diffs_and_preflight_failures() {
    let f = TestFleet::start(3);
    let before = homes(&f);
    let pb = f.playbook("swap", &playbook(SWAP));
    let (code, out, err) = plan(&f, &pb, &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(doc["playbook"], "model-swap");
    assert_eq!(doc["exit"], 0);
    assert_eq!(doc["calendar"]["decision"], "allow");
    assert_eq!(doc["plan"]["canary"], serde_json::json!(["h01"]));
    assert_eq!(doc["plan"]["batches"], serde_json::json!([["h02"], ["h03"]]));
    assert_eq!(doc["preflight_failures"], serde_json::json!([]));
    let diffs = doc["diffs"].as_object().unwrap();
    assert_eq!(diffs.len(), 3);
    for h in ["h01", "h02", "h03"] {
        let d = diffs[h].as_str().unwrap();
        assert!(d.contains("+name = \"claude-sonnet-4-5\""), "{h}: {d}");
    }
    assert_homes_unchanged(&f, &before);

    // A host whose file is missing shows up under preflight_failures, exit 6.
    std::fs::remove_file(f.hosts[1].home.join("agent/config.toml")).unwrap();
    let (code, out, err) = plan(&f, &pb, &["--json"]);
    assert_eq!(code, 6, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(doc["exit"], 6);
    let fails = doc["preflight_failures"].as_array().unwrap();
    assert_eq!(fails.len(), 1, "{out}");
    assert_eq!(fails[0]["host"], "h02");
    assert!(
        fails[0]["error"].as_str().unwrap().contains("agent/config.toml"),
        "{out}"
    );
    assert!(doc["diffs"].get("h02").is_none(), "{out}");
}

#[test]
fn missing_file_and_failed_expect_are_preflight_failures_naming_the_host() {
    let f = TestFleet::start(4);
    for h in &f.hosts {
        std::fs::write(h.home.join("agent/limits.toml"), "[limits]\nrps = 10\n").unwrap();
    }
    // h03 lacks limits.toml; h02 has another temperature, so the regex finds nothing there.
    std::fs::remove_file(f.hosts[2].home.join("agent/limits.toml")).unwrap();
    std::fs::write(
        f.hosts[1].home.join("agent/config.toml"),
        AGENT_CONFIG.replace("temperature = 0.2", "temperature = 0.9"),
    )
    .unwrap();
    let before = homes(&f);
    let edits = r#"[[edit]]
path = "agent/config.toml"
replace = { pattern = 'temperature = 0\.2', with = "temperature = 0.3", expect = 1 }

[[edit]]
path = "agent/limits.toml"
set = { "limits.rps" = 20 }"#;
    let pb = f.playbook("tune", &playbook(edits));
    let (code, out, err) = plan(&f, &pb, &[]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(out.contains("preflight FAILED on 2 host(s):"), "{out}");
    let line = |h: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{h}: ")))
            .unwrap_or_else(|| panic!("a preflight line for {h}: {out}"))
            .to_string()
    };
    let h02 = line("h02");
    assert!(h02.contains("matched 0 time(s) but `expect = 1`"), "{h02}");
    assert_eq!(h02.matches("agent/config.toml").count(), 1, "path said once: {h02}");
    let h03 = line("h03");
    assert!(h03.contains("agent/limits.toml"), "{h03}");
    assert!(h03.contains("the file does not exist on the host"), "{h03}");
    // The other two hosts are still planned and diffed.
    assert!(out.contains("== h01, h04: same diff"), "{out}");
    assert!(out.contains("+temperature = 0.3"), "{out}");
    assert!(out.contains("+rps = 20"), "{out}");
    assert_homes_unchanged(&f, &before);
}

#[test]
fn secret_values_never_appear_in_plan_output() {
    let f = TestFleet::start(2);
    let before = homes(&f);
    let edits = r#"[[edit]]
path = "agent/config.toml"
set = { "provider.api_key" = "plain-new-value-789", "model.name" = "claude-sonnet-4-5" }"#;
    let pb = f.playbook("rotate", &playbook(edits));
    let (code, out, err) = plan(&f, &pb, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (jcode, jout, jerr) = plan(&f, &pb, &["--json"]);
    assert_eq!(jcode, 0, "{jout}\n{jerr}");
    let doc: serde_json::Value = serde_json::from_str(&jout).unwrap();
    let jdiff = doc["diffs"]["h01"].as_str().unwrap().to_string();
    for (what, text) in [("text", format!("{out}{err}")), ("json", format!("{jout}{jerr}"))] {
        assert!(!text.contains(SECRET), "{what}: old secret leaked: {text}");
        assert!(
            !text.contains("plain-new-value-789"),
            "{what}: new secret leaked: {text}"
        );
    }
    for d in [&out, &jdiff] {
        assert!(d.contains("\n-api_key = \"••••\""), "old value masked: {d}");
        assert!(d.contains("\n+api_key = \"••••\""), "new value masked: {d}");
        assert!(
            d.contains("\n+name = \"claude-sonnet-4-5\""),
            "the rest is in clear: {d}"
        );
    }
    assert_homes_unchanged(&f, &before);
}

#[test]
fn rollout_with_a_preflight_failure_on_one_host_changes_no_host() {
    let f = TestFleet::start(3);
    f.start_agents();
    std::fs::remove_file(f.hosts[2].home.join("agent/config.toml")).unwrap();
    let orig: Vec<Option<Vec<u8>>> = f
        .hosts
        .iter()
        .map(|h| std::fs::read(h.home.join("agent/config.toml")).ok())
        .collect();
    let pb = f.playbook("swap", &playbook(SWAP));
    let mut c = f.bw();
    c.arg("rollout").arg(&pb).arg("--yes");
    let (code, out, err) = run(c);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        err.contains("preflight failed on 1 of 3 host(s); nothing was changed"),
        "{err}"
    );
    assert!(err.contains("h03: ") && err.contains("agent/config.toml"), "{err}");
    for (h, o) in f.hosts.iter().zip(&orig) {
        assert_eq!(&std::fs::read(h.home.join("agent/config.toml")).ok(), o, "{}", h.name);
        assert!(!h.home.join(".bellwether.lock").exists(), "{}: marker removed", h.name);
    }
    let run_dir = std::fs::read_dir(f.runs_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("events.jsonl").exists())
        .expect("the run is recorded");
    let ev = record(&run_dir);
    assert_eq!(ev.outcome(), Some("preflight_failed"), "{ev}");
    assert!(!ev.has(|k| matches!(k, EventKind::Written { .. })), "{ev}");
    assert!(!ev.has(|k| matches!(k, EventKind::Snapshot { .. })), "{ev}");
    assert_eq!(locks_held(&f.runs_dir()), 0, "lock released");
}

#[test]
fn a_change_that_only_adds_lines_is_flagged_as_a_possible_misspelt_key() {
    let f = TestFleet::start(2);
    let typo = f.playbook(
        "typo",
        &playbook("[[edit]]\npath = \"agent/config.toml\"\nset = { \"model.nmae\" = \"claude-sonnet-4-5\" }"),
    );
    let (code, out, err) = plan(&f, &typo, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: agent/config.toml: the change only adds lines, it replaces no existing value"),
        "{out}"
    );
    let swap = f.playbook("swap", &playbook(SWAP));
    let (_, out, _) = plan(&f, &swap, &[]);
    assert!(
        !out.contains("only adds lines"),
        "a real value change is not flagged: {out}"
    );
}
