//! The host-key check of every connection: russh's event handler, holding its verdict so a
//! refusal can be explained precisely.

use super::error::SshError;
use super::known_hosts::{self, HostKeyStatus};
use russh::client;
use russh::keys::PublicKey;
use std::sync::{Arc, Mutex};

/// The russh event handler: verifies the server key against known_hosts and keeps the verdict
/// so the caller can explain a refusal precisely (russh itself only reports "unknown key").
pub(crate) struct Verifier {
    pub(crate) host: String,
    pub(crate) lookup_host: String,
    pub(crate) port: u16,
    pub(crate) files: Vec<std::path::PathBuf>,
    pub(crate) accept_new: bool,
    pub(crate) verdict: Arc<Mutex<Option<SshError>>>,
}

impl Verifier {
    fn refuse(&self, e: SshError) -> bool {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(e);
        }
        false
    }

    fn verify(&self, key: &PublicKey) -> bool {
        let offered = known_hosts::fingerprint(key);
        let lookup = known_hosts::lookup_name(&self.lookup_host, self.port);
        match known_hosts::check(&self.files, &self.lookup_host, self.port, key) {
            HostKeyStatus::Known { .. } => true,
            HostKeyStatus::Revoked { file, line } => self.refuse(SshError::HostKeyRevoked {
                host: self.host.clone(),
                offered,
                file,
                line,
            }),
            HostKeyStatus::Mismatch { known } => {
                let first = &known[0];
                self.refuse(SshError::HostKeyMismatch {
                    host: self.host.clone(),
                    lookup,
                    offered,
                    known: first.fingerprint.clone(),
                    file: first.file.clone(),
                    line: first.line,
                    text: first.text.clone(),
                })
            }
            // Asked for explicitly, so a missing file is created: that is the flag's promise.
            HostKeyStatus::Unknown if self.accept_new => match self.files.first() {
                Some(f) => match (f.exists(), known_hosts::append(f, &self.lookup_host, self.port, key)) {
                    (existed, Ok(())) => {
                        if !existed {
                            tracing::warn!(file = %f.display(), "created known_hosts file (it did not exist)");
                        }
                        tracing::warn!(host = %self.host, fingerprint = %offered, file = %f.display(), "accepted new host key");
                        true
                    }
                    (_, Err(e)) => self.refuse(SshError::Protocol(format!(
                        "cannot record host key in {}: {e}",
                        f.display()
                    ))),
                },
                None => self.refuse(SshError::Protocol("no known_hosts file configured".into())),
            },
            HostKeyStatus::Unknown => self.refuse(self.unknown(lookup, offered)),
        }
    }

    /// Refusal of a key no file lists. "Rerun with --accept-new" only when the file it would
    /// record into is there and merely lacks the host: for a missing or unreadable file (a
    /// misspelt path, most likely) that advice would trust every host's key unverified.
    fn unknown(&self, lookup: String, offered: String) -> SshError {
        let first = self.files.first();
        match first.and_then(|f| known_hosts::unusable(f).map(|e| (f, e))) {
            Some((f, e)) if e.kind() == std::io::ErrorKind::NotFound => SshError::KnownHostsMissing {
                host: self.host.clone(),
                lookup,
                offered,
                file: f.clone(),
            },
            Some((f, e)) => SshError::KnownHostsUnreadable {
                host: self.host.clone(),
                lookup,
                file: f.clone(),
                reason: e.to_string(),
            },
            None => SshError::HostKeyUnknown {
                host: self.host.clone(),
                lookup,
                offered,
                files: self
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        }
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => Ok(self.verify(key)),
            russh::keys::PublicKeyOrCertificate::Certificate(_) => Ok(self.refuse(SshError::Protocol(
                "host certificates are not supported; list the host's plain key in known_hosts".into(),
            ))),
        }
    }
}
