//! Running commands over an open connection: to completion, or as a cancellable line stream.

use super::connect::Connection;
use super::error::SshError;
use super::lines::LineBuf;
pub use super::lines::{MAX_LINE_BYTES, TRUNCATED};
use super::quote;
use russh::ChannelMsg;
use std::time::Duration;
use tokio::sync::mpsc;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Most bytes of each output stream (stdout, stderr) a command keeps in memory: the rest is
/// read and dropped, so a host that sends endless output cannot exhaust the controller.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// A finished command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes of stdout dropped beyond [`MAX_OUTPUT_BYTES`].
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped beyond [`MAX_OUTPUT_BYTES`].
    pub stderr_dropped: u64,
}

impl Output {
    /// Stderr as text, trimmed, for messages (marked when it was cut).
    pub fn stderr_text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stderr).trim().to_string();
        if self.stderr_dropped > 0 {
            s.push_str(TRUNCATED);
        }
        s
    }
    /// Stdout as text (marked when it was cut).
    pub fn stdout_text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).to_string();
        if self.stdout_dropped > 0 {
            s.push_str(TRUNCATED);
        }
        s
    }
}

/// The line a confirmed script prints when only its last step is left
/// ([`Connection::run_confirmed`]).
pub(crate) const READY: &str = "BELLWETHER-READY";

/// Does `out` hold `line` as a whole line?
fn has_line(out: &[u8], line: &str) -> bool {
    out.split(|b| *b == b'\n').any(|l| l == line.as_bytes())
}

/// How much of a command's standard output to take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Keep this many bytes of each stream, drop the rest, let the command finish.
    Keep(usize),
    /// Stop at once (closing the channel) when stdout passes this many bytes: the caller needs
    /// all of it or nothing (a file's bytes).
    Fail(usize),
}

/// Append what still fits under `limit`; returns how many bytes were dropped.
fn keep(buf: &mut Vec<u8>, data: &[u8], limit: usize) -> u64 {
    let room = limit.saturating_sub(buf.len());
    let take = data.len().min(room);
    buf.extend_from_slice(&data[..take]);
    (data.len() - take) as u64
}

impl Connection {
    /// Run `script` through `sh -c` (and `sudo -n` when the host says `become`), feed it
    /// `stdin`, and collect its output (at most [`MAX_OUTPUT_BYTES`] of each stream). Lines
    /// (at most [`MAX_LINE_BYTES`] each) are also sent to `lines` as they arrive, so a caller
    /// can show progress. A channel that closes without an exit status is an error.
    pub async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        lines: Option<mpsc::UnboundedSender<(Stream, String)>>,
    ) -> Result<Output, SshError> {
        self.run_limited(script, stdin, timeout, lines, Limit::Keep(MAX_OUTPUT_BYTES))
            .await
    }

    /// [`run`](Self::run) for a script that must not take its last step unless this session
    /// is still alive to tell it to: `stdin` is sent without closing it; when the script
    /// prints the line [`READY`] on stdout, `go\n` and the end of input follow. A script
    /// whose session died meanwhile reads the end of input instead and stops (see
    /// `file_scripts::write`): a command orphaned by a cut connection cannot act later.
    pub(crate) async fn run_confirmed(
        &self,
        script: &str,
        stdin: &[u8],
        timeout: Duration,
        lines: Option<mpsc::UnboundedSender<(Stream, String)>>,
    ) -> Result<Output, SshError> {
        self.run_inner(script, Some(stdin), true, timeout, lines, Limit::Keep(MAX_OUTPUT_BYTES))
            .await
    }

    /// [`run`](Self::run) with a chosen output limit; `Limit::Fail` ends in
    /// [`SshError::OutputLimit`] as soon as stdout passes it.
    pub(crate) async fn run_limited(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        lines: Option<mpsc::UnboundedSender<(Stream, String)>>,
        limit: Limit,
    ) -> Result<Output, SshError> {
        self.run_inner(script, stdin, false, timeout, lines, limit).await
    }

    async fn run_inner(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        confirm: bool,
        timeout: Duration,
        lines: Option<mpsc::UnboundedSender<(Stream, String)>>,
        limit: Limit,
    ) -> Result<Output, SshError> {
        let cmd = quote::wrap_sh(script, self.endpoint.become_root);
        self.commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (max, fail) = match limit {
            Limit::Keep(n) => (n, false),
            Limit::Fail(n) => (n, true),
        };
        // Reopening a parked connection is bounded by its connect_timeout, not by this
        // command's limit (a short health timeout must not be spent on a handshake).
        let lease = self.session().await?;
        let fut = async {
            let mut ch = lease.handle.channel_open_session().await?;
            ch.exec(true, cmd.as_bytes()).await?;
            if let Some(data) = stdin {
                ch.data(data).await?;
            }
            let mut held = confirm;
            if !held {
                ch.eof().await?;
            }
            let mut out = Output::default();
            let mut status = None;
            let mut signal = None;
            let (mut ob, mut eb) = (LineBuf::default(), LineBuf::default());
            // Lines are split (and copied) only for a caller that asked for them.
            let send = |s: Stream, l: &str| {
                if let Some(tx) = &lines {
                    let _ = tx.send((s, l.to_string()));
                }
            };
            // Drain until the channel closes: the exit status may arrive after Eof.
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        out.stdout_dropped += keep(&mut out.stdout, &data, max);
                        if fail && out.stdout_dropped > 0 {
                            // Closing the channel stops the remote command (SIGPIPE).
                            let _ = ch.close().await;
                            return Err(SshError::OutputLimit { limit: max });
                        }
                        if lines.is_some() {
                            ob.push(&data, |l| send(Stream::Stdout, l));
                        }
                        if held && has_line(&out.stdout, READY) {
                            held = false;
                            ch.data(&b"go\n"[..]).await?;
                            ch.eof().await?;
                        }
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        out.stderr_dropped += keep(&mut out.stderr, &data, MAX_OUTPUT_BYTES);
                        if lines.is_some() {
                            eb.push(&data, |l| send(Stream::Stderr, l));
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(format!("{signal_name:?}")),
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            ob.flush(|l| send(Stream::Stdout, l));
            eb.flush(|l| send(Stream::Stderr, l));
            match status {
                Some(s) => {
                    out.status = s;
                    Ok(out)
                }
                None if lease.handle.is_closed() => Err(SshError::Disconnected("closed during a command".into())),
                None => Err(SshError::NoExitStatus { signal }),
            }
        };
        let out = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| SshError::Timeout {
                what: format!("command on {}", self.endpoint.name),
                after: timeout,
            })??;
        if self.endpoint.become_root && out.status == 1 && sudo_wants_password(&out.stderr) {
            return Err(SshError::SudoPassword);
        }
        Ok(out)
    }

    /// Run and require exit status 0; `what` names the step in the error.
    pub async fn run_ok(&self, what: &str, script: &str, timeout: Duration) -> Result<Output, SshError> {
        let out = self.run(script, None, timeout, None).await?;
        if out.status != 0 {
            return Err(SshError::Remote {
                what: what.to_string(),
                status: out.status,
                stderr: out.stderr_text(),
            });
        }
        Ok(out)
    }
}

fn sudo_wants_password(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains("a password is required") || s.contains("a terminal is required")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_takes_what_fits_and_counts_the_rest() {
        let mut buf = vec![1, 2];
        assert_eq!(keep(&mut buf, &[3, 4, 5], 4), 1);
        assert_eq!(buf, vec![1, 2, 3, 4]);
        assert_eq!(keep(&mut buf, &[6], 4), 1);
        let o = Output {
            stdout: b"x".to_vec(),
            stdout_dropped: 3,
            ..Default::default()
        };
        assert_eq!(o.stdout_text(), format!("x{TRUNCATED}"));
        assert_eq!(o.stderr_text(), "");
    }
}
