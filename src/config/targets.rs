//! Choosing hosts: the playbook's `targets` table and the CLI's TARGETS selector share one
//! matcher (group, region, host name or glob, exclusions).

use super::error::Invalid;
use super::fleet::{Fleet, Host};
use crate::value::FieldPath;
use serde::{Deserialize, Serialize};

/// `targets = { groups = [...], regions = [...], hosts = [...], exclude = [...] }`.
/// A host is selected when it matches any listed group, region or host pattern (all hosts
/// when none is listed) and no `exclude` pattern (host glob, `group:X` or `region:X`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn glob_match(p: &str, name: &str) -> bool {
    glob::Pattern::new(p).map(|g| g.matches(name)).unwrap_or(p == name)
}

fn term_matches(term: &str, h: &Host) -> bool {
    if let Some(g) = term.strip_prefix("group:") {
        h.groups.iter().any(|x| glob_match(g, x))
    } else if let Some(r) = term.strip_prefix("region:") {
        h.region.as_deref().is_some_and(|x| glob_match(r, x))
    } else {
        glob_match(term.strip_prefix("host:").unwrap_or(term), &h.name)
    }
}

impl TargetSpec {
    /// Parse the CLI form: terms separated by commas or spaces, `group:X`, `region:X`,
    /// `host:GLOB` or a bare host glob, and `!TERM` to exclude.
    pub fn parse_cli(words: &[String]) -> TargetSpec {
        let mut t = TargetSpec::default();
        for term in words.iter().flat_map(|w| w.split([',', ' '])).filter(|s| !s.is_empty()) {
            if let Some(ex) = term.strip_prefix('!') {
                t.exclude.push(ex.to_string());
            } else if let Some(g) = term.strip_prefix("group:") {
                t.groups.push(g.to_string());
            } else if let Some(r) = term.strip_prefix("region:") {
                t.regions.push(r.to_string());
            } else {
                t.hosts.push(term.strip_prefix("host:").unwrap_or(term).to_string());
            }
        }
        t
    }

    /// True when nothing is listed (select every host).
    pub fn is_all(&self) -> bool {
        self.groups.is_empty() && self.regions.is_empty() && self.hosts.is_empty()
    }

    /// Does this spec select `h`?
    pub fn selects(&self, h: &Host) -> bool {
        let included = self.is_all()
            || self.groups.iter().any(|g| h.groups.iter().any(|x| glob_match(g, x)))
            || self
                .regions
                .iter()
                .any(|r| h.region.as_deref().is_some_and(|x| glob_match(r, x)))
            || self.hosts.iter().any(|p| glob_match(p, &h.name));
        included && !self.exclude.iter().any(|e| term_matches(e, h))
    }

    /// The selected hosts, in fleet order.
    pub fn resolve<'f>(&self, fleet: &'f Fleet) -> Vec<&'f Host> {
        fleet.hosts.iter().filter(|h| self.selects(h)).collect()
    }

    /// Unknown group/region/host names and an empty result are errors (a typo in a selector
    /// must not silently select nothing, or everything).
    pub fn validate(&self, fleet: &Fleet, path: &FieldPath) -> Vec<Invalid> {
        let mut out = Vec::new();
        let groups = fleet.groups();
        let regions = fleet.regions();
        for (i, g) in self.groups.iter().enumerate() {
            if !groups.iter().any(|x| glob_match(g, x)) {
                out.push(Invalid::new(
                    path.key("groups").index(i),
                    format!("unknown group {g:?}; the fleet has: {}", groups.join(", ")),
                ));
            }
        }
        for (i, r) in self.regions.iter().enumerate() {
            if !regions.iter().any(|x| glob_match(r, x)) {
                out.push(Invalid::new(
                    path.key("regions").index(i),
                    format!("unknown region {r:?}; the fleet has: {}", regions.join(", ")),
                ));
            }
        }
        for (i, p) in self.hosts.iter().enumerate() {
            if !fleet.hosts.iter().any(|h| glob_match(p, &h.name)) {
                out.push(Invalid::new(
                    path.key("hosts").index(i),
                    format!("unknown host {p:?}: no host in the fleet has that name or matches that pattern"),
                ));
            }
        }
        for (i, e) in self.exclude.iter().enumerate() {
            let known = if let Some(g) = e.strip_prefix("group:") {
                groups.iter().any(|x| glob_match(g, x))
            } else if let Some(r) = e.strip_prefix("region:") {
                regions.iter().any(|x| glob_match(r, x))
            } else {
                let p = e.strip_prefix("host:").unwrap_or(e);
                fleet.hosts.iter().any(|h| glob_match(p, &h.name))
            };
            if !known {
                out.push(Invalid::new(
                    path.key("exclude").index(i),
                    format!("exclusion {e:?} matches nothing in the fleet (use a host name or glob, group:NAME or region:NAME)"),
                ));
            }
        }
        if out.is_empty() && self.resolve(fleet).is_empty() {
            out.push(Invalid::new(
                path.clone(),
                "the target set is empty: no host matches these selectors",
            ));
        }
        out
    }
}
