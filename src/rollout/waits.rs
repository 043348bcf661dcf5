//! Runs waiting for promotion, for `status`, `abort --expired` and the hand-over: a run that
//! stopped at its promotion point (its last end was `awaiting_promotion`, exit 7), or one
//! whose process still waits there (`--wait`: its last event is `awaiting_promotion` and its
//! lock is held by a live process).

use super::outcome::Outcome;
use crate::record::lock::LockInfo;
use crate::record::{read_events, Event, EventKind};
use chrono::{DateTime, Utc};
use std::path::Path;

/// A run waiting for promotion.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub run: String,
    /// The phase it waits after.
    pub after: String,
    pub since: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    /// The process that waits (`--wait`), holding the run's lock; None: the run stopped.
    pub waiter: Option<LockInfo>,
}

impl Waiting {
    /// Past its `pause_timeout`.
    pub fn expired(&self) -> bool {
        self.expires.is_some_and(|e| e < Utc::now())
    }
}

/// Runs waiting for promotion, stopped or with a live process waiting.
pub fn waiting_runs(runs: &Path) -> Vec<Waiting> {
    let locks: Vec<LockInfo> = crate::record::lock::read_all(runs)
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| !l.is_stale())
        .collect();
    crate::record::run_dir::list_ids(runs)
        .into_iter()
        .filter_map(|id| {
            let evs = read_events(&runs.join(&id)).ok()?;
            let live = locks.iter().find(|l| l.run_id == id).cloned();
            match live {
                Some(l) => live_wait(&id, &evs, l),
                None => stopped_wait(&id, &evs),
            }
        })
        .collect()
}

/// Stopped runs waiting past their `pause_timeout` (live waiters revert by themselves).
pub fn expired_waits(runs: &Path) -> Vec<String> {
    waiting_runs(runs)
        .into_iter()
        .filter(|w| w.waiter.is_none() && w.expired())
        .map(|w| w.run)
        .collect()
}

/// A run whose last end was a wait for promotion.
fn stopped_wait(id: &str, evs: &[Event]) -> Option<Waiting> {
    let last = evs.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFinished { outcome, .. } => Some(outcome.as_str()),
        _ => None,
    })?;
    if last != Outcome::AwaitingPromotion.as_str() {
        return None;
    }
    evs.iter().rev().find_map(|e| waiting(id, e, None))
}

/// A run whose live process waits: nothing recorded since its `awaiting_promotion`.
pub(crate) fn live_wait(id: &str, evs: &[Event], lock: LockInfo) -> Option<Waiting> {
    waiting(id, evs.last()?, Some(lock))
}

fn waiting(id: &str, e: &Event, waiter: Option<LockInfo>) -> Option<Waiting> {
    match &e.kind {
        EventKind::AwaitingPromotion { phase, expires, .. } => Some(Waiting {
            run: id.to_string(),
            after: phase.clone(),
            since: e.ts,
            expires: *expires,
            waiter,
        }),
        _ => None,
    }
}
