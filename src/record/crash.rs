//! Deterministic crash points for the fault matrix (`tests/faults.rs`): with
//! `BELLWETHER_CRASH_AFTER=EVENT[@HOST]` in the environment, the process aborts (like
//! `kill -9`: no cleanup, no destructors) right after that event of that host is durably in
//! `events.jsonl`. Killing a process "soon after" an event from outside races with the next
//! step; this puts the crash exactly between one recorded step and the next, which is what a
//! write-ahead log must survive. Unset (always, outside tests) it costs one lookup per run.

use super::events::EventKind;
use std::sync::OnceLock;

/// (event name, optional host) parsed once from the environment.
fn point() -> &'static Option<(String, Option<String>)> {
    static P: OnceLock<Option<(String, Option<String>)>> = OnceLock::new();
    P.get_or_init(|| {
        let v = std::env::var("BELLWETHER_CRASH_AFTER").ok()?;
        let (ev, host) = match v.split_once('@') {
            Some((e, h)) => (e.to_string(), Some(h.to_string())),
            None => (v, None),
        };
        Some((ev, host))
    })
}

/// Is `kind` the configured crash point? (The sink aborts once it is durably written.)
pub(crate) fn is_point(kind: &EventKind) -> bool {
    let Some((ev, host)) = point() else { return false };
    let Ok(v) = serde_json::to_value(kind) else {
        return false;
    };
    let name_matches = v.get("event").and_then(|e| e.as_str()) == Some(ev.as_str());
    let host_matches = host
        .as_deref()
        .is_none_or(|h| v.get("host").and_then(|x| x.as_str()) == Some(h));
    name_matches && host_matches
}
