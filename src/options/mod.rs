//! Leaf module: the parsed command-line option types shared by the commands.
//!
//! They live apart from `cli` so that `cmd/` and `ui/` can take them without importing `cli`,
//! which calls into `cmd/`; this module imports nothing from the rest of the crate.

mod global;

pub use global::{Color, Global, LogFormat};
