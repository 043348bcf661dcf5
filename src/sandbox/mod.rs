//! `bellwether sandbox` and `demo`: a local fleet of simulated agent hosts over real SSH.
//!
//! Each host is an in-process russh server on its own 127.x address with its own host key
//! and home directory (agent config, log, `agentctl`); commands run there with `sh -c`, so the
//! same playbooks work here and on real hosts. No sshd, no root, no network needed.
//!
//! The agents are not processes. A host's agent is an [`agent::Agent`] in the sandbox
//! process, and one thread ([`clock`]) lets every running agent append its line to its
//! `agent/agent.log` ten times a second — the lines, files and faults of the shell agent the
//! integration tests run (`tests/fixtures/agentctl`), without its fork of `sleep` per line,
//! which is what made 200 hosts load a 2-core machine to 146. `./agentctl` in a home is a
//! small script that asks the agent over a socket every sandbox command inherits as
//! descriptor 7 ([`agentctl`]), so `./agentctl restart` and `./agentctl status` behave as on
//! the tests' hosts, synchronously, and a host's commands can reach only its own agent.
//! [`limits`] says how far this goes (2,000 hosts) and what it needs (open files).

pub mod agent;
#[cfg(test)]
mod agent_tests;
pub mod agentctl;
pub mod clock;
pub mod control;
pub mod limits;
pub mod server;
pub mod setup;
#[cfg(target_os = "linux")]
mod spawn;
#[cfg(not(target_os = "linux"))]
#[path = "spawn_fork.rs"]
mod spawn;

pub use setup::{create, Sandbox};
