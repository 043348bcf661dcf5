//! Pins and drift against real sshd hosts running the fake agent: pins checked after each
//! host's write and at the end of the run (a broken pin fails the host, and the run reverts),
//! and `bellwether drift` telling a clean fleet from a hand-edited file (pins still holding)
//! and from a broken pin, as a table and as JSON, with its exit codes.

mod common;

use common::*;

const GOOD: &str = "claude-sonnet-4-5";

/// A model swap with `pins` on the config file; no log watch, one-second windows.
fn playbook(pins: &str, rollout: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{GOOD}" }}
pins = {{ {pins} }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[rollout]
observe = "1s"
batch_observe = "1s"
batches = ["100%"]
{rollout}
"#
    )
}

/// (host, at, ok, broken) of every `pin_check` event of a run.
fn pin_checks(r: &Record) -> Vec<(String, String, bool, Vec<String>)> {
    r.kinds()
        .filter_map(|k| match k {
            EventKind::PinCheck {
                host, at, ok, broken, ..
            } => Some((host.clone(), at.clone(), *ok, broken.clone())),
            _ => None,
        })
        .collect()
}

fn set_in_config(f: &TestFleet, i: usize, from: &str, to: &str) {
    let p = f.hosts[i].home.join("agent/config.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

fn drift_json(f: &TestFleet, pb: &std::path::Path) -> (i32, serde_json::Value) {
    let (code, out, err) = bw(f, &["drift", pb.to_str().unwrap(), "--json"]);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, doc)
}

#[test]
fn pins_hold_through_a_rollout_then_drift_tells_a_hand_edit_from_a_broken_pin() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook(
        "swap",
        &playbook(
            &format!("\"model.name\" = \"{GOOD}\", \"model.provider\" = \"anthropic\""),
            "",
        ),
    );
    let (code, out, err) = bw(&f, &["drift", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "nothing rolled out yet, nothing to compare\n{out}\n{err}");
    assert!(out.contains("no successful run recorded"), "{out}");

    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let rec = record(&latest_run(&f));
    let checks = pin_checks(&rec);
    for h in ["h01", "h02", "h03"] {
        for at in ["write", "end"] {
            assert!(
                checks.iter().any(|c| c.0 == h && c.1 == at && c.2 && c.3.is_empty()),
                "{h} checked at {at}: {checks:?}"
            );
        }
    }
    // Each host's pins are checked before its apply runs.
    let pin = rec.position(|k| matches!(k, EventKind::PinCheck { host, .. } if host == "h01"));
    let apply = rec.position(|k| matches!(k, EventKind::Apply { host, .. } if host == "h01"));
    assert!(pin < apply, "{rec}");

    let (code, out, err) = bw(&f, &["drift", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "clean right after the rollout\n{out}\n{err}");
    assert!(out.contains("3 host(s) checked: 3 clean"), "{out}");
    assert!(out.contains("held (2)"), "{out}");

    // A hand edit that keeps the pins (h02), and one that breaks one (h03).
    set_in_config(&f, 1, "temperature = 0.2", "temperature = 0.9");
    set_in_config(&f, 2, "provider = \"anthropic\"", "provider = \"openai\"");
    let (code, out, err) = bw(&f, &["drift", pb.to_str().unwrap()]);
    assert_eq!(code, 8, "{out}\n{err}");
    let line = |h: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("model-swap  {h}")))
            .unwrap_or_default()
    };
    assert!(line("h01").contains("clean"), "{out}");
    assert!(
        line("h02").contains("changed") && line("h02").contains("held (2)"),
        "{out}"
    );
    assert!(
        line("h03").contains("PIN BROKEN") && line("h03").contains("BROKEN: model.provider"),
        "{out}"
    );
    assert!(
        out.contains("changed since the run") && out.contains("its pins still hold"),
        "{out}"
    );
    assert!(
        out.contains("pin broken: model.provider = \"openai\" (pinned \"anthropic\")"),
        "{out}"
    );
    assert!(
        out.contains("3 host(s) checked: 1 clean, 1 changed (pins hold), 1 pin broken, 0 unreachable"),
        "{out}"
    );
    // Read-only: drift wrote nothing and made no run.
    assert_eq!(run_dirs(&f).len(), 1);
    assert!(std::fs::read_to_string(f.hosts[2].home.join("agent/config.toml"))
        .unwrap()
        .contains("provider = \"openai\""));
}

#[test]
fn drift_json_names_each_file_its_hashes_the_run_and_each_pin() {
    let mut f = TestFleet::start(2);
    f.start_agents();
    let pb = f.playbook("swap", &playbook(&format!("\"model.name\" = \"{GOOD}\""), ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    let written = bellwether::edit::sha256_hex(&f.config(0));
    let (code, doc) = drift_json(&f, &pb);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["clean"], true);
    let p = &doc["playbooks"][0];
    assert_eq!(
        (p["playbook"].as_str(), p["run"].as_str()),
        (Some("model-swap"), Some(id.as_str()))
    );
    let file = &p["hosts"][0]["files"][0];
    assert_eq!(p["hosts"][0]["host"], "h01");
    assert_eq!(p["hosts"][0]["state"], "clean");
    assert_eq!(file["path"], "agent/config.toml");
    assert_eq!(file["state"], "same");
    assert_eq!(file["expected"].as_str(), Some(written.as_str()));
    assert_eq!(file["actual"].as_str(), Some(written.as_str()));
    assert_eq!(file["run"].as_str(), Some(id.as_str()));
    assert_eq!(
        file["pins"],
        serde_json::json!([{"pin": "model.name", "held": true, "want": format!("\"{GOOD}\""), "found": format!("\"{GOOD}\"")}])
    );

    // The model changed by hand on h01: its pin is broken; h02 gone: it cannot be checked.
    set_in_config(&f, 0, GOOD, "claude-opus-4");
    f.hosts[1].stop();
    let (code, doc) = drift_json(&f, &pb);
    assert_eq!(code, 8, "a broken pin outranks a host that cannot be read\n{doc:#}");
    let hosts = &doc["playbooks"][0]["hosts"];
    assert_eq!(
        (hosts[0]["state"].as_str(), hosts[1]["state"].as_str()),
        (Some("pin_broken"), Some("unreachable"))
    );
    assert_eq!(hosts[0]["files"][0]["state"], "changed");
    assert_eq!(hosts[0]["files"][0]["pins"][0]["found"], "\"claude-opus-4\"");
    assert_eq!(hosts[1]["files"][0]["state"], "unread");
    assert!(hosts[1]["error"].is_string(), "{doc:#}");
    // Put h01 back by hand: only the unreachable host is left, exit 6.
    set_in_config(&f, 0, "claude-opus-4", GOOD);
    let (code, doc) = drift_json(&f, &pb);
    assert_eq!(code, 6, "{doc:#}");
    assert_eq!(doc["playbooks"][0]["hosts"][0]["state"], "clean");

    let (code, _, err) = bw(&f, &["drift", "no-such-playbook"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_pin_that_does_not_hold_fails_the_canary_before_apply_and_reverts() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    // The hosts are on anthropic; the pin wants bedrock. The api_key pin must never be
    // recorded in clear (neither the pinned value nor the host's).
    let pins = "\"model.provider\" = \"bedrock\", \"provider.api_key\" = \"sk-ant-other-SECRET-999\"";
    let pb = f.playbook("swap", &playbook(pins, ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} byte for byte as before");
    }
    let run = latest_run(&f);
    let rec = record(&run);
    assert_eq!(rec.outcome(), Some("reverted"), "{rec}");
    let checks = pin_checks(&rec);
    assert_eq!(
        checks,
        vec![(
            "h01".to_string(),
            "write".to_string(),
            false,
            vec!["model.provider".to_string(), "provider.api_key".to_string()]
        )],
        "{rec}"
    );
    let apply = rec.position(|k| matches!(k, EventKind::Apply { .. }));
    let revert = rec.position(|k| matches!(k, EventKind::RevertStarted { .. }));
    assert!(
        revert.is_some() && apply > revert,
        "apply ran only to restore the old config, never on the new one: {rec}"
    );
    assert!(
        rec.has(|k| matches!(k, EventKind::HostFailed { host, reason, .. } if host == "h01" && reason.contains("pins do not hold"))),
        "{rec}"
    );
    assert!(!rec.has(|k| file_host(k) == Some("h02")), "h02 never touched: {rec}");
    let raw = raw_events(&run);
    assert!(!raw.contains("SECRET-123") && !raw.contains("SECRET-999"), "{raw}");
    assert!(
        raw.contains("model.provider = \\\"anthropic\\\" (pinned \\\"bedrock\\\")"),
        "{raw}"
    );
    assert!(err.contains("pins do not hold"), "{err}");
}

#[test]
fn an_up_to_date_host_whose_pin_does_not_hold_fails_preflight_before_anything_changes() {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    // h02 already runs the new model (nothing to write), but under another agent id.
    set_in_config(&f, 1, "claude-sonnet-4\"", &format!("{GOOD}\""));
    set_in_config(&f, 1, "id = \"hermes\"", "id = \"rogue\"");
    let h02 = f.config(1);
    let pb = f.playbook("swap", &playbook("\"agent.id\" = \"hermes\"", ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(err.contains("h02: already up to date, but pins do not hold"), "{err}");
    assert_eq!(
        (f.config(0), f.config(2)),
        (orig[0].clone(), orig[2].clone()),
        "nothing changed"
    );
    let rec = record(&latest_run(&f));
    assert_eq!(
        pin_checks(&rec),
        vec![("h02".into(), "preflight".into(), false, vec!["agent.id".into()])],
        "{rec}"
    );
    // Within max_failed_hosts the host is skipped and the others take the change.
    let pb = f.playbook("swap", &playbook("\"agent.id\" = \"hermes\"", "max_failed_hosts = 1"));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(changed_model(&f, 0) && changed_model(&f, 2));
    assert_eq!(f.config(1), h02, "the up-to-date host was never written");
    let rec = record(&latest_run(&f));
    assert!(
        rec.has(|k| matches!(k, EventKind::Skipped { host, reason } if host == "h02" && reason.contains("agent.id = \"rogue\" (pinned \"hermes\")"))),
        "{rec}"
    );
}

fn changed_model(f: &TestFleet, i: usize) -> bool {
    String::from_utf8(f.config(i))
        .unwrap()
        .contains(&format!("name = \"{GOOD}\""))
}

/// Pins added while a run waits for promotion: the promoted part checks them at its end on
/// every host it prepared — the batch it writes, and the baseline hosts changed before the
/// wait, whose bytes it read again at its preflight. One of those fails: the run reverts.
#[test]
fn the_end_check_covers_hosts_changed_before_a_promotion_wait() {
    let f = TestFleet::start(4);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    set_in_config(&f, 1, "id = \"hermes\"", "id = \"rogue\"");
    let h02 = f.config(1);
    let pb_text = |pins: &str| {
        format!(
            r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{GOOD}" }}
pins = {{ {pins} }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5
baseline = {{ hosts = 2 }}

[rollout]
observe = "2s"
batch_observe = "2s"
batches = ["34%", "pause", "100%"]
"#
        )
    };
    let pb = f.playbook("swap", &pb_text(&format!("\"model.name\" = \"{GOOD}\"")));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 7, "waits after batch 1 (h02, h03)\n{out}\n{err}");
    assert!(changed_model(&f, 1) && !changed_model(&f, 3));
    let id = latest_run(&f).file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(&pb, pb_text("\"agent.id\" = \"hermes\"")).unwrap();
    let (code, out, err) = bw(&f, &["promote", &id, "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let rec = record(&latest_run(&f));
    let checks = pin_checks(&rec);
    assert!(
        checks.contains(&("h04".into(), "write".into(), true, vec![])),
        "{checks:?}"
    );
    assert!(
        checks.contains(&("h02".into(), "end".into(), false, vec!["agent.id".into()])),
        "{checks:?}"
    );
    assert!(
        rec.has(|k| matches!(k, EventKind::HostFailed { host, phase, .. } if host == "h02" && phase == "end")),
        "{rec}"
    );
    for (i, o) in orig.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert_eq!(&f.config(i), o, "host {i} reverted");
    }
    assert_eq!(f.config(1), h02, "h02 back to its own (rogue) file");
}
