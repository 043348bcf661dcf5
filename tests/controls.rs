//! The seeds' controls against real sshd hosts running the fake agent: manual promotion
//! (`promote = "manual"`, "pause" steps, `promote RUN`, `abort RUN`, `pause_timeout`, a
//! process that waits with `--wait`), controller callbacks (the playbook's and the
//! fleet's), and region-by-region waves with per-region windows (and their summary).

mod common;

use bellwether::record::{read_events, EventKind};
use common::*;
use std::time::Duration;

const GOOD: &str = "claude-sonnet-4-5";
const BROKEN: &str = "claude-broken-9";

fn playbook(model: &str, rollout: &str, tail: &str) -> String {
    let rollout = format!("observe = \"2s\"\nbatch_observe = \"1s\"\n{rollout}\n\n{tail}");
    swap_playbook(model, "", &rollout).replace("min_lines = 5", "min_lines = 3")
}

fn changed(f: &TestFleet, i: usize) -> bool {
    String::from_utf8(f.config(i))
        .unwrap()
        .contains(&format!("name = \"{GOOD}\""))
}

fn markers(f: &TestFleet) -> usize {
    f.hosts
        .iter()
        .filter(|h| h.home.join(".bellwether.lock").exists())
        .count()
}

fn id(f: &TestFleet) -> String {
    latest_run(f).file_name().unwrap().to_string_lossy().to_string()
}

fn phases_started(f: &TestFleet) -> Vec<String> {
    read_events(&latest_run(f))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::PhaseStarted { phase, .. } => Some(phase),
            _ => None,
        })
        .collect()
}

#[test]
fn manual_promotion_waits_after_the_canary_then_promote_finishes() {
    let f = TestFleet::start(3);
    f.start_agents();
    let pb = f.playbook(
        "swap",
        &playbook(GOOD, "promote = \"manual\"\nbatches = [\"100%\"]", ""),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 7, "waiting for promotion\n{out}\n{err}");
    assert!(err.contains(&format!("bellwether promote {}", id(&f))), "{err}");
    assert!(changed(&f, 0) && !changed(&f, 1) && !changed(&f, 2));
    assert_eq!(markers(&f), 3, "the waiting run keeps its markers");
    let (code, out, _) = bw(&f, &["status"]);
    assert_eq!(code, 0, "a wait on purpose is not a problem\n{out}");
    assert!(out.contains("waits for promotion after canary"), "{out}");
    // resume is not how a wait ends
    let (code, _, err) = bw(&f, &["resume", &id(&f), "--yes"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = bw(&f, &["promote", &id(&f), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!((0..3).all(|i| changed(&f, i)));
    assert_eq!(markers(&f), 0);
    let evs = read_events(&latest_run(&f)).unwrap();
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Promoted { phase, .. } if phase == "canary")));
}

#[test]
fn abort_reverts_a_waiting_run_and_a_pause_step_waits_before_its_batch() {
    let f = TestFleet::start(4);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    let pb = f.playbook("swap", &playbook(GOOD, "batches = [\"34%\", \"pause\", \"100%\"]", ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 7, "{out}\n{err}");
    assert_eq!(phases_started(&f), vec!["canary", "batch 1"], "waits after batch 1");
    assert!(changed(&f, 0) && changed(&f, 1) && !changed(&f, 3));
    let (code, out, err) = bw(&f, &["abort", &id(&f), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} back");
    }
    assert_eq!(markers(&f), 0);
}

#[test]
fn an_expired_wait_is_flagged_and_abort_expired_reverts_it() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook(
        "swap",
        &playbook(GOOD, "promote = \"manual\"\npause_timeout = \"1s\"", ""),
    );
    let (code, ..) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 7);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, out, _) = bw(&f, &["status"]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("EXPIRED"), "{out}");
    let (code, out, err) = bw(&f, &["abort", "--expired", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(f.config(0), orig);
    assert_eq!(markers(&f), 0);
    assert_eq!(bw(&f, &["status"]).0, 0);
}

#[test]
fn callbacks_run_on_the_controller_with_the_event_and_a_veto_reverts() {
    let f = TestFleet::start(2);
    f.start_agents();
    let log = f.dir.join("callbacks.log");
    let cb = |name: &str| {
        format!(
            "{name} = \"echo {name} $BELLWETHER_RUN_ID phase=$BELLWETHER_PHASE outcome=$BELLWETHER_OUTCOME $(head -c 200) >> '{}'\"",
            log.display()
        )
    };
    let tail = format!(
        "[callbacks]\n{}\n{}\n{}\n{}",
        cb("on_start"),
        cb("on_promote"),
        cb("on_revert"),
        cb("on_finish")
    );
    let pb = f.playbook("swap", &playbook(GOOD, "batches = [\"100%\"]", &tail));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let rid = id(&f);
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with(&format!("on_start {rid} ")), "{text}");
    assert!(
        lines[1].starts_with(&format!("on_promote {rid} phase=canary")),
        "{text}"
    );
    assert!(
        lines[1].contains("\"callback\":\"on_promote\""),
        "the event arrives on stdin: {text}"
    );
    assert!(
        lines[2].starts_with(&format!("on_promote {rid} phase=batch 1")),
        "{text}"
    );
    assert!(
        lines[3].starts_with(&format!("on_finish {rid} phase= outcome=done")),
        "{text}"
    );
    let evs = read_events(&latest_run(&f)).unwrap();
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e.kind, EventKind::Callback { ok: true, .. }))
            .count(),
        4
    );

    // A failing on_promote with veto stops the promotion: the canary is reverted, exit 1.
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let pb = f.playbook(
        "veto",
        &playbook(
            GOOD,
            "batches = [\"100%\"]",
            "[callbacks]\non_promote = \"echo 'change window closed' >&2; exit 3\"\nveto = true",
        ),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(
        code,
        1,
        "{out}\n{err}\n{}",
        std::fs::read_to_string(latest_run(&f).join("events.jsonl")).unwrap_or_default()
    );
    assert!(err.contains("on_promote vetoed"), "{err}");
    assert_eq!(f.config(0), orig);
    let evs = read_events(&latest_run(&f)).unwrap();
    assert!(evs.iter().any(
        |e| matches!(&e.kind, EventKind::Callback { ok: false, detail, .. } if detail.contains("change window closed"))
    ));
}

#[test]
fn region_waves_roll_in_plan_order_and_a_closed_region_window_pauses_at_its_boundary() {
    // Hosts h01..h06 are in us-east-1, eu-west-1, ap-south-1, us-east-1, …
    let f = TestFleet::start(6);
    f.start_agents();
    let now = chrono::Utc::now();
    // A two-hour window that starts in an hour: eu-west-1 is outside it now.
    let closed = format!(
        "{}-{} UTC",
        (now + chrono::Duration::hours(1)).format("%H:00"),
        (now + chrono::Duration::hours(3)).format("%H:00")
    );
    let plan = "region_plan = [\"ap-south-1\", \"eu-west-1\", \"us-east-1\"]\nbatches = [\"100%\"]";
    let pb = f.playbook(
        "waves",
        &playbook(
            GOOD,
            &format!("{plan}\nwithin = {{ \"eu-west-1\" = \"{closed}\" }}"),
            "",
        ),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 3, "paused at the eu-west-1 boundary\n{out}\n{err}");
    assert_eq!(phases_started(&f), vec!["ap-south-1: canary", "ap-south-1: batch 1"]);
    assert!(changed(&f, 2) && changed(&f, 5), "ap-south-1 keeps the change");
    assert!(!changed(&f, 1) && !changed(&f, 0), "eu-west-1 and us-east-1 untouched");
    assert!(
        err.contains("paused before eu-west-1: canary") && err.contains("outside its window"),
        "{err}"
    );
    // The window opens (here: the playbook drops it), and resume continues with eu-west-1.
    std::fs::write(&pb, playbook(GOOD, plan, "")).unwrap();
    let (code, out, err) = bw(&f, &["resume", &id(&f), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let started = phases_started(&f);
    let order: Vec<&str> = started.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        order,
        vec![
            "ap-south-1",
            "ap-south-1",
            "eu-west-1",
            "eu-west-1",
            "us-east-1",
            "us-east-1"
        ],
        "{started:?}"
    );
    assert!((0..6).all(|i| changed(&f, i)));
    let text = summary(&f);
    for r in ["ap-south-1", "eu-west-1", "us-east-1"] {
        let sec = region_section(&text, r);
        assert!(sec.starts_with(&format!("### {r}: changed")), "{sec}");
        assert!(sec.contains(&format!("{r}: batch 1 passed")), "{sec}");
    }
}

#[test]
fn a_failure_in_a_later_region_reverts_every_region() {
    let f = TestFleet::start(3);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    // h01 (us-east-1) gets a model it cannot load, the others a good one.
    std::fs::write(f.hosts[0].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    let pb = f.playbook(
        "waves",
        &playbook(GOOD, "region_plan = [\"ap-south-1\", \"eu-west-1\", \"us-east-1\"]", ""),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} reverted, earlier regions included");
    }
    let _ = BROKEN;
}

#[test]
fn check_refuses_a_region_plan_that_leaves_targets_out() {
    let f = TestFleet::start(3);
    let pb = f.playbook(
        "waves",
        &playbook(GOOD, "region_plan = [\"ap-south-1\", \"eu-west-1\"]", ""),
    );
    let (code, out, err) = bw(&f, &["check", pb.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("rollout.region_plan") && err.contains("us-east-1"),
        "{err}"
    );
}

fn summary(f: &TestFleet) -> String {
    std::fs::read_to_string(latest_run(f).join("summary.md")).unwrap()
}

/// The part of `summary.md` about one region (up to the next heading).
fn region_section(text: &str, region: &str) -> String {
    let head = format!("### {region}: ");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no section for {region}:\n{text}"));
    let rest = &text[start + head.len()..];
    let end = rest.find("\n#").map(|e| e + 1).unwrap_or(rest.len());
    format!("{head}{}", &rest[..end])
}

#[test]
fn summary_has_a_section_per_region_with_hosts_canary_gates_and_outcome() {
    // h01 us-east-1, h02 eu-west-1, h03 ap-south-1; eu-west-1 cannot load the new model.
    let f = TestFleet::start(3);
    f.start_agents();
    std::fs::write(f.hosts[1].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    let pb = f.playbook(
        "waves",
        &playbook(GOOD, "region_plan = [\"ap-south-1\", \"eu-west-1\", \"us-east-1\"]", ""),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let text = summary(&f);
    let order: Vec<usize> = ["### ap-south-1:", "### eu-west-1:", "### us-east-1:"]
        .iter()
        .map(|h| text.find(h).unwrap_or_else(|| panic!("{h} missing:\n{text}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in plan order:\n{text}");
    let ap = region_section(&text, "ap-south-1");
    assert!(ap.starts_with("### ap-south-1: reverted"), "{ap}");
    assert!(ap.contains("- hosts: h03") && ap.contains("- canary: h03"), "{ap}");
    assert!(ap.contains("ap-south-1: canary passed"), "{ap}");
    assert!(
        ap.contains("| h03 | ap-south-1: canary | ap-south-1: canary passed ("),
        "{ap}"
    );
    let eu = region_section(&text, "eu-west-1");
    assert!(eu.starts_with("### eu-west-1: reverted"), "{eu}");
    assert!(eu.contains("eu-west-1: canary FAILED on h02"), "{eu}");
    assert!(eu.contains("eu-west-1: canary FAILED ("), "its gate result: {eu}");
    let us = region_section(&text, "us-east-1");
    assert!(us.starts_with("### us-east-1: not reached"), "{us}");
    assert!(us.contains("us-east-1: canary not started"), "{us}");
    assert!(us.contains("| h01 | us-east-1: canary | - | not reached |"), "{us}");
}

#[test]
fn fleet_callbacks_run_before_the_playbooks_and_a_fleet_veto_reverts() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = f.config(0);
    let log = f.dir.join("callbacks.log");
    let cb = |who: &str, name: &str| {
        format!(
            "{name} = \"echo {who} {name} $BELLWETHER_PHASE >> '{}'\"",
            log.display()
        )
    };
    // The fleet's on_promote fails and vetoes: the playbook's on_promote never runs.
    let fleet_cbs = format!(
        "[callbacks]\n{}\non_promote = \"echo fleet on_promote >> '{}'; exit 4\"\nveto = true\n{}\n{}\n",
        cb("fleet", "on_start"),
        log.display(),
        cb("fleet", "on_revert"),
        cb("fleet", "on_finish"),
    );
    let mut fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    fleet.push_str(&fleet_cbs);
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let tail = format!(
        "[callbacks]\n{}\n{}\n{}\n{}",
        cb("playbook", "on_start"),
        cb("playbook", "on_promote"),
        cb("playbook", "on_revert"),
        cb("playbook", "on_finish")
    );
    let pb = f.playbook("swap", &playbook(GOOD, "batches = [\"100%\"]", &tail));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("on_promote vetoed the promotion after canary (the fleet's [callbacks])"),
        "{err}"
    );
    assert_eq!(f.config(0), orig, "the canary is back byte for byte");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        vec![
            "fleet on_start",
            "playbook on_start",
            "fleet on_promote",
            "fleet on_revert",
            "playbook on_revert",
            "fleet on_finish",
            "playbook on_finish"
        ],
        "{text}"
    );
    let evs = read_events(&latest_run(&f)).unwrap();
    let sources: Vec<(String, &'static str, bool)> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Callback {
                callback, source, ok, ..
            } => Some((callback.clone(), source.as_str(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(sources[0], ("on_start".into(), "fleet", true));
    assert_eq!(sources[1], ("on_start".into(), "playbook", true));
    assert_eq!(sources[2], ("on_promote".into(), "fleet", false));
    assert!(
        summary(&f).contains("callback on_promote (fleet, canary): FAILED"),
        "{}",
        summary(&f)
    );

    // check validates the fleet's callbacks like a playbook's, naming fleet.toml.
    let text = std::fs::read_to_string(f.fleet_path()).unwrap();
    std::fs::write(f.fleet_path(), text.replace("on_promote = ", "on_cutover = ")).unwrap();
    let (code, out, err) = bw(&f, &["check", pb.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("fleet.toml") && err.contains("callbacks.veto"), "{err}");
}

fn markers_and_locks(f: &TestFleet) -> (usize, usize) {
    (markers(f), locks_held(&f.runs_dir()))
}

#[test]
fn a_waiting_rollout_reverts_by_itself_when_its_pause_times_out() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(GOOD, "promote = \"manual\"\npause_timeout = \"3s\"", ""),
    );
    let t = std::time::Instant::now();
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes", "--wait"]);
    assert_eq!(code, 1, "reverted by itself, nobody ran abort\n{out}\n{err}");
    assert!(t.elapsed() >= Duration::from_secs(3), "it waited for the timeout");
    assert!(err.contains("expired"), "{err}");
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "host {i} back byte for byte");
    }
    assert_eq!(markers_and_locks(&f), (0, 0), "markers and lock released");
    let r = record(&latest_run(&f));
    let waited = r
        .position(|k| matches!(k, EventKind::AwaitingPromotion { .. }))
        .unwrap();
    let expired = r
        .position(|k| matches!(k, EventKind::PromotionExpired { phase, .. } if phase == "canary"))
        .unwrap();
    let reverting = r.position(|k| matches!(k, EventKind::RevertStarted { .. })).unwrap();
    assert!(waited < expired && expired < reverting, "{r}");
    assert_eq!(r.finished(), Some(("reverted", 1)), "{r}");
    assert!(summary(&f).contains("expired at"), "the reason is recorded");
    assert_eq!(bw(&f, &["status"]).0, 0, "nothing left for anyone");
}

/// `rollout --wait` in the background; returns the child once its (new) run waits for
/// promotion.
fn waiting_rollout(f: &TestFleet, pb: &std::path::Path) -> std::process::Child {
    let runs_before = run_dirs(f).len();
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes", "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let t = std::time::Instant::now();
    while run_dirs(f).len() == runs_before {
        assert!(t.elapsed() < Duration::from_secs(30), "no run folder");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_event(
        f,
        |k| matches!(k, EventKind::AwaitingPromotion { .. }),
        Duration::from_secs(30),
    );
    child
}

fn finish(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_waiting_rollout_is_promoted_or_aborted_from_another_terminal() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &playbook(
            GOOD,
            "promote = \"manual\"\nbatches = [\"100%\"]\npause_timeout = \"5m\"",
            "",
        ),
    );
    let child = waiting_rollout(&f, &pb);
    let rid = id(&f);
    let (code, out, _) = bw(&f, &["status"]);
    if !out.contains("reverts it by itself") {
        let mut child = child;
        let _ = child.kill();
        let (_, err) = finish(child);
        panic!(
            "the rollout does not wait with --wait:\n{out}\n--- its stderr ---\n{err}\n{}",
            record(&latest_run(&f))
        );
    }
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("run {rid} waits for promotion after canary")) && out.contains("reverts it by itself"),
        "{out}"
    );
    let (code, out, err) = bw(&f, &["promote", &rid, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(format!("{out}{err}").contains("the waiting process"), "{out}\n{err}");
    let (code, err) = finish(child);
    assert_eq!(code, 0, "the waiting process went on and finished\n{err}");
    assert!(changed(&f, 0) && changed(&f, 1));
    assert_eq!(markers_and_locks(&f), (0, 0));
    assert!(record(&latest_run(&f)).has(|k| matches!(k, EventKind::Promoted { phase, .. } if phase == "canary")));
    assert!(!latest_run(&f).join("promotion.json").exists(), "the hand-over is gone");
    assert!(
        latest_run(&f).join("decision.json").exists(),
        "the calendar's decision stays"
    );

    // A wait that is aborted from another terminal: the waiting process reverts.
    let before: Vec<Vec<u8>> = (0..2).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "opus",
        &playbook("claude-opus-4", "promote = \"manual\"\nbatches = [\"100%\"]", ""),
    );
    let child = waiting_rollout(&f, &pb);
    let (code, out, err) = bw(&f, &["abort", &id(&f), "--yes"]);
    assert_eq!(code, 0, "every host back\n{out}\n{err}");
    let (code, err) = finish(child);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("aborted by"), "{err}");
    assert_eq!(
        (0..2).map(|i| f.config(i)).collect::<Vec<_>>(),
        before,
        "back byte for byte"
    );
    assert_ne!(before, orig);
    assert_eq!(markers_and_locks(&f), (0, 0));
}
