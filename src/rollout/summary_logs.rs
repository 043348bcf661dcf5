//! The "Kept logs" section of `summary.md`: a link to each `logs/HOST.log`, and the lines
//! around the first error of the first host that failed a gate, quoted from its kept log.

use crate::record::logs::log_file_name;
use crate::record::{Event, EventKind};
use std::fmt::Write;
use std::path::Path;

/// Lines quoted before and after the first error line.
const AROUND: usize = 3;

/// The section, or nothing when the run kept no log.
pub fn logs_section(dir: &Path, events: &[Event]) -> String {
    let mut files: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".log"))
        .collect();
    if files.is_empty() {
        return String::new();
    }
    files.sort();
    let mut o = String::from("\n## Kept logs\n\n");
    for f in &files {
        let lines = std::fs::read_to_string(dir.join("logs").join(f))
            .map(|t| t.lines().filter(|l| !l.starts_with('#')).count())
            .unwrap_or(0);
        let _ = writeln!(o, "- [logs/{f}](logs/{f}): {lines} line(s)");
    }
    if let Some((host, first_error)) = first_failed_host(events) {
        if let Some(quote) = around(&dir.join("logs").join(log_file_name(&host)), &first_error) {
            let _ = writeln!(o, "\nAround the first error on {host}:\n\n```text\n{quote}```");
        }
    }
    o
}

/// The first host whose verdict failed, and the first error line its verdict quotes.
fn first_failed_host(events: &[Event]) -> Option<(String, String)> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Verdict {
            host,
            passed: false,
            verdict,
            ..
        } => {
            let line = verdict
                .pointer("/stats/first_errors/0/line")
                .and_then(|l| l.as_str())?
                .to_string();
            Some((host.clone(), line))
        }
        _ => None,
    })
}

/// `AROUND` lines before and after the first kept line containing `needle`.
fn around(file: &Path, needle: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    // The verdict may hold a truncated line: match on its start.
    let key: String = needle.chars().take(80).collect();
    // The same error logged by the old agent (kept as a `before` line) is not the one judged.
    let at = lines
        .iter()
        .position(|l| !l.contains(" [before] ") && l.contains(key.as_str()))?;
    let from = at.saturating_sub(AROUND);
    let to = (at + AROUND + 1).min(lines.len());
    Some(lines[from..to].iter().map(|l| format!("{l}\n")).collect())
}
