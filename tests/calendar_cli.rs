//! `bellwether gate` and `bellwether calendar` run as a CI job would: the real binary, in a
//! temp folder holding a copy of the shipped fleet, calendar and playbooks.
//!
//! The shipped calendar has a hard freeze `peak_q4_black_friday` (2026-11-27T00:00Z to
//! 2026-11-30T23:59:59Z, us-east-1 and eu-west-1, components model and provider), a soft
//! freeze `apac_peak_sale` (10-12 December 2026 in Singapore, ap-southeast-1) and a recurring
//! soft freeze `weekend_berlin` (Friday 16:00 to Monday 06:00 Berlin, eu-west-1).

use serde_json::Value;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Saturday of the Black Friday weekend: the hard freeze and `weekend_berlin` are both on.
const IN_HARD_FREEZE: &str = "2026-11-28T12:00:00Z";
/// A Wednesday with no window active anywhere.
const OUTSIDE: &str = "2026-11-18T12:00:00Z";
/// Inside `apac_peak_sale` (Friday 11 December, 08:00 in Singapore; Berlin's weekend not yet).
const IN_SOFT_FREEZE: &str = "2026-12-11T00:00:00Z";
const DECISION: &str = "logs/change_freeze_decision.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp copy of the shipped fleet, calendar and playbooks.
fn examples() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["fleet.toml", "calendar.toml"] {
        std::fs::copy(root().join(f), d.path().join(f)).unwrap();
    }
    std::fs::create_dir(d.path().join("playbooks")).unwrap();
    for e in std::fs::read_dir(root().join("playbooks")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.path().join("playbooks").join(e.file_name())).unwrap();
    }
    d
}

/// Exit code, stdout, stderr of `bellwether ARGS` in `dir`, with the zone pinned to `tz`.
fn run_tz(dir: &Path, tz: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .current_dir(dir)
        .args(args)
        .env_remove("BELLWETHER_FLEET")
        .env_remove("BELLWETHER_RUNS_DIR")
        .env("TZ", tz)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_tz(dir, "UTC", args)
}

fn decision(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(DECISION)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

fn window_ids(d: &Value) -> Vec<&str> {
    d["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect()
}

#[test]
fn hard_freeze_blocks_t2_and_writes_the_decision_file() {
    let d = examples();
    let args = [
        "gate",
        "--tier",
        "T2",
        "--at",
        IN_HARD_FREEZE,
        "--region",
        "us-east-1",
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("BLOCK: T2 change may not ship at 2026-11-28T12:00:00Z\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  window peak_q4_black_friday: hard freeze, blocks\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    2026-11-27T00:00:00Z -> 2026-11-30T23:59:59Z (UTC)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    regions: us-east-1, eu-west-1  components: model, provider\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    note: Black Friday / Cyber Monday peak traffic\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("  decision written to {DECISION}")),
        "{stdout}"
    );

    let j = decision(d.path());
    assert_eq!(j["decision"], "block");
    assert_eq!(j["allowed"], false);
    assert_eq!(j["tier"], "T2");
    assert_eq!(j["at"], "2026-11-28T12:00:00Z");
    assert_eq!(strings(&j["regions"]), ["us-east-1"]);
    assert_eq!(window_ids(&j), ["peak_q4_black_friday"]);
    let w = &j["windows"][0];
    assert_eq!(w["kind"], "hard");
    assert_eq!(w["effect"], "blocks");
    assert_eq!(w["start"], "2026-11-27T00:00:00Z");
    assert_eq!(w["end"], "2026-11-30T23:59:59Z");
    assert_eq!(strings(&w["components"]), ["model", "provider"]);
    assert_eq!(strings(&j["blocked_regions"]), ["us-east-1"]);
    assert_eq!(j["emergency"], false);
    assert!(j["approver"].is_null());
    assert_eq!(
        j["reasons"][0],
        "hard freeze `peak_q4_black_friday` (2026-11-27T00:00:00Z to 2026-11-30T23:59:59Z, \
         regions us-east-1, eu-west-1) blocks T2 (admits only T0 with an exception)"
    );
    // The write is atomic: no temp file is left beside the decision.
    let names: Vec<String> = std::fs::read_dir(d.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["change_freeze_decision.json"]);
}

#[test]
fn outside_every_window_allows() {
    let d = examples();
    let args = ["gate", "--tier", "T2", "--at", OUTSIDE, "--out", DECISION];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("ALLOW: T2 change may ship at 2026-11-18T12:00:00Z\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  windows: none active for this change"), "{stdout}");
    let j = decision(d.path());
    assert_eq!(j["decision"], "allow");
    assert_eq!(j["allowed"], true);
    assert!(j["windows"].as_array().unwrap().is_empty());
    assert_eq!(
        j["reasons"][0],
        "no freeze window covering this change is active at 2026-11-18T12:00:00Z"
    );
}

#[test]
fn a_region_outside_the_freeze_is_allowed() {
    let d = examples();
    let args = [
        "gate",
        "--tier",
        "T2",
        "--at",
        IN_HARD_FREEZE,
        "--region",
        "ap-southeast-1",
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let j = decision(d.path());
    assert_eq!(j["decision"], "allow");
    assert_eq!(strings(&j["regions"]), ["ap-southeast-1"]);
    assert!(window_ids(&j).is_empty(), "{j}");
    assert!(strings(&j["blocked_regions"]).is_empty());
}

#[test]
fn the_operators_zone_is_shown_beside_utc_and_at_takes_a_zone() {
    let d = examples();
    // 13:00 in Berlin in November is 12:00 UTC.
    let args = [
        "gate",
        "--tier",
        "T2",
        "--region",
        "us-east-1",
        "--at",
        "2026-11-28T13:00 Europe/Berlin",
    ];
    let (code, stdout, stderr) = run_tz(d.path(), "America/New_York", &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("BLOCK: T2 change may not ship at 2026-11-28T12:00:00Z (2026-11-28 07:00 EST)\n"),
        "{stdout}"
    );
}

#[test]
fn t0_passes_a_hard_freeze_only_with_an_approved_exception() {
    let d = examples();
    let base = [
        "gate",
        "--tier",
        "T0",
        "--at",
        IN_HARD_FREEZE,
        "--region",
        "us-east-1",
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &base);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let j = decision(d.path());
    assert_eq!(j["decision"], "block");
    assert_eq!(j["reasons"][0].as_str().unwrap(), "hard freeze `peak_q4_black_friday` (2026-11-27T00:00:00Z to 2026-11-30T23:59:59Z, regions us-east-1, eu-west-1) lets T0 through only with an exception (--exception REASON --approver NAME)");

    let mut with = base.to_vec();
    with.extend(["--exception", "outage fix", "--approver", "alice"]);
    let (code, stdout, stderr) = run(d.path(), &with);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  window peak_q4_black_friday: hard freeze, allows this tier under the exception\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  exception: \"outage fix\", approved by alice\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  emergency profile: canary 5% of targets (at least 1 host), observe at least 10m\n"),
        "{stdout}"
    );
    let j = decision(d.path());
    assert_eq!(j["decision"], "allow");
    assert_eq!(j["tier"], "T0");
    assert_eq!(j["approver"], "alice");
    assert_eq!(j["exception_reason"], "outage fix");
    assert_eq!(j["emergency"], true);
    assert_eq!(j["windows"][0]["effect"], "allows_with_exception");
    let p = &j["emergency_profile"];
    assert_eq!(p["canary_percent"], 5.0);
    assert_eq!(p["min_canary_hosts"], 1);
    assert_eq!(p["min_observe"], "10m");
    assert!(
        j["reasons"][0]
            .as_str()
            .unwrap()
            .ends_with("under an exception approved by alice: outage fix"),
        "{j}"
    );
}

#[test]
fn a_soft_freeze_admits_t1_with_an_approver_but_never_t2() {
    let d = examples();
    let gate = |tier: &str, extra: &[&str]| {
        let mut args = vec![
            "gate",
            "--tier",
            tier,
            "--at",
            IN_SOFT_FREEZE,
            "--region",
            "ap-southeast-1",
            "--out",
            DECISION,
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(d.path(), &args);
        (code, stdout, stderr, decision(d.path()))
    };
    let approved = ["--exception", "flag off", "--approver", "bob"];

    let (code, stdout, _, j) = gate("T1", &[]);
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(window_ids(&j), ["apac_peak_sale"]);
    assert_eq!(j["windows"][0]["kind"], "soft");
    // 00:00 to 23:59:59 Singapore time (UTC+8), shown in UTC.
    assert_eq!(j["windows"][0]["start"], "2026-12-09T16:00:00Z");
    assert_eq!(j["windows"][0]["end"], "2026-12-12T15:59:59Z");

    let (code, stdout, stderr, j) = gate("T1", &approved);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(j["decision"], "allow");
    assert_eq!(j["approver"], "bob");
    assert_eq!(j["emergency"], true);

    let (code, stdout, _, j) = gate("T2", &approved);
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(j["decision"], "block");
    assert_eq!(j["reasons"][0].as_str().unwrap(), "soft freeze `apac_peak_sale` (2026-12-09T16:00:00Z to 2026-12-12T15:59:59Z, regions ap-southeast-1) blocks T2 (admits only T0, T1 with an exception); an exception does not lift it");
}

#[test]
fn the_playbook_supplies_tier_component_and_regions() {
    let d = examples();
    let args = [
        "gate",
        "--playbook",
        "playbooks/model-swap.toml",
        "--at",
        IN_HARD_FREEZE,
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  change: tier T2, playbook model-swap-sonnet, regions ap-southeast-1, eu-west-1, us-east-1, components model\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  frozen regions: eu-west-1, us-east-1 (rollout --skip-frozen may proceed on hosts elsewhere)\n"
        ),
        "{stdout}"
    );
    let j = decision(d.path());
    assert_eq!(j["tier"], "T2");
    assert_eq!(j["playbook_id"], "model-swap-sonnet");
    assert_eq!(strings(&j["components"]), ["model"]);
    assert_eq!(strings(&j["regions"]), ["ap-southeast-1", "eu-west-1", "us-east-1"]);
    assert_eq!(window_ids(&j), ["peak_q4_black_friday", "weekend_berlin"]);
    assert_eq!(strings(&j["blocked_regions"]), ["eu-west-1", "us-east-1"]);
    assert_eq!(j["blocked_everywhere"], false);

    // --region overrides the playbook's regions: asked about Singapore alone, it may ship.
    let mut narrowed = args.to_vec();
    narrowed.extend(["--region", "ap-southeast-1"]);
    let (code, stdout, stderr) = run(d.path(), &narrowed);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let j = decision(d.path());
    assert_eq!(strings(&j["regions"]), ["ap-southeast-1"]);
    assert_eq!(j["playbook_id"], "model-swap-sonnet");

    // A bare playbook name is looked up in playbooks/; --component overrides the playbook's
    // (with a component some playbook uses: an unknown name is refused as a likely typo).
    let pb = std::fs::read_to_string(d.path().join("playbooks/model-swap.toml")).unwrap();
    let prompts = pb.replace("component = \"model\"", "component = \"prompts\"");
    std::fs::write(d.path().join("playbooks/prompts.toml"), prompts).unwrap();
    let (code, stdout, stderr) = run(
        d.path(),
        &[
            "gate",
            "--playbook",
            "model-swap",
            "--at",
            IN_HARD_FREEZE,
            "--region",
            "us-east-1",
            "--component",
            "prompts",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("components prompts"), "{stdout}");
}

#[test]
fn t3_needs_the_readiness_checks_from_its_playbook() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["gate", "--playbook", "provider-switch", "--at", OUTSIDE]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("ALLOW: T3 change may ship"), "{stdout}");

    std::fs::write(
        d.path().join("playbooks/risky.toml"),
        r#"
id = "risky-index-rebuild"
tier = "T3"
component = "index"
targets = { groups = ["prod"] }

[[edit]]
path = "/etc/hermes/config.toml"
set = { "index.version" = "2" }

[rollout]
batches = ["50%", "100%"]
"#,
    )
    .unwrap();
    let args = ["gate", "--playbook", "risky", "--at", OUTSIDE, "--out", DECISION];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let j = decision(d.path());
    assert_eq!(j["blocked_everywhere"], true);
    assert_eq!(j["playbook_id"], "risky-index-rebuild");
    assert!(
        strings(&j["reasons"]).contains(&"T3 requires the readiness checks; missing: a health command, a log watch, a batch plan with at least 3 steps (has 2)"),
        "{j}"
    );
}

#[test]
fn a_calendar_file_alone_is_enough_without_a_fleet() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("ci")).unwrap();
    std::fs::copy(root().join("calendar.toml"), d.path().join("ci/cal.toml")).unwrap();
    let args = [
        "gate",
        "--calendar",
        "ci/cal.toml",
        "--tier",
        "T2",
        "--region",
        "eu-west-1",
        "--at",
        IN_HARD_FREEZE,
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let j = decision(d.path());
    assert_eq!(window_ids(&j), ["peak_q4_black_friday", "weekend_berlin"]);

    // Without --calendar the fleet is needed, and the error says how to do without it.
    let (code, stdout, stderr) = run(d.path(), &["gate", "--tier", "T2"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.contains("no fleet file at fleet.toml") && stderr.contains("--calendar FILE"),
        "{stderr}"
    );
}

#[test]
fn out_dash_is_stdout_and_nothing_else_is_there() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["gate", "--tier", "T2", "--at", OUTSIDE, "--out", "-"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // stdout is the JSON alone (`gate --out - | jq`); the text for people is on stderr.
    let j: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(j["decision"], "allow");
    assert!(stderr.starts_with("ALLOW: T2 change may ship"), "{stderr}");
    assert!(stderr.contains("  decision written to stdout\n"), "{stderr}");
    assert!(!d.path().join("-").exists(), "no file named -");
}

/// A link to this process's stdout, as `/dev/stdout` is, without touching the real one.
fn stdout_link(dir: &Path) -> PathBuf {
    let link = dir.join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    link
}

#[test]
fn out_through_a_link_to_stdout_reaches_stdout_and_keeps_the_link() {
    let d = examples();
    let link = stdout_link(d.path());
    let args = [
        "gate",
        "--tier",
        "T2",
        "--at",
        IN_HARD_FREEZE,
        "--region",
        "us-east-1",
        "--out",
        "stdout",
    ];
    // stdout a pipe, as in CI.
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let j: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(j["decision"], "block");
    assert!(stderr.contains("BLOCK: T2 change may not ship"), "{stderr}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // stdout redirected to a file (`> decision.json`): the JSON is all of it, not overwritten
    // by the text that follows, as a second write position opened on the file would be.
    let file = d.path().join("redirected.json");
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .current_dir(d.path())
        .args(args)
        .env_remove("BELLWETHER_FLEET")
        .env("TZ", "UTC")
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = std::fs::read_to_string(&file).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(j["decision"], "block");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn out_writes_through_a_symlink_and_a_fifo_instead_of_replacing_them() {
    let d = examples();
    std::fs::create_dir_all(d.path().join("shared")).unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    std::fs::write(d.path().join("shared/decision.json"), "stale").unwrap();
    std::os::unix::fs::symlink("../shared/decision.json", d.path().join(DECISION)).unwrap();
    let args = ["gate", "--tier", "T2", "--at", OUTSIDE, "--out", DECISION];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("  decision written to {DECISION}\n")),
        "{stdout}"
    );
    let link = std::fs::symlink_metadata(d.path().join(DECISION)).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("shared/decision.json")).unwrap()).unwrap();
    assert_eq!(j["decision"], "allow");
    assert_eq!(decision(d.path())["decision"], "allow");

    // A FIFO (a CI step reading the decision as it comes) is written to, not renamed over.
    let fifo = d.path().join("decision.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let (code, stdout, stderr) = run(
        d.path(),
        &["gate", "--tier", "T2", "--at", OUTSIDE, "--out", "decision.fifo"],
    );
    // Should the FIFO never have been opened, let the reader see EOF rather than hang.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let j: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(j["decision"], "allow");
    assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file(), "still a FIFO");
}

#[test]
fn a_gate_without_tier_or_playbook_is_bad_input() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["gate", "--region", "us-east-1", "--out", DECISION]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("error: gate needs the change's tier: give --tier T0|T1|T2|T3, or --playbook PLAYBOOK"),
        "{stderr}"
    );
    assert!(!d.path().join(DECISION).exists());

    let (code, _, stderr) = run(d.path(), &["gate", "--tier", "T4"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--tier: unknown tier \"T4\"; expected T0, T1, T2 or T3"),
        "{stderr}"
    );
}

#[test]
fn a_misspelt_region_or_component_is_bad_input_not_an_allow() {
    let d = examples();
    let gate = |flag: &str, name: &str| {
        let args = [
            "gate",
            "--tier",
            "T2",
            "--at",
            IN_SOFT_FREEZE,
            flag,
            name,
            "--out",
            DECISION,
        ];
        run(d.path(), &args)
    };
    // Spelt right, Singapore is in its soft freeze.
    let (code, stdout, stderr) = gate("--region", "ap-southeast-1");
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    std::fs::remove_file(d.path().join(DECISION)).unwrap();

    // Misspelt, it overlaps no window: that must not become an ALLOW.
    let (code, stdout, stderr) = gate("--region", "ap-southeast1");
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(
            "error: --region \"ap-southeast1\" is not a known region: no fleet host, freeze window \
             or playbook uses it (did you mean \"ap-southeast-1\"?); known regions: \
             ap-southeast-1, eu-west-1, us-east-1\n"
        ),
        "{stderr}"
    );
    assert!(
        !d.path().join(DECISION).exists(),
        "no decision is written for bad input"
    );

    let (code, _, stderr) = gate("--component", "modle");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "--component \"modle\" is not a known component: no freeze window or playbook uses it \
             (did you mean \"model\"?); known components: model, provider\n"
        ),
        "{stderr}"
    );
    // A component only a playbook names is known.
    let pb = std::fs::read_to_string(d.path().join("playbooks/model-swap.toml")).unwrap();
    let router = pb.replace("component = \"model\"", "component = \"router\"");
    std::fs::write(d.path().join("playbooks/router.toml"), router).unwrap();
    let args = ["gate", "--tier", "T2", "--at", OUTSIDE, "--component", "router"];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

#[test]
fn regions_are_known_from_the_fleet_even_with_a_calendar_file() {
    let d = examples();
    let mut fleet = std::fs::read_to_string(d.path().join("fleet.toml")).unwrap();
    fleet.push_str("\n[[host]]\nname = \"sae1-a\"\naddress = \"10.0.4.11\"\nregion = \"sa-east-1\"\n");
    std::fs::write(d.path().join("fleet.toml"), fleet).unwrap();
    let args = [
        "gate",
        "--calendar",
        "calendar.toml",
        "--tier",
        "T2",
        "--region",
        "sa-east-1",
        "--at",
        OUTSIDE,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Without the fleet only the calendar's names are known.
    std::fs::remove_file(d.path().join("fleet.toml")).unwrap();
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("known regions: ap-southeast-1, eu-west-1, us-east-1\n"),
        "{stderr}"
    );
}

#[test]
fn a_bad_at_is_bad_input_with_the_expected_forms() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["gate", "--tier", "T2", "--at", "next friday"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("error: --at: \"next friday\" is not a valid time; expected RFC 3339"),
        "{stderr}"
    );
    assert!(stderr.contains("\"2026-12-24T18:00 Europe/Berlin\""), "{stderr}");

    let (code, _, stderr) = run(
        d.path(),
        &["gate", "--tier", "T2", "--at", "2026-11-28T12:00 Europe/Berln"],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown time zone \"Europe/Berln\"") && stderr.contains("did you mean \"Europe/Berlin\"?"),
        "{stderr}"
    );
}

#[test]
fn an_exception_needs_both_reason_and_approver() {
    let d = examples();
    let (code, _, stderr) = run(
        d.path(),
        &[
            "gate",
            "--tier",
            "T0",
            "--at",
            IN_HARD_FREEZE,
            "--exception",
            "outage fix",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--exception needs --approver NAME"), "{stderr}");
    let (code, _, stderr) = run(
        d.path(),
        &["gate", "--tier", "T0", "--exception", "x", "--approver", " "],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--approver is empty"), "{stderr}");
}

#[test]
fn calendar_lists_upcoming_windows_in_utc_and_the_given_zone() {
    let d = examples();
    let (code, stdout, stderr) = run(
        d.path(),
        &[
            "calendar",
            "--days",
            "30",
            "--at",
            "2026-11-26T00:00:00Z",
            "--tz",
            "America/New_York",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("calendar calendar.toml: freeze windows from 2026-11-26T00:00:00Z (2026-11-25 19:00 EST) for the next 30 days; times in UTC and America/New_York\n"),
        "{stdout}"
    );
    let block = "        hard freeze  peak_q4_black_friday\n\
                 \x20       UTC: 2026-11-27 00:00 UTC -> 2026-11-30 23:59 UTC\n\
                 \x20       America/New_York: 2026-11-26 19:00 EST -> 2026-11-30 18:59 EST\n\
                 \x20       regions: us-east-1, eu-west-1  components: model, provider\n";
    assert!(stdout.contains(block), "{stdout}");
    assert!(stdout.contains("        soft freeze  apac_peak_sale\n"), "{stdout}");
    assert!(stdout.contains("        soft freeze  weekend_berlin\n"), "{stdout}");
    assert!(!stdout.contains("ACTIVE"), "nothing is on yet: {stdout}");
    // Black Friday, apac_peak_sale and the Berlin weekends of 27 Nov .. 18 Dec.
    assert!(stdout.ends_with("\n7 occurrences, 0 active now\n"), "{stdout}");
}

#[test]
fn calendar_marks_the_windows_active_at_the_given_time() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["calendar", "--days", "2", "--at", IN_HARD_FREEZE]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ACTIVE  hard freeze  peak_q4_black_friday\n"),
        "{stdout}"
    );
    assert!(stdout.contains("ACTIVE  soft freeze  weekend_berlin\n"), "{stdout}");
    assert!(!stdout.contains("apac_peak_sale"), "{stdout}");
    assert!(stdout.ends_with("\n2 occurrences, 2 active now\n"), "{stdout}");
}

#[test]
fn calendar_rejects_an_unknown_zone_and_days_out_of_range() {
    let d = examples();
    let (code, stdout, stderr) = run(d.path(), &["calendar", "--tz", "Mars/Olympus"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("error: --tz: unknown time zone \"Mars/Olympus\""),
        "{stderr}"
    );
    let (code, _, stderr) = run(d.path(), &["calendar", "--days", "0"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--days 0 is out of range; expected 1 to 3660"),
        "{stderr}"
    );
}

/// The fenced blocks of one language in docs/calendar.md.
fn doc_blocks(lang: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/calendar.md")).unwrap();
    let fence = format!("```{lang}\n");
    doc.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_calendar_examples_in_the_docs_are_valid() {
    let d = tempfile::tempdir().unwrap();
    let mut cal = String::new();
    for block in doc_blocks("toml") {
        // The fleet.toml excerpt: keep its inline window, drop the fleet-only key.
        let block = match block.find("[[freeze]]") {
            Some(i) if block.contains("calendar = ") => block[i..].to_string(),
            _ => block,
        };
        cal.push_str(&block);
        cal.push('\n');
    }
    assert!(cal.matches("[[freeze]]").count() >= 5, "{cal}");
    std::fs::write(d.path().join("cal.toml"), cal).unwrap();
    // Inside the documented vendor freeze: T1 is blocked, whatever [tiers.T1] says of soft.
    let args = [
        "gate",
        "--calendar",
        "cal.toml",
        "--tier",
        "T1",
        "--component",
        "provider",
        "--at",
        "2026-09-05T12:00:00Z",
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("    vendor: anthropic\n"), "{stdout}");
    assert!(
        stdout.contains("  window weekend_berlin: soft freeze, allows this tier\n"),
        "[tiers.T1] soft = \"allow\" applies: {stdout}"
    );
}

#[test]
fn the_decision_file_in_the_docs_is_what_gate_writes() {
    let d = examples();
    let args = [
        "gate",
        "--tier",
        "T0",
        "--region",
        "us-east-1",
        "--component",
        "model",
        "--at",
        IN_HARD_FREEZE,
        "--exception",
        "outage fix: provider 401s",
        "--approver",
        "alice",
        "--out",
        DECISION,
    ];
    let (code, stdout, stderr) = run(d.path(), &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let documented: Value = serde_json::from_str(&doc_blocks("json")[0]).unwrap();
    assert_eq!(decision(d.path()), documented);
}
