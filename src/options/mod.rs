//! Leaf module: the parsed command-line option types (global flags, per-command arguments).
//!
//! They live apart from `cli` so that `cmd/` and `ui/` can take them without importing `cli`,
//! which calls into `cmd/`; this module imports nothing from the rest of the crate.

mod args;
mod global;

pub use args::{GateArgs, PlanArgs, ReopenArgs, ResumeArgs, RolloutArgs, SandboxAction};
pub use global::{Color, Global, LogFormat};
