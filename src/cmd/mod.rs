//! One file per subcommand; each returns the exit outcome or a [`crate::exit::Failure`].

pub mod calendar;
pub mod check;
pub mod completions;
pub mod context;
pub mod drift;
pub mod exec;
pub mod gate;
pub mod gate_names;
pub mod man;
pub mod ping;
pub mod plan;
pub mod revert;
pub mod rollout;
pub mod runs;
pub mod sandbox;
