//! bellwether: canary-first rollouts of config, model and provider changes to a fleet of
//! AI-agent hosts over SSH, with verified revert and a release calendar.
//!
//! The binary (`src/main.rs`) is a thin shell over [`cli::run`]; every subsystem lives in its
//! own module named after the nouns of `docs/` (config, ssh, edit, watch, rollout, record).

pub mod calendar;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod drift;
pub mod edit;
pub mod exit;
pub mod options;
pub mod record;
pub mod rollout;
pub mod sandbox;
pub mod ssh;
pub mod ui;
pub mod value;
pub mod watch;
