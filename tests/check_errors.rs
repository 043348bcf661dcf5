//! `bellwether check` on the shipped examples, and one broken copy per error kind: each must
//! exit 2 with file, line, column, field and what was expected.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp copy of the shipped fleet, calendar and playbooks.
fn copy_examples() -> tempfile::TempDir {
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

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

fn check(dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .current_dir(dir)
        .arg("check")
        .env_remove("BELLWETHER_FLEET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn broken(file: &str, from: &str, to: &str) -> String {
    let d = copy_examples();
    edit(d.path(), file, from, to);
    let (code, stdout, stderr) = check(d.path());
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "nothing but the error is printed: {stdout}");
    stderr
}

#[test]
fn shipped_examples_pass_and_show_targets() {
    let d = copy_examples();
    let (code, stdout, stderr) = check(d.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("fleet fleet.toml: 12 hosts, 3 regions"), "{stdout}");
    assert!(stdout.contains("playbook model-swap-sonnet"), "{stdout}");
    assert!(
        stdout.contains("by region: ap-southeast-1 4, eu-west-1 4, us-east-1 4"),
        "{stdout}"
    );
    assert!(stdout.contains("playbook provider-switch-bedrock"), "{stdout}");
    assert!(stdout.contains("targets: 9 hosts"), "{stdout}");
    assert!(stdout.contains("calendar calendar.toml: 3 freeze windows"), "{stdout}");
}

#[test]
fn unknown_field_suggests_the_near_miss() {
    let e = broken("fleet.toml", "address = \"10.0.1.12\"", "adress = \"10.0.1.12\"");
    assert!(
        e.contains("fleet.toml:23:1: field `host[1].adress`: unknown field `adress`"),
        "{e}"
    );
    assert!(e.contains("did you mean `address`?"), "{e}");
}

#[test]
fn wrong_type() {
    let e = broken("fleet.toml", "concurrency = 50", "concurrency = \"fifty\"");
    assert!(
        e.contains("fleet.toml:11:15: field `defaults.concurrency`: invalid type: string \"fifty\", expected usize"),
        "{e}"
    );
}

#[test]
fn a_connection_budget_of_zero() {
    let e = broken(
        "fleet.toml",
        "concurrency = 50",
        "concurrency = 50\nmax_connections = 0",
    );
    assert!(
        e.contains("fleet.toml:12:19: field `defaults.max_connections`: must be at least 1"),
        "{e}"
    );
}

#[test]
fn missing_required_field() {
    let e = broken("playbooks/model-swap.toml", "component = \"model\"\n", "");
    assert!(
        e.contains("model-swap.toml:1:1: field `component`: missing field `component`"),
        "{e}"
    );
}

#[test]
fn invalid_regex() {
    let e = broken("playbooks/model-swap.toml", "\"FATAL\",", "\"FATAL(\",");
    assert!(
        e.contains("model-swap.toml:21:20: field `watch.errors[1]`: invalid regex \"FATAL(\""),
        "{e}"
    );
    assert!(e.contains("unclosed group"), "{e}");
}

#[test]
fn invalid_duration() {
    let e = broken(
        "playbooks/model-swap.toml",
        "observe = \"10m\"",
        "observe = \"ten minutes\"",
    );
    assert!(
        e.contains("model-swap.toml:33:11: field `rollout.observe`: invalid duration \"ten minutes\""),
        "{e}"
    );
    assert!(e.contains("expected e.g. \"30s\""), "{e}");
}

#[test]
fn percent_over_100() {
    let e = broken("playbooks/model-swap.toml", "\"50%\", \"100%\"", "\"150%\", \"100%\"");
    assert!(
        e.contains(
            "model-swap.toml:34:11: field `rollout.batches`: percentage \"150%\" is out of range; expected 0% to 100%"
        ),
        "{e}"
    );
}

#[test]
fn batch_plan_must_end_at_100() {
    let e = broken("playbooks/model-swap.toml", "\"50%\", \"100%\"]", "\"50%\", \"90%\"]");
    assert!(
        e.contains("model-swap.toml:34:26: field `rollout.batches[2]`: the batch plan ends at 90%"),
        "{e}"
    );
}

#[test]
fn empty_target_set() {
    let e = broken(
        "playbooks/model-swap.toml",
        "targets = { groups = [\"prod\"] }",
        "targets = { groups = [\"prod\"], exclude = [\"group:prod\"] }",
    );
    assert!(
        e.contains("model-swap.toml:7:11: field `targets`: the target set is empty"),
        "{e}"
    );
}

#[test]
fn target_naming_an_unknown_host() {
    let e = broken(
        "playbooks/model-swap.toml",
        "targets = { groups = [\"prod\"] }",
        "targets = { hosts = [\"use1-z\"] }",
    );
    assert!(
        e.contains("model-swap.toml:7:22: field `targets.hosts[0]`: unknown host \"use1-z\""),
        "{e}"
    );
}

#[test]
fn exclusion_matching_nothing() {
    let e = broken(
        "playbooks/model-swap.toml",
        "targets = { groups = [\"prod\"] }",
        "targets = { groups = [\"prod\"], exclude = [\"group:gpus\"] }",
    );
    assert!(
        e.contains("model-swap.toml:7:43: field `targets.exclude[0]`: exclusion \"group:gpus\" matches nothing"),
        "{e}"
    );
}

#[test]
fn target_naming_an_unknown_group() {
    let e = broken("playbooks/model-swap.toml", "groups = [\"prod\"]", "groups = [\"prd\"]");
    assert!(e.contains("model-swap.toml:7:23: field `targets.groups[0]`: unknown group \"prd\"; the fleet has: canary-pool, cpu, gpu, prod"), "{e}");
}

#[test]
fn duplicate_host_names() {
    let e = broken("fleet.toml", "name = \"use1-b\"", "name = \"use1-a\"");
    assert!(
        e.contains("fleet.toml:22:8: field `host[1].name`: duplicate host name \"use1-a\" (also host[0])"),
        "{e}"
    );
}

#[test]
fn duplicate_addresses() {
    let e = broken("fleet.toml", "address = \"10.0.1.12\"", "address = \"10.0.1.11\"");
    assert!(
        e.contains(
            "fleet.toml:23:11: field `host[1].address`: duplicate address 10.0.1.11:22 (also host[0] \"use1-a\")"
        ),
        "{e}"
    );
}

#[test]
fn freeze_end_before_start() {
    let e = broken(
        "calendar.toml",
        "end = \"2026-11-30T23:59:59Z\"",
        "end = \"2026-11-20T23:59:59Z\"",
    );
    assert!(
        e.contains(
            "calendar.toml:8:7: field `freeze[0].end`: end 2026-11-20T23:59:59Z is before start 2026-11-27T00:00:00Z"
        ),
        "{e}"
    );
}

// Issue 16 item 12 changed this message: it was `fleet.toml:1:1: cannot read the fleet
// file`, a position invented for a file that does not exist, and no word on how to name
// another one.
#[test]
fn unreadable_fleet_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (code, _, e) = check(d.path());
    assert_eq!(code, 2);
    assert!(e.contains("no fleet file at fleet.toml"), "{e}");
    assert!(e.contains("--fleet FILE") && e.contains("BELLWETHER_FLEET"), "{e}");
    assert!(!e.contains(":1:1"), "{e}");
}

/// Run the binary in `dir` with `args`.
fn bw_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .current_dir(dir)
        .args(args)
        .env_remove("BELLWETHER_FLEET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_misspelt_playbook_lists_the_folder_and_suggests_the_closest_name() {
    let d = copy_examples();
    for cmd in [
        &["check", "model-swp"][..],
        &["plan", "model-swp"],
        &["rollout", "model-swp", "--yes"],
    ] {
        let (code, out, e) = bw_in(d.path(), cmd);
        assert_eq!(code, 2, "{cmd:?}: {out}\n{e}");
        assert!(e.contains("error: model-swp: no such playbook"), "{cmd:?}: {e}");
        assert!(!e.contains(":1:1"), "no invented line and column: {e}");
        assert!(e.contains("did you mean `model-swap`?"), "{e}");
        assert!(e.contains("has: model-swap, provider-switch"), "{e}");
        assert!(out.is_empty(), "{out}");
    }
    assert!(!d.path().join("runs").exists(), "no run folder for bad input");
    // A fleet given with --fleet that does not exist says so, with both ways to name it.
    let (code, _, e) = bw_in(d.path(), &["--fleet", "fleet.tml", "check"]);
    assert_eq!(code, 2);
    assert!(
        e.contains("no fleet file at fleet.tml") && e.contains("BELLWETHER_FLEET"),
        "{e}"
    );
}

#[test]
fn two_playbooks_with_one_id_are_a_warning() {
    let d = copy_examples();
    std::fs::copy(
        d.path().join("playbooks/model-swap.toml"),
        d.path().join("playbooks/model-swap-copy.toml"),
    )
    .unwrap();
    let warning = "warning: playbooks/model-swap-copy.toml and playbooks/model-swap.toml share the id \"model-swap-sonnet\": runs are named after the id";
    let (code, out, err) = check(d.path());
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(out.contains(warning), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // Checking one of them alone still compares it with its neighbours in playbooks/.
    let (code, out, err) = bw_in(d.path(), &["check", "model-swap"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("share the id \"model-swap-sonnet\""), "{out}");
    let (code, out, _) = bw_in(d.path(), &["check", "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let w = doc["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{out}");
    assert!(w[0].as_str().unwrap().contains("model-swap-sonnet"), "{out}");
    // The shipped examples have no such pair.
    let (_, out, _) = check(copy_examples().path());
    assert!(!out.contains("share the id"), "{out}");
}

#[test]
fn address_must_be_a_host_name_or_an_ip() {
    let e = broken(
        "fleet.toml",
        "address = \"10.0.1.12\"",
        "address = \"10.0.1.12; touch pwned\"",
    );
    assert!(
        e.contains("fleet.toml:23:11: field `host[1].address`: \"10.0.1.12; touch pwned\" is neither a host name"),
        "{e}"
    );
}

#[test]
fn control_character_in_a_var() {
    let e = broken("fleet.toml", "agent_unit = \"hermes\"", "agent_unit = \"hermes\\nx\"");
    assert!(
        e.contains("fleet.toml:19:23: field `host[0].vars.agent_unit`: contains the control character U+000A"),
        "{e}"
    );
}

#[test]
fn a_var_where_a_command_cannot_quote_it() {
    let e = broken(
        "playbooks/model-swap.toml",
        "health = \"systemctl is-active {{ vars.agent_unit }}\"",
        "health = \"systemctl is-active `echo {{ vars.agent_unit }}`\"",
    );
    assert!(
        e.contains("model-swap.toml:16:10: field `apply.health`: line 1: `{{ vars.agent_unit }}` is inside backticks"),
        "{e}"
    );
    assert!(e.contains("`{{ vars.agent_unit | raw }}`"), "{e}");
}

#[test]
fn raw_outside_a_command_is_an_error_and_in_a_command_a_note() {
    let e = broken(
        "playbooks/model-swap.toml",
        "path = \"/etc/hermes/config.toml\"",
        "path = \"{{ vars.agent_config | raw }}\"",
    );
    assert!(
        e.contains("model-swap.toml:10:8: field `edit[0].path`: line 1: `{{ vars.agent_config | raw }}`: `| raw` only applies to commands"),
        "{e}"
    );
    let d = copy_examples();
    edit(
        d.path(),
        "playbooks/model-swap.toml",
        "command = \"systemctl restart {{ vars.agent_unit }}\"",
        "command = \"systemctl restart {{ vars.agent_unit | raw }}\"",
    );
    let (code, stdout, stderr) = check(d.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("  note: `apply.command` inserts `vars.agent_unit` unquoted (`| raw`): the value runs as shell code on the host"),
        "{stdout}"
    );
}

#[test]
fn pins_are_checked_where_they_are_written() {
    let e = broken(
        "playbooks/provider-switch.toml",
        "\"model.provider\" = \"bedrock\", \"model.name\"",
        "\"model.provider\" = \"anthropic\", \"model.name\"",
    );
    assert!(
        e.contains("provider-switch.toml:15:29: field `edit[0].pins.model.provider`: this edit sets `model.provider` to \"bedrock\", so a pin of \"anthropic\" can never hold; keep one value"),
        "{e}"
    );
    let e = broken(
        "playbooks/provider-switch.toml",
        "pins = { \"HERMES_PROVIDER\" = \"bedrock\" }",
        "pin_sha256 = \"3f2a\"",
    );
    assert!(
        e.contains(
            "provider-switch.toml:20:14: field `edit[1].pin_sha256`: \"3f2a\" is not a sha256: expected 64 hex digits"
        ),
        "{e}"
    );
    let e = broken(
        "playbooks/provider-switch.toml",
        "pins = { \"HERMES_PROVIDER\"",
        "pins = { \"HERMES-PROVIDER\"",
    );
    assert!(
        e.contains("provider-switch.toml:20:30: field `edit[1].pins.HERMES-PROVIDER`: `HERMES-PROVIDER` is not a valid .env variable name"),
        "{e}"
    );
}
