//! SSH transport against real OpenSSH sshd processes on loopback addresses.

mod common;

use bellwether::ssh::{Connection, Endpoint, SshError, WriteOptions};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

fn endpoint(f: &TestFleet, i: usize) -> Endpoint {
    let h = &f.hosts[i];
    let mut ep = Endpoint::new(&h.name, &h.addr, &user());
    ep.port = h.port;
    ep.identities = vec![f.key.clone()];
    ep.known_hosts = vec![f.known_hosts.clone()];
    ep.use_agent = false;
    ep.connect_timeout = Duration::from_secs(5);
    ep
}

#[test]
fn ping_twenty_hosts() {
    let f = TestFleet::start(20);
    let (code, out, err) = run({
        let mut c = f.bw();
        c.arg("ping");
        c
    });
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("20 of 20 hosts answered"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains(" ok ")).count(), 20, "{out}");
}

#[test]
fn exec_prefixes_output_and_reports_exit_codes() {
    let f = TestFleet::start(3);
    let (code, out, _) = run({
        let mut c = f.bw();
        c.args([
            "exec",
            "--",
            "echo hello from $(basename $PWD); [ $(basename $PWD) != home-h02 ]",
        ]);
        c
    });
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("h01 | hello from home-h01"), "{out}");
    assert!(out.contains("h03 | hello from home-h03"), "{out}");
    assert!(out.contains("2 of 3 hosts succeeded"), "{out}");
    assert!(out.contains("h02: exit status 1"), "{out}");
    let (code, out, _) = run({
        let mut c = f.bw();
        c.args(["exec", "h01,h03", "--", "true"]);
        c
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 2 hosts succeeded"), "{out}");
}

#[test]
fn exec_group_prints_blocks_in_fleet_order_whatever_order_hosts_finish_in() {
    let f = TestFleet::start(4);
    // h01 finishes last, h04 first.
    let script = "case $PWD in *h01) sleep 1.5;; *h02) sleep 1;; *h03) sleep 0.5;; esac; echo done-$(basename $PWD)";
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "--group", "--", script]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(headers, ["== h01 ==", "== h02 ==", "== h03 ==", "== h04 =="], "{out}");
    for i in 1..=4 {
        let block = out.split(&format!("== h0{i} ==\n")).nth(1).unwrap_or_default();
        let first = block.lines().find(|l| l.starts_with("done-"));
        assert_eq!(first, Some(format!("done-home-h0{i}").as_str()), "{out}");
    }
}

#[test]
fn wrong_host_key_is_refused_and_nothing_runs() {
    let f = TestFleet::start(2);
    // Give h01's known_hosts entry h02's key.
    let kh = std::fs::read_to_string(&f.known_hosts).unwrap();
    let h2key: Vec<&str> = f.hosts[1].host_pub.split_whitespace().collect();
    let bad = kh.replacen(
        &f.hosts[0].known_hosts_line(),
        &format!("[{}]:{} {} {}", f.hosts[0].addr, f.hosts[0].port, h2key[0], h2key[1]),
        1,
    );
    std::fs::write(&f.known_hosts, bad).unwrap();
    let marker = f.hosts[0].home.join("ran");
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "h01", "--", "touch ran"]);
        c
    });
    assert_ne!(code, 0);
    assert!(out.contains("host-key"), "{out}");
    assert!(!marker.exists(), "the command must not run on a host with a wrong key");
    // The library error names offered and known fingerprints and the known_hosts line.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(Connection::open(&endpoint(&f, 0))).err().expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, SshError::HostKeyMismatch { line: 1, .. }), "{msg}");
    assert!(msg.contains("HOST KEY MISMATCH for h01"), "{msg}");
    assert!(msg.matches("SHA256:").count() >= 2, "{msg}");
    assert!(msg.contains(&format!("{}:1", f.known_hosts.display())), "{msg}");
    let _ = err;
}

#[test]
fn unknown_host_refused_then_accepted_with_accept_new() {
    let f = TestFleet::start(1);
    std::fs::write(&f.known_hosts, "").unwrap();
    let (code, out, err) = run({
        let mut c = f.bw();
        c.arg("ping");
        c
    });
    assert_eq!(code, 6, "{out}{err}");
    // The file exists and merely lacks the host: only then is --accept-new the advice.
    assert!(err.contains("is not known") && err.contains("--accept-new"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["ping", "--accept-new"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let kh = std::fs::read_to_string(&f.known_hosts).unwrap();
    assert!(
        kh.contains(&format!("[{}]:{} ssh-ed25519", f.hosts[0].addr, f.hosts[0].port)),
        "{kh}"
    );
    // Recorded: a plain run now succeeds.
    let (code, _, _) = run({
        let mut c = f.bw();
        c.arg("ping");
        c
    });
    assert_eq!(code, 0);
}

#[test]
fn a_missing_known_hosts_file_is_its_own_error_not_advice_to_accept_new() {
    let f = TestFleet::start(1);
    // The fleet names a file that is not there (one letter short).
    let typo = f.dir.join("known_host");
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let from = format!("known_hosts = \"{}\"", f.known_hosts.display());
    assert!(fleet.contains(&from), "{fleet}");
    let fleet = fleet.replace(&from, &format!("known_hosts = \"{}\"", typo.display()));
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let bw = |args: &[&str]| {
        let mut c = f.bw();
        c.args(args);
        run(c)
    };

    let (code, out, err) = bw(&["ping"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(out.contains("FAILED (host-key)"), "{out}");
    assert!(
        err.contains(&format!(
            "h01: known_hosts file {} does not exist, so the host key of h01",
            typo.display()
        )),
        "{err}"
    );
    assert!(err.contains("a misspelt path?"), "{err}");
    assert!(!err.contains("--accept-new"), "no advice to trust every key: {err}");

    // `check` (no network) flags it too.
    let (code, out, err) = bw(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "  warning: known_hosts file {} does not exist: every host key will be refused as unknown; \
             check `known_hosts` in [defaults] (a misspelt path?)\n",
            typo.display()
        )),
        "{out}"
    );

    // A folder where the file should be: unreadable, also without the advice.
    std::fs::create_dir(&typo).unwrap();
    let (code, out, err) = bw(&["ping"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        err.contains(&format!(
            "cannot read known_hosts file {} (it is a folder",
            typo.display()
        )),
        "{err}"
    );
    assert!(!err.contains("--accept-new"), "{err}");
    std::fs::remove_dir(&typo).unwrap();

    // Asked for explicitly, --accept-new still creates the file and records the key.
    let (code, out, err) = bw(&["ping", "--accept-new"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("created known_hosts file"), "{err}");
    let kh = std::fs::read_to_string(&typo).unwrap();
    assert!(
        kh.starts_with(&format!("[{}]:{} ssh-ed25519 ", f.hosts[0].addr, f.hosts[0].port)),
        "{kh}"
    );
    let (code, out, err) = bw(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("warning: known_hosts"), "{out}");
}

#[test]
fn unreachable_address_fails_within_the_connect_timeout() {
    let f = TestFleet::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A listener that accepts TCP but never speaks SSH: the handshake must time out.
    let addr = fresh_addr();
    let l = std::net::TcpListener::bind((addr.as_str(), 0)).unwrap();
    let mut ep = endpoint(&f, 0);
    ep.address = addr.clone();
    ep.port = l.local_addr().unwrap().port();
    ep.connect_timeout = Duration::from_secs(1);
    let t = Instant::now();
    let e = rt.block_on(Connection::open(&ep)).err().expect("must fail");
    assert!(matches!(e, SshError::ConnectTimeout { .. }), "{e}");
    // Generous for a loaded machine: without the timeout the handshake would wait forever.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // A closed port is refused at once.
    drop(l);
    let e = rt.block_on(Connection::open(&ep)).err().expect("must fail");
    assert_eq!(e.class(), "refused", "{e}");
}

#[test]
fn auth_failure_says_what_was_tried() {
    let f = TestFleet::start(1);
    let other = f.dir.join("other_key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    let mut ep = endpoint(&f, 0);
    ep.identities = vec![other.clone()];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(Connection::open(&ep)).err().expect("must fail");
    let msg = e.to_string();
    assert!(matches!(e, SshError::Auth { .. }), "{msg}");
    assert!(msg.contains(&other.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("authentication as {} failed", user())), "{msg}");
}

#[test]
fn reaches_a_host_through_a_jump_host() {
    let f = TestFleet::start(2);
    // h02 only accepts connections from h01 in spirit: we dial it through h01's sshd.
    let mut ep = endpoint(&f, 1);
    ep.jump = Some(Box::new(endpoint(&f, 0)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(async {
        let c = Connection::open(&ep).await.unwrap();
        c.run("basename $PWD", None, Duration::from_secs(10), None)
            .await
            .unwrap()
    });
    assert_eq!(out.stdout_text().trim(), "home-h02");
    // And through the CLI, with `jump = "h01"` in the fleet.
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet.replacen("name = \"h02\"\n", "name = \"h02\"\njump = \"h01\"\n", 1);
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "h02", "--", "basename $PWD"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("h02 | home-h02"), "{out}");
}

#[test]
fn reaches_a_host_through_a_two_hop_proxy_jump() {
    let mut f = TestFleet::start(3);
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet.replacen("name = \"h03\"\n", "name = \"h03\"\njump = \"h01,h02\"\n", 1);
    std::fs::write(f.fleet_path(), fleet).unwrap();
    // Flags may follow the targets; `--group` prints one block per host.
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "h03", "--group", "--", "basename $PWD"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    // (The block may also hold stderr lines from the host's shell start-up files.)
    let block = out.split("== h03 ==\n").nth(1).unwrap_or_default();
    assert!(block.lines().any(|l| l == "home-h03"), "{out}");
    // Proof the path goes through h01: with h01 gone, h03 cannot be reached.
    f.hosts[0].stop();
    let (code, out, _) = run({
        let mut c = f.bw();
        c.args(["exec", "h03", "--", "true"]);
        c
    });
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("h03: jump"), "{out}");
}

#[test]
fn one_mib_write_reads_back_identical_and_keeps_mode() {
    let f = TestFleet::start(1);
    let path = f.hosts[0].home.join("agent/big.bin");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        let sha = c
            .write_file("agent/big.bin", &data, &WriteOptions::default())
            .await
            .unwrap();
        assert_eq!(sha, bellwether::ssh::sha256_hex(&data));
        let back = c.read_file("agent/big.bin").await.unwrap().unwrap();
        assert_eq!(back.bytes, data);
        assert_eq!(back.mode, 0o640);
        assert!(c.read_file("agent/none").await.unwrap().is_none());
    });
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    // No temp files are left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bellwether"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn write_refuses_a_file_changed_since_it_was_read() {
    let f = TestFleet::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        let before = c.read_file("agent/config.toml").await.unwrap().unwrap();
        std::fs::write(f.hosts[0].home.join("agent/config.toml"), "changed by someone\n").unwrap();
        let opts = WriteOptions {
            expect: Some(Some(before.sha256.clone())),
            ..Default::default()
        };
        let e = c.write_file("agent/config.toml", b"new", &opts).await.unwrap_err();
        assert!(matches!(e, SshError::Changed { .. }), "{e}");
    });
    assert_eq!(
        std::fs::read_to_string(f.hosts[0].home.join("agent/config.toml")).unwrap(),
        "changed by someone\n"
    );
}

#[test]
fn hostile_paths_are_quoted() {
    let f = TestFleet::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let names = [
        "with space.toml",
        "it's.toml",
        "$HOME.toml",
        "semi;rm -rf x.toml",
        "`id`.toml",
    ];
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        for n in names {
            let p = format!("agent/{n}");
            c.write_file(&p, n.as_bytes(), &WriteOptions::default()).await.unwrap();
            let back = c.read_file(&p).await.unwrap().unwrap();
            assert_eq!(back.bytes, n.as_bytes());
        }
    });
    for n in names {
        assert_eq!(
            std::fs::read_to_string(f.hosts[0].home.join("agent").join(n)).unwrap(),
            n
        );
    }
}

#[test]
fn cancelled_stream_leaves_no_process_behind() {
    let f = TestFleet::start(1);
    let tag = format!("bwtail{}.log", std::process::id());
    let log = f.hosts[0].home.join("agent").join(&tag);
    std::fs::write(&log, "").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        // A distinctive long-running command we can look for in the process table.
        // From the file's start: the lines count whenever `tail` gets going (no race with a
        // slow start on a loaded machine).
        std::fs::write(&log, "line one\nline two\n").unwrap();
        let mut s = c.stream(&format!("tail -n +1 -F agent/{tag}"), None).await.unwrap();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .unwrap()
                .as_deref(),
            Some("line one")
        );
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .unwrap()
                .as_deref(),
            Some("line two")
        );
        s.cancel().await;
        // The connection stays usable for other work.
        let out = c
            .run("echo still here", None, Duration::from_secs(5), None)
            .await
            .unwrap();
        assert_eq!(out.stdout_text().trim(), "still here");
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = std::process::Command::new("pgrep").args(["-f", &tag]).output().unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "remote tail still running: {}",
            String::from_utf8_lossy(&ps.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A piped log command (`journalctl -f | grep`) is stopped whole over real sshd: every
/// process of the pipeline, not only the shell that started it (dash turns `set -m` off
/// without a terminal, so this needs the wrapper's `setsid`).
#[test]
fn a_cancelled_piped_log_command_leaves_no_process_behind() {
    let f = TestFleet::start(1);
    let tag = format!("bwpiped{}.log", std::process::id());
    std::fs::write(f.hosts[0].home.join("agent").join(&tag), "first\n").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        let mut s = c
            .stream(&format!("tail -n +1 -F agent/{tag} | grep --line-buffered ."), None)
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap();
        assert_eq!(got.as_deref(), Some("first"));
        s.cancel().await;
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = std::process::Command::new("pgrep").args(["-f", &tag]).output().unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a process of the pipeline is still running: {}",
            String::from_utf8_lossy(&ps.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A rollout starts its log tails, then restarts the agent: a line logged the moment the
/// stream has started must be seen, however late the host gets `tail` going, and the
/// lines the file already had are not.
#[test]
fn a_watched_file_is_followed_from_where_it_was_when_the_stream_started() {
    let f = TestFleet::start(1);
    let rel = "agent/start.log";
    let log = f.hosts[0].home.join(rel);
    std::fs::write(&log, "old line\n").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        for round in 0..5 {
            let mut s = c
                .stream(&bellwether::ssh::tail_file_command(rel), Some(rel))
                .await
                .unwrap();
            let line = format!("new line {round}");
            let mut fh = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            std::io::Write::write_all(&mut fh, format!("{line}\n").as_bytes()).unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap();
            assert_eq!(got.as_deref(), Some(line.as_str()), "round {round}");
            s.cancel().await;
        }
        // A file that does not exist yet is followed from its first byte once it appears.
        let fresh = "agent/fresh.log";
        let mut s = c
            .stream(&bellwether::ssh::tail_file_command(fresh), Some(fresh))
            .await
            .unwrap();
        std::fs::write(f.hosts[0].home.join(fresh), "first\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap();
        assert_eq!(got.as_deref(), Some("first"));
        s.cancel().await;
    });
}

#[test]
fn a_created_file_gets_the_umask_mode_not_mktemps_0600() {
    let f = TestFleet::start(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        c.write_file(
            "agent/new.toml",
            b"x = 1\n",
            &WriteOptions {
                expect: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let m = c.read_file("agent/new.toml").await.unwrap().unwrap().mode;
        let umask = c
            .run("umask", None, Duration::from_secs(5), None)
            .await
            .unwrap()
            .stdout_text();
        let umask = u32::from_str_radix(umask.trim(), 8).unwrap();
        assert_eq!(m, 0o666 & !umask);
    });
}

#[test]
fn a_symlinked_file_is_written_where_it_lives_and_the_link_stays() {
    let f = TestFleet::start(1);
    let home = &f.hosts[0].home;
    std::fs::write(home.join("agent/real.toml"), "a = 1\n").unwrap();
    std::fs::set_permissions(home.join("agent/real.toml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("real.toml", home.join("agent/linked.toml")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Connection::open(&endpoint(&f, 0)).await.unwrap();
        let before = c.read_file("agent/linked.toml").await.unwrap().unwrap();
        assert_eq!(before.mode, 0o640, "the mode of the file, not of the link");
        let opts = WriteOptions {
            expect: Some(Some(before.sha256.clone())),
            ..Default::default()
        };
        c.write_file("agent/linked.toml", b"a = 2\n", &opts).await.unwrap();
        // Put it back, as a revert does, with the recorded mode.
        let opts = WriteOptions {
            mode: Some(before.mode),
            expect: Some(Some(bellwether::ssh::sha256_hex(b"a = 2\n"))),
            ..Default::default()
        };
        c.write_file("agent/linked.toml", &before.bytes, &opts).await.unwrap();
    });
    let link = std::fs::symlink_metadata(home.join("agent/linked.toml")).unwrap();
    assert!(link.file_type().is_symlink(), "the link is still a link");
    assert_eq!(
        std::fs::read_to_string(home.join("agent/real.toml")).unwrap(),
        "a = 1\n"
    );
    assert_eq!(
        std::fs::metadata(home.join("agent/real.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
}

#[test]
fn encrypted_identity_uses_the_passphrase_from_the_environment() {
    let f = TestFleet::start(3);
    let key = f.dir.join("enc_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-b", "256", "-N", "correct horse", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut auth = std::fs::read_to_string(f.dir.join("authorized_keys")).unwrap();
    auth.push_str(&std::fs::read_to_string(f.dir.join("enc_key.pub")).unwrap());
    std::fs::write(f.dir.join("authorized_keys"), auth).unwrap();
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet.replace(
        &format!("identity = [\"{}\"]", f.key.display()),
        &format!("identity = [\"{}\"]", key.display()),
    );
    std::fs::write(f.fleet_path(), fleet).unwrap();
    // Without the passphrase (and no terminal to ask on): refused, saying why.
    let (code, out, err) = run({
        let mut c = f.bw();
        c.env_remove("BELLWETHER_KEY_PASSPHRASE").arg("ping");
        c
    });
    assert_eq!(code, 6, "{out}{err}");
    assert!(err.contains("encrypted; set BELLWETHER_KEY_PASSPHRASE"), "{err}");
    // With it: every host, one decryption.
    let (code, out, err) = run({
        let mut c = f.bw();
        c.env("BELLWETHER_KEY_PASSPHRASE", "correct horse").arg("ping");
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 of 3 hosts answered"), "{out}");
}

/// Start an ssh-agent holding `key`; returns its socket path and pid (killed by the caller).
fn agent_with(dir: &std::path::Path, key: &std::path::Path) -> (std::path::PathBuf, u32) {
    let sock = dir.join("agent.sock");
    let out = std::process::Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .arg("-s")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = text
        .split("SSH_AGENT_PID=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let st = std::process::Command::new("ssh-add")
        .arg(key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (sock, pid)
}

#[test]
fn authenticates_with_ssh_agent_and_with_an_rsa_key() {
    let f = TestFleet::start(2);
    // An RSA key, accepted by the hosts, held only by ssh-agent (OpenSSH 9 refuses SHA-1
    // RSA signatures, so this also proves rsa-sha2 signing through the agent).
    let rsa = f.dir.join("rsa_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(st.success());
    let mut auth = std::fs::read_to_string(f.dir.join("authorized_keys")).unwrap();
    auth.push_str(&std::fs::read_to_string(f.dir.join("rsa_key.pub")).unwrap());
    std::fs::write(f.dir.join("authorized_keys"), auth).unwrap();
    let (sock, pid) = agent_with(&f.dir, &rsa);
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet
        .replace(&format!("identity = [\"{}\"]", f.key.display()), "identity = []")
        .replace("agent = false", "agent = true");
    std::fs::write(f.fleet_path(), &fleet).unwrap();
    let (code, out, err) = run({
        let mut c = f.bw();
        c.env("SSH_AUTH_SOCK", &sock).arg("ping");
        c
    });
    // Without the agent there is nothing to authenticate with.
    let (code2, _, err2) = run({
        let mut c = f.bw();
        c.arg("ping");
        c
    });
    let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 of 2 hosts answered"), "{out}");
    assert_eq!(code2, 6);
    assert!(err2.contains("no usable identity file and no ssh-agent key"), "{err2}");
    // The RSA key as an identity file works too.
    std::fs::write(
        f.fleet_path(),
        fleet.replace("identity = []", &format!("identity = [\"{}\"]", rsa.display())),
    )
    .unwrap();
    let (code, out, err) = run({
        let mut c = f.bw();
        c.arg("ping");
        c
    });
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn become_runs_commands_through_sudo() {
    let f = TestFleet::start(1);
    assert!(
        std::path::Path::new("/usr/bin/sudo").exists(),
        "sudo is needed for this test (.ci/run installs it)"
    );
    let fleet = std::fs::read_to_string(f.fleet_path())
        .unwrap()
        .replace("[defaults]\n", "[defaults]\nbecome = true\n");
    std::fs::write(f.fleet_path(), fleet).unwrap();
    let (code, out, err) = run({
        let mut c = f.bw();
        c.args(["exec", "--", "echo via=$SUDO_COMMAND"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("h01 | via=/usr/bin/sh -c") || out.contains("h01 | via=/bin/sh -c"),
        "the command ran through sudo: {out}"
    );
}
