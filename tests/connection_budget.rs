//! The fleet's `max_connections`: with more hosts than the budget, idle connections are
//! closed (parked) and reopened — with strict host-key checking — by the host's next step, so
//! a rollout and its revert work exactly as with one connection per host held for the run.
//! Against real sshd.

mod common;

use bellwether::record::EventKind;
use common::*;
use std::collections::BTreeMap;

fn with_budget(f: &TestFleet, max_connections: usize, concurrency: usize) {
    let fleet = std::fs::read_to_string(f.fleet_path()).unwrap();
    let fleet = fleet
        .replacen("concurrency = 8\n", &format!("concurrency = {concurrency}\n"), 1)
        .replacen(
            "[defaults]\n",
            &format!("[defaults]\nmax_connections = {max_connections}\n"),
            1,
        );
    std::fs::write(f.fleet_path(), fleet).unwrap();
}

/// The `reopened` map of the run's `remote_commands` event.
fn reopened(f: &TestFleet) -> BTreeMap<String, u32> {
    remote_commands(f).1
}

fn no_markers(f: &TestFleet) {
    for h in &f.hosts {
        assert!(
            !h.home.join(".bellwether.lock").exists(),
            "{}: the run marker is still there",
            h.name
        );
    }
}

#[test]
fn a_fleet_over_its_connection_budget_rolls_out_reopening_idle_connections() {
    let f = TestFleet::start(5);
    f.start_agents();
    with_budget(&f, 2, 2);
    let pb = f.playbook(
        "push",
        &swap_playbook(
            "claude-sonnet-4-5",
            "",
            "observe = \"1s\"\nbatch_observe = \"1s\"\nbatches = [\"2\", \"100%\"]",
        ),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for i in 0..5 {
        let cfg = String::from_utf8(f.config(i)).unwrap();
        assert!(cfg.contains("name = \"claude-sonnet-4-5\""), "h0{}: {cfg}", i + 1);
    }
    no_markers(&f);
    let again = reopened(&f);
    // Five hosts through a budget of two: preflight parks three, and each later step of a
    // parked host opens its connection again.
    assert!(again.len() >= 3, "connections reopened per host: {again:?}");
}

#[test]
fn a_revert_reopens_the_parked_connections_and_puts_every_host_back_byte_for_byte() {
    let f = TestFleet::start(4);
    // Only h04 breaks on the new model: the last batch fails, after the canary's and the
    // first batch's connections were parked for the budget of one.
    for h in &f.hosts[..3] {
        std::fs::write(h.home.join("agent/broken_models"), "").unwrap();
    }
    f.start_agents();
    with_budget(&f, 1, 1);
    let before: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &swap_playbook(
            "claude-broken-9",
            "",
            "observe = \"1s\"\nbatch_observe = \"3s\"\nbatches = [\"1\", \"100%\"]",
        ),
    );
    let (code, out, err) = bw(&f, &["rollout", pb.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let after: Vec<Vec<u8>> = (0..4).map(|i| f.config(i)).collect();
    assert_eq!(after, before, "every host back byte for byte");
    no_markers(&f);
    let rec = record(&latest_run(&f));
    for h in ["h01", "h02", "h03", "h04"] {
        assert!(
            rec.has(|k| matches!(k, EventKind::Reverted { host, verified: true, .. } if host == h)),
            "{h} reverted and verified"
        );
    }
    let again = reopened(&f);
    assert!(
        again.contains_key("h01"),
        "the canary's parked connection was reopened: {again:?}"
    );
}

/// A parked connection is reopened with the same strict host-key check as the first one: a
/// host whose key changed while its connection was parked is refused (a possible
/// man-in-the-middle), its step fails, and the run puts the canary back.
#[test]
fn a_host_whose_key_changed_while_parked_is_refused_and_the_run_reverts() {
    let mut f = TestFleet::start(3);
    f.start_agents();
    with_budget(&f, 1, 1);
    let before: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    let pb = f.playbook(
        "swap",
        &swap_playbook(
            "claude-sonnet-4-5",
            "",
            "observe = \"8s\"\nbatch_observe = \"0s\"\nbatches = [\"100%\"]",
        ),
    );
    let mut c = f.bw();
    c.args(["rollout", pb.to_str().unwrap(), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // While the canary (h01) is watched, h02's connection is parked (a budget of one): give
    // h02 a new host key, as an attacker in the middle would present.
    wait_for_event(&f, observe_started("canary"), std::time::Duration::from_secs(60));
    let key = f.hosts[1].dir.join("host_key");
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    f.hosts[1].restart();
    let out = child.wait_with_output().unwrap();
    let (code, out, err) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("HOST KEY MISMATCH for h02"),
        "the refusal is named:\n{out}\n{err}"
    );
    let after: Vec<Vec<u8>> = (0..3).map(|i| f.config(i)).collect();
    assert_eq!(after, before, "the canary put back, h02 and h03 never written");
    let rec = record(&latest_run(&f));
    assert!(
        !rec.has(|k| matches!(k, EventKind::Written { host, .. } if host == "h02")),
        "nothing was written through the refused connection"
    );
    assert!(rec.has(|k| matches!(k, EventKind::Reverted { host, verified: true, .. } if host == "h01")));
    // Refused on reopening its parked connection, not on reconnecting a dropped one (the
    // sshd restart would have dropped a connection that was still open).
    assert!(
        !rec.has(|k| matches!(k, EventKind::ReconnectFailed { host, .. } if host == "h02")),
        "{rec}"
    );
}

/// The budget's own bookkeeping, through the library against real sshd: a connection the
/// network dropped is taken out (it holds a place and nothing else) and stays lost, never
/// reopened behind the run's back; the least recently used idle one is parked and reopened
/// by its next command; a reopen its caller gives up on gives its place back; and when every
/// connection is closed the count is zero again.
#[test]
fn the_budget_holds_with_a_lost_connection_and_a_cancelled_reopen() {
    use bellwether::ssh::{budget, Connection, Endpoint};
    use std::time::Duration;
    let mut f = TestFleet::start(5);
    let user = String::from_utf8_lossy(&std::process::Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string();
    let eps: Vec<Endpoint> = f
        .hosts
        .iter()
        .map(|h| {
            let mut ep = Endpoint::new(&h.name, &h.addr, &user);
            ep.port = h.port;
            ep.identities = vec![f.key.clone()];
            ep.known_hosts = vec![f.known_hosts.clone()];
            ep.use_agent = false;
            ep.max_connections = 2;
            ep
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c1 = rt.block_on(Connection::open(&eps[0])).unwrap();
    let c2 = rt.block_on(Connection::open(&eps[1])).unwrap();
    assert_eq!(budget::live(), 2);
    // h01's sshd and its sessions go away: c1's session dies.
    f.hosts[0].kill_hard();
    let t = std::time::Instant::now();
    while !c1.is_closed() {
        assert!(t.elapsed() < Duration::from_secs(10), "c1 never saw its session end");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut more = Vec::new();
    for ep in &eps[2..] {
        more.push(rt.block_on(Connection::open(ep)).unwrap());
        assert!(budget::live() <= 2, "{} open, budget 2", budget::live());
    }
    assert!(c1.is_closed() && !c1.is_parked(), "a lost connection stays lost");
    assert!(c2.is_parked(), "the least recently used idle connection is parked");
    let out = rt
        .block_on(c2.run("echo reopened", None, Duration::from_secs(20), None))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reopened");
    assert_eq!(c2.reopened(), 1);
    assert!(budget::live() <= 2, "{} open, budget 2", budget::live());
    // A reopen cut short by its caller (a dropped future) gives its place back.
    let parked = more.iter().find(|c| c.is_parked()).expect("a parked connection");
    for _ in 0..5 {
        let _ = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(2),
                parked.run("true", None, Duration::from_secs(20), None),
            )
            .await
        });
    }
    assert!(
        budget::live() <= 2,
        "{} open after cancelled reopens, budget 2",
        budget::live()
    );
    rt.block_on(async {
        for c in std::iter::once(&c1).chain([&c2]).chain(more.iter()) {
            c.close().await;
        }
    });
    assert_eq!(budget::live(), 0, "every place given back");
}
