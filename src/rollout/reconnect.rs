//! Re-opening dropped connections between phases.
//!
//! A run holds one connection per host for its whole length, and a long observation window
//! gives a flaky link (or a restarted sshd) time to drop it. A dropped connection is opened
//! again at the start of the next phase that needs the host (as a changed host or as a
//! baseline) and before a revert; if that fails the host fails exactly as it did before.
//!
//! Before a revert a dropped host is given the length of its `connect_timeout` to come back
//! (an sshd restarting, a link flapping): refused or timed-out attempts are retried with a
//! short backoff until then. A refusal that will not change (host key, authentication) is not
//! retried. Other phases try once: a host that is gone there fails and is reverted.

use super::run::Run;
use crate::record::EventKind;
use crate::ssh::Connection;
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Re-open the connection of each of `hosts` that is closed (or missing, when its endpoint is
/// known), recording `reconnected` or `reconnect_failed`; `phase` names the step it is for.
pub(crate) async fn reconnect(ctx: &mut Run, hosts: &[String], phase: &str) {
    reopen(ctx, hosts, phase, false).await
}

/// [`reconnect`] before putting `hosts` back: a dropped host gets its `connect_timeout` to
/// come back ([`Connection::open_patiently`]), and so does a connection the budget parked
/// when its first revert command opens it again.
pub(crate) async fn reconnect_for_revert(ctx: &mut Run, hosts: &[String]) {
    for h in hosts {
        if let Some(c) = ctx.conns.get(h) {
            c.be_patient();
        }
    }
    reopen(ctx, hosts, "revert", true).await
}

async fn reopen(ctx: &mut Run, hosts: &[String], phase: &str, patient: bool) {
    let todo = to_reopen(ctx, hosts);
    if todo.is_empty() {
        return;
    }
    let results: Vec<_> = stream::iter(todo)
        .map(|(h, ep, dropped)| async move {
            let r = if patient && dropped {
                Connection::open_patiently(&ep).await
            } else {
                Connection::open(&ep).await
            };
            (h, r, dropped)
        })
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    // A failed write here is remembered by the sink and stops the run after this step.
    for (h, r, dropped) in results {
        match r {
            Ok(c) => {
                let c = Arc::new(c);
                ctx.conns.insert(h.clone(), c.clone());
                if let Some(p) = ctx.prepared.get_mut(&h) {
                    p.conn = c;
                }
                if dropped {
                    ctx.rec.emit_or_remember(EventKind::Reconnected {
                        host: h.clone(),
                        phase: phase.to_string(),
                    });
                    ctx.say(&format!("{phase}: {h}: the connection had dropped; reconnected"));
                }
            }
            Err(e) => {
                ctx.rec.emit_or_remember(EventKind::ReconnectFailed {
                    host: h.clone(),
                    phase: phase.to_string(),
                    error: e.to_string(),
                });
                let what = if dropped {
                    "the connection had dropped and cannot be reopened"
                } else {
                    "cannot connect"
                };
                ctx.say(&format!("{phase}: {h}: {what}: {e}"));
            }
        }
    }
}

/// Each of `hosts` whose connection is closed, or that has none yet but a known endpoint:
/// (host, endpoint, whether it had a connection that dropped).
fn to_reopen(ctx: &Run, hosts: &[String]) -> Vec<(String, crate::ssh::Endpoint, bool)> {
    let wanted: BTreeSet<&String> = hosts.iter().collect();
    wanted
        .into_iter()
        .filter_map(|h| {
            let closed = ctx.conns.get(h).map(|c| c.is_closed());
            let ep = ctx
                .endpoints
                .get(h)
                .cloned()
                .or_else(|| ctx.conns.get(h).map(|c| c.endpoint().clone()));
            match (closed, ep) {
                (Some(false), _) | (_, None) => None,
                (was, Some(ep)) => Some((h.clone(), ep, was.is_some())),
            }
        })
        .collect()
}
