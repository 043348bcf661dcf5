//! The command line (clap derive) and dispatch to the commands in `cmd/`.

use crate::exit::{Exit, Failure};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Canary-first rollouts of config, model and provider changes to a fleet of AI-agent hosts.
///
/// One host first, its logs and health watched, then the rest in batches; every changed host
/// put back byte for byte the moment a gate fails. Exit codes: 0 done, 1 reverted,
/// 2 bad input, 3 blocked by the calendar, 4 locked, 5 hosts need attention, 6 preflight failed.
#[derive(Debug, Parser)]
#[command(name = "bellwether", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The fleet file.
    #[arg(long, global = true, env = "BELLWETHER_FLEET", default_value = "fleet.toml")]
    pub fleet: PathBuf,
    /// Where run records live (default: `runs/` beside the fleet file).
    #[arg(long, global = true, env = "BELLWETHER_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour in diffs and tables.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Hosts worked on at once (overrides the fleet's `concurrency`).
    #[arg(short = 'j', long, global = true)]
    pub concurrency: Option<usize>,
    /// Record unknown host keys instead of refusing (OpenSSH accept-new; a changed key is
    /// still refused).
    #[arg(long, global = true)]
    pub accept_new: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Global {
    /// The runs folder to use.
    pub fn runs_dir(&self) -> PathBuf {
        self.runs_dir.clone().unwrap_or_else(|| {
            self.fleet
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.join("runs"))
                .unwrap_or_else(|| PathBuf::from("runs"))
        })
    }

    /// Whether to colour output on stdout.
    pub fn colored(&self) -> bool {
        use std::io::IsTerminal;
        match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the fleet, playbooks and calendar; show what each playbook targets.
    ///
    /// Nothing touches the network. Exit 0, or 2 with file:line:column of the first error.
    ///
    /// Example: bellwether check playbooks/model-swap.toml
    Check {
        /// Playbooks to check (default: every playbooks/*.toml beside the fleet).
        playbooks: Vec<String>,
    },
    /// Connect to every target, authenticate and run `true`; a table of results.
    ///
    /// TARGETS: host names or globs, group:NAME, region:NAME, !TERM to exclude (default all).
    ///
    /// Example: bellwether ping group:prod '!use1-c'
    Ping { targets: Vec<String> },
    /// Run an ad-hoc command on every target, output prefixed by host.
    ///
    /// Example: bellwether exec region:eu-west-1 -- systemctl is-active hermes
    Exec {
        /// Hosts to run on (default all): names or globs, group:NAME, region:NAME, !TERM.
        targets: Vec<String>,
        /// The command, after `--`; its words are joined with spaces and run by `sh -c` on
        /// each host (quote it as one word to keep your own quoting).
        #[arg(last = true, required = true)]
        command: Vec<String>,
        /// Print each host's output as one block instead of prefixed lines.
        #[arg(long)]
        group: bool,
        /// Per-host command timeout.
        #[arg(long, default_value = "60s")]
        timeout: String,
    },
    /// Show what a rollout would do: calendar decision, batch plan, per-host diffs. Read-only.
    ///
    /// Example: bellwether plan playbooks/model-swap.toml --json
    Plan(PlanArgs),
    /// Roll a playbook out: canary, observe, batches, automatic verified revert.
    ///
    /// Example: bellwether rollout playbooks/model-swap.toml --yes
    Rollout(RolloutArgs),
    /// Put back every host a run changed, from the run folder alone.
    ///
    /// Example: bellwether revert 20261122T101500Z-model-swap-sonnet
    Revert {
        run: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Continue a run interrupted during observation or between batches.
    ///
    /// Example: bellwether resume 20261122T101500Z-model-swap-sonnet --yes
    Resume {
        run: String,
        #[arg(long)]
        yes: bool,
    },
    /// Runs in progress (their locks and hosts) and runs that left changes to finish.
    ///
    /// Exit 5 when a run (other than one paused by the calendar) left hosts needing attention.
    ///
    /// Example: bellwether status --json
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List recorded runs: id, playbook, started, outcome, hosts changed/reverted.
    ///
    /// Example: bellwether runs --json | jq '.[] | select(.outcome != "done")'
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Print a run's summary.
    ///
    /// Example: bellwether show latest
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// May a change of this tier ship now? For CI: exit 0 allow, 3 block.
    ///
    /// Example: bellwether gate --tier T2 --region us-east-1 --component model --out logs/change_freeze_decision.json
    Gate(GateArgs),
    /// The upcoming freeze windows, in UTC and the local zone.
    ///
    /// Example: bellwether calendar --days 30 --tz Europe/Berlin
    Calendar {
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Show times also in this IANA zone (default: $TZ or UTC).
        #[arg(long)]
        tz: Option<String>,
        /// Evaluate as of this time instead of now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Start, stop or fault a local fleet of simulated agent hosts over real SSH.
    ///
    /// Example: bellwether sandbox up --hosts 8 --dir sandbox && bellwether --fleet sandbox/fleet.toml ping
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
    /// A real canary rollout on a local sandbox fleet: one good change, one bad (reverted).
    ///
    /// Example: bellwether demo --dir /tmp/bellwether-demo
    Demo {
        /// Where to keep the sandbox and its run records.
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        hosts: usize,
    },
}

/// Sandbox actions.
#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Start N simulated hosts and write DIR/fleet.toml and DIR/known_hosts.
    Up {
        #[arg(long, default_value_t = 8)]
        hosts: usize,
        #[arg(long, default_value = "sandbox")]
        dir: PathBuf,
    },
    /// Stop the sandbox.
    Down {
        #[arg(long, default_value = "sandbox")]
        dir: PathBuf,
    },
    /// Run the sandbox in the foreground (what `up` starts in the background).
    #[command(hide = true)]
    Serve {
        #[arg(long, default_value_t = 8)]
        hosts: usize,
        #[arg(long, default_value = "sandbox")]
        dir: PathBuf,
    },
    /// Inject a fault: errors, slow, down, drop-write (drop the next upload), clear.
    Fault {
        host: String,
        kind: String,
        #[arg(long, default_value = "sandbox")]
        dir: PathBuf,
    },
}

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Playbook path or name under playbooks/.
    pub playbook: String,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Canary host (overrides the playbook's preference).
    #[arg(long)]
    pub canary: Option<String>,
    /// Evaluate the calendar as of this time.
    #[arg(long)]
    pub at: Option<String>,
}

/// `rollout` arguments.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Playbook path or name under playbooks/.
    pub playbook: String,
    /// Do not ask for confirmation (required without a TTY).
    #[arg(long)]
    pub yes: bool,
    /// Canary host (overrides the playbook's preference).
    #[arg(long)]
    pub canary: Option<String>,
    /// Canary observation window (overrides the playbook), e.g. 30s.
    #[arg(long)]
    pub observe: Option<String>,
    /// Per-batch observation window (overrides the playbook).
    #[arg(long)]
    pub batch_observe: Option<String>,
    /// Plan and preflight only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Break a stale lock (dead pid); recorded in the run.
    #[arg(long)]
    pub break_lock: bool,
    /// Reason for a freeze exception (T0 always, T1 in a soft freeze).
    #[arg(long)]
    pub exception: Option<String>,
    /// Who approved the exception.
    #[arg(long)]
    pub approver: Option<String>,
    /// Proceed on hosts outside a regional freeze, skipping frozen ones (recorded).
    #[arg(long)]
    pub skip_frozen: bool,
    /// Refuse to start outside this window, e.g. "02:00-05:00 Europe/London" (exit 3).
    #[arg(long)]
    pub within: Option<String>,
    /// Evaluate the calendar as of this time (testing and rehearsal).
    #[arg(long, hide = true)]
    pub at: Option<String>,
    /// One JSON document on stdout at the end.
    #[arg(long)]
    pub json: bool,
}

/// `gate` arguments.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Change tier T0..T3 (default: the playbook's).
    #[arg(long)]
    pub tier: Option<String>,
    /// Region the change touches (repeatable; default all).
    #[arg(long)]
    pub region: Vec<String>,
    /// Component the change touches (repeatable).
    #[arg(long)]
    pub component: Vec<String>,
    /// Decide as of this time (RFC 3339, or "YYYY-MM-DDTHH:MM Zone/Name").
    #[arg(long)]
    pub at: Option<String>,
    /// Take tier, regions and components from this playbook.
    #[arg(long)]
    pub playbook: Option<String>,
    /// Exception reason (T0, or T1 in a soft freeze).
    #[arg(long)]
    pub exception: Option<String>,
    #[arg(long)]
    pub approver: Option<String>,
    /// Write the decision JSON here (`-`: stdout; a symlink or FIFO is written through).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Calendar file (default: the fleet's calendar).
    #[arg(long)]
    pub calendar: Option<PathBuf>,
}

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    crate::ui::log::init(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::NeedsAttention.code();
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(exit) => exit.code(),
        Err(f) => {
            eprintln!("error: {}", crate::record::secrets::redact(&f.message));
            f.exit.code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Exit, Failure> {
    let g = cli.global;
    match cli.command {
        Command::Check { playbooks } => crate::cmd::check::run(&g, &playbooks),
        Command::Ping { targets } => crate::cmd::ping::run(&g, &targets).await,
        Command::Exec {
            targets,
            command,
            group,
            timeout,
        } => crate::cmd::exec::run(&g, &targets, &command, group, &timeout).await,
        Command::Rollout(a) => crate::cmd::rollout::run(&g, &a).await,
        Command::Plan(a) => crate::cmd::plan::run(&g, &a).await,
        Command::Revert { run, yes } => crate::cmd::revert::revert(&g, &run, yes).await,
        Command::Resume { run, yes } => crate::cmd::revert::resume(&g, &run, yes).await,
        Command::Runs { json } => crate::cmd::runs::list(&g, json),
        Command::Show { run, json } => crate::cmd::runs::show(&g, &run, json),
        Command::Status { json } => crate::cmd::runs::status(&g, json),
        Command::Sandbox { action } => crate::cmd::sandbox::run(&action).await,
        Command::Demo { dir, hosts } => crate::cmd::sandbox::demo(dir, hosts).await,
        Command::Gate(a) => crate::cmd::gate::run(&g, &a),
        Command::Calendar { days, tz, at } => crate::cmd::calendar::run(&g, days, tz.as_deref(), at.as_deref()),
    }
}
