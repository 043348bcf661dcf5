//! `bellwether drift`: read-only. For each target of a playbook's last successful run, do its
//! files still hold what the record says they should (`expect`), and do the playbook's pins
//! still hold on them (`probe`)? Made to run from cron during a freeze, when nothing should
//! change and a quiet hand edit or an agent rewriting its own config would otherwise go
//! unseen.

pub mod expect;
mod probe;

use crate::config::{LoadedFleet, Playbook};
use crate::edit::PinResult;
use crate::record::secrets::Secrets;
use serde::Serialize;
use std::path::Path;

pub use expect::{baseline, Baseline, Expected};

/// How one file compares with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// It holds the bytes the record says it should.
    Same,
    /// It holds other bytes.
    Changed,
    /// It is gone.
    Missing,
    /// Pinned by the playbook but not written by the run (pins checked, hash not compared).
    NotRecorded,
    /// It could not be read (the host is unreachable, or the read failed).
    Unread,
}

/// The verdict for one host, worst first: a broken pin outranks a changed file, which
/// outranks a host that could not be (fully) checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// A pin does not hold.
    PinBroken,
    /// A file changed (or is gone) since the run, but every pin still holds.
    Changed,
    /// The host (or a file of it) could not be read.
    Unreachable,
    /// Every file as the run left it, every pin held.
    Clean,
}

/// One file of one host.
#[derive(Debug, Clone, Serialize)]
pub struct FileDrift {
    pub path: String,
    pub state: FileState,
    /// sha256 the record says the file should hold.
    pub expected: Option<String>,
    /// sha256 it holds (None: missing or unread).
    pub actual: Option<String>,
    /// The run that left the file as expected.
    pub run: Option<String>,
    pub pins: Vec<PinResult>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One host.
#[derive(Debug, Clone, Serialize)]
pub struct HostDrift {
    pub host: String,
    pub state: HostState,
    /// Why the host could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub files: Vec<FileDrift>,
}

impl HostDrift {
    /// The host's state from its files (a connection error makes it unreachable).
    fn judged(host: String, error: Option<String>, files: Vec<FileDrift>) -> HostDrift {
        let state = if files.iter().any(|f| f.pins.iter().any(|p| !p.held)) {
            HostState::PinBroken
        } else if files
            .iter()
            .any(|f| matches!(f.state, FileState::Changed | FileState::Missing))
        {
            HostState::Changed
        } else if error.is_some() || files.iter().any(|f| f.state == FileState::Unread) {
            HostState::Unreachable
        } else {
            HostState::Clean
        };
        HostDrift {
            host,
            state,
            error,
            files,
        }
    }
}

/// One playbook.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybookDrift {
    /// The playbook's id.
    pub playbook: String,
    /// The playbook file.
    pub path: String,
    /// Its last successful run (None: there is none, nothing to compare with).
    pub run: Option<String>,
    pub hosts: Vec<HostDrift>,
    /// Run records that could not be read (a change they hold is not accounted for).
    pub unreadable_runs: Vec<String>,
}

impl PlaybookDrift {
    /// The worst host state (Clean when there are no hosts).
    pub fn worst(&self) -> HostState {
        self.hosts.iter().map(|h| h.state).min().unwrap_or(HostState::Clean)
    }
}

/// What `drift` needs besides the fleet.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    pub runs_dir: std::path::PathBuf,
    pub accept_new: bool,
    pub concurrency: usize,
}

/// Check one playbook: its baseline from the record, then one read per file per host.
pub async fn check(lf: &LoadedFleet, pb: &Playbook, pb_path: &Path, opts: &DriftOptions) -> PlaybookDrift {
    let b = baseline(&opts.runs_dir, &pb.id);
    let secrets = Secrets::for_run(lf, Some(pb));
    let hosts = match &b.run {
        Some(_) => probe::probe_all(lf, pb, &b.files, opts, &secrets).await,
        None => Vec::new(),
    };
    PlaybookDrift {
        playbook: pb.id.clone(),
        path: pb_path.display().to_string(),
        run: b.run,
        hosts,
        unreadable_runs: b.unreadable.into_iter().map(|(id, _)| id).collect(),
    }
}
