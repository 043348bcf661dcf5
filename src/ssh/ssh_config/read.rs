//! Reading config files line by line for one host: which blocks apply (`Host`, `Match`),
//! `Include` read in place, and the first value of each option kept with where it came from.

use super::pattern::{self, MatchLine, Subject};
use super::tokens::{self, Accepts, Values};
use super::{HostConfig, Local, Query};
use std::path::{Path, PathBuf};

/// As OpenSSH's READCONF_MAX_DEPTH: deeper means an include loop.
const MAX_DEPTH: usize = 16;

/// A value and the `file:line` it was read from (for warnings).
#[derive(Debug, Clone)]
struct Found {
    value: String,
    at: String,
}

/// The walk over the files for one query.
pub(super) struct Reader<'a> {
    q: &'a Query<'a>,
    local: &'a Local,
    hostname: Option<Found>,
    user: Option<Found>,
    port: Option<u16>,
    identity_files: Vec<Found>,
    proxy_jump: Option<Found>,
    known_hosts: Option<Vec<Found>>,
    warnings: Vec<String>,
    /// Relative `Include` paths are under this folder: `~/.ssh` for the user's file,
    /// `/etc/ssh` for the system-wide one (ssh_config(5)).
    include_dir: PathBuf,
}

/// A line's keyword (lowercased) and arguments, quotes removed. `None` for blank lines and
/// comments.
pub(super) fn split_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    // `Key value`, `Key=value` and `Key = value` are all one separator.
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Some((key.to_ascii_lowercase(), words(rest)))
}

/// Whitespace-separated words; `"…"` and `'…'` group (the quotes are removed).
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, '#') if !started => break,
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}

impl<'a> Reader<'a> {
    pub(super) fn new(q: &'a Query<'a>, local: &'a Local) -> Self {
        Reader {
            q,
            local,
            hostname: None,
            user: None,
            port: None,
            identity_files: Vec::new(),
            proxy_jump: None,
            known_hosts: None,
            warnings: Vec::new(),
            include_dir: local.home.join(".ssh"),
        }
    }

    /// From here on, read a system-wide file: its relative `Include`s are under `dir`.
    pub(super) fn system(&mut self, dir: &Path) {
        self.include_dir = dir.to_path_buf();
    }

    /// Read `path` (a missing file is no error, as in ssh).
    pub(super) fn file(&mut self, path: &Path, depth: usize) {
        match std::fs::read_to_string(path) {
            Ok(text) => self.text(&text, path, depth),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.warnings.push(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Read config `text` from `path`. Lines before the first `Host`/`Match` apply to every
    /// host; a block's state ends with the file it is in.
    pub(super) fn text(&mut self, text: &str, path: &Path, depth: usize) {
        let mut active = true;
        for (n, line) in text.lines().enumerate() {
            let Some((key, args)) = split_line(line) else { continue };
            let at = format!("{}:{}", path.display(), n + 1);
            match key.as_str() {
                "host" => active = pattern::host_line(&args, self.q.alias),
                "match" => active = self.match_line(&args, &at),
                _ if !active => {}
                "include" => self.include(&args, &at, depth),
                _ => self.option(&key, args, at),
            }
        }
    }

    fn match_line(&mut self, args: &[String], at: &str) -> bool {
        let host = self.hostname_so_far();
        let user = self.user_so_far();
        let s = Subject {
            host: &host,
            original: self.q.alias,
            user: &user,
            local_user: &self.local.user,
        };
        match pattern::match_line(args, &s) {
            MatchLine::Yes => true,
            MatchLine::No => false,
            MatchLine::Unsupported(c) => {
                self.warnings.push(format!(
                    "{at}: `Match {c}` is not evaluated by bellwether; that block is skipped for {} \
                     (give the host its settings in the fleet, or a Host block)",
                    self.q.alias
                ));
                false
            }
            MatchLine::Invalid(why) => {
                self.warnings.push(format!("{at}: {why}; that block is skipped"));
                false
            }
        }
    }

    /// `%h` for `Match host`: the `HostName` so far, else the name looked up.
    fn hostname_so_far(&self) -> String {
        self.hostname
            .as_ref()
            .and_then(|f| self.expand(f, Accepts::HostName, &self.values(self.q.alias)))
            .unwrap_or_else(|| self.q.alias.to_string())
    }

    /// The remote user so far: the fleet host's own, else the file's so far, else the default.
    fn user_so_far(&self) -> String {
        self.q
            .user
            .or(self.user.as_ref().map(|f| f.value.as_str()))
            .unwrap_or(self.q.default_user)
            .to_string()
    }

    fn include(&mut self, args: &[String], at: &str, depth: usize) {
        if depth + 1 > MAX_DEPTH {
            self.warnings.push(format!(
                "{at}: Include nested more than {MAX_DEPTH} deep (a loop?); not read"
            ));
            return;
        }
        for arg in args {
            let p = tokens::tilde(arg, self.local);
            let p = if Path::new(&p).is_absolute() {
                PathBuf::from(p)
            } else {
                self.include_dir.join(p)
            };
            let pattern = p.to_string_lossy();
            let files = match glob::glob(&pattern) {
                Ok(paths) => paths.filter_map(Result::ok).collect::<Vec<_>>(),
                Err(e) => {
                    self.warnings.push(format!("{at}: Include {arg}: {e}"));
                    continue;
                }
            };
            // glob yields in alphabetical order, as ssh's glob(3) does.
            for f in files.iter().filter(|f| !f.is_dir()) {
                self.file(f, depth + 1);
            }
        }
    }

    fn option(&mut self, key: &str, args: Vec<String>, at: String) {
        let first = |args: &[String]| {
            args.first().map(|v| Found {
                value: v.clone(),
                at: at.clone(),
            })
        };
        match key {
            "hostname" if self.hostname.is_none() => self.hostname = first(&args),
            "user" if self.user.is_none() => self.user = first(&args),
            "port" if self.port.is_none() => match args.first().map(|p| p.parse::<u16>()) {
                Some(Ok(p)) if p > 0 => self.port = Some(p),
                _ => self
                    .warnings
                    .push(format!("{at}: Port {:?} is not a port number; ignored", args.join(" "))),
            },
            "identityfile" => self.identity_files.extend(first(&args)),
            "proxyjump" if self.proxy_jump.is_none() => self.proxy_jump = first(&args),
            "userknownhostsfile" if self.known_hosts.is_none() => {
                let all = args.iter().map(|v| Found {
                    value: v.clone(),
                    at: at.clone(),
                });
                self.known_hosts = Some(all.collect());
            }
            _ => {}
        }
    }

    /// The token values, with `host` as `%h`.
    fn values<'v>(&'v self, host: &'v str) -> Values<'v> {
        Values {
            host,
            original: self.q.alias,
            port: self.q.port.or(self.port).unwrap_or(self.q.default_port),
            user: self
                .q
                .user
                .or(self.user.as_ref().map(|f| f.value.as_str()))
                .unwrap_or(self.q.default_user),
            local: self.local,
        }
    }

    /// A value expanded, or `None` (it names a token the option does not take).
    fn expand(&self, f: &Found, accepts: Accepts, v: &Values<'_>) -> Option<String> {
        tokens::expand(&f.value, accepts, v).ok()
    }

    /// Expand every kept value with the final host, port and user.
    pub(super) fn finish(mut self) -> HostConfig {
        let mut warnings = std::mem::take(&mut self.warnings);
        let alias_values = self.values(self.q.alias);
        let mut take =
            |f: &Found, accepts: Accepts, v: &Values<'_>, what: &str| match tokens::expand(&f.value, accepts, v) {
                Ok(s) => Some(s),
                Err(t) => {
                    warnings.push(format!(
                        "{}: {what} {:?}: {t} is not a token {what} takes; ignored",
                        f.at, f.value
                    ));
                    None
                }
            };
        let hostname = self
            .hostname
            .as_ref()
            .and_then(|f| take(f, Accepts::HostName, &alias_values, "HostName"));
        let host = self
            .q
            .address
            .map(str::to_string)
            .or(hostname.clone())
            .unwrap_or_else(|| self.q.alias.to_string());
        let v = self.values(&host);
        let identity_files = self
            .identity_files
            .iter()
            .filter_map(|f| take(f, Accepts::Path, &v, "IdentityFile"))
            .map(PathBuf::from)
            .collect();
        let proxy_jump = self
            .proxy_jump
            .as_ref()
            .filter(|f| !f.value.eq_ignore_ascii_case("none"))
            .and_then(|f| take(f, Accepts::ProxyJump, &v, "ProxyJump"));
        let user_known_hosts = self
            .known_hosts
            .iter()
            .flatten()
            .filter(|f| !f.value.eq_ignore_ascii_case("none"))
            .filter_map(|f| take(f, Accepts::Path, &v, "UserKnownHostsFile"))
            .map(PathBuf::from)
            .collect();
        HostConfig {
            hostname,
            user: self.user.map(|f| f.value),
            port: self.port,
            identity_files,
            proxy_jump,
            user_known_hosts,
            warnings,
        }
    }
}
