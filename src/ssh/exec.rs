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

/// A finished command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// Stderr as text, trimmed, for messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).to_string()
    }
}

/// Splits byte chunks into complete lines.
#[derive(Default)]
struct LineBuf(Vec<u8>);

impl LineBuf {
    fn push(&mut self, data: &[u8], mut out: impl FnMut(String)) {
        self.0.extend_from_slice(data);
        while let Some(pos) = self.0.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            out(text.trim_end_matches('\r').to_string());
        }
    }
    fn flush(&mut self, mut out: impl FnMut(String)) {
        if !self.0.is_empty() {
            out(String::from_utf8_lossy(&self.0).to_string());
            self.0.clear();
        }
    }
}

impl Connection {
    /// Run `script` through `sh -c` (and `sudo -n` when the host says `become`), feed it
    /// `stdin`, and collect its output. Lines are also sent to `lines` as they arrive, so a
    /// caller can show progress. A channel that closes without an exit status is an error.
    pub async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        lines: Option<mpsc::UnboundedSender<(Stream, String)>>,
    ) -> Result<Output, SshError> {
        let cmd = quote::wrap_sh(script, self.endpoint.become_root);
        self.commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fut = async {
            let mut ch = self.handle.channel_open_session().await?;
            ch.exec(true, cmd.as_bytes()).await?;
            if let Some(data) = stdin {
                ch.data(data).await?;
            }
            ch.eof().await?;
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
                        out.stdout.extend_from_slice(&data);
                        ob.push(&data, |l| send(Stream::Stdout, l));
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        out.stderr.extend_from_slice(&data);
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

    #[test]
    fn the_log_stream_wrapper_runs_the_command_as_written() {
        let d = tempfile::tempdir().unwrap();
        let cmd = "echo 'a)'; echo \"b $((1 + 1))\" # a comment )";
        let out = crate::ssh::hostile::run(&stream_script(cmd), d.path(), b"");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a)\nb 2\n");
    }
}
