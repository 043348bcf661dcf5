//! Run records: plain files under `runs/RUN_ID/` that can be committed and read by people,
//! and from which `revert` and `resume` work after a crash.

pub(crate) mod crash;
pub mod decision;
pub mod events;
pub mod history;
pub mod lock;
pub mod logs;
pub mod progress;
pub mod run_dir;
pub mod secrets;
pub mod trust;

pub use events::{read_events, Event, EventKind, EventLog};
pub use run_dir::{new_run_id, RunDir};
