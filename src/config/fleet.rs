//! `fleet.toml`: the inventory (hosts, addresses, regions, groups, vars) and SSH defaults.

use super::error::Invalid;
use crate::value::{Dur, FieldPath};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// The whole fleet file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    /// A calendar file, relative to the fleet file (its windows add to inline ones).
    #[serde(default)]
    pub calendar: Option<String>,
    /// Inline freeze windows (`[[freeze]]`).
    #[serde(default)]
    pub freeze: Vec<crate::calendar::FreezeWindow>,
    /// Inline tier rules (`[tiers.TN]`).
    #[serde(default)]
    pub tiers: Option<crate::calendar::TierOverrides>,
    /// Inline emergency profile (`[emergency]`).
    #[serde(default)]
    pub emergency: Option<crate::calendar::EmergencyProfile>,
    /// `[callbacks]` for every playbook's runs: run before the playbook's own.
    #[serde(default)]
    pub callbacks: super::controls::Callbacks,
}

/// SSH and run defaults for every host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Private key files tried in order, then ssh-agent.
    #[serde(default)]
    pub identity: Vec<String>,
    /// known_hosts file; default `~/.ssh/known_hosts`.
    #[serde(default)]
    pub known_hosts: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Limit for each of bellwether's own remote commands (preflight, markers, file reads and
    /// writes): generous, since a busy host can take seconds to start a shell.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: Dur,
    /// SSH connections held open at once: past it, idle ones are closed and reopened when
    /// next needed (docs/ssh.md, "Connection budget").
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Hosts worked on at once (connect, preflight, a batch).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Run remote commands through `sudo -n`.
    #[serde(default, rename = "become")]
    pub become_root: bool,
    /// Jump host for every host: a fleet host name or an `~/.ssh/config` alias.
    #[serde(default)]
    pub jump: Option<String>,
    /// Use ssh-agent keys after the identity files.
    #[serde(default = "yes")]
    pub agent: bool,
    /// Read `~/.ssh/config` for aliases, users, ports, identities and ProxyJump.
    #[serde(default = "yes")]
    pub ssh_config: bool,
}

fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}
fn default_port() -> u16 {
    22
}
fn default_connect_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}
fn default_command_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(120))
}
/// `max_connections` when the fleet says nothing: enough for 4× the default concurrency,
/// and for a fleet of 200 hosts to keep each connection for the whole run.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_concurrency() -> usize {
    50
}
fn yes() -> bool {
    true
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            user: default_user(),
            port: 22,
            identity: Vec::new(),
            known_hosts: None,
            connect_timeout: default_connect_timeout(),
            command_timeout: default_command_timeout(),
            max_connections: default_max_connections(),
            concurrency: default_concurrency(),
            become_root: false,
            jump: None,
            agent: true,
            ssh_config: true,
        }
    }
}

/// One agent host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    /// IP or DNS name; defaults to `name` (which may be an `~/.ssh/config` alias).
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Free-form values for templates: `{{ vars.agent_unit }}`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub jump: Option<String>,
    #[serde(default, rename = "become")]
    pub become_root: Option<bool>,
    #[serde(default)]
    pub identity: Option<Vec<String>>,
}

impl Host {
    /// The address to dial (the name itself when no address is given).
    pub fn addr(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.name)
    }
}

/// `address` is dialled and spliced into templates: a host name or an IP address, nothing else.
fn check_address(a: &str) -> Result<(), String> {
    if a.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = a.strip_suffix('.').unwrap_or(a);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        return Ok(());
    }
    Err(format!(
        "{a:?} is neither a host name (labels of letters, digits, `-` and `_`, separated by dots) nor an IP address"
    ))
}

/// Control characters in values that templates put into commands and paths on the host.
fn template_values(h: &Host, p: &FieldPath) -> Vec<Invalid> {
    let bad = |s: &str| s.chars().find(|c| c.is_control());
    let msg = |c: char| {
        format!(
            "contains the control character U+{:04X}; template values go into commands and paths on the host",
            c as u32
        )
    };
    let mut out = Vec::new();
    for (k, v) in &h.vars {
        if let Some(c) = bad(k).or_else(|| bad(v)) {
            out.push(Invalid::new(p.key("vars").key(k), msg(c)));
        }
    }
    if let Some(c) = h.region.as_deref().and_then(bad) {
        out.push(Invalid::new(p.key("region"), msg(c)));
    }
    for (i, g) in h.groups.iter().enumerate() {
        if let Some(c) = bad(g) {
            out.push(Invalid::new(p.key("groups").index(i), msg(c)));
        }
    }
    out
}

impl Fleet {
    /// Look a host up by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every group name used by some host.
    pub fn groups(&self) -> Vec<String> {
        let mut g: Vec<String> = self.hosts.iter().flat_map(|h| h.groups.clone()).collect();
        g.sort();
        g.dedup();
        g
    }

    /// Every region used by some host.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self.hosts.iter().filter_map(|h| h.region.clone()).collect();
        r.sort();
        r.dedup();
        r
    }

    /// Semantic checks: duplicate names and addresses, empty names, zero concurrency,
    /// callbacks.
    pub fn validate(&self) -> Vec<Invalid> {
        let root = FieldPath::root();
        let mut out = self.callbacks.validate(&root.key("callbacks"));
        if self.defaults.concurrency == 0 {
            out.push(Invalid::new(
                root.key("defaults").key("concurrency"),
                "must be at least 1",
            ));
        }
        if self.defaults.max_connections == 0 {
            out.push(Invalid::new(
                root.key("defaults").key("max_connections"),
                "must be at least 1",
            ));
        }
        if self.defaults.command_timeout.get() < std::time::Duration::from_secs(1) {
            out.push(Invalid::new(
                root.key("defaults").key("command_timeout"),
                "must be at least 1s (it limits each of bellwether's own remote commands)",
            ));
        }
        if self.hosts.is_empty() {
            out.push(Invalid::new(
                root.key("host"),
                "the fleet has no hosts; add at least one [[host]] table",
            ));
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut addrs: HashMap<(String, u16), usize> = HashMap::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let p = root.key("host").index(i);
            if h.name.trim().is_empty() || h.name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                out.push(Invalid::new(
                    p.key("name"),
                    "a host name must be non-empty and contain no spaces or control characters",
                ));
            }
            if let Some(a) = &h.address {
                if let Err(why) = check_address(a) {
                    out.push(Invalid::new(p.key("address"), why));
                }
            }
            out.extend(template_values(h, &p));
            if let Some(j) = names.insert(&h.name, i) {
                out.push(Invalid::new(
                    p.key("name"),
                    format!("duplicate host name {:?} (also host[{j}])", h.name),
                ));
            }
            let key = (h.addr().to_string(), h.port.unwrap_or(self.defaults.port));
            if let Some(j) = addrs.insert(key.clone(), i) {
                out.push(Invalid::new(
                    p.key(if h.address.is_some() { "address" } else { "name" }),
                    format!(
                        "duplicate address {}:{} (also host[{j}] {:?}); two entries would be changed twice",
                        key.0, key.1, self.hosts[j].name
                    ),
                ));
            }
            if let Some(j) = &h.jump {
                if j == &h.name {
                    out.push(Invalid::new(p.key("jump"), "a host cannot be its own jump host"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_names_or_ips() {
        for ok in [
            "10.0.1.11",
            "::1",
            "fe80::1",
            "use1-a.internal",
            "db_1.example.com.",
            "h01",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "x;touch p",
            "$(id)",
            "-oProxyCommand=x",
            "a..b",
            "host\n",
            "[::1]",
            "a/b",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_in_template_values_are_refused() {
        let fleet: Fleet = toml::from_str(
            "[[host]]\nname = \"h\"\nregion = \"r\\u001b[2J\"\nvars = { ok = \"x; y\", unit = \"a\\nb\" }\n",
        )
        .unwrap();
        let problems = fleet.validate();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("field `host[0].vars.unit`: contains the control character U+000A"),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("field `host[0].region`: contains the control character U+001B"),
            "{text:?}"
        );
    }

    #[test]
    fn max_connections_defaults_to_the_budget_and_must_be_at_least_one() {
        let host = "[[host]]\nname = \"h\"\n";
        let fleet: Fleet = toml::from_str(host).unwrap();
        assert_eq!(fleet.defaults.max_connections, DEFAULT_MAX_CONNECTIONS);
        let fleet: Fleet = toml::from_str(&format!("[defaults]\nmax_connections = 0\n{host}")).unwrap();
        let text: Vec<String> = fleet.validate().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            ["field `defaults.max_connections`: must be at least 1"],
            "{text:?}"
        );
    }

    #[test]
    fn command_timeout_defaults_to_two_minutes_and_must_be_at_least_a_second() {
        let host = "[[host]]\nname = \"h\"\n";
        let fleet: Fleet = toml::from_str(host).unwrap();
        assert_eq!(
            fleet.defaults.command_timeout.get(),
            std::time::Duration::from_secs(120)
        );
        let fleet: Fleet = toml::from_str(&format!("[defaults]\ncommand_timeout = \"5m\"\n{host}")).unwrap();
        assert_eq!(
            fleet.defaults.command_timeout.get(),
            std::time::Duration::from_secs(300)
        );
        assert!(fleet.validate().is_empty());
        let fleet: Fleet = toml::from_str(&format!("[defaults]\ncommand_timeout = \"0s\"\n{host}")).unwrap();
        let text: Vec<String> = fleet.validate().iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].starts_with("field `defaults.command_timeout`: must be at least 1s"),
            "{text:?}"
        );
    }
}
