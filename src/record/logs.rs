//! The canary's own log, kept with the run: `logs/HOST.log`, one line per log line the
//! controller received, prefixed with its receive time (UTC, RFC 3339, milliseconds) and the
//! window it belongs to (`before`, `canary`, `batch 1`, …), free text masked like every other
//! record file. Each file is capped ([`CAP_BYTES`]): past the cap lines are counted, not
//! written, and the count and the cap are stated at the end of the file when the run ends.
//!
//! Every line is one `write` on a file opened for appending, so a crash leaves at most a torn
//! last line — the same promise as `events.jsonl` (no fsync per line: these are evidence for
//! people, not the write-ahead log).

use super::secrets::Secrets;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes kept per host file (a chatty agent at 200 lines/s for 10 minutes is ~12 MiB).
pub const CAP_BYTES: u64 = 4 * 1024 * 1024;

/// Characters of one log line kept (agents log whole prompts on one line).
pub const LINE_CHARS: usize = 2000;

struct HostLog {
    file: File,
    written: u64,
    dropped: u64,
}

/// The open `logs/*.log` files of a run.
pub(crate) struct LogKeeper {
    dir: PathBuf,
    cap: u64,
    files: Mutex<BTreeMap<String, HostLog>>,
}

/// A host name as a file name: path separators and control characters replaced.
pub fn log_file_name(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{safe}.log")
}

impl LogKeeper {
    pub(crate) fn new(run_dir: &Path, cap: u64) -> LogKeeper {
        LogKeeper {
            dir: run_dir.join("logs"),
            cap,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// Keep one line of `host`'s log, received at `at`, seen during `window`.
    pub(crate) fn line(
        &self,
        host: &str,
        window: &str,
        at: chrono::DateTime<chrono::Utc>,
        line: &str,
        secrets: &Secrets,
    ) -> std::io::Result<()> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| std::io::Error::other("log keeper lock poisoned"))?;
        if !files.contains_key(host) {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(log_file_name(host)))?;
            files.insert(
                host.to_string(),
                HostLog {
                    file,
                    written: 0,
                    dropped: 0,
                },
            );
        }
        let Some(h) = files.get_mut(host) else {
            return Ok(());
        };
        let body: String = line.trim_end_matches(['\n', '\r']).chars().take(LINE_CHARS).collect();
        let text = format!(
            "{} [{window}] {}\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            secrets.text(&body)
        );
        if h.written + text.len() as u64 > self.cap {
            h.dropped += 1;
            return Ok(());
        }
        h.written += text.len() as u64;
        h.file.write_all(text.as_bytes())
    }

    /// State the cap and the dropped lines at the end of each file that hit it.
    pub(crate) fn close(&self) -> std::io::Result<()> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| std::io::Error::other("log keeper lock poisoned"))?;
        for h in files.values_mut() {
            if h.dropped > 0 {
                writeln!(
                    h.file,
                    "# bellwether: {} more line(s) not kept: this file is capped at {} bytes",
                    h.dropped, self.cap
                )?;
                h.dropped = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_masked_stamped_and_capped() {
        let d = tempfile::tempdir().unwrap();
        let k = LogKeeper::new(d.path(), 200);
        let s = Secrets::default();
        let at = chrono::Utc::now();
        k.line("h01", "canary", at, "INFO ok api_key=sk-ant-abcdefghijklmnop\n", &s)
            .unwrap();
        for i in 0..20 {
            k.line("h01", "canary", at, &format!("INFO line {i}"), &s).unwrap();
        }
        k.close().unwrap();
        let text = std::fs::read_to_string(d.path().join("logs/h01.log")).unwrap();
        assert!(!text.contains("sk-ant-abcdefghijklmnop"), "{text}");
        assert!(text.lines().next().unwrap().contains("[canary] INFO ok"), "{text}");
        let kept = text.lines().filter(|l| l.contains("INFO")).count();
        assert!(kept < 21, "capped: {text}");
        let last = text.lines().last().unwrap();
        assert!(
            last.contains(&format!("{} more line(s) not kept", 21 - kept)) && last.contains("200 bytes"),
            "{last}"
        );
        assert!(text.len() <= 200 + last.len() + 1);
        assert_eq!(log_file_name("a/b\nc"), "a_b_c.log");
    }
}
