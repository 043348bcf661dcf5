//! The subset of `~/.ssh/config` that matters for reaching hosts: Host aliases, HostName,
//! User, Port, IdentityFile, ProxyJump. Operators already describe their bastions there, so a
//! fleet can name `ssh_config` aliases instead of repeating them.

use std::path::{Path, PathBuf};

/// Settings resolved for one host alias (first value wins, as in OpenSSH).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
}

struct Block {
    patterns: Vec<String>,
    options: Vec<(String, String)>,
}

fn parse(text: &str) -> Vec<Block> {
    let mut blocks = vec![Block {
        patterns: vec!["*".into()],
        options: vec![],
    }];
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.trim_start_matches(['=', ' ', '\t']).trim()),
            None => continue,
        };
        let value = value.trim_matches('"').to_string();
        if key == "host" {
            blocks.push(Block {
                patterns: value.split_whitespace().map(String::from).collect(),
                options: vec![],
            });
        } else if key == "match" {
            // Match blocks need runtime conditions we do not evaluate: skip their options.
            blocks.push(Block {
                patterns: vec![],
                options: vec![],
            });
        } else if let Some(b) = blocks.last_mut() {
            b.options.push((key, value));
        }
    }
    blocks
}

fn pattern_matches(patterns: &[String], name: &str) -> bool {
    let mut hit = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob_match(neg, name) {
                return false;
            }
        } else if glob_match(p, name) {
            hit = true;
        }
    }
    hit
}

fn glob_match(p: &str, n: &str) -> bool {
    glob::Pattern::new(p).map(|g| g.matches(n)).unwrap_or(false)
}

fn expand_tilde(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

/// Resolve `alias` against the config text.
pub fn resolve_text(text: &str, alias: &str, home: Option<&Path>) -> HostConfig {
    let mut hc = HostConfig::default();
    for block in parse(text) {
        if !pattern_matches(&block.patterns, alias) {
            continue;
        }
        for (k, v) in block.options {
            match k.as_str() {
                "hostname" if hc.hostname.is_none() => hc.hostname = Some(v.replace("%h", alias)),
                "user" if hc.user.is_none() => hc.user = Some(v),
                "port" if hc.port.is_none() => hc.port = v.parse().ok(),
                "identityfile" => hc.identity_files.push(expand_tilde(&v, home)),
                "proxyjump" if hc.proxy_jump.is_none() && v != "none" => hc.proxy_jump = Some(v),
                _ => {}
            }
        }
    }
    hc
}

/// Resolve `alias` from `~/.ssh/config` (empty settings when there is no such file).
pub fn resolve(alias: &str) -> HostConfig {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let Some(h) = home.as_deref() else {
        return HostConfig::default();
    };
    match std::fs::read_to_string(h.join(".ssh/config")) {
        Ok(text) => resolve_text(&text, alias, Some(h)),
        Err(_) => HostConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_wildcards_apply() {
        let text = "Host bastion\n  HostName 10.0.0.1\n  User ops\n\nHost web-*\n  HostName %h.internal\n  Port 2222\n  ProxyJump bastion\n  IdentityFile ~/.ssh/web\n\nHost *\n  User nobody\n  IdentityFile ~/.ssh/id_ed25519\n";
        let hc = resolve_text(text, "web-1", Some(Path::new("/home/me")));
        assert_eq!(hc.hostname.as_deref(), Some("web-1.internal"));
        assert_eq!(hc.port, Some(2222));
        assert_eq!(hc.user.as_deref(), Some("nobody"));
        assert_eq!(hc.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(
            hc.identity_files,
            vec![
                PathBuf::from("/home/me/.ssh/web"),
                PathBuf::from("/home/me/.ssh/id_ed25519")
            ]
        );
        let b = resolve_text(text, "bastion", None);
        assert_eq!(b.user.as_deref(), Some("ops"));
        assert_eq!(b.proxy_jump, None);
    }
}
