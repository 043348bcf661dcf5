//! `bellwether sandbox up|down|fault` and `bellwether demo`.

use crate::exit::{Exit, Failure};
use crate::options::{Color, Global, LogFormat, RolloutArgs, SandboxAction};
use crate::sandbox::control;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fail(e: String) -> Failure {
    Failure::new(Exit::NeedsAttention, e)
}

/// Dispatch a sandbox action.
pub async fn run(action: &SandboxAction) -> Result<Exit, Failure> {
    match action {
        SandboxAction::Up { hosts, dir } => up(dir, *hosts),
        SandboxAction::Serve { hosts, dir } => control::serve_forever(dir, *hosts)
            .await
            .map(|_| Exit::Done)
            .map_err(fail),
        SandboxAction::Down { dir } => {
            control::send(dir, "stop").await.map_err(Failure::input)?;
            println!("sandbox in {} stopped", dir.display());
            Ok(Exit::Done)
        }
        SandboxAction::Fault { host, kind, dir } => {
            control::send(dir, &format!("fault {host} {kind}"))
                .await
                .map_err(Failure::input)?;
            println!("{host}: fault {kind}");
            Ok(Exit::Done)
        }
    }
}

/// Start the sandbox as a background process and wait until it serves.
fn up(dir: &Path, hosts: usize) -> Result<Exit, Failure> {
    let max = crate::sandbox::limits::MAX_HOSTS;
    if !(1..=max).contains(&hosts) {
        return Err(Failure::input(format!("--hosts must be between 1 and {max}")));
    }
    if dir.join("control.sock").exists() && std::os::unix::net::UnixStream::connect(dir.join("control.sock")).is_ok() {
        return Err(Failure::input(format!(
            "a sandbox is already running in {}; `bellwether sandbox down --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    crate::sandbox::setup::prepare_dir(dir).map_err(Failure::input)?;
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let log = std::fs::File::create(dir.join("sandbox.log")).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(["sandbox", "serve", "--hosts", &hosts.to_string(), "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("cannot start the sandbox process: {e}")))?
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.join("sandbox.log")).unwrap_or_default();
        return Err(fail(format!("the sandbox did not start: {}", log.trim())));
    }
    let fleet = dir.join("fleet.toml");
    println!("sandbox up: {hosts} hosts (pid {})", child.id());
    println!("  fleet:       {}", fleet.display());
    println!("  known_hosts: {}", dir.join("known_hosts").display());
    println!("  playbooks:   {}", dir.join("playbooks").display());
    println!(
        "try:  bellwether --fleet {} rollout {} --yes",
        fleet.display(),
        dir.join("playbooks/model-swap.toml").display()
    );
    println!("stop: bellwether sandbox down --dir {}", dir.display());
    Ok(Exit::Done)
}

fn global(dir: &Path) -> Global {
    Global {
        fleet: dir.join("fleet.toml"),
        runs_dir: Some(dir.join("runs")),
        verbose: 0,
        quiet: false,
        log_format: LogFormat::Text,
        color: Color::Auto,
        concurrency: None,
        accept_new: false,
    }
}

fn rollout_args(playbook: &Path) -> RolloutArgs {
    RolloutArgs {
        playbook: playbook.display().to_string(),
        yes: true,
        canary: None,
        observe: None,
        batch_observe: None,
        dry_run: false,
        break_lock: false,
        exception: None,
        approver: None,
        skip_frozen: false,
        within: None,
        at: None,
        json: false,
        wait: false,
    }
}

/// The demo: a good model swap (promoted everywhere), then a broken one (canary fails, reverted).
pub async fn demo(dir: Option<PathBuf>, hosts: usize) -> Result<Exit, Failure> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("bellwether-demo"));
    crate::sandbox::setup::prepare_dir(&dir).map_err(Failure::input)?;
    println!(
        "== bellwether demo: {hosts} simulated agent hosts over real SSH in {}\n",
        dir.display()
    );
    let sb = crate::sandbox::create(&dir, hosts).await.map_err(fail)?;
    let g = global(&sb.dir);
    println!("== 1. a good change: claude-sonnet-4 -> claude-sonnet-4-5 (canary h01, then 25% / 50% / 100%)\n");
    let good = crate::cmd::rollout::run(&g, &rollout_args(&sb.dir.join("playbooks/model-swap.toml"))).await;
    let good_ok = matches!(good, Ok(Exit::Done));
    if let Err(e) = &good {
        crate::ui::log::error(&e.message, e.exit.code());
    }
    println!("\n---- summary.md of that run ----");
    let _ = crate::cmd::runs::show(&g, "latest", false);
    println!("\n== 2. a broken change: -> claude-broken-9 (the agent logs `model not found`)\n");
    let bad = crate::cmd::rollout::run(&g, &rollout_args(&sb.dir.join("playbooks/model-broken.toml"))).await;
    let bad_ok = matches!(&bad, Err(f) if f.exit == Exit::Reverted);
    if let Err(e) = &bad {
        println!("(expected) {}", e.message);
    }
    println!("\n---- summary.md of that run ----");
    let _ = crate::cmd::runs::show(&g, "latest", false);
    sb.stop_agents().await;
    println!(
        "\n== records: {}  (bellwether --fleet {} runs)",
        sb.dir.join("runs").display(),
        sb.fleet.display()
    );
    if good_ok && bad_ok {
        println!("== demo finished: the good change reached every host; the bad one stopped at the canary and was reverted byte for byte.");
        Ok(Exit::Done)
    } else {
        Err(Failure::new(
            Exit::NeedsAttention,
            format!("the demo did not go as expected (good change ok: {good_ok}, bad change reverted: {bad_ok})"),
        ))
    }
}
