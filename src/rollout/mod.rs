//! The rollout: one state machine over an exact record (see docs/architecture.md).
//!
//! - `planner` — playbook, flags, calendar, canary and batches (shared with `plan`);
//! - `start` / `preflight` — `Run::start`: gate, lock, preflight, plan, confirm, markers;
//! - `reopen` / `resume` — `Run::revert` and `Run::resume`, from the run folder alone;
//! - `machine` — the states and transitions, one `drive` loop; `phase` — its steps;
//! - `change`, `host` (`host_preflight`), `blue_green`, `flip` — changing one host; `revert` —
//!   putting it back;
//! - `pins` — pinned values checked after each write and at the end;
//! - `finish` — the end of every run (markers, outcome, summary); `outcome` — how it ended.

pub(crate) mod apply_health;
pub mod blue_green;
pub(crate) mod callbacks;
pub(crate) mod change;
pub mod error;
pub mod finish;
pub mod flip;
pub mod host;
mod host_preflight;
pub(crate) mod machine;
pub mod markers;
pub mod observe;
mod observe_progress;
pub mod outcome;
pub(crate) mod phase;
pub(crate) mod pins;
pub mod plan;
pub mod planner;
pub mod preflight;
pub(crate) mod reconnect;
pub mod record_plan;
pub(crate) mod reopen;
mod resume;
pub mod revert;
pub mod run;
pub(crate) mod slot_scripts;
pub(crate) mod start;
pub(crate) mod state;
pub mod summary;
pub mod summary_logs;
pub mod summary_tables;

pub use finish::Finished;
pub use outcome::{Ending, Outcome};
pub use resume::{expired_waits, waiting_runs};
pub use run::{Run, RunOptions};
pub use start::StartRequest;
