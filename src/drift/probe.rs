//! Reading the files back: one connection per host, one remote read per file, the playbook's
//! pins checked on the bytes read. Nothing is written and no other command runs.

use super::expect::{Expectations, Expected};
use super::{DriftOptions, FileDrift, FileState, HostDrift};
use crate::config::{LoadedFleet, Playbook};
use crate::edit::pins::{for_host, FilePins};
use crate::edit::{EditSpec, PinResult};
use crate::record::secrets::Secrets;
use crate::rollout::host::template_ctx;
use crate::ssh::{Connection, RemoteFile};
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;

/// Probe every host the record names, `concurrency` at once; hosts in name order.
pub(super) async fn probe_all(
    lf: &LoadedFleet,
    pb: &Playbook,
    files: &Expectations,
    opts: &DriftOptions,
    secrets: &Secrets,
) -> Vec<HostDrift> {
    let mut by_host: BTreeMap<String, Vec<(String, Expected)>> = BTreeMap::new();
    for ((host, path), e) in files {
        by_host.entry(host.clone()).or_default().push((path.clone(), e.clone()));
    }
    let pinned: Vec<EditSpec> = pb.edits.iter().filter(|e| e.has_pins()).cloned().collect();
    let pinned = &pinned;
    let mut out: Vec<HostDrift> = stream::iter(by_host)
        .map(|(host, files)| async move { probe_host(lf, host, files, pinned, opts.accept_new, secrets).await })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

async fn probe_host(
    lf: &LoadedFleet,
    name: String,
    expected: Vec<(String, Expected)>,
    pinned: &[EditSpec],
    accept_new: bool,
    secrets: &Secrets,
) -> HostDrift {
    let unread = |why: &str| -> Vec<FileDrift> {
        let row = |(path, e): &(String, Expected)| file_row(path, Some(e), FileState::Unread, None, Vec::new());
        expected.iter().map(row).map(|f| f.with_error(why)).collect()
    };
    let Some(host) = lf.fleet.host(&name) else {
        let why = "no longer in the fleet";
        return HostDrift::judged(name, Some(why.into()), unread(why));
    };
    let pins = for_host(pinned, &template_ctx(host)).map_err(|e| secrets.text(&e.to_string()));
    let ep = crate::ssh::fleet::endpoint(lf, host, accept_new);
    let conn = match Connection::open(&ep).await {
        Ok(c) => c,
        Err(e) => {
            let why = secrets.text(&format!("{e} ({})", e.class()));
            return HostDrift::judged(name, Some(why.clone()), unread(&why));
        }
    };
    let mut paths: Vec<(String, Option<Expected>)> = expected.into_iter().map(|(p, e)| (p, Some(e))).collect();
    for fp in pins.iter().flatten() {
        if !paths.iter().any(|(p, _)| *p == fp.path) {
            paths.push((fp.path.clone(), None));
        }
    }
    let mut files = Vec::new();
    for (path, e) in paths {
        let read = conn.read_file(&path).await;
        let file_pins = pins.as_ref().map(|all| all.iter().find(|f| f.path == path));
        files.push(compare(&path, e.as_ref(), read, file_pins, secrets));
    }
    conn.close().await;
    HostDrift::judged(name, None, files)
}

/// One file read back, against the record and the pins.
fn compare(
    path: &str,
    e: Option<&Expected>,
    read: Result<Option<RemoteFile>, crate::ssh::SshError>,
    pins: Result<Option<&FilePins>, &String>,
    secrets: &Secrets,
) -> FileDrift {
    let file = match read {
        Ok(f) => f,
        Err(err) => {
            let row = file_row(path, e, FileState::Unread, None, Vec::new());
            return row.with_error(&secrets.text(&err.to_string()));
        }
    };
    let bytes = file.as_ref().map(|f| f.bytes.as_slice());
    let actual = file.as_ref().map(|f| f.sha256.clone());
    let state = match (e, &actual) {
        (None, _) => FileState::NotRecorded,
        (Some(_), None) => FileState::Missing,
        (Some(e), Some(a)) if *a == e.sha256 => FileState::Same,
        (Some(_), Some(_)) => FileState::Changed,
    };
    let results = match pins {
        Ok(p) => p.map(|p| p.check(bytes)).unwrap_or_default(),
        Err(why) => vec![PinResult {
            pin: "pins".into(),
            held: false,
            want: "(the playbook's pins)".into(),
            found: format!("(they cannot be rendered for this host: {why})"),
        }],
    };
    let results = results.into_iter().map(|r| masked(r, secrets)).collect();
    file_row(path, e, state, actual, results)
}

fn file_row(
    path: &str,
    e: Option<&Expected>,
    state: FileState,
    actual: Option<String>,
    pins: Vec<PinResult>,
) -> FileDrift {
    FileDrift {
        path: path.to_string(),
        state,
        expected: e.map(|e| e.sha256.clone()),
        actual,
        run: e.map(|e| e.run.clone()),
        pins,
        error: None,
    }
}

impl FileDrift {
    fn with_error(mut self, why: &str) -> FileDrift {
        self.error = Some(why.to_string());
        self
    }
}

/// Pinned values are free text: a secret-named key's values hidden, tokens masked.
fn masked(r: PinResult, secrets: &Secrets) -> PinResult {
    let mut r = r.redacted(secrets.redactor());
    r.want = secrets.text(&r.want);
    r.found = secrets.text(&r.found);
    r
}
