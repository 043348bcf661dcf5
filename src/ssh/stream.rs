//! Long-running remote commands (log tails) read as they run. A rollout watches every host of
//! a batch at once, so the path from a host's output to the observer is kept short: each
//! stream's task hands the chunks the channel delivers, as they are (no copy, no split), to
//! one channel shared by all the streams, tagged with the stream's index; the reader splits
//! them into lines itself ([`super::lines::LineBuf`]). One task per stream, none per line.
//!
//! A stream is only handed back once it has started on the host: the wrapper says so on
//! stderr ([`READY`]) right before it runs the command, and for a watched file only after it
//! took the file's size, which is where the `tail` starts ([`tail_file_command`]). A rollout
//! starts its tails and then changes the host: a line the agent logs at once after its
//! restart must be in the window however slowly the host starts the `tail`.

use super::connect::Connection;
use super::error::SshError;
use super::lines::LineBuf;
use super::quote;
use russh::ChannelMsg;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a stream delivers: a chunk of the command's stdout with the moment it was received
/// (a rollout leaves out of a window what the old agent logged before the host's change),
/// or its end (the command exited or the connection went away), out of band so no bytes a
/// host sends can pass for it.
#[derive(Debug)]
pub enum Chunk {
    Data(bytes::Bytes, std::time::Instant),
    Ended,
}

/// What the wrapper prints on stderr when the command is about to run (a line of its own,
/// after anything a login shell printed).
pub(crate) const READY: &[u8] = b"\x1eBW-STREAM\n";

/// Bytes of stderr read while waiting for [`READY`] (login noise): past this, the stream
/// fails to start rather than buffer an endless banner.
const READY_SEARCH_BYTES: usize = 64 << 10;

/// The command that follows a watched log file: from the byte the file had when the watch
/// started (its size, taken by the wrapper before it says [`READY`]), then through rotation
/// and truncation (`-F`). Not `tail -n0`: that starts at whatever end the file has when
/// `tail` gets to open it, which on a busy host can be after the agent's first lines.
pub fn tail_file_command(path: &str) -> String {
    format!("exec tail -c \"+$from_byte\" -F -- {}", quote::quote(path))
}

/// Where streams send their chunks, each tagged with the index it was started with.
pub type ChunkSender = mpsc::UnboundedSender<(usize, Chunk)>;

/// A running remote command; dropping it (or [`StreamHandle::cancel`]) stops the command.
pub struct StreamHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Connection {
    /// Start a long-running command (a log tail) and send its stdout to `tx` as `(tag, chunk)`
    /// until it ends ([`Chunk::Ended`]) or the handle is dropped or cancelled. `file`: the
    /// watched file whose size `$from_byte` is (see [`tail_file_command`]). Returns once the
    /// host said the command is starting (bounded by the connection's `command_timeout`).
    /// The remote command is tied to the channel's stdin: when the channel goes away, the
    /// watcher kills the whole process group, so no `tail -F` is left behind on the host.
    pub async fn stream_into(
        &self,
        command: &str,
        file: Option<&str>,
        tag: usize,
        tx: ChunkSender,
    ) -> Result<StreamHandle, SshError> {
        let cmd = quote::wrap_sh(stream_script(command, file).text(), self.endpoint.become_root);
        self.commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lease = self.session().await?;
        let mut ch = lease.handle.channel_open_session().await?;
        ch.exec(true, cmd.as_bytes()).await?;
        let after = self.command_timeout();
        match tokio::time::timeout(after, started(&mut ch, tag, &tx)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let _ = ch.close().await;
                return Err(SshError::Timeout {
                    what: "starting the log command".into(),
                    after,
                });
            }
        }
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // The session is not parked while the stream runs.
            let _lease = lease;
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
                        Some(ChannelMsg::Data { data }) => { let _ = tx.send((tag, Chunk::Data(data, std::time::Instant::now()))); }
                        Some(ChannelMsg::Close) | None => { let _ = tx.send((tag, Chunk::Ended)); return; }
                        _ => {}
                    }
                }
            }
        });
        Ok(StreamHandle {
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// [`Connection::stream_into`] for one command read line by line (at most
    /// [`super::lines::MAX_LINE_BYTES`] each).
    pub async fn stream(&self, command: &str, file: Option<&str>) -> Result<LineStream, SshError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = self.stream_into(command, file, 0, tx).await?;
        Ok(LineStream {
            rx,
            handle,
            buf: LineBuf::default(),
            ready: VecDeque::new(),
        })
    }
}

impl StreamHandle {
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

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Wait until the wrapper says the command is starting ([`READY`] on stderr); stdout that
/// comes first (a login shell's noise) is passed on as the stream's. The channel ending
/// first is an error.
async fn started(ch: &mut russh::Channel<russh::client::Msg>, tag: usize, tx: &ChunkSender) -> Result<(), SshError> {
    let mut err: Vec<u8> = Vec::new();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Data { data }) => {
                let _ = tx.send((tag, Chunk::Data(data, std::time::Instant::now())));
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                err.extend_from_slice(&data);
                if err.windows(READY.len()).any(|w| w == READY) {
                    return Ok(());
                }
                if err.len() > READY_SEARCH_BYTES {
                    return Err(SshError::StreamNotStarted(format!(
                        "its shell printed more than {} KiB on stderr first",
                        READY_SEARCH_BYTES >> 10
                    )));
                }
            }
            Some(ChannelMsg::Failure) => {
                return Err(SshError::StreamNotStarted("the host refused to run it".into()));
            }
            Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) | None => {
                // Shown escaped, like every host's stderr; bounded here.
                let said: String = String::from_utf8_lossy(&err).trim().chars().take(500).collect();
                let said = if said.is_empty() { said } else { format!(": {said}") };
                return Err(SshError::StreamNotStarted(format!("its shell ended first{said}")));
            }
            _ => {}
        }
    }
}

/// The watcher around a log command: for a watched `file`, its size is taken first
/// (`$from_byte`: where [`tail_file_command`] starts); then it says [`READY`] and runs the
/// command (bound to `$cmd` and `eval`ed, so its own quotes, parentheses or a trailing
/// `# comment` cannot break the wrapper) in its own process group; when stdin ends (the
/// channel or the connection went away) the whole group is terminated.
pub(crate) fn stream_script(command: &str, file: Option<&str>) -> quote::Script {
    quote::Script::new().set("cmd", command).set("file", file.unwrap_or("")).body(
        r#"set -m; from_byte=1; if [ -n "$file" ]; then from_byte=$(( $( { wc -c < "$file"; } 2>/dev/null || echo 0 ) + 1 )); fi; printf '\036BW-STREAM\n' >&2; ( eval "$cmd" ) </dev/null & p=$!; cat >/dev/null; kill -TERM -"$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; exit 0"#,
    )
}

/// Lines from one remote long-running command.
pub struct LineStream {
    rx: mpsc::UnboundedReceiver<(usize, Chunk)>,
    handle: StreamHandle,
    buf: LineBuf,
    ready: VecDeque<String>,
}

impl LineStream {
    /// The next line, or None once the remote command has ended.
    pub async fn next(&mut self) -> Option<String> {
        while self.ready.is_empty() {
            let ready = &mut self.ready;
            match self.rx.recv().await {
                Some((_, Chunk::Data(d, _))) => self.buf.push(&d, |l| ready.push_back(l.to_string())),
                Some((_, Chunk::Ended)) | None => {
                    self.buf.flush(|l| ready.push_back(l.to_string()));
                    return self.ready.pop_front();
                }
            }
        }
        self.ready.pop_front()
    }

    /// Stop the remote command and wait (bounded) until its channel is closed.
    pub async fn cancel(self) {
        self.handle.cancel().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_stream_wrapper_runs_the_command_as_written() {
        let d = tempfile::tempdir().unwrap();
        let cmd = "echo 'a)'; echo \"b $((1 + 1))\" # a comment )";
        // stdin stays open (as the SSH channel's does) until the command has had its time;
        // its end is what stops a tail, so closing it at once would race the command.
        let script = stream_script(cmd, None);
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 2 | sh -c \"$0\"", script.text()])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a)\nb 2\n");
        // (dash may first say that `set -m` has no terminal.)
        assert!(out.stderr.ends_with(READY), "the wrapper says it started, on stderr");
    }

    /// The file's size is taken before the wrapper says it started, through the one quoting
    /// path, whatever the file's name: what is appended after [`READY`] is what the tail
    /// sends, what the file had before is not.
    #[test]
    fn a_watched_file_is_tailed_from_its_size_before_ready_whatever_its_name() {
        use std::io::{BufRead, Read, Write};
        let d = tempfile::tempdir().unwrap();
        let name = "a'b\"c$d`e;f|g&h\ni.log";
        std::fs::write(d.path().join(name), "before one\nbefore two\n").unwrap();
        let script = stream_script(&tail_file_command(name), Some(name));
        let mut child = std::process::Command::new("sh")
            .args(["-c", script.text()])
            .current_dir(d.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(READY) {
            assert_eq!(err.read(&mut byte).unwrap(), 1, "stderr ended before READY: {seen:?}");
            seen.push(byte[0]);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(name))
            .unwrap();
        f.write_all(b"after\n").unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "after\n");
        // The end of stdin stops the tail and the wrapper.
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
}
