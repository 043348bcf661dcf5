//! `bellwether ping`: can we reach, verify and log in to every target?

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::ssh::Connection;
use futures::stream::{self, StreamExt};
use std::time::Duration;

/// Run the ping.
pub async fn run(g: &Global, targets: &[String]) -> Result<Exit, Failure> {
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
        crate::ui::log::notice(None, &format!("failed hosts:\n{}", failed.join("\n")));
        Ok(Exit::Preflight)
    }
}
