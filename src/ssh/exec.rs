//! Running commands over an open connection: to completion, or as a cancellable line stream.

use super::connect::Connection;
use super::error::SshError;
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

/// Longest line passed on from a host (log lines, `exec` output), in bytes: the rest of the
/// line is dropped and [`TRUNCATED`] marks the cut.
pub const MAX_LINE_BYTES: usize = 8 << 10;

/// Marks a line or an output that was cut at its limit.
pub const TRUNCATED: &str = "…[truncated]";

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

/// Splits byte chunks into complete lines of at most [`MAX_LINE_BYTES`]: a longer line is
/// passed on as soon as it reaches the limit (marked [`TRUNCATED`]) and the rest of it, up to
/// its newline, is dropped. So memory stays bounded even for a host that never sends `\n`.
#[derive(Default)]
struct LineBuf {
    buf: Vec<u8>,
    /// The current line was cut and passed on; drop bytes until its newline.
    skipping: bool,
}

impl LineBuf {
    fn push(&mut self, mut data: &[u8], mut out: impl FnMut(String)) {
        while !data.is_empty() {
            let (part, ended) = match data.iter().position(|b| *b == b'\n') {
                Some(pos) => (&data[..pos], Some(pos + 1)),
                None => (data, None),
            };
            if !self.skipping {
                let room = MAX_LINE_BYTES - self.buf.len();
                if part.len() > room {
                    self.buf.extend_from_slice(&part[..room]);
                    let mut line = Self::text(&self.buf);
                    line.push_str(TRUNCATED);
                    out(line);
                    self.buf.clear();
                    self.skipping = true;
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            match ended {
                Some(next) => {
                    if !std::mem::take(&mut self.skipping) {
                        out(Self::text(&self.buf));
                    }
                    self.buf.clear();
                    data = &data[next..];
                }
                None => data = &[],
            }
        }
    }

    fn flush(&mut self, mut out: impl FnMut(String)) {
        if !self.buf.is_empty() && !self.skipping {
            out(Self::text(&self.buf));
        }
        self.buf.clear();
        self.skipping = false;
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).trim_end_matches('\r').to_string()
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
    ) -> Result<Output, SshError> {
        self.run_inner(script, Some(stdin), true, timeout, None, Limit::Keep(MAX_OUTPUT_BYTES))
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
        let fut = async {
            let mut ch = self.handle.channel_open_session().await?;
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
            let send = |s: Stream, l: String| {
                if let Some(tx) = &lines {
                    let _ = tx.send((s, l));
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
                        ob.push(&data, |l| send(Stream::Stdout, l));
                        if held && has_line(&out.stdout, READY) {
                            held = false;
                            ch.data(&b"go\n"[..]).await?;
                            ch.eof().await?;
                        }
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        out.stderr_dropped += keep(&mut out.stderr, &data, MAX_OUTPUT_BYTES);
                        eb.push(&data, |l| send(Stream::Stderr, l));
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
                None if self.is_closed() => Err(SshError::Disconnected("closed during a command".into())),
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

    /// Start a long-running command (a log tail) and receive its stdout line by line until the
    /// returned [`LineStream`] is dropped or cancelled. The remote command is tied to the
    /// channel's stdin: when the channel goes away, the watcher kills the whole process group,
    /// so no `tail -F` is left behind on the host.
    pub async fn stream(&self, command: &str) -> Result<LineStream, SshError> {
        let cmd = quote::wrap_sh(stream_script(command).text(), self.endpoint.become_root);
        self.commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut ch = self.handle.channel_open_session().await?;
        ch.exec(true, cmd.as_bytes()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut buf = LineBuf::default();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => {
                        // Closing stdin makes the remote watcher kill the command.
                        let _ = ch.eof().await;
                        let drain = async { while let Some(m) = ch.wait().await { if matches!(m, ChannelMsg::Close) { break; } } };
                        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                        let _ = ch.close().await;
                        return;
                    }
                    msg = ch.wait() => match msg {
                        Some(ChannelMsg::Data { data }) => buf.push(&data, |l| { let _ = tx.send(l); }),
                        Some(ChannelMsg::Close) | None => { buf.flush(|l| { let _ = tx.send(l); }); return; }
                        _ => {}
                    }
                }
            }
        });
        Ok(LineStream {
            rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// The watcher around a log command: the command (bound to `$cmd` and `eval`ed, so its own
/// quotes, parentheses or a trailing `# comment` cannot break the wrapper) runs in its own
/// process group; when stdin ends (the channel or the connection went away) the whole group
/// is terminated.
fn stream_script(command: &str) -> quote::Script {
    quote::Script::new().set("cmd", command).body(
        r#"set -m; ( eval "$cmd" ) </dev/null & p=$!; cat >/dev/null; kill -TERM -"$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; exit 0"#,
    )
}

fn sudo_wants_password(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains("a password is required") || s.contains("a terminal is required")
}

/// Lines from a remote long-running command.
pub struct LineStream {
    rx: mpsc::UnboundedReceiver<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LineStream {
    /// The next line, or None once the remote command has ended.
    pub async fn next(&mut self) -> Option<String> {
        self.rx.recv().await
    }

    /// Stop the remote command and wait (bounded) until its channel is closed.
    pub async fn cancel(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(6), t).await;
        }
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut b = LineBuf::default();
        let mut v = Vec::new();
        for c in chunks {
            b.push(c, |l| v.push(l));
        }
        b.flush(|l| v.push(l));
        v
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        assert_eq!(lines(&[b"a\r\nb", b"c\n", b"tail"]), vec!["a", "bc", "tail"]);
        assert_eq!(lines(&[b"\n\n"]), vec!["", ""]);
    }

    #[test]
    fn a_long_line_is_cut_at_the_limit_and_marked_and_the_next_line_survives() {
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let v = lines(&[&long[..1000], &long[1000..], b"\nnext\n"]);
        assert_eq!(v.len(), 2, "{:?}", v.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(v[0].len(), MAX_LINE_BYTES + TRUNCATED.len());
        assert!(v[0].ends_with(TRUNCATED));
        assert_eq!(v[1], "next");
    }

    #[test]
    fn a_line_that_never_ends_keeps_memory_bounded() {
        let mut b = LineBuf::default();
        let mut n = 0;
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..64 {
            b.push(&chunk, |_| n += 1);
            assert!(b.buf.len() <= MAX_LINE_BYTES);
        }
        assert_eq!(n, 1, "one cut line, then the rest is dropped");
    }

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

    #[test]
    fn the_log_stream_wrapper_runs_the_command_as_written() {
        let d = tempfile::tempdir().unwrap();
        let cmd = "echo 'a)'; echo \"b $((1 + 1))\" # a comment )";
        // stdin stays open (as the SSH channel's does) until the command has had its time;
        // its end is what stops a tail, so closing it at once would race the command.
        let script = stream_script(cmd);
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 2 | sh -c \"$0\"", script.text()])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a)\nb 2\n");
    }
}
