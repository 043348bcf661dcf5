//! Opening one verified, authenticated connection to a host (optionally through a jump host).

use super::budget::{self, Handle, Lease, Slot};
use super::endpoint::Endpoint;
use super::error::SshError;
use super::verifier::Verifier;
use russh::client;
use russh::keys::PrivateKeyWithHashAlg;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An open, authenticated connection. Cheap to share: channels are opened per operation, so
/// a log tail and a restart can run on it at the same time. Its session may be parked by the
/// connection budget while idle and is then reopened by its next command
/// ([`super::budget`]).
pub struct Connection {
    pub(crate) slot: Arc<Slot>,
    pub(crate) endpoint: Endpoint,
    /// How long key exchange plus authentication took.
    pub handshake: Duration,
    // Keeps the tunnel's carrier connection alive as long as this one.
    _jump: Option<Arc<Connection>>,
    /// Remote commands started on this connection (each is a shell start on the host).
    pub(crate) commands: std::sync::atomic::AtomicU32,
}

fn config(keepalive: bool) -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: keepalive.then(|| Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Connection {
    /// How many remote commands this connection has started (for the benchmark and the
    /// record: each one is a shell start on a possibly busy host).
    pub fn commands_run(&self) -> u32 {
        self.commands.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times the budget parked this connection and a command opened it again.
    pub fn reopened(&self) -> u32 {
        self.slot.reopened()
    }

    /// Connect, verify the host key and authenticate, all within the endpoint's connect timeout.
    pub fn open(ep: &Endpoint) -> BoxFut<'_, Result<Connection, SshError>> {
        Self::open_as(ep, true)
    }

    /// [`open`](Self::open); a jump host's connection (`parkable` false) carries a tunnel
    /// the budget cannot see in use, so it is never parked.
    fn open_as(ep: &Endpoint, parkable: bool) -> BoxFut<'_, Result<Connection, SshError>> {
        use tracing::Instrument;
        let span = tracing::debug_span!("ssh", host = %ep.name, addr = %ep.addr());
        Box::pin(
            async move {
                let started = Instant::now();
                let jump = match &ep.jump {
                    Some(j) => Some(Arc::new(Connection::open_as(j, false).await.map_err(|e| {
                        SshError::Jump {
                            jump: j.name.clone(),
                            source: Box::new(e),
                        }
                    })?)),
                    None => None,
                };
                let slot = Slot::new(parkable && jump.is_none(), ep.max_connections);
                // Given back if the handshake fails or this future is dropped.
                let place = budget::reserve(ep.max_connections);
                let h = handshake(ep, jump.as_deref()).await?;
                // The lease from installing ends here: the new connection is idle, and the
                // most recently used.
                drop(slot.install(place, h, false));
                Ok(Connection {
                    slot,
                    endpoint: ep.clone(),
                    handshake: started.elapsed(),
                    _jump: jump,
                    commands: Default::default(),
                })
            }
            .instrument(span),
        )
    }

    /// [`open`](Self::open), retrying refused, reset and timed-out attempts (backoff 200 ms
    /// doubling to 2 s) until the endpoint's `connect_timeout` has passed since the first
    /// one: a host whose sshd restarts or whose link flaps gets that long to come back. A
    /// refusal that will not change (host key, authentication) is returned at once.
    pub async fn open_patiently(ep: &Endpoint) -> Result<Connection, SshError> {
        patiently(ep, || Connection::open(ep)).await
    }

    /// A lease on the session for one command or stream, reopening it first if the budget
    /// parked it (with the revert's patience when [`Connection::be_patient`] was called).
    pub(crate) async fn session(&self) -> Result<Lease, SshError> {
        if let Some(l) = self.slot.lease() {
            return Ok(l);
        }
        let _one = self.slot.opening.lock().await;
        if let Some(l) = self.slot.lease() {
            return Ok(l);
        }
        if self.slot.is_lost() {
            return Err(SshError::Disconnected("the connection was lost".into()));
        }
        if self.slot.is_closed_for_good() || !self.slot.parkable() {
            return Err(SshError::Disconnected("the connection was closed".into()));
        }
        let ep = &self.endpoint;
        // Given back if the handshake fails or this future is dropped.
        let place = budget::reserve(ep.max_connections);
        let patient = self.slot.patient.load(std::sync::atomic::Ordering::Relaxed);
        let h = if patient {
            patiently(ep, || Box::pin(handshake(ep, None))).await?
        } else {
            handshake(ep, None).await?
        };
        tracing::debug!(host = %ep.name, "reopened a parked connection");
        self.slot
            .install(place, h, true)
            .ok_or_else(|| SshError::Disconnected("the connection was closed".into()))
    }

    /// Reopen this connection, should the budget have parked it, with the revert's patience
    /// ([`Connection::open_patiently`]).
    pub fn be_patient(&self) {
        self.slot.patient.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The endpoint this connection reaches.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The limit for each of bellwether's own remote commands on this host (fleet
    /// `command_timeout`).
    pub fn command_timeout(&self) -> Duration {
        self.endpoint.command_timeout
    }

    /// True once the transport has gone away (or `close` was called). A connection the
    /// budget parked is not closed: its next command opens it again.
    pub fn is_closed(&self) -> bool {
        if self.slot.is_closed_for_good() || self.slot.is_lost() {
            return true;
        }
        self.slot.current().is_some_and(|h| h.is_closed())
    }

    /// Parked by the connection budget (idle, to be reopened by its next command).
    pub fn is_parked(&self) -> bool {
        self.slot.is_parked()
    }

    /// Say goodbye politely (best effort).
    pub async fn close(&self) {
        if let Some(h) = self.slot.take_for_close() {
            let _ = h
                .disconnect(russh::Disconnect::ByApplication, "bellwether done", "en")
                .await;
        }
    }
}

/// Retry `attempt` while its error may pass (refused, reset, timed out), 200 ms apart and
/// doubling to 2 s, until `ep.connect_timeout` has passed since the first try.
async fn patiently<'a, T, F>(ep: &Endpoint, mut attempt: F) -> Result<T, SshError>
where
    F: FnMut() -> BoxFut<'a, Result<T, SshError>>,
{
    let deadline = tokio::time::Instant::now() + ep.connect_timeout;
    let mut pause = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(c) => return Ok(c),
            Err(e) if e.may_pass() && tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(host = %ep.name, error = %e, "reconnect: retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connect (directly or through `jump`), verify the host key and authenticate, within the
/// endpoint's connect timeout.
async fn handshake(ep: &Endpoint, jump: Option<&Connection>) -> Result<Handle, SshError> {
    let keys = load_identities(ep);
    let verdict = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        host: ep.name.clone(),
        lookup_host: ep.address.clone(),
        port: ep.port,
        files: ep.known_hosts.clone(),
        accept_new: ep.accept_new,
        verdict: verdict.clone(),
    };
    let fut = async {
        let handle = match jump {
            None => {
                let sock = tokio::net::TcpStream::connect((ep.address.as_str(), ep.port))
                    .await
                    .map_err(|source| SshError::Connect {
                        addr: ep.addr(),
                        source,
                    })?;
                // Small request/response packets: without TCP_NODELAY each exec can
                // wait on Nagle + delayed ACK (~40 ms a round trip).
                let _ = sock.set_nodelay(true);
                client::connect_stream(config(true), sock, verifier).await
            }
            Some(j) => {
                // A jump connection is never parked: its session is there until it drops.
                let carrier = j.slot.current().ok_or_else(|| SshError::Jump {
                    jump: j.endpoint.name.clone(),
                    source: Box::new(SshError::Disconnected("the jump connection was closed".into())),
                })?;
                let ch = carrier
                    .channel_open_direct_tcpip(ep.address.clone(), ep.port as u32, "127.0.0.1", 0)
                    .await
                    .map_err(|e| SshError::Jump {
                        jump: j.endpoint.name.clone(),
                        source: Box::new(SshError::Protocol(format!(
                            "cannot open a tunnel to {}: {e}",
                            ep.addr()
                        ))),
                    })?;
                client::connect_stream(config(true), ch.into_stream(), verifier).await
            }
        };
        let mut handle = match handle {
            Ok(h) => h,
            Err(e) => {
                let refused = verdict.lock().ok().and_then(|mut v| v.take());
                return Err(refused.unwrap_or_else(|| SshError::from(e)));
            }
        };
        authenticate(&mut handle, ep, keys).await?;
        Ok(handle)
    };
    tokio::time::timeout(ep.connect_timeout, fut)
        .await
        .map_err(|_| SshError::ConnectTimeout {
            addr: ep.addr(),
            after: ep.connect_timeout,
        })?
}

/// Keys decrypted once per process: fifty hosts must not mean fifty passphrase prompts.
static KEYS: std::sync::Mutex<Vec<(std::path::PathBuf, Arc<russh::keys::PrivateKey>)>> =
    std::sync::Mutex::new(Vec::new());

/// The identity files of `ep`, loaded (from the cache, or now; at most one prompt at a time,
/// and outside the connect timeout so typing a passphrase cannot time a host out).
pub(crate) fn load_identities(
    ep: &Endpoint,
) -> Vec<(std::path::PathBuf, Result<Arc<russh::keys::PrivateKey>, String>)> {
    let mut out = Vec::new();
    for path in ep.identities.iter().filter(|p| p.exists()) {
        // Holding the lock while loading serialises prompts; a poisoned lock still holds data.
        let mut cache = KEYS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = cache.iter().find(|(p, _)| p == path) {
            out.push((path.clone(), Ok(k.clone())));
            continue;
        }
        let r = match load_key(path) {
            Ok(k) => {
                let k = Arc::new(k);
                cache.push((path.clone(), k.clone()));
                Ok(k)
            }
            Err(russh::keys::Error::KeyIsEncrypted) => Err(format!(
                "{} (encrypted; set BELLWETHER_KEY_PASSPHRASE or load it into ssh-agent)",
                path.display()
            )),
            Err(e) => Err(format!("{} (unreadable: {e})", path.display())),
        };
        out.push((path.clone(), r));
    }
    out
}

/// Load a private key: plain first, then with a passphrase (env var or terminal prompt).
fn load_key(path: &std::path::Path) -> Result<russh::keys::PrivateKey, russh::keys::Error> {
    match russh::keys::load_secret_key(path, None) {
        Err(russh::keys::Error::KeyIsEncrypted) => match super::passphrase::for_key(path) {
            Some(p) => russh::keys::load_secret_key(path, Some(&p)),
            None => Err(russh::keys::Error::KeyIsEncrypted),
        },
        other => other,
    }
}

async fn authenticate(
    handle: &mut client::Handle<Verifier>,
    ep: &Endpoint,
    keys: Vec<(std::path::PathBuf, Result<Arc<russh::keys::PrivateKey>, String>)>,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    let rsa_hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
    for (path, key) in keys {
        // An unusable key is noted and skipped: the next identity or ssh-agent may still work.
        let key = match key {
            Ok(k) => k,
            Err(why) => {
                tried.push(why);
                continue;
            }
        };
        tried.push(path.display().to_string());
        let res = handle
            .authenticate_publickey(ep.user.clone(), PrivateKeyWithHashAlg::new(key, rsa_hash))
            .await?;
        if res.success() {
            return Ok(());
        }
    }
    if ep.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await {
            let ids = agent.request_identities().await.unwrap_or_default();
            for id in ids {
                let russh::keys::agent::AgentIdentity::PublicKey { key, comment } = id else {
                    continue;
                };
                tried.push(format!("agent:{}", if comment.is_empty() { "key" } else { &comment }));
                let res = handle
                    .authenticate_publickey_with(ep.user.clone(), key, rsa_hash, &mut agent)
                    .await;
                if matches!(res, Ok(r) if r.success()) {
                    return Ok(());
                }
            }
        }
    }
    if tried.is_empty() {
        tried.push("no usable identity file and no ssh-agent key".into());
    }
    Err(SshError::Auth {
        user: ep.user.clone(),
        tried: tried.join(", "),
    })
}
