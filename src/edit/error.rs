//! The one error type of the edit module; every message names the file and says what to do.

use std::path::PathBuf;

use super::spec::Format;
use super::template::TemplateError;

/// Why an edit could not be computed for one host. Nothing has been written when this is
/// returned: edits are computed in memory from the host's current bytes.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is absent on the host and the edit may not create it.
    #[error(
        "{path}: the file does not exist on the host; add `create = true` to this [[edit]] \
         to create it, or fix `path`"
    )]
    Missing { path: String },

    /// A file that is only pinned (a pins-only [[edit]], never written) is absent on the host.
    #[error("{path}: the pinned file does not exist on the host, so its pins cannot hold")]
    PinnedMissing { path: String },

    /// The current file could not be parsed or the key could not be changed in it.
    #[error("{path}: cannot edit as {format}{}: {message}", .key.as_ref().map(|k| format!(" (key `{k}`)")).unwrap_or_default())]
    Document {
        path: String,
        format: Format,
        key: Option<String>,
        message: String,
    },

    /// A `replace` pattern matched a different number of times than `expect` demands.
    #[error(
        "{path}: pattern `{pattern}` matched {found} time(s) but `expect = {expected}`; \
         the file on the host is not what the playbook assumes: look at it, then fix the \
         pattern or `expect`"
    )]
    ReplaceCount {
        path: String,
        pattern: String,
        found: usize,
        expected: usize,
    },

    /// A `{{ ... }}` placeholder in a value, a replacement or a source file could not be filled.
    #[error("{path}: in {place}: {source}")]
    Template {
        path: String,
        place: String,
        source: Box<TemplateError>,
    },

    /// The local `source` file could not be read.
    #[error(
        "cannot read source file {}: {source}; `source` is resolved relative to the \
         playbook's folder",
        .file.display()
    )]
    Source { file: PathBuf, source: std::io::Error },

    /// The host's file is not UTF-8, so a text edit cannot be applied safely.
    #[error(
        "{path}: the file on the host is not UTF-8 text, so it cannot be edited as {what}; \
         use `source` to replace it whole"
    )]
    NotText { path: String, what: String },

    /// The edit itself is unusable (normally caught earlier by `EditSpec::validate`).
    #[error("{path}: invalid [[edit]]: {message}; run `bellwether check` on the playbook")]
    Spec { path: String, message: String },
}

/// A problem inside one document, before the file path is known; `apply` wraps it into
/// [`EditError::Document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    /// The dotted key being edited when the problem was found, if any.
    pub key: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl DocError {
    /// A problem with the document as a whole (e.g. it does not parse).
    pub fn whole(message: impl Into<String>) -> Self {
        DocError {
            key: None,
            message: message.into(),
        }
    }

    /// A problem with one key.
    pub fn at(key: impl ToString, message: impl Into<String>) -> Self {
        DocError {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}
