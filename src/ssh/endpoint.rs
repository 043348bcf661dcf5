//! Everything needed to reach one host, resolved from the fleet and `~/.ssh/config`.

use std::path::PathBuf;
use std::time::Duration;

/// How to reach and log in to one host.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The fleet's name for the host (used in messages).
    pub name: String,
    /// Address or DNS name to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private keys tried in order before ssh-agent.
    pub identities: Vec<PathBuf>,
    /// known_hosts files consulted (all of them; the first is where `--accept-new` records).
    pub known_hosts: Vec<PathBuf>,
    /// Record unknown host keys instead of refusing (OpenSSH `accept-new`); never accepts a
    /// changed key.
    pub accept_new: bool,
    pub connect_timeout: Duration,
    /// Limit for each of bellwether's own remote commands: reads, writes, checks, markers.
    pub command_timeout: Duration,
    /// The fleet's `max_connections`: open connections the controller holds at once before
    /// it parks idle ones ([`super::budget`]).
    pub max_connections: usize,
    /// Another host to tunnel through (ProxyJump).
    pub jump: Option<Box<Endpoint>>,
    /// Run commands through `sudo -n`.
    pub become_root: bool,
    /// Try keys held by ssh-agent (`SSH_AUTH_SOCK`) after the identity files.
    pub use_agent: bool,
}

impl Endpoint {
    /// A minimal endpoint with defaults (port 22, 10s to connect, 120s a command, agent allowed).
    pub fn new(name: &str, address: &str, user: &str) -> Self {
        Endpoint {
            name: name.to_string(),
            address: address.to_string(),
            port: 22,
            user: user.to_string(),
            identities: Vec::new(),
            known_hosts: Vec::new(),
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
            max_connections: crate::config::fleet::DEFAULT_MAX_CONNECTIONS,
            jump: None,
            become_root: false,
            use_agent: true,
        }
    }

    /// `address:port` for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}
