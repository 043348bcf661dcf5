//! One file per subcommand; each returns the exit outcome or a [`crate::exit::Failure`].

pub mod check;
pub mod context;
pub mod exec;
pub mod ping;
