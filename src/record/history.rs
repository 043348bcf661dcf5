//! Reading a run back from its events: what it was, how it ended, and which files it left
//! changed (the input of `revert RUN`).

use super::events::{Event, EventKind, SlotFile};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A file this run may have changed, with what is needed to put it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedFile {
    pub host: String,
    pub path: String,
    /// sha256 before the change (None: the file did not exist).
    pub before: Option<String>,
    /// sha256 the run wrote.
    pub after: String,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Snapshot file relative to the run folder (None: the file did not exist).
    pub snapshot: Option<String>,
}

/// When a run started: RFC 3339 in JSON (`2026-11-30T04:05:22Z`, what `jq`'s `fromdate`
/// reads), `2026-11-30 04:05:22` (UTC) for people; empty/null for a run with no start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Started(pub Option<chrono::DateTime<chrono::Utc>>);

impl std::fmt::Display for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S")),
            None => Ok(()),
        }
    }
}

impl Serialize for Started {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => s.serialize_none(),
        }
    }
}

/// One run in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub playbook: String,
    pub started: Started,
    pub outcome: String,
    pub exit: Option<i32>,
    pub hosts_changed: usize,
    pub hosts_reverted: usize,
    pub message: String,
}

/// What a snapshot event recorded: missing, sha, mode, uid, gid, snapshot file.
type SnapInfo = (
    bool,
    Option<String>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<String>,
);

/// Files written (intent recorded) and not restored since, in the order they were changed.
pub fn outstanding(events: &[Event]) -> Vec<ChangedFile> {
    let mut snaps: BTreeMap<(String, String), SnapInfo> = BTreeMap::new();
    let mut changed: Vec<ChangedFile> = Vec::new();
    for ev in events {
        match &ev.kind {
            EventKind::Snapshot {
                host,
                path,
                missing,
                sha256,
                mode,
                uid,
                gid,
                file,
            } => {
                snaps.insert(
                    (host.clone(), path.clone()),
                    (*missing, sha256.clone(), *mode, *uid, *gid, file.clone()),
                );
            }
            EventKind::WriteIntent {
                host,
                path,
                before,
                after,
            } => {
                let s = snaps.get(&(host.clone(), path.clone())).cloned();
                changed.retain(|c| !(c.host == *host && c.path == *path));
                changed.push(ChangedFile {
                    host: host.clone(),
                    path: path.clone(),
                    before: before.clone(),
                    after: after.clone(),
                    mode: s.as_ref().and_then(|s| s.2),
                    uid: s.as_ref().and_then(|s| s.3),
                    gid: s.as_ref().and_then(|s| s.4),
                    snapshot: s.and_then(|s| s.5),
                });
            }
            // Put back, or never touched: the write was refused before the file changed.
            EventKind::Reverted {
                host,
                path,
                verified: true,
                ..
            }
            | EventKind::WriteRefused { host, path, .. } => {
                changed.retain(|c| !(c.host == *host && c.path == *path));
            }
            _ => {}
        }
    }
    changed
}

/// Hosts that still carry this run's marker by the record: placed and not released since,
/// in the order placed.
pub fn markers_held(events: &[Event]) -> Vec<String> {
    let mut held: Vec<String> = Vec::new();
    for ev in events {
        match &ev.kind {
            EventKind::MarkerPlaced { host } if !held.contains(host) => held.push(host.clone()),
            EventKind::MarkerReleased { host } => held.retain(|h| h != host),
            _ => {}
        }
    }
    held
}

/// Does the record say where markers went? (Records written before markers were recorded
/// do not: then every target may hold one.)
pub fn records_markers(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e.kind, EventKind::MarkerPlaced { .. }))
}

/// The pid and targets of the run's most recent start (a resume or revert starts again).
pub fn last_start(events: &[Event]) -> Option<(u32, Vec<String>)> {
    events.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunStarted { pid, targets, .. } => Some((*pid, targets.clone())),
        _ => None,
    })
}

/// A blue/green link this run repointed (intent recorded) and has not flipped back since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlippedLink {
    pub host: String,
    pub link: String,
    /// The raw target before the run (what revert puts back).
    pub from: String,
    /// The raw target the run set.
    pub to: String,
    /// The edited files of the `from` slot as they were; flipping back needs them unchanged.
    pub slot_files: Vec<SlotFile>,
}

/// Links flipped (intent recorded) and neither refused untouched nor flipped back since, in
/// the order they were flipped.
pub fn outstanding_flips(events: &[Event]) -> Vec<FlippedLink> {
    let mut out: Vec<FlippedLink> = Vec::new();
    for ev in events {
        match &ev.kind {
            EventKind::FlipIntent {
                host,
                link,
                from,
                to,
                slot_files,
            } => {
                out.retain(|f| !(f.host == *host && f.link == *link));
                out.push(FlippedLink {
                    host: host.clone(),
                    link: link.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    slot_files: slot_files.clone(),
                });
            }
            EventKind::FlippedBack {
                host,
                link,
                verified: true,
                ..
            }
            | EventKind::FlipFailed {
                host,
                link,
                untouched: true,
                ..
            } => out.retain(|f| !(f.host == *host && f.link == *link)),
            _ => {}
        }
    }
    out
}

/// Hosts with at least one written file or flipped link, in the order first changed.
pub fn changed_hosts(events: &[Event]) -> Vec<String> {
    let mut seen = Vec::new();
    for ev in events {
        if let EventKind::WriteIntent { host, .. } | EventKind::FlipIntent { host, .. } = &ev.kind {
            if !seen.contains(host) {
                seen.push(host.clone());
            }
        }
    }
    seen
}

/// Summarise a run for `bellwether runs`.
pub fn summarize(id: &str, events: &[Event]) -> RunSummary {
    let mut s = RunSummary {
        id: id.to_string(),
        playbook: String::new(),
        started: Started::default(),
        outcome: "running or interrupted".into(),
        exit: None,
        hosts_changed: changed_hosts(events).len(),
        hosts_reverted: 0,
        message: String::new(),
    };
    let mut reverted = BTreeSet::new();
    for ev in events {
        match &ev.kind {
            EventKind::RunStarted { playbook, .. } if s.playbook.is_empty() => {
                s.playbook = playbook.clone();
                s.started = Started(Some(ev.ts));
            }
            EventKind::Reverted {
                host, verified: true, ..
            }
            | EventKind::FlippedBack {
                host, verified: true, ..
            } => {
                reverted.insert(host.clone());
            }
            EventKind::RunFinished { outcome, exit, message } => {
                s.outcome = outcome.clone();
                s.exit = Some(*exit);
                s.message = message.clone();
            }
            _ => {}
        }
    }
    s.hosts_reverted = reverted.len();
    s
}

/// Hosts whose files (or links) were put back but whose agent was not re-applied and
/// health-checked afterwards (a revert cut short by a second Ctrl-C or a kill).
pub fn restart_pending(events: &[Event]) -> Vec<String> {
    let mut pending: Vec<String> = Vec::new();
    for ev in events {
        match &ev.kind {
            EventKind::Reverted {
                host, verified: true, ..
            }
            | EventKind::FlippedBack {
                host, verified: true, ..
            } if !pending.contains(host) => pending.push(host.clone()),
            EventKind::HostRestored {
                host,
                apply_ok: true,
                health_ok: true,
            } => pending.retain(|h| h != host),
            _ => {}
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            ts: chrono::Utc::now(),
            kind,
        }
    }

    fn intent(host: &str) -> Event {
        ev(EventKind::FlipIntent {
            host: host.into(),
            link: "agent/current".into(),
            from: "blue".into(),
            to: "green".into(),
            slot_files: vec![],
        })
    }

    #[test]
    fn flips_are_outstanding_until_flipped_back_or_refused_untouched() {
        let evs = vec![
            intent("h01"),
            intent("h02"),
            intent("h03"),
            ev(EventKind::FlippedBack {
                host: "h01".into(),
                link: "agent/current".into(),
                target: "blue".into(),
                verified: true,
            }),
            ev(EventKind::FlipFailed {
                host: "h02".into(),
                link: "agent/current".into(),
                error: "changed".into(),
                untouched: true,
            }),
            ev(EventKind::FlippedBack {
                host: "h03".into(),
                link: "agent/current".into(),
                target: "blue".into(),
                verified: false,
            }),
        ];
        let left = outstanding_flips(&evs);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].host, "h03");
        assert_eq!(left[0].from, "blue");
        assert_eq!(changed_hosts(&evs), vec!["h01", "h02", "h03"]);
        let s = summarize("r", &evs);
        assert_eq!((s.hosts_changed, s.hosts_reverted), (3, 1));
        assert_eq!(serde_json::to_value(s.started).unwrap(), serde_json::Value::Null);
    }

    #[test]
    fn a_refused_write_is_not_outstanding_and_markers_are_tracked() {
        let intent = |h: &str| {
            ev(EventKind::WriteIntent {
                host: h.into(),
                path: "/etc/a.toml".into(),
                before: Some("aa".into()),
                after: "bb".into(),
            })
        };
        let evs = vec![
            ev(EventKind::MarkerPlaced { host: "h01".into() }),
            ev(EventKind::MarkerPlaced { host: "h05".into() }),
            intent("h01"),
            intent("h05"),
            ev(EventKind::WriteRefused {
                host: "h05".into(),
                path: "/etc/a.toml".into(),
                error: "changed".into(),
            }),
            ev(EventKind::MarkerReleased { host: "h05".into() }),
        ];
        let left = outstanding(&evs);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].host, "h01");
        assert_eq!(markers_held(&evs), vec!["h01"]);
        assert!(records_markers(&evs));
    }
}

#[cfg(test)]
mod started_tests {
    use super::*;

    #[test]
    fn started_is_rfc3339_for_machines_and_plain_for_people() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:05:22.639Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let s = Started(Some(t));
        assert_eq!(serde_json::to_value(s).unwrap(), "2026-11-30T04:05:22Z");
        assert_eq!(s.to_string(), "2026-11-30 04:05:22");
    }
}
