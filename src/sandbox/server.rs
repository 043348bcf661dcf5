//! A simulated agent host: an in-process russh SSH server whose exec requests run `sh -c` in
//! the host's own home directory, so playbooks with relative paths behave as on real hosts.
//! Each command also gets descriptor 7, the way its `agentctl` reaches the host's agent
//! ([`super::agentctl`]). It also injects faults OpenSSH cannot easily produce: dropping the
//! connection mid-upload.

use super::agent::Agent;
use super::agentctl::{self, AGENT_FD};
use super::spawn::{spawn, Child};
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

/// Shared state of one simulated host.
pub struct HostState {
    pub name: String,
    pub home: PathBuf,
    /// The only client key accepted.
    pub client_key: PublicKey,
    /// Host down: refuse new connections and drop existing ones.
    pub down: watch::Sender<bool>,
    /// Drop the connection once the next command has received 64 KiB of stdin.
    pub drop_next_upload: AtomicBool,
    /// The host's simulated agent.
    pub agent: Arc<Agent>,
}

/// One connection's handler.
#[derive(Clone)]
struct Conn {
    host: Arc<HostState>,
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, key: server::VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let offered: &PublicKey = key.public_key;
        if offered.key_data() == self.host.client_key.key_data() {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let offered: &PublicKey = offer.public_key;
        if offered.key_data() == self.host.client_key.key_data() {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        let host = self.host.clone();
        let handle = session.handle();
        tokio::spawn(async move { serve_channel(channel, host, handle).await });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }
}

/// Start `cmd` for `host`: `sh -c` in its home, with its agent socket as descriptor 7, whose
/// other end is served for as long as any process of the command (a background
/// `agentctl restart` too) holds it.
fn start(cmd: &str, host: &Arc<HostState>) -> std::io::Result<Child> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = UnixStream::from_std(ours)?;
    let env = [
        ("HOME", host.home.as_os_str()),
        ("BELLWETHER_SANDBOX_HOST", OsStr::new(&host.name)),
    ];
    let child = spawn(cmd, &host.home, &env, Some((OwnedFd::from(theirs), AGENT_FD)))?;
    tokio::spawn(agentctl::serve(ours, host.agent.clone()));
    Ok(child)
}

/// Run one exec channel: `sh -c COMMAND` in the host's home, stdin/stdout/stderr piped over
/// the channel, exit status at the end. A closed channel closes the command's stdin.
async fn serve_channel(mut ch: Channel<Msg>, host: Arc<HostState>, handle: server::Handle) {
    let cmd = loop {
        match ch.wait().await {
            Some(ChannelMsg::Exec { command, .. }) => break String::from_utf8_lossy(&command).to_string(),
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    let child = start(&cmd, &host);
    let (mut read, write) = ch.split();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = write
                .extended_data_bytes(1, format!("sandbox: cannot run sh: {e}\n").into_bytes())
                .await;
            let _ = write.exit_status(127).await;
            let _ = write.eof().await;
            let _ = write.close().await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let write = Arc::new(write);
    let w1 = write.clone();
    let out_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        if let Some(s) = stdout.as_mut() {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || w1.data_bytes(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        }
    });
    let w2 = write.clone();
    let err_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        if let Some(s) = stderr.as_mut() {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || w2.extended_data_bytes(1, buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        }
    });
    let fault = host.clone();
    let in_task = tokio::spawn(async move {
        let mut received = 0usize;
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    received += data.len();
                    if received > 64 * 1024 && fault.drop_next_upload.swap(false, Ordering::SeqCst) {
                        let _ = handle
                            .disconnect(
                                russh::Disconnect::ByApplication,
                                "sandbox fault: connection dropped".into(),
                                "en".into(),
                            )
                            .await;
                        break;
                    }
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        // Closing stdin tells the command its input (or the channel) is gone.
        drop(stdin);
    });
    let status = child.wait().await.unwrap_or(255);
    let _ = out_task.await;
    let _ = err_task.await;
    let _ = write.exit_status(status as u32).await;
    let _ = write.eof().await;
    let _ = write.close().await;
    in_task.abort();
}

/// Accept connections for one host until the process ends; while `down`, refuse them and drop
/// the ones already open.
pub async fn serve(listener: TcpListener, key: PrivateKey, host: Arc<HostState>) {
    let config = Arc::new(server::Config {
        keys: vec![key],
        auth_rejection_time: std::time::Duration::from_millis(100),
        auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
        inactivity_timeout: None,
        ..Default::default()
    });
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        if *host.down.borrow() {
            drop(sock);
            continue;
        }
        let _ = sock.set_nodelay(true);
        let config = config.clone();
        let h = host.clone();
        let mut down = host.down.subscribe();
        tokio::spawn(async move {
            let Ok(session) = server::run_stream(config, sock, Conn { host: h }).await else {
                return;
            };
            let handle = session.handle();
            let went_down = tokio::select! {
                _ = session => false,
                r = down.wait_for(|d| *d) => r.is_ok(),
            };
            if went_down {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "sandbox host is down".into(),
                        "en".into(),
                    )
                    .await;
            }
        });
    }
}
