//! File edits: structured `set`/`unset` in TOML, JSON, YAML and `.env` files that keep an
//! operator's comments and layout, whole-file replacement from a rendered template, regex
//! replacement, unified diffs, secret redaction, and pins (values that must hold after the
//! change).
//!
//! Everything here is pure: an edit is computed from the host's current bytes into new bytes
//! (plus hashes), so the rollout engine decides when and how to write, snapshot and revert.
//! The entry points are [`compute`]/[`compute_all`] (what to write), [`unified_diff`] (what
//! to show) and [`Redactor`] (what not to show).

pub mod apply;
pub mod command_template;
pub mod diff;
pub mod env_set;
pub mod error;
pub mod json_set;
mod json_span;
pub mod keypath;
mod lines;
pub mod pins;
pub mod redact;
pub mod replace;
pub mod spec;
pub mod template;
pub mod toml_set;
pub mod validate;
mod value_checks;
mod yaml_scalar;
mod yaml_scan;
pub mod yaml_set;

#[cfg(test)]
mod test_util;

pub use apply::{compute, compute_all, group_by_path, sha256_hex, EditOutcome};
pub use command_template::render_command;
pub use diff::unified_diff;
pub use error::{DocError, EditError};
pub use keypath::KeyPath;
pub use pins::{FilePins, Pin, PinResult};
pub use redact::{Redactor, DEFAULT_SECRET_KEYS, MASK};
pub use replace::{regex_replace, ReplaceError};
pub use spec::{parse_mode, Action, ActionError, EditSpec, Format, ReplaceSpec};
pub use template::{render, TemplateCtx, TemplateError};
