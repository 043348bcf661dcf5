//! The three input formats (fleet, playbook, calendar) and their validation.
//!
//! Parsing is serde with `deny_unknown_fields`; every problem, syntactic or semantic, comes
//! out as a [`ConfigError`] naming file, line, column and field (exit code 2).

pub mod controls;
pub mod error;
pub mod fleet;
pub mod load;
pub mod locate;
pub mod playbook;
pub mod targets;

pub use fleet::{Fleet, Host};
pub use load::{load_calendar, load_fleet, load_playbook, LoadedFleet};
pub use locate::ConfigError;
pub use playbook::Playbook;
pub use targets::TargetSpec;
