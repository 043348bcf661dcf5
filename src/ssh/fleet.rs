//! The SSH endpoint of a fleet host: the host's fields, then `~/.ssh/config`, then the
//! fleet's defaults (identity files, known_hosts, jump hosts, `become`).

use super::{ssh_config, Endpoint};
use crate::config::{Host, LoadedFleet};
use std::path::{Path, PathBuf};

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Expand `~/` and make relative paths relative to the fleet file's folder.
pub fn expand(p: &str, base: &Path) -> PathBuf {
    if let (Some(rest), Some(h)) = (p.strip_prefix("~/"), home()) {
        return h.join(rest);
    }
    let pb = PathBuf::from(p);
    if pb.is_absolute() {
        pb
    } else {
        base.join(pb)
    }
}

/// The known_hosts files host keys are checked against, in order; `--accept-new` records into
/// the first.
pub fn known_hosts_files(lf: &LoadedFleet) -> Vec<PathBuf> {
    let base = lf.path.parent().unwrap_or(Path::new("."));
    match &lf.fleet.defaults.known_hosts {
        Some(k) => vec![expand(k, base)],
        // As OpenSSH: the user's file (where --accept-new records), then the system-wide one.
        None => vec![
            home().unwrap_or_default().join(".ssh/known_hosts"),
            PathBuf::from("/etc/ssh/ssh_known_hosts"),
        ],
    }
}

/// Build the SSH endpoint for a fleet host: host fields, then `~/.ssh/config`, then defaults.
pub fn endpoint(lf: &LoadedFleet, host: &Host, accept_new: bool) -> Endpoint {
    endpoint_depth(lf, host, accept_new, 0)
}

fn endpoint_depth(lf: &LoadedFleet, host: &Host, accept_new: bool, depth: usize) -> Endpoint {
    let d = &lf.fleet.defaults;
    let base = lf.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let sc = if d.ssh_config {
        ssh_config::resolve(&ssh_config::Query {
            alias: host.addr(),
            address: host.address.as_deref(),
            user: host.user.as_deref(),
            default_user: &d.user,
            port: host.port,
            default_port: d.port,
        })
    } else {
        Default::default()
    };
    let address = host
        .address
        .clone()
        .or(sc.hostname.clone())
        .unwrap_or_else(|| host.name.clone());
    let mut ep = Endpoint::new(
        &host.name,
        &address,
        host.user.as_deref().or(sc.user.as_deref()).unwrap_or(&d.user),
    );
    ep.port = host.port.or(sc.port).unwrap_or(d.port);
    let ids: Vec<PathBuf> = match &host.identity {
        Some(v) => v.iter().map(|p| expand(p, &base)).collect(),
        None => d
            .identity
            .iter()
            .map(|p| expand(p, &base))
            .chain(sc.identity_files.clone())
            .collect(),
    };
    ep.identities = ids;
    ep.known_hosts = match (&d.known_hosts, sc.user_known_hosts.is_empty()) {
        // The fleet's setting wins; without one, the host's `UserKnownHostsFile`, then the
        // system-wide file, as OpenSSH reads them.
        (None, false) => {
            let mut v = sc.user_known_hosts.clone();
            v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
            v
        }
        _ => known_hosts_files(lf),
    };
    ep.accept_new = accept_new;
    ep.connect_timeout = d.connect_timeout.get();
    ep.command_timeout = d.command_timeout.get();
    ep.max_connections = d.max_connections;
    ep.become_root = host.become_root.unwrap_or(d.become_root);
    ep.use_agent = d.agent;
    let jump = host.jump.clone().or(d.jump.clone()).or(sc.proxy_jump.clone());
    if let Some(j) = jump.filter(|j| j != &host.name && depth < 3) {
        // ProxyJump a,b: reach a, tunnel to b through it, then to the host through b.
        let mut prev: Option<Endpoint> = None;
        for hop in j.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let mut e = jump_endpoint(lf, hop, accept_new, depth);
            if let Some(p) = prev.take() {
                e.jump = Some(Box::new(p));
            }
            prev = Some(e);
        }
        ep.jump = prev.map(Box::new);
    }
    ep
}

/// A jump host named by a fleet host name, an `~/.ssh/config` alias or `user@host:port`.
fn jump_endpoint(lf: &LoadedFleet, spec: &str, accept_new: bool, depth: usize) -> Endpoint {
    if let Some(h) = lf.fleet.host(spec) {
        let mut ep = endpoint_depth(lf, h, accept_new, depth + 1);
        ep.become_root = false;
        return ep;
    }
    let (user, rest) = match spec.split_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    let (alias, port) = match rest.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (rest, None),
    };
    let fake = Host {
        name: alias.to_string(),
        address: None,
        port,
        user,
        region: None,
        groups: vec![],
        vars: Default::default(),
        jump: None,
        become_root: Some(false),
        identity: None,
    };
    endpoint_depth(lf, &fake, accept_new, depth + 1)
}
