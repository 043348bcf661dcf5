//! Per-host SSH failures, each phrased so an operator knows what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Why an SSH operation on one host failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("connect to {addr} timed out after {}", humantime::format_duration(*.after))]
    ConnectTimeout { addr: String, after: Duration },
    #[error("connect to {addr} failed: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error(
        "HOST KEY MISMATCH for {host} ({lookup}): it offered {offered}, but {file}:{line} records {known} ({text}). \
         Refusing to connect: this may be a man-in-the-middle. If the host was rebuilt, remove that line \
         (ssh-keygen -R '{lookup}' -f {file}) and reconnect with --accept-new"
    , file = .file.display())]
    HostKeyMismatch {
        host: String,
        lookup: String,
        offered: String,
        known: String,
        file: PathBuf,
        line: usize,
        text: String,
    },
    #[error("host key {offered} of {host} is marked @revoked in {file}:{line}; refusing to connect", file = .file.display())]
    HostKeyRevoked {
        host: String,
        offered: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "host key of {host} ({lookup}) is not known: it offered {offered}; not in {files}. \
         Verify the fingerprint out of band, then rerun with --accept-new to record it"
    )]
    HostKeyUnknown {
        host: String,
        lookup: String,
        offered: String,
        files: String,
    },
    #[error(
        "known_hosts file {} does not exist, so the host key of {host} ({lookup}, it offered {offered}) cannot \
         be verified. Check `known_hosts` in the fleet's [defaults] (a misspelt path?); if the file is really \
         new, add each host's key to it after verifying its fingerprint out of band"
    , file.display())]
    KnownHostsMissing {
        host: String,
        lookup: String,
        offered: String,
        file: PathBuf,
    },
    #[error(
        "cannot read known_hosts file {} ({reason}), so the host key of {host} ({lookup}) cannot be verified; \
         check `known_hosts` in the fleet's [defaults]"
    , file.display())]
    KnownHostsUnreadable {
        host: String,
        lookup: String,
        file: PathBuf,
        reason: String,
    },
    #[error("authentication as {user} failed (tried: {tried}); check the user, the identity files in fleet.toml and ssh-agent")]
    Auth { user: String, tried: String },
    #[error("cannot load identity {}: {reason}", path.display())]
    Identity { path: PathBuf, reason: String },
    #[error("jump host {jump}: {source}")]
    Jump { jump: String, source: Box<SshError> },
    #[error("sudo on the host wants a password; `become = true` needs passwordless sudo (sudo -n) for this user")]
    SudoPassword,
    #[error("{what} timed out after {}", humantime::format_duration(*.after))]
    Timeout { what: String, after: Duration },
    #[error("the connection was lost ({0})")]
    Disconnected(String),
    #[error("the remote command ended without an exit status (connection lost or killed by a signal{})", signal.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    NoExitStatus { signal: Option<String> },
    #[error("{what} failed with exit status {status}: {stderr}")]
    Remote { what: String, status: u32, stderr: String },
    #[error("{path} changed on the host since it was read (sha256 {found}, expected {expected}); not overwriting it")]
    Changed {
        path: String,
        expected: String,
        found: String,
    },
    #[error("after writing {path}, it reads back as sha256 {found}, expected {expected}")]
    Verify {
        path: String,
        expected: String,
        found: String,
    },
    #[error("the command sent more than {limit} bytes of output; stopped reading it")]
    OutputLimit { limit: usize },
    #[error("{path} on {host} is a {kind}, not a regular file; bellwether only reads and replaces regular files (a FIFO or a device would hang the read or never end). Point the edit at the real file")]
    NotRegularFile { host: String, path: String, kind: String },
    #[error("{path} on {host} is larger than the {} MiB bellwether reads ({}); config files are expected to be small. Point the edit at the right file", .limit >> 20, .size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "it kept growing while being read".into()))]
    FileTooLarge {
        host: String,
        path: String,
        size: Option<u64>,
        limit: usize,
    },
    #[error("ssh protocol error: {0}")]
    Protocol(String),
    #[error("the log command did not start: {0}")]
    StreamNotStarted(String),
}

impl SshError {
    /// True for a failure that may pass by itself (refused, reset, timed out, dropped): worth
    /// another attempt. A host key or authentication refusal is not.
    pub fn may_pass(&self) -> bool {
        match self {
            SshError::Jump { source, .. } => source.may_pass(),
            other => matches!(other.class(), "timeout" | "refused" | "disconnected" | "protocol"),
        }
    }

    /// A one-word class for tables and summaries (timeout, refused, auth, host-key, ...).
    pub fn class(&self) -> &'static str {
        match self {
            SshError::ConnectTimeout { .. } | SshError::Timeout { .. } => "timeout",
            SshError::Connect { .. } => "refused",
            SshError::HostKeyMismatch { .. }
            | SshError::HostKeyRevoked { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::KnownHostsMissing { .. }
            | SshError::KnownHostsUnreadable { .. } => "host-key",
            SshError::Auth { .. } | SshError::Identity { .. } => "auth",
            SshError::Jump { .. } => "jump",
            SshError::SudoPassword => "sudo",
            SshError::Disconnected(_) | SshError::NoExitStatus { .. } => "disconnected",
            SshError::Remote { .. } => "remote",
            SshError::Changed { .. }
            | SshError::Verify { .. }
            | SshError::NotRegularFile { .. }
            | SshError::FileTooLarge { .. } => "file",
            SshError::OutputLimit { .. } | SshError::StreamNotStarted(_) => "remote",
            SshError::Protocol(_) => "protocol",
        }
    }
}

impl From<russh::Error> for SshError {
    fn from(e: russh::Error) -> Self {
        match e {
            russh::Error::Disconnect | russh::Error::HUP | russh::Error::SendError => {
                SshError::Disconnected(e.to_string())
            }
            other => SshError::Protocol(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_may_pass_are_retried() {
        let refused = SshError::Connect {
            addr: "h:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.may_pass());
        assert!(SshError::Disconnected("reset".into()).may_pass());
        let via_jump = SshError::Jump {
            jump: "bastion".into(),
            source: Box::new(refused),
        };
        assert!(via_jump.may_pass());
        let auth = SshError::Auth {
            user: "agent".into(),
            tried: "ed25519".into(),
        };
        assert!(!auth.may_pass());
        let key = SshError::HostKeyUnknown {
            host: "h".into(),
            lookup: "h".into(),
            offered: "SHA256:x".into(),
            files: "known_hosts".into(),
        };
        assert!(!key.may_pass());
        assert!(!SshError::Jump {
            jump: "b".into(),
            source: Box::new(key)
        }
        .may_pass());
    }
}
