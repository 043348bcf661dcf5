//! `~/.ssh/config` read by a real run against a real sshd: a fleet host named only by an alias
//! is reached with the HostName, Port, User, IdentityFile and UserKnownHostsFile that an
//! `Include`d file, a `Match host` block and `%` tokens give it; a `Match exec` block is
//! skipped with a warning, never run.

mod common;

use common::*;
use std::process::Command;

#[test]
fn ping_reaches_an_alias_through_include_match_host_and_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let home = base.join("home");
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
            .trim()
            .to_string()
    });
    // The key is named after the remote user (`%r`), known_hosts after the alias (`%n`).
    let key = ssh.join(format!("{user}-key"));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let auth = base.join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &auth).unwrap();
    let h = Sshd::start(base, "h01", &auth);
    std::fs::write(ssh.join("kh-agent-1"), h.known_hosts_line() + "\n").unwrap();
    std::fs::write(ssh.join("config"), "Include conf.d/*.conf\n\nHost *\n  Port 1\n").unwrap();
    std::fs::write(
        ssh.join("conf.d/10-agents.conf"),
        format!(
            "Host agent-*\n  HostName {addr}\n  User {user}\n\
             Match host {addr} exec \"touch {marker}\"\n  Port 2\n\
             Match host 127.*\n  Port {port}\n  IdentityFile ~/.ssh/%r-key\n  UserKnownHostsFile ~/.ssh/kh-%n\n",
            addr = h.addr,
            port = h.port,
            marker = base.join("exec-ran").display(),
        ),
    )
    .unwrap();
    let fleet = base.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[defaults]\nuser = \"nobody-here\"\nconnect_timeout = \"5s\"\nagent = false\n\n[[host]]\nname = \"agent-1\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .arg("--fleet")
        .arg(&fleet)
        .args(["ping", "--json"])
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["hosts"][0]["ok"], true, "{doc}");
    assert_eq!(doc["hosts"][0]["address"], format!("{}:{}", h.addr, h.port), "{doc}");
    assert!(stderr.contains("`Match exec` is not evaluated"), "{stderr}");
    assert!(
        stderr.contains("10-agents.conf:4"),
        "the warning names file and line: {stderr}"
    );
    assert_eq!(stderr.matches("Match exec").count(), 1, "warned once: {stderr}");
    assert!(!base.join("exec-ran").exists(), "a Match exec command must never run");
}

/// `check` (no network) looks at the known_hosts file each host will really use: a host whose
/// `UserKnownHostsFile` in `~/.ssh/config` names a file that is not there is flagged, named,
/// with the setting to fix; a host on the fleet's file is not.
#[test]
fn check_flags_a_missing_user_known_hosts_file_from_the_ssh_config() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/known_hosts"), "").unwrap();
    let typo = home.join(".ssh/known_host_agents");
    std::fs::write(
        home.join(".ssh/config"),
        format!("Host agent-*\n  UserKnownHostsFile {}\n", typo.display()),
    )
    .unwrap();
    let fleet = tmp.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "[defaults]\nagent = false\n\n[[host]]\nname = \"agent-1\"\n\n[[host]]\nname = \"agent-2\"\n\n[[host]]\nname = \"db-1\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .arg("--fleet")
        .arg(&fleet)
        .arg("check")
        .env("HOME", &home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let want = format!(
        "  warning: known_hosts file {} does not exist: only host keys listed in /etc/ssh/ssh_known_hosts will be accepted; \
         check `UserKnownHostsFile` in your ssh config (a misspelt path?) (hosts agent-1, agent-2)\n",
        typo.display()
    );
    let want_no_system = format!(
        "  warning: known_hosts file {} does not exist: every host key will be refused as unknown; \
         check `UserKnownHostsFile` in your ssh config (a misspelt path?) (hosts agent-1, agent-2)\n",
        typo.display()
    );
    assert!(stdout.contains(&want) || stdout.contains(&want_no_system), "{stdout}");
    assert_eq!(
        stdout.matches("warning: known_hosts").count(),
        1,
        "db-1 uses ~/.ssh/known_hosts: {stdout}"
    );
}
