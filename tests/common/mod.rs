//! Shared fixture: real OpenSSH `sshd` processes on distinct 127.x.y.z addresses, throw-away
//! host and user keys, a matching known_hosts, and per-host homes running the fake agent.
#![allow(dead_code)]

// Not every test binary uses every name the fixture offers.
#[allow(unused_imports)]
pub use bellwether::record::{read_events, Event, EventKind};
#[allow(unused_imports)]
pub use bellwether::watch::{Breach, GateKind};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh loopback address no other test in any test binary is using: the process id picks
/// the second octet's block, a counter the rest.
pub fn fresh_addr() -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    format!("127.{}.{}.{}", 1 + (pid % 200), 1 + (n / 250) % 250, 1 + n % 250)
}

fn free_port(addr: &str) -> u16 {
    TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind loopback")
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bellwether-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(st.success());
}

/// Path of the real sshd binary.
pub fn sshd_bin() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("sshd not found: install openssh-server (.ci/run does)");
}

/// One running sshd standing for one host.
pub struct Sshd {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub home: PathBuf,
    pub dir: PathBuf,
    pub host_pub: String,
    child: Child,
}

impl Sshd {
    /// Start sshd for `name` under `base`, accepting `authorized` keys, with its own home.
    pub fn start(base: &Path, name: &str, authorized: &Path) -> Sshd {
        Self::start_as(base, name, authorized, None)
    }

    /// Like [`start`], but every command runs as `login_uid` (its group too, no others), as
    /// if that user had logged in: sshd itself needs root, so the session drops to it.
    pub fn start_as(base: &Path, name: &str, authorized: &Path, login_uid: Option<u32>) -> Sshd {
        let drop_to = login_uid
            .map(|u| format!("setpriv --reuid={u} --regid={u} --clear-groups "))
            .unwrap_or_default();
        let dir = base.join(format!("sshd-{name}"));
        let home = base.join(format!("home-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(home.join("agent")).unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let hk = dir.join("host_key");
        keygen(&hk);
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let addr = fresh_addr();
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port(&addr);
            let cfg = dir.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {addr}:{port}\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {auth}\n\
                     StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n\
                     MaxSessions 100\nMaxStartups 200\nLogLevel ERROR\n\
                     ForceCommand cd {home} && exec {drop_to}/bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                    hk = hk.display(),
                    pid = dir.join("sshd.pid").display(),
                    auth = authorized.display(),
                    home = home.display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(sshd_bin())
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd");
            // sshd -D does not print when it listens at LogLevel ERROR; poll the port briefly.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect((addr.as_str(), port)).is_ok() {
                    let stderr = child.stderr.take();
                    if let Some(s) = stderr {
                        std::thread::spawn(move || {
                            for l in BufReader::new(s).lines().map_while(Result::ok) {
                                eprintln!("sshd: {l}")
                            }
                        });
                    }
                    return Sshd {
                        name: name.into(),
                        addr,
                        port,
                        home,
                        dir,
                        host_pub,
                        child,
                    };
                }
                if let Ok(Some(st)) = child.try_wait() {
                    let mut s = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut s);
                    }
                    last_err = format!("sshd exited {st}: {s}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    last_err = "sshd did not listen within 10s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start sshd for {name}: {last_err}");
    }

    /// The known_hosts line for this host.
    pub fn known_hosts_line(&self) -> String {
        let mut parts = self.host_pub.split_whitespace();
        format!(
            "[{}]:{} {} {}",
            self.addr,
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }

    /// Make the host unreachable at once: kill the listener and every session it forked,
    /// so established connections drop too. The listener is stopped first: a client that
    /// reconnects the instant its session dies must not get a fresh session forked between
    /// the two kills (the host would not really have gone away).
    pub fn kill_hard(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-STOP", &pid]).status();
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
        self.stop();
    }

    /// The pid of this host's sshd listener (sessions are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Start this host's sshd again (same address, port, host key): the host comes back.
    pub fn restart(&mut self) {
        self.stop();
        let cfg = self.dir.join("sshd_config");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(sshd_bin())
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            let up = Instant::now() + Duration::from_secs(3);
            while Instant::now() < up {
                if std::net::TcpStream::connect((self.addr.as_str(), self.port)).is_ok() {
                    self.child = child;
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port may still be in TIME_WAIT: try again
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "sshd for {} did not come back", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stop this sshd (the host becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = Command::new(self.home.join("agentctl")).arg("stop").status();
        self.stop();
    }
}

/// A whole test fleet: N sshd hosts, a client key, known_hosts, a fleet.toml.
pub struct TestFleet {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub hosts: Vec<Sshd>,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

/// The agent config every host starts with (the model swap changes `name`).
pub const AGENT_CONFIG: &str = r#"# Hermes agent configuration (hand-written; keep the comments)
[agent]
id = "hermes"
max_concurrency = 8   # per host

[model]
name = "claude-sonnet-4"      # the model this agent talks to
provider = "anthropic"
temperature = 0.2

[provider]
base_url = "https://api.anthropic.com"
api_key = "sk-ant-test-SECRET-123"   # test secret; must never appear in records
"#;

impl TestFleet {
    /// Start `n` hosts named h01..hNN with the fake agent installed and running.
    pub fn start(n: usize) -> TestFleet {
        Self::start_with(n, |_| vec!["prod".into()])
    }

    /// Like [`start`], with the groups of each host chosen by index.
    pub fn start_with(n: usize, groups: impl Fn(usize) -> Vec<String>) -> TestFleet {
        Self::start_opts(n, groups, None)
    }

    /// `n` hosts whose commands all run as `uid` (see [`Sshd::start_as`]).
    pub fn start_login_as(n: usize, uid: u32) -> TestFleet {
        Self::start_opts(n, |_| vec!["prod".into()], Some(uid))
    }

    fn start_opts(n: usize, groups: impl Fn(usize) -> Vec<String>, login_uid: Option<u32>) -> TestFleet {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let key = dir.join("id_ed25519");
        keygen(&key);
        let auth = dir.join("authorized_keys");
        std::fs::copy(dir.join("id_ed25519.pub"), &auth).unwrap();
        let mut hosts = Vec::new();
        for i in 0..n {
            let h = Sshd::start_as(&dir, &format!("h{:02}", i + 1), &auth, login_uid);
            std::fs::write(h.home.join("agent/config.toml"), AGENT_CONFIG).unwrap();
            std::fs::copy(fixture("agentctl"), h.home.join("agentctl")).unwrap();
            std::fs::write(h.home.join("agent/broken_models"), "claude-broken-9\n").unwrap();
            // The agent has run here before: its log exists (preflight checks it), even on a
            // host whose agent a test never starts.
            std::fs::write(h.home.join("agent/agent.log"), "").unwrap();
            hosts.push(h);
        }
        let known_hosts = dir.join("known_hosts");
        let lines: Vec<String> = hosts.iter().map(|h| h.known_hosts_line()).collect();
        std::fs::write(&known_hosts, lines.join("\n") + "\n").unwrap();
        let f = TestFleet {
            tmp,
            dir,
            hosts,
            key,
            known_hosts,
        };
        f.write_fleet(&groups);
        f
    }

    fn write_fleet(&self, groups: &impl Fn(usize) -> Vec<String>) {
        let user = std::env::var("USER").unwrap_or_else(|_| whoami());
        let mut s = format!(
            "[defaults]\nuser = \"{user}\"\nidentity = [\"{}\"]\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\nconcurrency = 8\nagent = false\nssh_config = false\n\n",
            self.key.display(),
            self.known_hosts.display()
        );
        let regions = ["us-east-1", "eu-west-1", "ap-south-1"];
        for (i, h) in self.hosts.iter().enumerate() {
            let g: Vec<String> = groups(i).iter().map(|g| format!("\"{g}\"")).collect();
            s.push_str(&format!(
                "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nregion = \"{}\"\ngroups = [{}]\n\n",
                h.name,
                h.addr,
                h.port,
                regions[i % 3],
                g.join(", ")
            ));
        }
        std::fs::write(self.fleet_path(), s).unwrap();
    }

    pub fn fleet_path(&self) -> PathBuf {
        self.dir.join("fleet.toml")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Start the fake agent on every host.
    pub fn start_agents(&self) {
        for h in &self.hosts {
            let st = Command::new(h.home.join("agentctl")).arg("start").status().unwrap();
            assert!(st.success());
        }
    }

    /// Contents of a host's agent config.
    pub fn config(&self, i: usize) -> Vec<u8> {
        std::fs::read(self.hosts[i].home.join("agent/config.toml")).unwrap()
    }

    /// The bellwether binary with this fleet and runs dir.
    pub fn bw(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bellwether"));
        c.arg("--fleet")
            .arg(self.fleet_path())
            .arg("--runs-dir")
            .arg(self.runs_dir());
        c.env_remove("SSH_AUTH_SOCK").env("NO_COLOR", "1").stdin(Stdio::null());
        c
    }

    /// Write a playbook into the fleet's `playbooks/` folder; returns its path.
    pub fn playbook(&self, name: &str, text: &str) -> PathBuf {
        let d = self.dir.join("playbooks");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            let _ = Command::new(h.home.join("agentctl")).arg("stop").status();
        }
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Path of a file under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Run a command, returning (exit code, stdout, stderr).
/// Run bellwether against `f` with `args`: (exit code, stdout, stderr).
pub fn bw(f: &TestFleet, args: &[&str]) -> (i32, String, String) {
    let mut c = f.bw();
    c.args(args);
    run(c)
}

/// The tests' model-swap playbook: `model` set in agent/config.toml, `./agentctl restart`,
/// `./agentctl status`, the agent's log watched for `ERROR` with `min_lines = 5`; `watch` and
/// `rollout` are the lines added to those sections.
pub fn swap_playbook(model: &str, watch: &str, rollout: &str) -> String {
    format!(
        r#"id = "model-swap"
tier = "T2"
component = "model"
targets = {{ groups = ["prod"] }}

[[edit]]
path = "agent/config.toml"
set = {{ "model.name" = "{model}" }}

[apply]
command = "./agentctl restart"
health = "./agentctl status"
health_timeout = "5s"

[watch]
log = {{ file = "agent/agent.log" }}
errors = ["ERROR"]
min_lines = 5
{watch}

[rollout]
{rollout}
"#
    )
}

pub fn run(mut c: Command) -> (i32, String, String) {
    let out = c.output().expect("run bellwether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// How many run locks are held in a runs folder (`runs/.locks/*.json`).
pub fn locks_held(runs: &Path) -> usize {
    std::fs::read_dir(runs.join(".locks"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// Run folders (those holding `events.jsonl`), oldest first.
pub fn run_dirs(f: &TestFleet) -> Vec<PathBuf> {
    run_dirs_in(&f.runs_dir())
}

/// Run folders under a runs folder, oldest first.
pub fn run_dirs_in(runs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(runs)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("events.jsonl").exists())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The newest run folder.
pub fn latest_run(f: &TestFleet) -> PathBuf {
    run_dirs(f).pop().expect("a run folder")
}

/// A run's `events.jsonl` as raw text: only for checks of the bytes on disk (that secrets are
/// masked in the file). Everything else reads the record typed, with [`record`].
pub fn raw_events(run: &Path) -> String {
    std::fs::read_to_string(run.join("events.jsonl")).unwrap()
}

/// A run's events, read with the library's own reader.
///
/// `read_events` skips a line it cannot parse (a torn last line after a kill); here every
/// complete line must parse, so a negative check (`!ev.has(..)`) cannot pass on a record the
/// reader could not read.
pub fn record(run: &Path) -> Record {
    let text = raw_events(run);
    let complete = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .count();
    let events = read_events(run).expect("read events.jsonl");
    assert!(
        events.len() >= complete,
        "{} of {complete} complete lines of {}/events.jsonl did not parse:\n{text}",
        complete.saturating_sub(events.len()),
        run.display()
    );
    Record(events)
}

/// The events of one run, in the order they were written.
pub struct Record(pub Vec<Event>);

impl Record {
    /// Every event's kind, in order.
    pub fn kinds(&self) -> impl DoubleEndedIterator<Item = &EventKind> {
        self.0.iter().map(|e| &e.kind)
    }

    /// Whether any event matches.
    pub fn has(&self, pred: impl Fn(&EventKind) -> bool) -> bool {
        self.kinds().any(pred)
    }

    /// How many events match.
    pub fn count(&self, pred: impl Fn(&EventKind) -> bool) -> usize {
        self.kinds().filter(|k| pred(k)).count()
    }

    /// The index of the first event that matches.
    pub fn position(&self, pred: impl Fn(&EventKind) -> bool) -> Option<usize> {
        self.kinds().position(pred)
    }

    /// The outcome and exit code of the last `run_finished` (a resumed run has one per part).
    pub fn finished(&self) -> Option<(&str, i32)> {
        self.kinds().rev().find_map(|k| match k {
            EventKind::RunFinished { outcome, exit, .. } => Some((outcome.as_str(), *exit)),
            _ => None,
        })
    }

    /// The outcome of the last `run_finished`.
    pub fn outcome(&self) -> Option<&str> {
        self.finished().map(|(o, _)| o)
    }
}

/// One event a line, for assertion messages.
impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "{:?}", e.kind)?;
        }
        Ok(())
    }
}

/// The host of an event about one file on a host (snapshot, write intent, written, staged,
/// reverted, revert failed): the events a host gets only once a file of it is touched.
pub fn file_host(k: &EventKind) -> Option<&str> {
    match k {
        EventKind::Snapshot { host, .. }
        | EventKind::WriteIntent { host, .. }
        | EventKind::Written { host, .. }
        | EventKind::Staged { host, .. }
        | EventKind::Reverted { host, .. }
        | EventKind::RevertFailed { host, .. } => Some(host),
        _ => None,
    }
}

/// The gates a `verdict` event says failed (empty for any other event).
pub fn breaches(k: &EventKind) -> Vec<Breach> {
    match k {
        EventKind::Verdict { verdict, .. } => {
            serde_json::from_value(verdict["breaches"].clone()).expect("a verdict's breaches")
        }
        _ => Vec::new(),
    }
}

/// Matches the start of `phase`'s observation window.
pub fn observe_started(phase: &str) -> impl Fn(&EventKind) -> bool + '_ {
    move |k| matches!(k, EventKind::ObserveStarted { phase: p, .. } if p == phase)
}

/// The newest run folder under `runs`, if any.
pub fn latest_run_in(runs: &Path) -> Option<PathBuf> {
    run_dirs_in(runs).pop()
}

/// Whether the newest run under `runs` has an event matching `pred` yet (a run still being
/// written: a torn last line is skipped, and it is read again on the next poll).
pub fn latest_has(runs: &Path, pred: impl Fn(&EventKind) -> bool) -> bool {
    latest_run_in(runs)
        .and_then(|r| read_events(&r).ok())
        .is_some_and(|evs| evs.iter().any(|e| pred(&e.kind)))
}

/// Wait until the latest run has an event matching `pred`.
#[track_caller]
pub fn wait_for_event(f: &TestFleet, pred: impl Fn(&EventKind) -> bool, limit: Duration) {
    let t = Instant::now();
    while !latest_has(&f.runs_dir(), &pred) {
        if t.elapsed() >= limit {
            let so_far = latest_run_in(&f.runs_dir()).map(|r| record(&r).to_string());
            panic!(
                "timed out after {limit:?} waiting for an event; the record so far:\n{}",
                so_far.unwrap_or_else(|| "(no run folder)".into())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `remote_commands` event of the newest run: commands started per host, and the hosts
/// whose connection the budget parked and reopened (with how often).
#[allow(dead_code)] // not every test binary reads it
pub fn remote_commands(
    f: &TestFleet,
) -> (
    std::collections::BTreeMap<String, u32>,
    std::collections::BTreeMap<String, u32>,
) {
    record(&latest_run(f))
        .kinds()
        .find_map(|k| match k {
            EventKind::RemoteCommands { per_host, reopened } => Some((per_host.clone(), reopened.clone())),
            _ => None,
        })
        .expect("a remote_commands event")
}
