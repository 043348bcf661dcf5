//! `bellwether sandbox` and `demo`: a local fleet of simulated agent hosts over real SSH.
//!
//! Each host is an in-process russh server on its own 127.x address with its own host key
//! and home directory (agent config, log, `agentctl`); commands run there with `sh -c`, so the
//! same playbooks work here and on real hosts. No sshd, no root, no network needed.

pub mod control;
pub mod server;
pub mod setup;

pub use setup::{create, Sandbox};
