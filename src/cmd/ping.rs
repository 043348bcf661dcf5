//! `bellwether ping`: can we reach, verify and log in to every target?

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::ssh::Connection;
use futures::stream::{self, StreamExt};
use std::time::Duration;

/// Run the ping.
pub async fn run(g: &Global, targets: &[String], json: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let hosts = context::select(&lf, targets)?;
    let eps: Vec<_> = hosts.iter().map(|h| context::endpoint(&lf, h, g.accept_new)).collect();
    let results: Vec<_> = stream::iter(eps.iter())
        .map(|ep| async move {
            let r = match Connection::open(ep).await {
                Ok(c) => {
                    let hs = c.handshake;
                    let r = c.run_ok("true", "true", Duration::from_secs(10)).await.map(|_| hs);
                    c.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            (ep, r)
        })
        .buffered(context::concurrency(g, &lf))
        .collect()
        .await;
    if json {
        return Ok(print_json(&results));
    }
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (ep, r) in &results {
        match r {
            Ok(hs) => rows.push(vec![
                ep.name.clone(),
                ep.addr(),
                "ok".into(),
                format!("{} ms", hs.as_millis()),
            ]),
            Err(e) => {
                rows.push(vec![
                    ep.name.clone(),
                    ep.addr(),
                    format!("FAILED ({})", e.class()),
                    "-".into(),
                ]);
                failed.push(format!("  {}: {e}", ep.name));
            }
        }
    }
    print!(
        "{}",
        crate::ui::table::render(&["HOST", "ADDRESS", "RESULT", "HANDSHAKE"], &rows)
    );
    println!("{} of {} hosts answered", results.len() - failed.len(), results.len());
    if failed.is_empty() {
        Ok(Exit::Done)
    } else {
        crate::ui::log::notice(
            None,
            &crate::ui::safe::text(&format!("failed hosts:\n{}", failed.join("\n"))),
        );
        Ok(Exit::Preflight)
    }
}

/// One document: each host's result in fleet order, and how many answered.
fn print_json(results: &[(&crate::ssh::Endpoint, Result<Duration, crate::ssh::SshError>)]) -> Exit {
    let hosts: Vec<serde_json::Value> = results
        .iter()
        .map(|(ep, r)| match r {
            Ok(hs) => serde_json::json!({
                "host": ep.name, "address": ep.addr(), "ok": true, "handshake_ms": hs.as_millis() as u64,
            }),
            Err(e) => serde_json::json!({
                "host": ep.name, "address": ep.addr(), "ok": false, "class": e.class(), "error": e.to_string(),
            }),
        })
        .collect();
    let answered = results.iter().filter(|(_, r)| r.is_ok()).count();
    let exit = if answered == results.len() {
        Exit::Done
    } else {
        Exit::Preflight
    };
    let doc = serde_json::json!({"hosts": hosts, "answered": answered, "total": results.len(), "exit": exit.code()});
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    exit
}
