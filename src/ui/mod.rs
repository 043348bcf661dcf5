//! Output for people and machines: logging, tables, progress.

pub mod log;
pub mod table;
