//! The rollout: plan (batches), engine (state machine), per-host steps, observation, revert.

pub mod blue_green;
pub mod change;
pub mod ctx;
pub mod engine;
pub mod flip;
pub mod host;
pub mod markers;
pub mod observe;
pub mod phase;
pub mod plan;
pub mod reconnect;
pub mod record_plan;
pub mod revert;
pub mod setup;
pub mod summary;
pub mod summary_tables;

/// Redact secrets from a line before it reaches a log, a diff or a run record.
pub fn redact_line(line: &str) -> String {
    crate::record::secrets::redact(line)
}

/// A unified, redacted diff of one file.
pub fn diff_text(path: &str, before: Option<&[u8]>, after: &[u8]) -> String {
    let d = crate::edit::unified_diff(path, before, after, &crate::record::secrets::redactor(), false);
    crate::record::secrets::redact(&d)
}
