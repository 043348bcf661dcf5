//! `bellwether drift [PLAYBOOK...]`: parse → `drift::check` per playbook → a table or JSON.
//! Exit 0 clean, 8 drifted (a file changed or a pin broken), 6 when some host could not be
//! checked and nothing drifted, 2 bad input.

use super::context;
use crate::config::{load::playbook_files, load::playbook_path, load_playbook};
use crate::drift::{DriftOptions, FileState, HostState, PlaybookDrift};
use crate::exit::{Exit, Failure};
use crate::options::Global;
use std::path::Path;

/// Run the drift check.
pub async fn run(g: &Global, names: &[String], json: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let paths = if names.is_empty() {
        playbook_files(&lf.path.parent().unwrap_or(Path::new(".")).join("playbooks"))
    } else {
        names
            .iter()
            .map(|n| playbook_path(n, &lf.path))
            .collect::<Result<Vec<_>, _>>()?
    };
    // Every playbook loads before any host is contacted: bad input changes nothing and reads nothing.
    let mut loaded = Vec::new();
    for path in paths {
        let pb = load_playbook(&path, &lf.fleet)?;
        loaded.push((path, pb));
    }
    let opts = DriftOptions {
        runs_dir: g.runs_dir(),
        accept_new: g.accept_new,
        concurrency: context::concurrency(g, &lf),
    };
    let mut report = Vec::new();
    for (path, pb) in &loaded {
        report.push(crate::drift::check(&lf, pb, path, &opts).await);
    }
    let worst = report
        .iter()
        .map(PlaybookDrift::worst)
        .min()
        .unwrap_or(HostState::Clean);
    let exit = match worst {
        HostState::PinBroken | HostState::Changed => Exit::Drifted,
        HostState::Unreachable => Exit::Preflight,
        HostState::Clean => Exit::Done,
    };
    if json {
        let doc = serde_json::json!({"clean": worst == HostState::Clean, "exit": exit.code(), "playbooks": report});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", render(&report));
    }
    Ok(exit)
}

/// The table, then one line per file that is not as the run left it.
fn render(report: &[PlaybookDrift]) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for p in report {
        let Some(run) = &p.run else {
            notes.push(format!(
                "{}: no successful run recorded; nothing to compare",
                p.playbook
            ));
            continue;
        };
        for u in &p.unreadable_runs {
            notes.push(format!(
                "{}: the record of run {u} cannot be read; a change it made is not accounted for",
                p.playbook
            ));
        }
        for h in &p.hosts {
            if let (Some(e), true) = (&h.error, h.files.is_empty()) {
                rows.push(row(&p.playbook, &h.host, "-", h.state, "-"));
                notes.push(format!("{} {}: {e}", p.playbook, h.host));
            }
            for f in &h.files {
                let pins = pins_cell(f);
                rows.push(row(&p.playbook, &h.host, &f.path, h.state, &pins));
                if let Some(n) = file_note(f, run) {
                    notes.push(format!("{} {} {}: {n}", p.playbook, h.host, f.path));
                }
            }
        }
    }
    let mut out = crate::ui::table::render(&["PLAYBOOK", "HOST", "FILE", "STATE", "PINS"], &rows);
    for n in &notes {
        out.push_str(&format!("  {n}\n"));
    }
    let hosts: Vec<_> = report.iter().flat_map(|p| p.hosts.iter()).collect();
    let count = |s: HostState| hosts.iter().filter(|h| h.state == s).count();
    out.push_str(&format!(
        "{} host(s) checked: {} clean, {} changed (pins hold), {} pin broken, {} unreachable\n",
        hosts.len(),
        count(HostState::Clean),
        count(HostState::Changed),
        count(HostState::PinBroken),
        count(HostState::Unreachable)
    ));
    out
}

fn row(pb: &str, host: &str, file: &str, state: HostState, pins: &str) -> Vec<String> {
    let state = match state {
        HostState::Clean => "clean",
        HostState::Changed => "changed",
        HostState::PinBroken => "PIN BROKEN",
        HostState::Unreachable => "unreachable",
    };
    vec![pb.into(), host.into(), file.into(), state.into(), pins.into()]
}

/// `held (2)`, `BROKEN: model.name`, or `-` without pins.
fn pins_cell(f: &crate::drift::FileDrift) -> String {
    let broken: Vec<&str> = f.pins.iter().filter(|p| !p.held).map(|p| p.pin.as_str()).collect();
    match (f.pins.len(), broken.is_empty()) {
        (0, _) => "-".into(),
        (n, true) => format!("held ({n})"),
        (_, false) => format!("BROKEN: {}", broken.join(", ")),
    }
}

/// What is wrong with one file, for people; None when it is as the run left it.
fn file_note(f: &crate::drift::FileDrift, baseline: &str) -> Option<String> {
    let short = |s: &Option<String>| s.as_deref().map(|s| s.chars().take(12).collect::<String>());
    let by = f
        .run
        .as_deref()
        .filter(|r| *r != baseline)
        .map(|r| format!(" (as left by run {r})"))
        .unwrap_or_default();
    let mut what = match f.state {
        FileState::Same | FileState::NotRecorded => None,
        FileState::Changed => Some(format!(
            "changed since the run: sha256 {} expected{by}, {} found",
            short(&f.expected).unwrap_or_default(),
            short(&f.actual).unwrap_or_default()
        )),
        FileState::Missing => Some(format!(
            "missing; the run left it with sha256 {}{by}",
            short(&f.expected).unwrap_or_default()
        )),
        FileState::Unread => Some(format!("not read: {}", f.error.as_deref().unwrap_or("unknown error"))),
    };
    let broken = crate::edit::pins::describe_broken(&f.pins);
    if !broken.is_empty() {
        what = Some(match what {
            Some(w) => format!("{w}; pin broken: {broken}"),
            None => format!("pin broken: {broken}"),
        });
    } else if matches!(f.state, FileState::Changed | FileState::Missing) && !f.pins.is_empty() {
        what = what.map(|w| format!("{w}; its pins still hold"));
    }
    what
}
