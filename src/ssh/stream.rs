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
        // Reopening a parked connection is bounded by its connect_timeout; the rest of the
        // start (channel, exec, the host saying READY) by command_timeout.
        let lease = self.session().await?;
        let after = self.command_timeout();
        let timed_out = || SshError::Timeout {
            what: "starting the log command".into(),
            after,
        };
        let deadline = tokio::time::Instant::now() + after;
        let open = async {
            let ch = lease.handle.channel_open_session().await?;
            ch.exec(true, cmd.as_bytes()).await?;
            Ok::<_, SshError>(ch)
        };
        let mut ch = tokio::time::timeout_at(deadline, open)
            .await
            .map_err(|_| timed_out())??;
        let ready = tokio::time::timeout_at(deadline, started(&mut ch, tag, &tx)).await;
        let failed = match ready {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(timed_out()),
        };
        if let Some(e) = failed {
            // Closing the channel ends the wrapper's stdin: whatever it started is stopped.
            let _ = ch.close().await;
            return Err(e);
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
                        Some(ChannelMsg::Data { data }) => { let _ = tx.send(received(tag, data)); }
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

/// A chunk of stream `tag`'s stdout, received now.
fn received(tag: usize, data: bytes::Bytes) -> (usize, Chunk) {
    (tag, Chunk::Data(data, std::time::Instant::now()))
}

/// Wait until the wrapper says the command is starting ([`READY`] on stderr); stdout that
/// comes first (a login shell's noise) is passed on as the stream's. The channel ending
/// first is an error.
async fn started(ch: &mut russh::Channel<russh::client::Msg>, tag: usize, tx: &ChunkSender) -> Result<(), SshError> {
    let mut err: Vec<u8> = Vec::new();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Data { data }) => {
                let _ = tx.send(received(tag, data));
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

/// The watcher around a log command:
/// - for a watched `file` that exists, its size is taken first (`$from_byte`: where
///   [`tail_file_command`] starts; a file that cannot be sized stops the script);
/// - it says [`READY`] and runs the command (bound to `$cmd` and `eval`ed, so its own quotes,
///   parentheses or a trailing `# comment` cannot break the wrapper) as the leader of a new
///   session and process group (`setsid`, required: `set -m` is no use, without a terminal
///   dash turns job control off, and a pipeline such as `journalctl -f | grep` outlived the
///   kill);
/// - when stdin ends (the channel or the connection went away) the whole group is
///   terminated; when the command ends by itself, so does the script (and the stream),
///   and whatever the command left running in its group is terminated too.
pub(crate) fn stream_script(command: &str, file: Option<&str>) -> quote::Script {
    quote::Script::new().set("cmd", command).set("file", file.unwrap_or("")).body(
        r#"command -v setsid >/dev/null 2>&1 || { echo 'setsid (util-linux) not found: it is needed to stop the log command when the window ends' >&2; exit 1; }
from_byte=1
if [ -n "$file" ] && [ -f "$file" ]; then n=$(stat -L -c %s -- "$file") || exit 1; from_byte=$((n + 1)); fi
export from_byte
printf '\036BW-STREAM\n' >&2
exec 3<&0
setsid sh -c 'c=$1; shift; eval "$c"' sh "$cmd" </dev/null 3<&- &
p=$!
( cat >/dev/null; kill -TERM -"$p" 2>/dev/null ) <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$p" 2>/dev/null
kill -TERM -"$p" 2>/dev/null
kill -TERM "$w" 2>/dev/null
exit 0"#,
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
    use std::io::{BufRead, Read, Write};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    /// The wrapper under a real `sh` (bounded: a regression fails, it does not hang), its
    /// stdin held open as an SSH channel's is; returns once it printed [`READY`].
    fn wrapper(dir: &Path, command: &str, file: Option<&str>) -> Child {
        let script = stream_script(command, file);
        let mut child = Command::new("timeout")
            .args(["20", "sh", "-c", script.text()])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(READY) {
            assert_eq!(err.read(&mut byte).unwrap(), 1, "stderr ended before READY: {seen:?}");
            seen.push(byte[0]);
        }
        assert_eq!(seen, READY, "nothing on stderr before READY");
        child
    }

    fn first_line(child: &mut Child) -> String {
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn the_log_stream_wrapper_runs_the_command_as_written_and_ends_with_it() {
        let d = tempfile::tempdir().unwrap();
        let cmd = "echo 'a)'; echo \"b $((1 + 1))\" # a comment )";
        let mut child = wrapper(d.path(), cmd, None);
        // The command ended by itself: so does the wrapper, its stdin still open (the
        // stream ends, and the rollout says the log command ended). (`Child::wait` would
        // close stdin first: that is the other way to stop it.)
        let stdin = child.stdin.take();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "a)\nb 2\n");
        let st = child.wait().unwrap();
        drop(stdin);
        assert!(st.success(), "{st:?}");
    }

    /// The file's size is taken before the wrapper says it started, through the one quoting
    /// path, whatever the file's name: what is appended after [`READY`] is what the tail
    /// sends, what the file had before is not.
    #[test]
    fn a_watched_file_is_tailed_from_its_size_before_ready_whatever_its_name() {
        let d = tempfile::tempdir().unwrap();
        let name = "a'b\"c$d`e;f|g&h\ni.log";
        std::fs::write(d.path().join(name), "before one\nbefore two\n").unwrap();
        let mut child = wrapper(d.path(), &tail_file_command(name), Some(name));
        append(&d.path().join(name), "after\n");
        assert_eq!(first_line(&mut child), "after\n");
        // The end of stdin stops the tail and the wrapper.
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }

    /// A log file reached through a link is sized as the file it points to.
    #[test]
    fn a_linked_log_file_is_sized_through_the_link() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("real.log"), "old line one\nold line two\n").unwrap();
        std::os::unix::fs::symlink("real.log", d.path().join("agent.log")).unwrap();
        let mut child = wrapper(d.path(), &tail_file_command("agent.log"), Some("agent.log"));
        append(&d.path().join("real.log"), "new\n");
        assert_eq!(first_line(&mut child), "new\n");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }

    /// Wait (bounded) until no process's command line matches `pattern`.
    fn gone(pattern: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let ps = Command::new("pgrep").args(["-f", pattern]).output().unwrap();
            if ps.stdout.is_empty() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "left behind: {pattern}: {ps:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command that ends but left a process running in its group: the process is stopped
    /// with it (it would hold the channel open, and the host would look silent).
    #[test]
    fn what_an_ended_command_left_running_is_stopped() {
        let d = tempfile::tempdir().unwrap();
        // ~25 s: a regression holds stdout that long, and fails the time check below.
        let nap = format!("sleep 25.{}", std::process::id());
        let mut child = wrapper(d.path(), &format!("echo hi; {nap} & exit 0"), None);
        let stdin = child.stdin.take();
        let t = std::time::Instant::now();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hi\n");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stdout held open: {:?}",
            t.elapsed()
        );
        assert!(child.wait().unwrap().success());
        gone(&format!("^{nap}$"));
        drop(stdin);
    }

    /// Without `setsid` the log command could not be stopped whole: the wrapper refuses to
    /// start it, saying why, before it says [`READY`].
    #[test]
    fn without_setsid_the_stream_does_not_start() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in ["sh", "stat", "cat", "tail"] {
            let real = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap();
            let real = String::from_utf8(real.stdout).unwrap();
            std::os::unix::fs::symlink(real.trim(), bin.join(tool)).unwrap();
        }
        let script = stream_script("echo never", None);
        let out = Command::new(bin.join("sh"))
            .args(["-c", script.text()])
            .env("PATH", &bin)
            .current_dir(d.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("setsid (util-linux) not found"), "{err}");
        assert!(!out.stderr.ends_with(READY) && out.stdout.is_empty(), "{err}");
    }

    /// A pipeline (`journalctl -f | grep`) is stopped whole when stdin ends: every process of
    /// it, not only the shell that started it.
    #[test]
    fn the_end_of_stdin_stops_every_process_of_a_pipeline() {
        let d = tempfile::tempdir().unwrap();
        let tag = format!("bwpipe{}", std::process::id());
        let nap = format!("sleep 7{}", std::process::id());
        let cmd = format!("echo up; {nap} | cat -- /dev/null - # {tag}");
        let mut child = wrapper(d.path(), &format!("exec sh -c '{cmd}' {tag}"), None);
        assert_eq!(first_line(&mut child), "up\n");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        gone(&tag);
        gone(&format!("^{nap}$"));
    }
}
