//! Output for people and machines: logging, tables, progress.

pub mod hosts;
pub mod log;
pub mod out_file;
pub mod table;
