//! Output for people and machines: logging, tables, progress.

pub mod hosts;
pub mod json_log;
pub mod live;
pub mod log;
pub mod out_file;
pub mod plan_diffs;
pub mod safe;
pub mod table;
