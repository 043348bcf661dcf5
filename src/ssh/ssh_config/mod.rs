//! What `~/.ssh/config`, then the system-wide `/etc/ssh/ssh_config`, say about reaching a
//! host: `HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump` and `UserKnownHostsFile`,
//! resolved with OpenSSH's rules, so a fleet can name the aliases operators already use with
//! `ssh`.
//!
//! Why our own reader and not a crate: `ssh2-config` (the maintained parser, 0.7) evaluates no
//! `Match` block and expands no `%` token (both listed as missing in its README), and its
//! `Include` is not OpenSSH's textual inclusion (it merges an included file by querying it with
//! the including `Host` line's patterns, and reads `$HOME` itself, which tests cannot point
//! elsewhere); it also rejects a whole file over one option it does not know unless told not
//! to. Operators' configs use all three, and bellwether reads six options; the rules below are
//! those of ssh_config(5) and readconf.c, each with a unit test (`tests.rs`):
//!
//! - First obtained value wins, the user's file before the system's; `IdentityFile`
//!   accumulates; `ProxyJump none` stops later ones.
//! - `Host` patterns (`*`, `?`, `!negation`) match the name looked up, case-insensitively.
//! - `Match all`, `host` (the host name after any `HostName` so far), `originalhost`, `user`
//!   (the remote user so far), `localuser`, each negatable with `!`. A `Match` line with a
//!   criterion bellwether does not evaluate (`exec`, `localnetwork`, `canonical`, `final`,
//!   `tagged`, …) never matches: its block is skipped, with a warning when the rest of the line
//!   would have matched. bellwether runs no command from a config file.
//! - `Include` is textual, with globs (sorted), `~`, relative paths under `~/.ssh` (in the
//!   system file: `/etc/ssh`), at most 16 levels deep; a `Host`/`Match` inside an included file ends where that file ends.
//! - Tokens: `HostName` takes `%h %%`; `ProxyJump` `%h %n %p %r %%`; `IdentityFile` and
//!   `UserKnownHostsFile` also `%d %i %L %l %u` and a leading `~`. A value with another token
//!   is dropped with a warning.

mod pattern;
mod read;
mod tokens;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

/// Settings `~/.ssh/config` gives one host, tokens expanded (first value wins, as in OpenSSH).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    /// `UserKnownHostsFile` (several files allowed); empty when not set.
    pub user_known_hosts: Vec<PathBuf>,
    /// What could not be used, with file and line (unsupported `Match` criteria, unknown
    /// tokens, unreadable includes): for the log, not fatal.
    pub warnings: Vec<String>,
}

/// The host being looked up and what the fleet already fixes for it: the fleet's values beat
/// the file (like `ssh -l USER -p PORT`), its defaults only fill what the file leaves open.
/// Tokens (`%r`, `%p`, `%h`) expand to the values the connection will really use.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The name looked up (`Host` patterns, `%n`): the host's address, else its name.
    pub alias: &'a str,
    /// The host's own `address` (then `HostName` is not used for connecting, nor for `%h`).
    pub address: Option<&'a str>,
    /// The host's own `user`.
    pub user: Option<&'a str>,
    /// `[defaults] user`.
    pub default_user: &'a str,
    /// The host's own `port`.
    pub port: Option<u16>,
    /// `[defaults] port`.
    pub default_port: u16,
}

/// The local side that tokens and `Match localuser` refer to.
#[derive(Debug, Clone)]
pub struct Local {
    pub home: PathBuf,
    pub user: String,
    pub uid: u32,
    pub hostname: String,
}

impl Local {
    /// This process's user, home and machine; `None` without `$HOME` (then no config is read).
    pub fn current() -> Option<Local> {
        let home = std::env::var_os("HOME").map(PathBuf::from)?;
        Some(Local {
            home,
            user: crate::record::lock::username(),
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
            hostname: crate::record::lock::hostname(),
        })
    }
}

/// The system-wide client configuration, read after the user's (as `ssh` does).
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Resolve `q` from `~/.ssh/config`, then [`SYSTEM_CONFIG`] (empty settings when neither file
/// is there; without `$HOME`, the system file alone). Warnings are logged once per process (a
/// fleet resolves the same lines for many hosts).
pub fn resolve(q: &Query<'_>) -> HostConfig {
    let local = Local::current().unwrap_or_else(|| Local {
        home: PathBuf::from("/nonexistent"),
        user: crate::record::lock::username(),
        // SAFETY: getuid cannot fail.
        uid: unsafe { libc::getuid() },
        hostname: crate::record::lock::hostname(),
    });
    let hc = resolve_files(&local.home.join(".ssh/config"), Path::new(SYSTEM_CONFIG), q, &local);
    for w in &hc.warnings {
        warn_once(w);
    }
    hc
}

/// Resolve `q` from the config file at `path` (missing file: empty settings).
pub fn resolve_file(path: &Path, q: &Query<'_>, local: &Local) -> HostConfig {
    let mut r = read::Reader::new(q, local);
    r.file(path, 0);
    r.finish()
}

/// Resolve `q` from a user's config file, then a system-wide one (either may be missing):
/// the first value obtained wins, so the user's file overrides the system's.
pub fn resolve_files(user: &Path, system: &Path, q: &Query<'_>, local: &Local) -> HostConfig {
    let mut r = read::Reader::new(q, local);
    r.file(user, 0);
    r.system(system.parent().unwrap_or(Path::new("/")));
    r.file(system, 0);
    r.finish()
}

/// Resolve `q` from config text (as if it were `~/.ssh/config`).
pub fn resolve_text(text: &str, q: &Query<'_>, local: &Local) -> HostConfig {
    let mut r = read::Reader::new(q, local);
    r.text(text, &local.home.join(".ssh/config"), 0);
    r.finish()
}

fn warn_once(msg: &str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if seen.lock().is_ok_and(|mut s| s.insert(msg.to_string())) {
        tracing::warn!("ssh config: {msg}");
    }
}
