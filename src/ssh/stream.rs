//! Long-running remote commands (log tails) read as they run. A rollout watches every host of
//! a batch at once, so the path from a host's output to the observer is kept short: each
//! stream's task hands the chunks the channel delivers, as they are (no copy, no split), to
//! one channel shared by all the streams, tagged with the stream's index; the reader splits
//! them into lines itself ([`super::lines::LineBuf`]). One task per stream, none per line.

use super::connect::Connection;
use super::error::SshError;
use super::lines::LineBuf;
use super::quote;
use russh::ChannelMsg;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a stream delivers: a chunk of the command's stdout, or its end (the command exited or
/// the connection went away), out of band so no bytes a host sends can pass for it.
#[derive(Debug)]
pub enum Chunk {
    Data(bytes::Bytes),
    Ended,
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
    /// until it ends ([`Chunk::Ended`]) or the handle is dropped or cancelled. The remote
    /// command is tied to the channel's stdin: when the channel goes away, the watcher kills
    /// the whole process group, so no `tail -F` is left behind on the host.
    pub async fn stream_into(&self, command: &str, tag: usize, tx: ChunkSender) -> Result<StreamHandle, SshError> {
        let cmd = quote::wrap_sh(stream_script(command).text(), self.endpoint.become_root);
        self.commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lease = self.session().await?;
        let mut ch = lease.handle.channel_open_session().await?;
        ch.exec(true, cmd.as_bytes()).await?;
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
                        Some(ChannelMsg::Data { data }) => { let _ = tx.send((tag, Chunk::Data(data))); }
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
    pub async fn stream(&self, command: &str) -> Result<LineStream, SshError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = self.stream_into(command, 0, tx).await?;
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

/// The watcher around a log command: the command (bound to `$cmd` and `eval`ed, so its own
/// quotes, parentheses or a trailing `# comment` cannot break the wrapper) runs in its own
/// process group; when stdin ends (the channel or the connection went away) the whole group
/// is terminated.
pub(crate) fn stream_script(command: &str) -> quote::Script {
    quote::Script::new().set("cmd", command).body(
        r#"set -m; ( eval "$cmd" ) </dev/null & p=$!; cat >/dev/null; kill -TERM -"$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; exit 0"#,
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
                Some((_, Chunk::Data(d))) => self.buf.push(&d, |l| ready.push_back(l.to_string())),
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
