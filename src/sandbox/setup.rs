//! Creating a sandbox: keys, homes with the fake agent, fleet.toml, known_hosts, playbooks.

use super::agent::Agent;
use super::limits::{address, raise_fd_limit, MAX_HOSTS};
use super::server::{serve, HostState};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The `agentctl` of every sandbox home (its agent runs in the sandbox process).
pub const AGENTCTL: &str = super::agentctl::SCRIPT;

/// A hand-written agent config, as an operator would keep it.
pub const AGENT_CONFIG: &str = r#"# Hermes agent configuration (hand-written; comments and layout must survive edits)
[agent]
id = "hermes"
max_concurrency = 8   # per host

[model]
name = "claude-sonnet-4"      # the model this agent talks to
provider = "anthropic"
temperature = 0.2

[provider]
base_url = "https://api.anthropic.com"
api_key = "sk-ant-sandbox-not-a-real-key"   # never appears in diffs, logs or records
"#;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

/// A running sandbox (servers live as long as this process; agents as long as this value).
pub struct Sandbox {
    pub dir: PathBuf,
    pub hosts: Vec<Arc<HostState>>,
    pub fleet: PathBuf,
    /// Every host's agent, ticked by [`super::clock`] while this list is alive.
    agents: Arc<Vec<Arc<Agent>>>,
}

fn key() -> PrivateKey {
    let seed: [u8; 32] = rand::random();
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

fn io<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(io(&path.display().to_string()))
}

/// The sandbox folder, made ready to hold a private key: created 0700 when it does not exist;
/// an existing one must be a folder owned by the user running bellwether (the link to it
/// too, if it is one), and is made 0700. Another user's folder could hold a planted fleet
/// file or key, or let them read the one written there.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io(&parent.display().to_string()))?;
            }
            return std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io(&format!("create the sandbox folder {shown}")));
        }
        Err(e) => return Err(format!("{shown}: {e}")),
        Ok(link) => {
            let meta = std::fs::metadata(dir).map_err(io(&shown.to_string()))?;
            // SAFETY: geteuid cannot fail and touches no memory.
            let me = unsafe { libc::geteuid() };
            if !meta.is_dir() {
                return Err(format!("{shown} exists and is not a folder; choose another --dir"));
            }
            if let Some(uid) = [link.uid(), meta.uid()].into_iter().find(|u| *u != me) {
                return Err(format!(
                    "refusing to use {shown} for the sandbox: it is owned by uid {uid}, not by you (uid {me}); \
                     the sandbox keeps a private key and the fleet file there. Choose another --dir"
                ));
            }
            if meta.mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io(&format!("make {shown} private")))?;
            }
        }
    }
    Ok(())
}

/// Write a private key: a fresh file, 0600 from its creation (never readable by others, not
/// even between a write and a chmod), not following a link someone left in its place.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{shown}: {e}")),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io(&shown))
}

/// The files the operator reads and runs with (fleet, known_hosts, playbooks), in the folder
/// they chose: written like every other controller output (see `ui::out_file`).
fn export(path: &Path, text: &str) -> Result<(), String> {
    crate::ui::out_file::write_file(path, text.as_bytes()).map_err(io(&path.display().to_string()))
}

/// The demo playbooks written into the sandbox.
pub fn playbook(id: &str, model: &str, observe: &str) -> String {
    format!(
        r#"# A model swap on the sandbox fleet (relative paths: commands run in each host's home).
id = "{id}"
description = "Swap the agents' model to {model}"
owner = "demo@example.com"
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
errors = ["ERROR", "FATAL", "model not found"]
max_errors = 0
min_lines = 10
max_error_rate = "2%"
metrics = [{{ name = "latency_ms", capture = 'latency_ms=(\d+)', p95_max = 800 }}]
baseline = {{ hosts = 2, max_error_rate_increase = "1%" }}
before = "2s"

[rollout]
canary = 1
canary_hosts = ["h01"]
observe = "{observe}"
batches = ["25%", "50%", "100%"]
batch_observe = "3s"
"#
    )
}

/// Create the sandbox under `dir` with `n` hosts and start its servers and agents in this
/// process.
pub async fn create(dir: &Path, n: usize) -> Result<Sandbox, String> {
    if !(1..=MAX_HOSTS).contains(&n) {
        return Err(format!("a sandbox has 1 to {MAX_HOSTS} hosts, not {n}"));
    }
    raise_fd_limit(n)?;
    prepare_dir(dir)?;
    std::fs::create_dir_all(dir.join("hosts")).map_err(io("create the sandbox folder"))?;
    std::fs::create_dir_all(dir.join("playbooks")).map_err(io("create playbooks/"))?;
    let dir = dir.canonicalize().map_err(io("sandbox folder"))?;
    let client = key();
    let client_path = dir.join("id_ed25519");
    let pem = client.to_openssh(LineEnding::LF).map_err(io("encode the client key"))?;
    write_private(&client_path, &pem)?;
    let mut fleet = format!(
        "# The sandbox fleet: {n} simulated agent hosts on loopback (bellwether sandbox).\n\n[defaults]\nuser = \"agent\"\nidentity = [\"{}\"]\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\nconcurrency = 8\nagent = false\nssh_config = false\n\n",
        client_path.display(),
        dir.join("known_hosts").display()
    );
    let mut known = String::new();
    let mut hosts = Vec::new();
    for i in 0..n {
        let name = format!("h{:02}", i + 1);
        let home = dir.join("hosts").join(&name);
        std::fs::create_dir_all(home.join("agent")).map_err(io("create a host home"))?;
        write(&home.join("agent/config.toml"), AGENT_CONFIG)?;
        write(&home.join("agent/broken_models"), "claude-broken-9\n")?;
        let _ = std::fs::remove_file(home.join("agent/fault"));
        let _ = std::fs::remove_file(home.join("agent/outage"));
        write(&home.join("agentctl"), AGENTCTL)?;
        std::fs::set_permissions(home.join("agentctl"), std::fs::Permissions::from_mode(0o755))
            .map_err(io("chmod agentctl"))?;
        let addr = address(std::process::id(), i);
        let listener = TcpListener::bind((addr.as_str(), 0))
            .await
            .map_err(io(&format!("bind {addr}")))?;
        let port = listener.local_addr().map_err(io("local address"))?.port();
        let hk = key();
        let pubk = hk.public_key().to_openssh().map_err(io("encode a host key"))?;
        known.push_str(&format!("[{addr}]:{port} {pubk}\n"));
        let groups = if i == 0 {
            "[\"prod\", \"canary-pool\"]"
        } else {
            "[\"prod\"]"
        };
        fleet.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\nport = {port}\nregion = \"{}\"\ngroups = {groups}\n\n",
            REGIONS[i % 3]
        ));
        let (down, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(HostState {
            name: name.clone(),
            home: home.clone(),
            client_key: client.public_key().clone(),
            down,
            drop_next_upload: AtomicBool::new(false),
            agent: Arc::new(Agent::new(&home)),
        });
        tokio::spawn(serve(listener, hk, state.clone()));
        hosts.push(state);
    }
    export(&dir.join("known_hosts"), &known)?;
    let fleet_path = dir.join("fleet.toml");
    export(&fleet_path, &fleet)?;
    export(
        &dir.join("playbooks/model-swap.toml"),
        &playbook("sandbox-model-swap", "claude-sonnet-4-5", "8s"),
    )?;
    export(
        &dir.join("playbooks/model-broken.toml"),
        &playbook("sandbox-model-broken", "claude-broken-9", "8s"),
    )?;
    let agents: Arc<Vec<Arc<Agent>>> = Arc::new(hosts.iter().map(|h| h.agent.clone()).collect());
    for a in agents.iter() {
        a.start().map_err(io("start an agent"))?;
    }
    super::clock::start(&agents).map_err(io("start the agents' clock"))?;
    Ok(Sandbox {
        dir,
        hosts,
        fleet: fleet_path,
        agents,
    })
}

impl Sandbox {
    /// Find a host by name.
    pub fn host(&self, name: &str) -> Option<&Arc<HostState>> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Apply a fault: errors | slow | down | drop-write | clear.
    pub fn fault(&self, name: &str, kind: &str) -> Result<(), String> {
        let h = self.host(name).ok_or_else(|| format!("no sandbox host {name:?}"))?;
        apply_fault(h, kind)
    }

    /// Stop every simulated agent (`agentctl stop` on each host).
    pub async fn stop_agents(&self) {
        for a in self.agents.iter() {
            a.stop();
        }
    }
}

/// Apply a fault to one host.
pub fn apply_fault(h: &HostState, kind: &str) -> Result<(), String> {
    let fault_file = h.home.join("agent/fault");
    match kind {
        "errors" | "slow" => {
            write(&fault_file, kind)?;
            h.agent.refresh();
            Ok(())
        }
        "down" => {
            h.down.send_replace(true);
            Ok(())
        }
        "drop-write" => {
            h.drop_next_upload.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        "clear" => {
            let _ = std::fs::remove_file(&fault_file);
            h.agent.refresh();
            h.down.send_replace(false);
            h.drop_next_upload.store(false, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        other => Err(format!(
            "unknown fault {other:?}; expected errors, slow, down, drop-write or clear"
        )),
    }
}
