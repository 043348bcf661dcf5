//! What the runs folder says each file should hold now: the files the playbook's last
//! successful run (outcome `done`) left on each host, moved on by every later run that changed
//! the same file (another playbook's run editing the same config, a paused run keeping its
//! change). Read from the record alone; no host is contacted.

use crate::record::history::outstanding;
use crate::record::run_dir::list_ids;
use crate::record::{read_events, Event, EventKind};
use crate::rollout::record_plan::PlanRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The hash a file should hold, and the run that left it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub sha256: String,
    pub run: String,
}

/// (host, path) -> what it should hold.
pub type Expectations = BTreeMap<(String, String), Expected>;

/// The playbook's last `done` run and what the record says its files should hold now.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// The last run of the playbook whose outcome is `done` (None: there is none).
    pub run: Option<String>,
    pub files: Expectations,
    /// Records that could not be read (id, why): a change they hold is not accounted for.
    pub unreadable: Vec<(String, String)>,
}

/// Find the baseline of `playbook_id` in `runs`.
pub fn baseline(runs: &Path, playbook_id: &str) -> Baseline {
    let mut out = Baseline::default();
    let mut records: Vec<(String, Vec<Event>)> = Vec::new();
    for id in list_ids(runs) {
        match read_events(&runs.join(&id)) {
            Ok(evs) => records.push((id, evs)),
            Err(e) => out.unreadable.push((id, e.to_string())),
        }
    }
    let Some(at) = records
        .iter()
        .rposition(|(_, evs)| playbook_of(evs) == Some(playbook_id) && outcome(evs) == Some("done"))
    else {
        return out;
    };
    let (id, evs) = &records[at];
    out.run = Some(id.clone());
    out.files = left_by(runs, id, evs);
    // Later runs move the expectation of the files they changed (and only of those).
    for (later, evs) in &records[at + 1..] {
        for (key, e) in left_by(runs, later, evs) {
            if let Some(slot) = out.files.get_mut(&key) {
                *slot = e;
            }
        }
    }
    out.unreadable.retain(|(u, _)| u > id);
    out
}

/// The playbook id a run was started for.
fn playbook_of(evs: &[Event]) -> Option<&str> {
    evs.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { playbook, .. } => Some(playbook.as_str()),
        _ => None,
    })
}

/// How the run last ended (a resumed run has one end per part).
fn outcome(evs: &[Event]) -> Option<&str> {
    evs.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFinished { outcome, .. } => Some(outcome.as_str()),
        _ => None,
    })
}

/// What one run leaves its files holding. A `done` run: every planned file of every host that
/// did not fail (`plan.json` `after`, through a blue/green link as the agent reads it), and
/// the files of hosts that were already up to date. Any other run: the files it wrote and did
/// not put back.
fn left_by(runs: &Path, id: &str, evs: &[Event]) -> Expectations {
    let exp = |sha: &str| Expected {
        sha256: sha.to_string(),
        run: id.to_string(),
    };
    let mut out = Expectations::new();
    let done = outcome(evs) == Some("done");
    let failed: BTreeSet<&str> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HostFailed { host, .. } => Some(host.as_str()),
            _ => None,
        })
        .collect();
    let plan = std::fs::read(runs.join(id).join("plan.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<PlanRecord>(&b).ok());
    match plan.filter(|_| done) {
        Some(plan) => {
            for (host, hp) in plan.hosts.iter().filter(|(h, _)| !failed.contains(h.as_str())) {
                for f in &hp.files {
                    out.insert((host.clone(), f.path.clone()), exp(&f.after));
                }
            }
        }
        None => {
            for c in outstanding(evs) {
                out.insert((c.host, c.path), exp(&c.after));
            }
        }
    }
    for e in evs.iter().filter(|_| done) {
        if let EventKind::Unchanged { host, files } = &e.kind {
            for f in files.iter().filter(|_| !failed.contains(host.as_str())) {
                if let Some(sha) = &f.sha256 {
                    out.insert((host.clone(), f.path.clone()), exp(sha));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::run_dir::Progress;
    use crate::record::secrets::Secrets;
    use crate::record::RunDir;

    fn run(runs: &Path, id: &str, playbook: &str, kinds: Vec<EventKind>) {
        let rec = RunDir::create(runs, id, Secrets::default(), Progress::Quiet).unwrap();
        rec.emit(EventKind::RunStarted {
            run_id: id.into(),
            playbook: playbook.into(),
            playbook_path: String::new(),
            tier: "T2".into(),
            component: "model".into(),
            user: "u".into(),
            pid: 1,
            targets: vec![],
            resumed: false,
        })
        .unwrap();
        for k in kinds {
            rec.emit(k).unwrap();
        }
    }

    fn written(host: &str, path: &str, after: &str) -> Vec<EventKind> {
        vec![
            EventKind::WriteIntent {
                host: host.into(),
                path: path.into(),
                before: Some("b".into()),
                after: after.into(),
            },
            EventKind::Written {
                host: host.into(),
                path: path.into(),
                sha256: after.into(),
            },
        ]
    }

    fn finished(outcome: &str) -> EventKind {
        EventKind::RunFinished {
            outcome: outcome.into(),
            exit: 0,
            message: String::new(),
        }
    }

    #[test]
    fn the_last_done_run_then_later_runs_that_changed_the_same_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let mut k = written("h1", "/c.toml", "a1");
        k.extend(written("h2", "/c.toml", "a1"));
        k.push(EventKind::Unchanged {
            host: "h3".into(),
            files: vec![crate::record::events::SlotFile {
                path: "/c.toml".into(),
                sha256: Some("a1".into()),
            }],
        });
        k.push(finished("done"));
        run(r, "20260101T000000000Z-swap", "swap", k);
        // A later reverted run of the same playbook does not move anything.
        let mut k = written("h1", "/c.toml", "zz");
        k.push(EventKind::Reverted {
            host: "h1".into(),
            path: "/c.toml".into(),
            sha256: Some("a1".into()),
            verified: true,
        });
        k.push(finished("reverted"));
        run(r, "20260102T000000000Z-swap", "swap", k);
        // Another playbook's paused run kept its change on h2, and wrote a file swap never had.
        let mut k = written("h2", "/c.toml", "p2");
        k.extend(written("h2", "/other.env", "o1"));
        k.push(finished("paused"));
        run(r, "20260103T000000000Z-provider", "provider", k);
        let b = baseline(r, "swap");
        assert_eq!(b.run.as_deref(), Some("20260101T000000000Z-swap"));
        let get = |h: &str| b.files.get(&(h.to_string(), "/c.toml".to_string())).cloned().unwrap();
        assert_eq!(get("h1").sha256, "a1");
        assert_eq!(
            (get("h2").sha256.as_str(), get("h2").run.as_str()),
            ("p2", "20260103T000000000Z-provider")
        );
        assert_eq!(get("h3").sha256, "a1");
        assert_eq!(b.files.len(), 3);
        assert!(baseline(r, "nothing").run.is_none());
    }
}
