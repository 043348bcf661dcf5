//! Fan-out benchmark: how long bellwether's SSH layer takes to reach, run on, and read from a
//! fleet, measured against a local sandbox fleet (in-process russh servers on loopback).
//!
//! Run: `cargo bench --bench fanout` (optionally `BENCH_HOSTS=100`). Prints a table; the
//! numbers in bench/README.md came from this command.

use bellwether::sandbox;
use bellwether::ssh::{Connection, Endpoint};
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn endpoints(sb: &sandbox::Sandbox) -> Vec<Endpoint> {
    let fleet = std::fs::read_to_string(&sb.fleet).expect("fleet");
    let mut eps = Vec::new();
    let mut cur: Option<Endpoint> = None;
    for line in fleet.lines() {
        let val = |l: &str| l.split('=').nth(1).unwrap_or("").trim().trim_matches('"').to_string();
        if line.starts_with("name = ") {
            if let Some(e) = cur.take() {
                eps.push(e);
            }
            let mut e = Endpoint::new(&val(line), "", "agent");
            e.identities = vec![sb.dir.join("id_ed25519")];
            e.known_hosts = vec![sb.dir.join("known_hosts")];
            e.use_agent = false;
            e.connect_timeout = Duration::from_secs(20);
            cur = Some(e);
        } else if let (Some(e), true) = (cur.as_mut(), line.starts_with("address = ")) {
            e.address = val(line);
        } else if let (Some(e), true) = (cur.as_mut(), line.starts_with("port = ")) {
            e.port = val(line).parse().unwrap_or(22);
        }
    }
    eps.extend(cur);
    eps
}

async fn connect_all(eps: &[Endpoint], conc: usize) -> (Duration, Vec<Arc<Connection>>) {
    let t = Instant::now();
    let conns: Vec<Arc<Connection>> = stream::iter(eps.iter())
        .map(|e| async move { Arc::new(Connection::open(e).await.expect("connect")) })
        .buffer_unordered(conc)
        .collect()
        .await;
    (t.elapsed(), conns)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("BENCH_HOSTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox::create(dir.path(), n).await.expect("sandbox");
    let eps = endpoints(&sb);
    println!(
        "fan-out benchmark: {n} sandbox hosts on loopback, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("{:<58} {:>10}", "measurement", "time");

    for conc in [1usize, 10, 50] {
        let (d, conns) = connect_all(&eps, conc).await;
        println!(
            "{:<58} {:>10}",
            format!("connect + verify key + auth, all hosts, concurrency {conc}"),
            ms(d)
        );
        for c in conns {
            c.close().await;
        }
    }

    let (_, conns) = connect_all(&eps, 50).await;
    let t = Instant::now();
    let _: Vec<_> = stream::iter(conns.iter())
        .map(|c| async move { c.run("true", None, Duration::from_secs(30), None).await.expect("run") })
        .buffer_unordered(50)
        .collect()
        .await;
    println!(
        "{:<58} {:>10}",
        "run `true` on every host (connections reused)",
        ms(t.elapsed())
    );

    let t = Instant::now();
    let _: Vec<_> = stream::iter(conns.iter())
        .map(|c| async move { c.read_file("agent/config.toml").await.expect("read") })
        .buffer_unordered(50)
        .collect()
        .await;
    println!(
        "{:<58} {:>10}",
        "read agent/config.toml from every host (preflight read)",
        ms(t.elapsed())
    );

    // Reuse versus reconnect: 10 sequential steps on one host (a rollout does ~8 per host:
    // read, marker, write, apply, health, tail, health, marker).
    let steps = 10;
    let c = &conns[0];
    let t = Instant::now();
    for _ in 0..steps {
        c.run("true", None, Duration::from_secs(30), None).await.expect("run");
    }
    let reuse = t.elapsed();
    let t = Instant::now();
    for _ in 0..steps {
        let c = Connection::open(&eps[0]).await.expect("connect");
        c.run("true", None, Duration::from_secs(30), None).await.expect("run");
        c.close().await;
    }
    let reconnect = t.elapsed();
    println!(
        "{:<58} {:>10}",
        format!("{steps} steps on one host, one reused connection"),
        ms(reuse)
    );
    println!(
        "{:<58} {:>10}",
        format!("{steps} steps on one host, a new connection per step"),
        ms(reconnect)
    );
    for c in conns {
        c.close().await;
    }
    sb.stop_agents().await;
}
