//! The gates that catch what `min_lines` and health let through, against real sshd hosts
//! running the fake agent: a stalled canary (`max_silence`, judged as it happens), a canary
//! logging far less than its unchanged peers (`baseline.min_line_rate_ratio`), a misspelt
//! log path (preflight, before any host changes), and a watch that sees nothing anywhere
//! (blamed on the watch, not on the change).

mod common;

use bellwether::record::{read_events, Event, EventKind};
use common::*;
use std::time::{Duration, Instant};

const GOOD: &str = "claude-sonnet-4-5";

fn playbook(model: &str, log: &str, watch: &str, rollout: &str) -> String {
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
log = {log}
errors = ["ERROR"]
min_lines = 5
{watch}

[rollout]
canary_hosts = ["h01"]
batch_observe = "2s"
{rollout}
"#
    )
}

const AGENT_LOG: &str = r#"{ file = "agent/agent.log" }"#;

/// The latest run's events, typed (an unreadable record fails the test).
fn events(f: &TestFleet) -> Vec<Event> {
    read_events(&latest_run(f)).unwrap()
}

fn originals(f: &TestFleet) -> Vec<Vec<u8>> {
    (0..f.hosts.len()).map(|i| f.config(i)).collect()
}

/// Every host's config holds exactly the bytes it had before.
#[track_caller]
fn assert_all_restored(f: &TestFleet, orig: &[Vec<u8>]) {
    for (i, o) in orig.iter().enumerate() {
        assert_eq!(&f.config(i), o, "{} is back byte for byte", f.hosts[i].name);
    }
}

/// The canary's verdict in the canary window: passed, breaches, lines seen.
fn canary_verdict(evs: &[Event]) -> (bool, Vec<Breach>, u64) {
    verdict(evs, "canary", "h01")
}

/// `h`'s verdict in window `window`: passed, breaches, lines seen.
fn verdict(evs: &[Event], window: &str, h: &str) -> (bool, Vec<Breach>, u64) {
    evs.iter()
        .find_map(|e| match &e.kind {
            EventKind::Verdict {
                phase,
                host,
                passed,
                verdict,
            } if phase == window && host == h => Some((
                *passed,
                breaches(&e.kind),
                verdict["stats"]["lines"].as_u64().unwrap_or(0),
            )),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a verdict for {h} in {window}"))
}

/// Why the canary failed, as recorded.
fn canary_failure(evs: &[Event]) -> String {
    failure(evs, "h01")
}

/// Why host `h` failed, as recorded.
fn failure(evs: &[Event], h: &str) -> String {
    evs.iter()
        .find_map(|e| match &e.kind {
            EventKind::HostFailed { host, reason, .. } if host == h => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{h} failed"))
}

fn reverted_verified(evs: &[Event], h: &str) -> bool {
    evs.iter()
        .any(|e| matches!(&e.kind, EventKind::Reverted { host, verified: true, .. } if host == h))
}

/// The issue's stall: the agent logs ~20 lines after its restart, then nothing while it stays
/// alive and healthy. `min_lines` is met; `max_silence` fails it long before the window ends.
#[test]
fn a_stalled_canary_fails_max_silence_as_it_happens_and_is_reverted_byte_for_byte() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "stall",
        &playbook("stall-model", AGENT_LOG, "max_silence = \"2s\"", "observe = \"60s\""),
    );
    let t = Instant::now();
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    let took = t.elapsed();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        took < Duration::from_secs(40),
        "failed as it happened, not at the 60s window's end: {took:?}"
    );
    assert_all_restored(&f, &orig);
    let evs = events(&f);
    assert!(reverted_verified(&evs, "h01"), "{:#?}", evs);
    let (passed, br, lines) = canary_verdict(&evs);
    assert!(!passed);
    assert!(lines >= 5, "min_lines alone would have passed it: {lines} lines");
    assert_eq!(br.first().map(|b| b.gate), Some(GateKind::Gap), "{br:?}");
    let why = canary_failure(&evs);
    assert!(
        why.starts_with("no log line for ")
            && why.contains("(max_silence 2s)")
            && why.ends_with("is the agent stalled?"),
        "{why}"
    );
    assert!(
        out.contains("max_silence 2s") || err.contains("max_silence 2s"),
        "{out}\n{err}"
    );
}

/// What the old agent logged after the tails started but before the host's change began
/// (here for 5 s, while a `before` hook ran: ~50 lines) is not the new agent's: a new agent
/// that logs nothing after its start line fails `min_lines = 30`, and the old lines are kept
/// as `before`. (The old agent's lines during the write and restart themselves, a few on a
/// slow machine, still reach the window.)
#[test]
fn the_old_agents_lines_before_the_change_do_not_make_a_silent_agent_pass() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let pb = playbook("silent-model", AGENT_LOG, "", "observe = \"3s\"").replace("min_lines = 5", "min_lines = 30")
        + "\n[hooks]\nbefore = [\"sleep 5\"]\n";
    let pb = f.playbook("silent", &pb);
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let evs = events(&f);
    let (passed, br, lines) = canary_verdict(&evs);
    assert!(!passed);
    assert!(lines < 30, "only the new agent's lines count: {lines}");
    assert!(br.iter().any(|b| b.gate == GateKind::Silence), "{br:?}");
    let kept = std::fs::read_to_string(latest_run(&f).join("logs/h01.log")).unwrap();
    let old = |window: &str| {
        kept.lines()
            .filter(|l| l.contains(&format!(" [{window}] ")) && l.contains("request ok"))
            .count()
    };
    assert!(old("before") >= 20, "the old agent's lines are kept as before:\n{kept}");
    assert!(old("canary") < old("before"), "{kept}");
}

/// A log command that ends by itself (its program gave up) leaves nothing to watch: the
/// canary fails at once, saying so, rather than looking silent until the window's end —
/// also when it ended during the canary's `before` recording.
#[test]
fn a_log_command_that_ends_fails_the_canary_at_once() {
    for before in ["", "before = \"2s\""] {
        let f = TestFleet::start(2);
        f.start_agents();
        let orig = originals(&f);
        for h in &f.hosts {
            std::fs::write(h.home.join("logsrc.sh"), "echo 'INFO one'; echo 'INFO two'; exit 3\n").unwrap();
        }
        let pb = f.playbook(
            "ends",
            &playbook(GOOD, r#"{ command = "sh logsrc.sh" }"#, before, "observe = \"60s\""),
        );
        let t = Instant::now();
        let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
        assert_eq!(code, 1, "{before}: {out}\n{err}");
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "{before}: not at the window's end"
        );
        assert_all_restored(&f, &orig);
        let evs = events(&f);
        let why = canary_failure(&evs);
        assert!(
            why.contains("the log command ended during observation"),
            "{before}: {why}"
        );
        let (passed, br, _) = canary_verdict(&evs);
        assert!(!passed);
        assert_eq!(
            br.len(),
            1,
            "{before}: the verdict holds the breach that ended the window: {br:?}"
        );
        assert_eq!(br[0].gate, GateKind::Health, "{br:?}");
    }
}

/// Within `max_failed_hosts`, a batch host that fails fast does not cut its peers' window
/// short: they are watched for the whole of it (here `min_lines = 25` needs ~2.5 s of
/// lines, and the broken host fails within the first half second), pass, and keep the
/// change; only the failed host is put back. Also when the broken host already failed its
/// health check in the change step (it counts once against the budget, not twice).
#[test]
fn within_max_failed_hosts_a_host_failing_fast_leaves_its_peers_their_whole_window() {
    for unhealthy in [false, true] {
        within_budget(unhealthy);
    }
}

fn within_budget(unhealthy: bool) {
    let f = TestFleet::start(4);
    std::fs::write(f.hosts[2].home.join("agent/broken_models"), format!("{GOOD}\n")).unwrap();
    if unhealthy {
        let ctl = f.hosts[2].home.join("agentctl");
        let text = std::fs::read_to_string(&ctl).unwrap();
        // Unhealthy with the new model only: put back, it is healthy again.
        let sick = text.replace(
            "  status) [ -f",
            &format!("  status) [ \"$(model)\" = \"{GOOD}\" ] && exit 1; [ -f"),
        );
        assert_ne!(sick, text);
        std::fs::write(&ctl, sick).unwrap();
    }
    f.start_agents();
    let orig = originals(&f);
    let pb = playbook(
        GOOD,
        AGENT_LOG,
        "",
        "observe = \"4s\"\nbatches = [\"100%\"]\nmax_failed_hosts = 1",
    )
    .replace("min_lines = 5", "min_lines = 25")
    .replace("batch_observe = \"2s\"", "batch_observe = \"8s\"")
    // Its peers' lines while h03's health is retried count at the window's start: short.
    .replace("health_timeout = \"5s\"", "health_timeout = \"1s\"");
    let pb = f.playbook("budget", &pb);
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "unhealthy {unhealthy}: {out}\n{err}");
    assert_eq!(f.config(2), orig[2], "h03 failed and was put back");
    for i in [0, 1, 3] {
        assert_ne!(f.config(i), orig[i], "{} keeps the change", f.hosts[i].name);
    }
    let evs = events(&f);
    for h in ["h02", "h04"] {
        let (passed, _, lines) = verdict(&evs, "batch 1", h);
        assert!(
            passed && lines >= 25,
            "unhealthy {unhealthy}: {h}: passed {passed}, {lines} lines"
        );
    }
    let why = failure(&evs, "h03");
    let expected = if unhealthy { "did not pass" } else { "model not found" };
    assert!(why.contains(expected), "{why}");
}

/// A canary logging a fifth of what its unchanged peers log fails the throughput comparison;
/// a good change (restart included) passes it on every phase.
#[test]
fn a_trickling_canary_fails_min_line_rate_ratio_and_a_good_one_passes() {
    let f = TestFleet::start(3);
    f.start_agents();
    let base = "baseline = { hosts = 2, min_line_rate_ratio = 0.5 }";
    let pb = f.playbook("good", &playbook(GOOD, AGENT_LOG, base, "observe = \"4s\""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "a good change keeps its line rate:\n{out}\n{err}");

    let orig = originals(&f);
    let pb = f.playbook(
        "trickle",
        &playbook("trickle-model", AGENT_LOG, base, "observe = \"5s\""),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_all_restored(&f, &orig);
    let evs = events(&f);
    assert!(reverted_verified(&evs, "h01"));
    assert!(
        evs.iter()
            .any(|e| matches!(&e.kind, EventKind::ObserveStarted { phase, baseline, .. }
            if phase == "canary" && baseline == &["h02", "h03"])),
        "the canary is compared with h02 and h03"
    );
    let (passed, br, _) = canary_verdict(&evs);
    assert!(!passed);
    let rate = br
        .iter()
        .find(|b| b.gate == GateKind::Baseline)
        .unwrap_or_else(|| panic!("a baseline breach: {br:?}"));
    let m = &rate.message;
    assert!(m.starts_with("line rate "), "{m}");
    assert!(
        m.contains("/s per host (") && m.contains(" lines on 2 hosts): "),
        "both rates: {m}"
    );
    assert!(m.ends_with("of the baseline's, below min_line_rate_ratio 0.5"), "{m}");
}

/// Issue 16 item 5: `watch.log` names a file that is not there. `plan` and `rollout` stop at
/// preflight (exit 6) naming the host and the path, before any host is changed.
#[test]
fn a_misspelt_log_file_fails_preflight_and_changes_nothing() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let log = r#"{ file = "agent/agnet.log" }"#;
    let pb = f.playbook("typo", &playbook(GOOD, log, "", "observe = \"3s\""));
    let want = "watch.log.file \"agent/agnet.log\" does not exist";

    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 6, "plan: {out}\n{err}");
    assert!(
        out.contains(want) || err.contains(want),
        "plan names the path:\n{out}\n{err}"
    );

    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 6, "{out}\n{err}");
    for h in ["h01", "h02"] {
        assert!(
            err.lines().any(|l| l.contains(h) && l.contains(want)),
            "the message names {h} and the path:\n{err}"
        );
    }
    assert_all_restored(&f, &orig);
    let evs = events(&f);
    assert!(!evs.iter().any(|e| file_host(&e.kind).is_some()), "no file was touched");
    // Preflight places the run's marker in the same command; a failed preflight takes each
    // one off again before the run ends.
    let placed = evs
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MarkerPlaced { .. }))
        .count();
    let released = evs
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MarkerReleased { .. }))
        .count();
    assert_eq!(placed, released, "every marker taken off again");
    for h in &f.hosts {
        assert!(!h.home.join(".bellwether.lock").exists(), "{}: no marker left", h.name);
    }
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::RunFinished { outcome, exit: 6, .. }
        if outcome == "preflight_failed")));
    assert!(f.hosts.iter().all(|h| !h.home.join(".bellwether.lock").exists()));

    // A log command whose program is not on the host is found the same way.
    let log = r#"{ command = "jurnalctl -fu hermes -o cat -n0" }"#;
    let pb = f.playbook("typo-cmd", &playbook(GOOD, log, "", ""));
    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 6, "{out}\n{err}");
    let want = "command \"jurnalctl\" is not available on the host (needed by watch.log)";
    assert!(out.contains(want) || err.contains(want), "{out}\n{err}");
}

/// The watch follows a file that exists but that no agent writes: the canary and both
/// baseline hosts log nothing. The run still fails (nothing was judged) and reverts, but the
/// verdict says the watch is probably wrong, not that the canary is broken.
#[test]
fn a_silent_canary_beside_a_silent_baseline_blames_the_watch() {
    let f = TestFleet::start(3);
    for h in &f.hosts {
        std::fs::write(h.home.join("agent/old-agent.log"), "").unwrap();
    }
    f.start_agents();
    let orig = originals(&f);
    let log = r#"{ file = "agent/old-agent.log" }"#;
    let watch = "max_silence = \"2s\"\nbaseline = { hosts = 2 }";
    let pb = f.playbook("quiet", &playbook(GOOD, log, watch, "observe = \"30s\""));
    let t = Instant::now();
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(t.elapsed() < Duration::from_secs(25), "failed fast: {:?}", t.elapsed());
    assert_all_restored(&f, &orig);
    let evs = events(&f);
    assert!(reverted_verified(&evs, "h01"));
    let blame = "the 2 baseline hosts logged nothing either: the watch itself is probably wrong \
                 (check watch.log, its file path or command), not the change";
    let why = canary_failure(&evs);
    assert!(why.contains(blame), "{why}");
    assert!(!why.contains("is the agent"), "not blamed on the agent: {why}");
    let (_, br, lines) = canary_verdict(&evs);
    assert_eq!(lines, 0);
    assert!(
        !br.is_empty() && br.iter().all(|b| b.message.ends_with("not the change")),
        "{br:?}"
    );
    assert!(
        out.contains(blame) || err.contains(blame),
        "the operator sees it:\n{out}\n{err}"
    );
}

/// A canary that passes its health check at the change and fails it at the window's end is
/// reverted (the window-end checks run in parallel; a failure is still named and recorded).
#[test]
fn a_canary_unhealthy_at_the_windows_end_is_reverted() {
    let f = TestFleet::start(2);
    f.start_agents();
    let orig = originals(&f);
    let pb = f.playbook(
        "late-unhealthy",
        &format!(
            r#"id = "late-unhealthy"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{GOOD}" }}

[apply]
command = "rm -f agent/unhealthy; ./agentctl restart && if grep -q '{GOOD}' agent/config.toml; then (sleep 1; touch agent/unhealthy) </dev/null >/dev/null 2>&1 & fi"
health = "./agentctl status && test ! -e agent/unhealthy"
health_timeout = "2s"

[rollout]
canary_hosts = ["h01"]
observe = "3s"
batch_observe = "0s"
"#
        ),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let evs = events(&f);
    let why = canary_failure(&evs);
    assert!(why.starts_with("health after the window: "), "{why}");
    assert!(reverted_verified(&evs, "h01"), "{evs:#?}");
    assert_all_restored(&f, &orig);
}
