//! The tables of `summary.md` (files, links, gate results, first errors), gathered from a
//! run's events.

use crate::record::{Event, EventKind};
use crate::watch::Verdict;
use std::collections::BTreeMap;

/// Before hash, after hash, state.
pub(super) type FileRow = (Option<String>, Option<String>, &'static str);

/// Target before, target set, state.
pub(super) type LinkRow = (String, String, &'static str);

/// Per host: (phase, passed, verdict) for every gate it went through.
pub(super) type HostVerdicts = BTreeMap<String, Vec<(String, bool, Option<Verdict>)>>;

/// What the sections after the plan need, gathered in one pass over the events so each
/// section renders from tables instead of re-reading the event stream.
#[derive(Default)]
pub(super) struct Tables {
    pub(super) verdicts: HostVerdicts,
    pub(super) before_metrics: Option<Verdict>,
    pub(super) first_errors: Vec<String>,
    pub(super) files: BTreeMap<(String, String), FileRow>,
    pub(super) links: BTreeMap<(String, String), LinkRow>,
}

impl Tables {
    /// Later events update earlier rows (a revert marks its file), so events go in order.
    pub(super) fn from_events(events: &[Event]) -> Self {
        let mut t = Tables::default();
        for ev in events {
            t.add(&ev.kind);
        }
        t
    }

    /// Route one event to the table it updates.
    fn add(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Verdict {
                phase,
                host,
                passed,
                verdict,
            } => self.add_verdict(phase, host, *passed, verdict),
            EventKind::WriteIntent { .. } | EventKind::Staged { .. } | EventKind::Reverted { .. } => {
                self.add_file(kind)
            }
            EventKind::FlipIntent { .. }
            | EventKind::Flipped { .. }
            | EventKind::FlipFailed { .. }
            | EventKind::FlippedBack { .. } => self.add_link(kind),
            _ => {}
        }
    }

    /// The "before" window is the canary's reference, not a gate, so it is kept apart.
    fn add_verdict(&mut self, phase: &str, host: &str, passed: bool, verdict: &serde_json::Value) {
        let v: Option<Verdict> = serde_json::from_value(verdict.clone()).ok();
        if phase == "before" {
            self.before_metrics = v;
            return;
        }
        if !passed {
            if let Some(v) = &v {
                for b in &v.breaches {
                    self.first_errors.push(format!("{host} ({phase}): {}", b.message));
                }
            }
        }
        self.verdicts
            .entry(host.to_string())
            .or_default()
            .push((phase.to_string(), passed, v));
    }

    /// Only a verified revert changes a file's state: an unverified one still needs attention.
    fn add_file(&mut self, kind: &EventKind) {
        match kind {
            EventKind::WriteIntent {
                host,
                path,
                before,
                after,
            } => {
                self.files.insert(
                    (host.clone(), path.clone()),
                    (before.clone(), Some(after.clone()), "changed"),
                );
            }
            EventKind::Staged {
                host,
                path,
                before,
                sha256,
            } => {
                self.files.insert(
                    (host.clone(), path.clone()),
                    (before.clone(), Some(sha256.clone()), "staged (idle slot)"),
                );
            }
            EventKind::Reverted {
                host,
                path,
                verified: true,
                ..
            } => {
                if let Some(e) = self.files.get_mut(&(host.clone(), path.clone())) {
                    e.2 = "reverted (verified)";
                }
            }
            _ => {}
        }
    }

    /// A link's row is created by its intent; later events only move its state on.
    fn add_link(&mut self, kind: &EventKind) {
        match kind {
            EventKind::FlipIntent {
                host, link, from, to, ..
            } => {
                self.links.insert(
                    (host.clone(), link.clone()),
                    (from.clone(), to.clone(), "flip announced"),
                );
            }
            EventKind::Flipped { host, link, .. } => {
                if let Some(e) = self.links.get_mut(&(host.clone(), link.clone())) {
                    e.2 = "flipped";
                }
            }
            EventKind::FlipFailed {
                host, link, untouched, ..
            } => {
                if let Some(e) = self.links.get_mut(&(host.clone(), link.clone())) {
                    e.2 = if *untouched {
                        "flip refused (untouched)"
                    } else {
                        "flip FAILED"
                    };
                }
            }
            EventKind::FlippedBack {
                host,
                link,
                verified: true,
                ..
            } => {
                if let Some(e) = self.links.get_mut(&(host.clone(), link.clone())) {
                    e.2 = "flipped back (verified)";
                }
            }
            _ => {}
        }
    }
}
