//! One simulated agent: what it logs on each request, and its state (running, model, the
//! faults its home asks for). The lines, their rate and the files it reads are those of
//! `tests/fixtures/agentctl`, the shell agent the integration tests run under real sshd; only
//! the mechanism differs (a tick from [`super::clock`] instead of a `sh` loop forking `sleep`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// A fault injected through `agent/fault` (what `sandbox fault HOST errors|slow` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every line is `ERROR upstream returned 500`.
    Errors,
    /// Every line reports `latency_ms=2500`.
    Slow,
}

/// What the agent's home says besides its model: read again once a second (the shell agent
/// reads these files on every line, which is what made it cost a fork per line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `agent/fault` holds `errors` or `slow`.
    pub fault: Option<Fault>,
    /// `agent/outage` exists: the provider answers 503.
    pub outage: bool,
    /// The model is a line of `agent/broken_models`.
    pub broken: bool,
}

/// The model an agent config names: the first `name = "..."` line, as the shell agent's `sed`
/// finds it (any table; a line without the closing quote does not count). Empty if none.
pub fn model_name(config: &str) -> String {
    config
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("name")?.trim_start();
            let rest = rest.strip_prefix('=')?.trim_start().strip_prefix('"')?;
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .unwrap_or_default()
}

/// The line the agent logs for its `i`-th request (counting from 1), if it logs one.
pub fn line(model: &str, i: u64, env: &Env) -> Option<String> {
    let ok = |latency: u64| Some(format!("INFO request ok model={model} latency_ms={latency}"));
    match env.fault {
        Some(Fault::Errors) => return Some(format!("ERROR upstream returned 500 model={model}")),
        Some(Fault::Slow) => return ok(2500),
        None => {}
    }
    let prefix = |p: &str| model.starts_with(p);
    if prefix("silent-") {
        None
    } else if prefix("stall-") {
        if i <= 20 {
            ok(120)
        } else {
            None
        }
    } else if prefix("trickle-") {
        if i.is_multiple_of(5) {
            ok(120)
        } else {
            None
        }
    } else if prefix("slow-") {
        ok(1500)
    } else if prefix("flaky-") {
        if i.is_multiple_of(10) {
            Some(format!("ERROR upstream 500 model={model}"))
        } else {
            ok(100 + i % 50)
        }
    } else if env.broken {
        Some(format!("ERROR model not found: {model}"))
    } else if env.outage {
        Some(format!("ERROR provider unavailable (503) model={model}"))
    } else {
        ok(100 + i % 50)
    }
}

/// One host's agent.
pub struct Agent {
    home: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    model: String,
    /// Requests so far since the last start.
    i: u64,
    env: Env,
    /// `agent/agent.log`, open for appending while the agent runs (opened again when the path
    /// names another file, so a rotated or deleted log is followed as the shell agent's `>>`
    /// follows it).
    log: Option<File>,
    /// What the files read at the last refresh looked like: a file that still looks the same
    /// is not read again (a `stat` is cheaper than an open, a read and a close).
    seen: Seen,
}

/// Modification time, length and inode of a file.
type Stamp = (Option<std::time::SystemTime>, u64, u64);

#[derive(Default)]
struct Seen {
    fault: Option<Stamp>,
    broken: Option<Stamp>,
    log: Option<Stamp>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

impl Agent {
    /// An agent, stopped, living in `home` (its files under `home/agent/`).
    pub fn new(home: &Path) -> Agent {
        Agent {
            home: home.to_path_buf(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only counters behind: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.home.join("agent").join(name)
    }

    /// `agentctl start` and `restart`: (re)read the model, log `agent started`, and the first
    /// request at once, as the shell agent does before its first `sleep`.
    pub fn start(&self) -> std::io::Result<()> {
        let mut s = self.lock();
        let config = std::fs::read_to_string(self.file("config.toml")).unwrap_or_default();
        s.model = model_name(&config);
        s.i = 0;
        s.log = Some(self.open_log()?);
        s.running = true;
        s.seen = Seen::default();
        self.read_env(&mut s);
        let started = format!("INFO agent started model={}", s.model);
        write_line(&mut s, &started);
        self.request(&mut s);
        Ok(())
    }

    /// `agentctl stop`.
    pub fn stop(&self) {
        let mut s = self.lock();
        s.running = false;
        s.log = None;
    }

    /// `agentctl status`.
    pub fn running(&self) -> bool {
        self.lock().running
    }

    /// Re-read the fault, outage and broken-model files now (after `sandbox fault`).
    pub fn refresh(&self) {
        let mut s = self.lock();
        if s.running {
            s.seen.fault = None;
            s.seen.broken = None;
            self.read_env(&mut s);
        }
    }

    /// One clock tick: one request, and with `refresh` the files read again first.
    pub fn tick(&self, refresh: bool) {
        let mut s = self.lock();
        if !s.running {
            return;
        }
        if refresh {
            self.read_env(&mut s);
            let log = stamp(&self.file("agent.log"));
            if log.is_none() || log.map(|l| l.2) != s.seen.log.map(|l| l.2) {
                // A log that cannot be opened now (its folder removed) is retried next second.
                s.log = self.open_log().ok();
                s.seen.log = stamp(&self.file("agent.log"));
            }
        }
        self.request(&mut s);
    }

    fn request(&self, s: &mut State) {
        s.i += 1;
        if let Some(l) = line(&s.model, s.i, &s.env) {
            write_line(s, &l);
        }
    }

    fn open_log(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file("agent.log"))
    }

    /// Read the fault, outage and broken-model files into `s.env`; a file whose stamp has not
    /// changed since the last read keeps its value.
    fn read_env(&self, s: &mut State) {
        let fault = stamp(&self.file("fault"));
        if fault.is_none() {
            s.env.fault = None;
        } else if fault != s.seen.fault {
            let text = std::fs::read_to_string(self.file("fault")).unwrap_or_default();
            s.env.fault = match text.lines().next().map(str::trim) {
                Some("errors") => Some(Fault::Errors),
                Some("slow") => Some(Fault::Slow),
                _ => None,
            };
        }
        s.seen.fault = fault;
        let broken = stamp(&self.file("broken_models"));
        if broken.is_none() {
            s.env.broken = false;
        } else if broken != s.seen.broken {
            let text = std::fs::read_to_string(self.file("broken_models")).unwrap_or_default();
            s.env.broken = text.lines().any(|l| l == s.model);
        }
        s.seen.broken = broken;
        s.env.outage = self.file("outage").exists();
    }
}

/// Append one line with one `write` (the log is opened for appending, so a reader never sees
/// half a line from the agent).
fn write_line(s: &mut State, line: &str) {
    if let Some(f) = s.log.as_mut() {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        // A full disk or a removed folder loses the line, as `echo >>` would.
        let _ = f.write_all(buf.as_bytes());
    }
}
