//! Reading and atomically replacing files on a host through `sh` over an exec channel.
//!
//! SFTP would need the posix-rename extension for an atomic replace and silently skips fsync
//! on servers without it, so writes are an honest shell script instead: the new bytes go to a
//! temp file in the same directory, their hash is checked there (a connection dropped
//! mid-write leaves a short temp file, never a short target), the file is fsynced, given the
//! old file's mode and owner, renamed over the target, and the result is hashed again.

use super::connect::Connection;
use super::error::SshError;
use super::file_scripts::{self as scripts, WriteOptions, CHANGED, MARK, READ_BACK_DIFFERS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the bytes after the marker line start.
fn after_mark(out: &[u8]) -> Option<usize> {
    let m = format!("{MARK}\n");
    let m = m.as_bytes();
    out.windows(m.len())
        .enumerate()
        .find(|(i, w)| *w == m && (*i == 0 || out[i - 1] == b'\n'))
        .map(|(i, _)| i + m.len())
}

/// The last non-empty line: our scripts print their result last, after any start-up noise.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        .unwrap_or("")
}

/// What a write script's exit status and output say: the sha256 read back, or why not
/// (boxed: an `SshError` is large, and this is not the hot path).
fn write_result(
    path: &str,
    want: &str,
    opts: &WriteOptions,
    status: u32,
    stdout: &str,
    stderr: String,
) -> Result<String, Box<SshError>> {
    if status == CHANGED {
        let found = last_line(stdout).strip_prefix("CHANGED ").unwrap_or("?").to_string();
        let expected = opts.expect.clone().flatten().unwrap_or_else(|| "absent".into());
        return Err(Box::new(SshError::Changed {
            path: path.to_string(),
            expected,
            found,
        }));
    }
    let found = last_line(stdout).to_string();
    if status != 0 && status != READ_BACK_DIFFERS {
        return Err(Box::new(SshError::Remote {
            what: format!("write {path}"),
            status,
            stderr,
        }));
    }
    if status == READ_BACK_DIFFERS || found != want {
        return Err(Box::new(SshError::Verify {
            path: path.to_string(),
            expected: want.to_string(),
            found,
        }));
    }
    Ok(found)
}

/// How a write followed by another script went ([`Connection::write_file_then`]).
#[derive(Debug)]
pub(crate) struct WriteThen {
    /// The sha256 read back, or why the file was not written.
    pub written: Result<String, SshError>,
    /// The next script's output, or why it failed; `None` when it did not run.
    pub then: Option<Result<super::Output, SshError>>,
}

/// Split a finished `write_then` script's output: the write's part before the last
/// [`scripts::WRITE_DONE`] marker (what precedes it, a login shell's start-up noise included,
/// is the host's to say; nothing after it prints one, as apply's stdout goes nowhere), the
/// next script's after it. (Boxed error: an `SshError` is large, and this is not the hot path.)
fn write_then_result(
    path: &str,
    want: &str,
    opts: &WriteOptions,
    out: &super::Output,
) -> Result<WriteThen, Box<SshError>> {
    let stdout = out.stdout_text();
    let stderr = out.stderr_text();
    let (w_out, rest_out) = stdout.rsplit_once(scripts::WRITE_DONE).unwrap_or((stdout.as_str(), ""));
    let (w_err, rest_err) = stderr.split_once(scripts::THEN_SPLIT).unwrap_or((stderr.as_str(), ""));
    let mut rest = rest_out.splitn(2, '\n');
    let Some(status) = rest.next().and_then(|n| n.trim().parse::<u32>().ok()) else {
        // The script was cut before it could say how the write went.
        return Err(Box::new(SshError::Remote {
            what: format!("write {path}"),
            status: out.status,
            stderr,
        }));
    };
    let written = write_result(path, want, opts, status, w_out, w_err.trim().to_string()).map_err(|e| *e);
    let then = if written.is_ok() {
        Some(Ok(super::Output {
            status: out.status,
            stdout: rest.next().unwrap_or("").as_bytes().to_vec(),
            stderr: rest_err.as_bytes().to_vec(),
            stdout_dropped: out.stdout_dropped,
            stderr_dropped: out.stderr_dropped,
        }))
    } else {
        None
    };
    Ok(WriteThen { written, then })
}

/// Did a `write_then` script that did not finish say its write was done — `BW-WRITE 0` as the
/// last such line, the hash of the bytes sent as the last line before it?
fn written_before(stdout_lines: &[String], want: &str) -> bool {
    let Some(i) = stdout_lines.iter().rposition(|l| l.starts_with("BW-WRITE ")) else {
        return false;
    };
    stdout_lines[i] == "BW-WRITE 0"
        && stdout_lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim() == want)
}

/// sha256 of bytes as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file as read from a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteFile {
    pub bytes: Vec<u8>,
    /// Permission bits, e.g. 0o640.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub sha256: String,
}

/// The largest file bellwether reads from a host (config files are kilobytes; this leaves
/// room for a model manifest or a bundled CA list, not for a mistake like a log or a device).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// Room for the marker, the stat line and login-shell noise on top of a file's bytes.
const READ_SLACK: usize = 64 << 10;

impl Connection {
    /// Read a file: bytes, mode, owner and hash; `None` if it does not exist. Only a regular
    /// file of at most [`MAX_FILE_BYTES`] is read: a FIFO, a device (a link to `/dev/zero`) or
    /// a huge file is an error naming the host and the path, never an endless read.
    pub async fn read_file(&self, path: &str) -> Result<Option<RemoteFile>, SshError> {
        self.read_file_after(path, "").await.map(|(f, _)| f)
    }

    /// [`read_file`](Self::read_file) for a revert: first (same command) remove the temp files
    /// of unfinished writes beside it, so a write orphaned by a cut connection cannot rename
    /// over the file after this read ([`scripts::clear_orphans`]). Also returns what was
    /// removed (one line each).
    pub async fn read_file_for_revert(&self, path: &str) -> Result<(Option<RemoteFile>, String), SshError> {
        let prelude = scripts::clear_orphans(path);
        self.read_file_after(path, prelude.text()).await
    }

    /// Run `prelude` (checks whose results it prints on stderr), then read `path`, in ONE
    /// remote command (each is a shell start on the host): the file, and the prelude's
    /// stderr. Preflight folds its checks and the run marker in here.
    pub async fn read_file_after(&self, path: &str, prelude: &str) -> Result<(Option<RemoteFile>, String), SshError> {
        // The host sends at most the limit plus one byte (so "too large" is seen), and only for
        // a regular file; the type is found with `test`, which no locale translates.
        let limit = crate::ssh::exec::Limit::Fail(MAX_FILE_BYTES + READ_SLACK);
        let too_large = |size| SshError::FileTooLarge {
            host: self.endpoint.name.clone(),
            path: path.to_string(),
            size,
            limit: MAX_FILE_BYTES,
        };
        let script = scripts::read(path, MAX_FILE_BYTES);
        let text = if prelude.is_empty() {
            script.text().to_string()
        } else {
            format!("{{\n{prelude}\n}} </dev/null 1>&2\n{}", script.text())
        };
        let out = match self.run_limited(&text, None, self.command_timeout(), None, limit).await {
            Err(SshError::OutputLimit { .. }) => return Err(too_large(None)),
            r => r?,
        };
        if out.status != 0 {
            return Err(SshError::Remote {
                what: format!("read {path}"),
                status: out.status,
                stderr: out.stderr_text(),
            });
        }
        // Anything a login shell's start-up files print comes before the marker; skip it.
        let start = after_mark(&out.stdout).ok_or_else(|| {
            SshError::Protocol(format!(
                "read {path}: the remote shell's output lacks bellwether's marker"
            ))
        })?;
        let stdout = &out.stdout[start..];
        let nl = stdout.iter().position(|b| *b == b'\n').unwrap_or(stdout.len());
        let header = String::from_utf8_lossy(&stdout[..nl]).to_string();
        if header == "MISSING" {
            return Ok((None, out.stderr_text()));
        }
        let bytes = stdout.get(nl + 1..).unwrap_or_default().to_vec();
        let mut f = header.split_whitespace();
        let bad = || SshError::Protocol(format!("unexpected stat output for {path}: {header:?}"));
        let mode = u32::from_str_radix(f.next().ok_or_else(bad)?, 8).map_err(|_| bad())?;
        let uid = f.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let gid = f.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let size: u64 = f.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        match f.next() {
            Some("file") => {}
            Some(kind) => {
                return Err(SshError::NotRegularFile {
                    host: self.endpoint.name.clone(),
                    path: path.to_string(),
                    kind: match kind {
                        "fifo" => "FIFO (named pipe)".to_string(),
                        k => k.replace('-', " "),
                    },
                })
            }
            None => return Err(bad()),
        }
        if size > MAX_FILE_BYTES as u64 {
            return Err(too_large(Some(size)));
        }
        if bytes.len() > MAX_FILE_BYTES {
            return Err(too_large(None));
        }
        let prelude_err = out.stderr_text();
        Ok((
            Some(RemoteFile {
                sha256: sha256_hex(&bytes),
                bytes,
                mode,
                uid,
                gid,
            }),
            prelude_err,
        ))
    }

    /// Atomically replace `path` with `bytes`; returns the sha256 read back from the host.
    pub async fn write_file(&self, path: &str, bytes: &[u8], opts: &WriteOptions) -> Result<String, SshError> {
        let want = sha256_hex(bytes);
        let script = scripts::write(path, bytes.len(), &want, opts);
        let out = self
            .run_confirmed(script.text(), bytes, self.command_timeout(), None)
            .await?;
        write_result(path, &want, opts, out.status, &out.stdout_text(), out.stderr_text()).map_err(|e| *e)
    }

    /// [`write_file`](Self::write_file), then — only if the file was written and read back
    /// right — `then` (a script of the caller's), in the same remote command: one shell start
    /// on the host instead of two (`rollout/apply_health.rs`). The error is the command's when
    /// it is not known whether the write happened (a timeout or a cut connection before the
    /// script said); once it said the file was written, a later failure is `then`'s.
    pub(crate) async fn write_file_then(
        &self,
        path: &str,
        bytes: &[u8],
        opts: &WriteOptions,
        then: &str,
        then_timeout: std::time::Duration,
    ) -> Result<WriteThen, SshError> {
        let want = sha256_hex(bytes);
        let write = scripts::write(path, bytes.len(), &want, opts);
        let script = scripts::write_then(write.text(), then);
        // Lines as they come, so a failure after the write still knows it happened.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = self
            .run_confirmed(&script, bytes, self.command_timeout() + then_timeout, Some(tx))
            .await;
        match r {
            Ok(out) => write_then_result(path, &want, opts, &out).map_err(|e| *e),
            Err(e) => {
                let mut seen = Vec::new();
                while let Ok((stream, line)) = rx.try_recv() {
                    if stream == super::Stream::Stdout {
                        seen.push(line);
                    }
                }
                if written_before(&seen, &want) {
                    Ok(WriteThen {
                        written: Ok(want),
                        then: Some(Err(e)),
                    })
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Can this file be replaced the way [`write_file`](Self::write_file) does it, keeping its
    /// owner and group, without following a link someone else may have planted (unless
    /// `follow_links`)? One remote command: see [`scripts::check`]. Err says why not.
    pub async fn check_writable(&self, path: &str, follow_links: bool) -> Result<(), SshError> {
        let script = scripts::check(path, follow_links);
        let out = self.run(script.text(), None, self.command_timeout(), None).await?;
        if out.status == 0 {
            Ok(())
        } else {
            Err(SshError::Remote {
                what: format!("check {path}"),
                status: out.status,
                stderr: out.stdout_text().trim().to_string(),
            })
        }
    }

    /// Remove a file this run created (revert of a `create = true` edit), refusing if it was
    /// changed since by someone else.
    pub async fn remove_file(&self, path: &str, expect: Option<&str>) -> Result<(), SshError> {
        let script = scripts::remove(path, expect);
        let out = self.run(script.text(), None, self.command_timeout(), None).await?;
        if out.status == CHANGED {
            return Err(SshError::Changed {
                path: path.to_string(),
                expected: expect.unwrap_or("").to_string(),
                found: last_line(&out.stdout_text()).trim_start_matches("CHANGED ").to_string(),
            });
        }
        if out.status != 0 {
            return Err(SshError::Remote {
                what: format!("remove {path}"),
                status: out.status,
                stderr: out.stderr_text(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_noise_before_the_marker_is_skipped() {
        let out = b"Welcome to host\n__bellwether_read__\n640 0 0\nfile __bellwether_read__\n";
        let i = after_mark(out).unwrap();
        assert_eq!(&out[i..], b"640 0 0\nfile __bellwether_read__\n");
        assert_eq!(after_mark(b"no marker here\n"), None);
        assert_eq!(after_mark(b"x__bellwether_read__\n"), None, "only at a line start");
    }

    fn output(stdout: &str, stderr: &str) -> crate::ssh::Output {
        crate::ssh::Output {
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_write_then_script_is_read_from_its_last_marker() {
        let want = sha256_hex(b"new");
        let opts = WriteOptions {
            expect: Some(Some(sha256_hex(b"old"))),
            ..WriteOptions::default()
        };
        // A login shell that prints the marker itself cannot pass for the write.
        let noise = "motd\nBW-WRITE 0\n";
        let ok = output(
            &format!("{noise}BELLWETHER-READY\n{want}\n\nBW-WRITE 0\nBW-APPLY 0\nBW-HEALTH 0\n"),
            "login noise\n\u{1e}BW-THEN\nwarn\n\u{1e}BW-HEALTH\nhealthy\n",
        );
        let wt = write_then_result("agent/config.toml", &want, &opts, &ok).unwrap();
        assert_eq!(wt.written.unwrap(), want);
        let then = wt.then.unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(&then.stdout), "BW-APPLY 0\nBW-HEALTH 0\n");
        assert_eq!(String::from_utf8_lossy(&then.stderr), "warn\n\u{1e}BW-HEALTH\nhealthy");
        // Read back wrong (exit 22): not written, nothing after it.
        let bad = output(
            &format!("{noise}BELLWETHER-READY\n{}\n\nBW-WRITE 22\n", sha256_hex(b"other")),
            "",
        );
        let wt = write_then_result("agent/config.toml", &want, &opts, &bad).unwrap();
        assert!(matches!(wt.written, Err(SshError::Verify { .. })), "{:?}", wt.written);
        assert!(wt.then.is_none());
        // Refused: the file changed since preflight.
        let changed = output(&format!("CHANGED {}\n\nBW-WRITE 17\n", sha256_hex(b"x")), "");
        let wt = write_then_result("agent/config.toml", &want, &opts, &changed).unwrap();
        assert!(matches!(wt.written, Err(SshError::Changed { .. })), "{:?}", wt.written);
        assert!(wt.then.is_none());
        // Cut before it said: not known.
        let cut = output(&format!("{noise}BELLWETHER-READY\n"), "");
        let cut_noise_only = output("motd\n", "");
        assert!(write_then_result("p", &want, &opts, &cut).is_ok_and(|wt| wt.written.is_err()));
        assert!(write_then_result("p", &want, &opts, &cut_noise_only).is_err());
    }

    #[test]
    fn a_failure_after_the_write_said_done_is_the_next_scripts() {
        let want = sha256_hex(b"new");
        let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
        assert!(written_before(
            &lines(&format!("READY\n{want}\n\nBW-WRITE 0\nBW-APPLY 0")),
            &want
        ));
        assert!(
            !written_before(&lines(&format!("READY\n{want}")), &want),
            "not said yet"
        );
        assert!(!written_before(&lines("BW-WRITE 0\nREADY"), &want), "noise, then cut");
        assert!(
            !written_before(&lines(&format!("BW-WRITE 0\nREADY\n{want}\n\nBW-WRITE 20")), &want),
            "the last marker counts"
        );
    }

    #[test]
    fn results_are_read_from_the_last_line() {
        assert_eq!(last_line("pyenv: cannot rehash\nabc123\n\n"), "abc123");
        assert_eq!(last_line(""), "");
    }
}
