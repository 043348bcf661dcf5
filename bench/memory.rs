//! Controller memory per host: what one open, authenticated SSH connection holds, and what a
//! rollout's steps add to it (a command run on it, a 4 KiB file read, a log tail). A rollout
//! keeps one connection per target host for the whole run, so this, times the fleet, is most
//! of its peak RSS (bench/README.md, "Controller memory").
//!
//! Run against a running sandbox (`bellwether sandbox up --hosts N --dir DIR`):
//! `cargo bench --bench memory -- DIR/fleet.toml`. Prints the resident memory after each step
//! and per host.

use bellwether::config::load::load_fleet;
use bellwether::ssh::{fleet::endpoint, Connection};
use futures::stream::{self, StreamExt};
use std::sync::Arc;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn report(what: &str, before: u64, n: usize) -> u64 {
    let now = rss_kib();
    println!(
        "{what:<44} RSS {:>7.1} MiB  (+{:>6.1} KiB a host)",
        now as f64 / 1024.0,
        (now.saturating_sub(before)) as f64 / n as f64
    );
    now
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let fleet = std::env::args().nth(1).expect("usage: memory FLEET.toml");
    let lf = load_fleet(fleet.as_ref()).expect("fleet");
    let eps: Vec<_> = lf.fleet.hosts.iter().map(|h| endpoint(&lf, h, false)).collect();
    let n = eps.len();
    let base = report("start", rss_kib(), n);
    let conns: Vec<Arc<Connection>> = stream::iter(eps.iter())
        .map(|e| async move { Arc::new(Connection::open(e).await.expect("connect")) })
        .buffer_unordered(50)
        .collect()
        .await;
    let t = std::time::Duration::from_secs(60);
    let open = report("connections open", base, n);
    stream::iter(conns.iter())
        .map(|c| async move { c.run("true", None, t, None).await.map(|_| ()) })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    report("after `true` on each", open, n);
    stream::iter(conns.iter())
        .map(|c| async move { c.read_file("agent/config.toml").await.map(|_| ()) })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    report("after reading a 4 KiB file on each", open, n);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tails = Vec::new();
    let log = "agent/agent.log";
    for (i, c) in conns.iter().enumerate() {
        tails.push(
            c.stream_into(&bellwether::ssh::tail_file_command(log), Some(log), i, tx.clone())
                .await
                .expect("tail"),
        );
    }
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(Some(_)) = tokio::time::timeout_at(until, rx.recv()).await {}
    report("with a log tail on each (3 s)", open, n);
    drop(tails);
}
