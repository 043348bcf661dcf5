//! Hostile paths and values against real OpenSSH hosts: nothing in a file name or a host var
//! runs as a command, a planted config symlink is not followed, and a file whose owner the
//! login user could not keep is refused at preflight.

mod common;

use common::*;
use std::os::unix::fs::{chown, symlink};
use std::path::{Path, PathBuf};

/// Every path below `dir` whose last component is `name`.
fn found(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == name) {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            }
        }
    }
    out
}

/// A small playbook: one edit of `path`, `extra` appended (apply, hooks, ...).
fn playbook(path: &str, extra: &str) -> String {
    format!(
        r#"id = "shell-paths"
tier = "T1"
component = "config"
{extra_top}
[[edit]]
path = {path:?}
format = "toml"
create = true
set = {{ "model.name" = "claude-sonnet-4-5" }}

{extra}

[rollout]
canary = 1
observe = "1s"
batches = ["100%"]
batch_observe = "1s"
"#,
        extra_top = if extra.starts_with("follow_links") { extra } else { "" },
        extra = if extra.starts_with("follow_links") { "" } else { extra },
    )
}

#[test]
fn a_link_loop_named_like_a_command_is_reported_and_runs_nothing() {
    let f = TestFleet::start(1);
    let home = &f.hosts[0].home;
    let name = "x$(touch pwned5)";
    symlink(home.join(name), home.join(name)).unwrap();
    let pb = f.playbook("loop", &playbook(name, ""));
    for cmd in [&["plan"][..], &["rollout", "--yes"]] {
        let (code, out, err) = bw(&f, &[cmd, &[pb.to_str().unwrap()]].concat());
        assert_eq!(code, 6, "{cmd:?}: preflight fails\n{out}\n{err}");
        let all = format!("{out}{err}");
        assert!(
            all.contains("h01: cannot resolve the link x$(touch pwned5) (a loop, or a missing directory)"),
            "{cmd:?}: {all}"
        );
        assert!(found(&f.dir, "pwned5").is_empty(), "{cmd:?}: the name ran as a command");
    }
    assert!(std::fs::symlink_metadata(home.join(name))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_host_var_with_shell_syntax_is_one_argument_unless_raw() {
    let f = TestFleet::start(1);
    f.start_agents();
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap().replace(
        "groups = [\"prod\"]\n",
        "groups = [\"prod\"]\nvars = { unit = \"x; touch pwned6\", quoted = \"it's $(touch pwned6)\", reload = \"echo ran > raw.out\" }\n",
    );
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let pb = f.playbook(
        "vars",
        &playbook(
            "agent/config.toml",
            r#"[apply]
command = "./agentctl restart {{ vars.unit }}"
health = "./agentctl status {{ vars.unit }}"

[watch]
log = { command = "tail -n0 -F agent/agent.log # {{ vars.unit }}" }

[hooks]
after = ["printf '%s|' {{ vars.unit }} '{{ vars.quoted }}' \"{{ vars.quoted }}\" > hook.out", "{{ vars.reload | raw }}"]"#,
        ),
    );
    let (code, out, err) = bw(&f, &["check", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("note: `hooks.after[1]` inserts `vars.reload` unquoted (`| raw`)"),
        "{out}"
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(found(&f.dir, "pwned6").is_empty(), "a var ran as a command");
    let home = &f.hosts[0].home;
    assert_eq!(
        std::fs::read_to_string(home.join("hook.out")).unwrap(),
        "x; touch pwned6|it's $(touch pwned6)|it's $(touch pwned6)|",
        "each value arrived as one argument, exactly"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("raw.out")).unwrap(),
        "ran\n",
        "| raw is shell"
    );
    let ev = record(&latest_run(&f));
    assert!(
        ev.has(|k| matches!(k, EventKind::Apply { command, ok: true, .. }
            if command == "./agentctl restart 'x; touch pwned6'")),
        "{ev}"
    );
}

#[test]
fn a_config_link_planted_into_another_users_file_is_not_followed_unless_allowed() {
    let f = TestFleet::start(1);
    let home = f.hosts[0].home.clone();
    // The agent's directory belongs to a less privileged user (nobody), who replaced the
    // config with a link to a file of root's.
    let target = home.join("root-only.toml");
    std::fs::write(&target, "[model]\nname = \"x\"\n").unwrap();
    let config = home.join("agent/config.toml");
    std::fs::remove_file(&config).unwrap();
    symlink(&target, &config).unwrap();
    chown(home.join("agent"), Some(65534), Some(65534)).unwrap();
    let pb = f.playbook("planted", &playbook("agent/config.toml", ""));
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 6, "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains(&format!(
            "h01: agent/config.toml is a symlink to {}, which belongs to uid 0, but the directory of the link belongs to uid 65534",
            target.display()
        )),
        "{all}"
    );
    assert!(all.contains("set `follow_links = true` in the playbook"), "{all}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "[model]\nname = \"x\"\n");

    // The operator says the link is meant: it is followed, the target changes.
    let pb = f.playbook("planted", &playbook("agent/config.toml", "follow_links = true\n"));
    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("claude-sonnet-4-5"), "{out}");
}

#[test]
fn a_file_whose_owner_or_group_the_login_user_cannot_keep_is_refused_at_preflight() {
    const NOBODY: u32 = 65534;
    let f = TestFleet::start_login_as(1, NOBODY);
    let home = f.hosts[0].home.clone();
    for d in [&home, &home.join("agent")] {
        chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let config = home.join("agent/config.toml");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let pb = f.playbook("owner", &playbook("agent/config.toml", ""));
    let attempt = || bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);

    // root's file, writable by all: nobody could write it, but not keep its owner.
    chown(&config, Some(0), Some(NOBODY)).unwrap();
    let (code, out, err) = attempt();
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains(
            "h01: agent/config.toml belongs to root (uid 0), and nobody (uid 65534) cannot give the rewritten file that owner"
        ),
        "{out}{err}"
    );
    assert!(format!("{out}{err}").contains("Set `become = true` (passwordless sudo) for this host"));

    // nobody's file in root's group, which nobody is not in.
    chown(&config, Some(NOBODY), Some(0)).unwrap();
    let (code, out, err) = attempt();
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        format!("{out}{err}")
            .contains("h01: agent/config.toml has group root (gid 0), which nobody is not a member of"),
        "{out}{err}"
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        AGENT_CONFIG.as_bytes(),
        "nothing was written"
    );

    // nobody's own file: owner and group are kept.
    chown(&config, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, out, err) = bw(&f, &["plan", pb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn blue_green_stages_in_a_fresh_mktemp_directory_not_a_planted_name() {
    let f = TestFleet::start(1);
    let agent = f.hosts[0].home.join("agent");
    std::fs::remove_file(agent.join("config.toml")).unwrap();
    std::fs::create_dir_all(agent.join("blue")).unwrap();
    std::fs::write(agent.join("blue/config.toml"), AGENT_CONFIG).unwrap();
    symlink("blue", agent.join("current")).unwrap();
    symlink("current/config.toml", agent.join("config.toml")).unwrap();
    // The name the staging directory used to have, planted beforehand.
    let victim = f.hosts[0].home.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), "mine").unwrap();
    symlink(&victim, agent.join("green.bellwether-stage")).unwrap();
    f.start_agents();
    let pb = f.playbook(
        "bg",
        r#"id = "bg"
tier = "T1"
component = "model"

[[edit]]
path = "agent/current/config.toml"
set = { "model.name" = "claude-sonnet-4-5" }

[apply]
command = "./agentctl restart"
health = "./agentctl status"

[rollout]
strategy = "blue_green"
observe = "1s"
batches = ["100%"]
batch_observe = "1s"

[rollout.blue_green]
link = "agent/current"
slots = ["agent/blue", "agent/green"]
"#,
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(std::fs::read_link(agent.join("current")).unwrap(), Path::new("green"));
    let staged = std::fs::read_to_string(agent.join("green/config.toml")).unwrap();
    assert!(staged.contains("name = \"claude-sonnet-4-5\""), "{staged}");
    // The planted name was neither used nor removed, and no staging directory is left.
    assert_eq!(
        std::fs::read_link(agent.join("green.bellwether-stage")).unwrap(),
        victim
    );
    assert_eq!(std::fs::read_to_string(victim.join("keep")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
    let left: Vec<String> = std::fs::read_dir(&agent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".bellwether"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
