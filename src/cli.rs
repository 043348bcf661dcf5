//! The command line (clap derive) and dispatch to the commands in `cmd/`.

use crate::exit::{Exit, Failure};
use crate::options::{GateArgs, Global, PlanArgs, ReopenArgs, ResumeArgs, RolloutArgs, SandboxAction};
use clap::{CommandFactory, Parser, Subcommand, ValueHint};
use std::path::PathBuf;

/// Canary-first rollouts of config, model and provider changes to a fleet of AI-agent hosts.
///
/// One host first, its logs and health watched, then the rest in batches; every changed host
/// put back byte for byte the moment a gate fails. Exit codes: 0 done, 1 reverted,
/// 2 bad input, 3 blocked by the calendar, 4 locked, 5 hosts need attention, 6 preflight failed,
/// 7 waiting for promotion, 8 drift found.
#[derive(Debug, Parser)]
#[command(name = "bellwether", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
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
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Connect to every target, authenticate and run `true`; a table of results.
    ///
    /// TARGETS: host names or globs, group:NAME, region:NAME, !TERM to exclude (default all).
    ///
    /// Example: bellwether ping group:prod '!use1-c'
    Ping {
        targets: Vec<String>,
        /// One JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
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
        /// One JSON document at the end (each host's exit status and output, in fleet order)
        /// instead of text.
        #[arg(long)]
        json: bool,
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
    Revert(ReopenArgs),
    /// Continue a run interrupted during observation or between batches.
    ///
    /// Example: bellwether resume 20261122T101500Z-model-swap-sonnet --yes
    Resume(ResumeArgs),
    /// Continue a run waiting at a manual promotion point (`promote = "manual"`, a "pause"
    /// batch step); past its `pause_timeout` the run is reverted instead. A run whose
    /// process waits for it (`rollout --wait`) is handed the promotion and goes on there.
    ///
    /// Example: bellwether promote 20261122T101500Z-model-swap-sonnet --yes
    Promote {
        run: String,
        #[arg(long)]
        yes: bool,
        /// At the next promotion point, wait in this process (see `rollout --wait`).
        #[arg(long)]
        wait: bool,
    },
    /// Revert a run (typically one waiting for promotion) and end it; with --expired, every
    /// run whose promotion wait outlived its `pause_timeout` (for cron). A run whose process
    /// waits for it (`rollout --wait`) is handed the abort and reverts there.
    ///
    /// Example: bellwether abort --expired --yes
    Abort {
        #[arg(required_unless_present = "expired")]
        run: Option<String>,
        /// Abort every run whose promotion wait expired.
        #[arg(long, conflicts_with = "run")]
        expired: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Read-only: do the targets' files still hold what the last successful run of each
    /// playbook left there, and do its pins still hold? For cron, during a freeze too.
    ///
    /// Exit 0 clean, 8 something drifted (a file changed, or a pin broken), 6 a host could
    /// not be checked (and nothing drifted), 2 bad input.
    ///
    /// Example: bellwether drift playbooks/model-swap.toml --json
    Drift {
        /// Playbooks to check (default: every playbooks/*.toml beside the fleet).
        playbooks: Vec<String>,
        /// One JSON document instead of the table.
        #[arg(long)]
        json: bool,
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
    /// Print a run's summary, or with --log the log lines it kept (logs/HOST.log).
    ///
    /// Example: bellwether show latest --log h01 | less
    Show {
        run: String,
        #[arg(long)]
        json: bool,
        /// Print the kept log of HOST (every kept host's log when HOST is left out).
        #[arg(long, value_name = "HOST", num_args = 0..=1, default_missing_value = "")]
        log: Option<String>,
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
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
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
    /// Print a shell completion script (bash, zsh, fish; elvish and powershell too).
    ///
    /// Example: bellwether completions bash > ~/.local/share/bash-completion/completions/bellwether
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout; with --out DIR, write bellwether.1 and one page per
    /// subcommand (bellwether-rollout.1, ...) into DIR.
    ///
    /// Example: bellwether man --out ~/.local/share/man/man1
    Man {
        /// Folder to write the pages into (it must exist).
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out: Option<PathBuf>,
    },
}

impl Command {
    /// Does this command run (or finish) a rollout? Then a closed pipe must never kill it.
    pub fn changes_hosts(&self) -> bool {
        matches!(
            self,
            Command::Rollout(_)
                | Command::Revert { .. }
                | Command::Resume { .. }
                | Command::Promote { .. }
                | Command::Abort { .. }
        )
    }
}

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    crate::ui::log::init(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let exit = Exit::NeedsAttention.code();
            crate::ui::log::error(&format!("cannot start the async runtime: {e}"), exit);
            return exit;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(exit) => exit.code(),
        Err(f) => {
            let msg = crate::record::secrets::Secrets::default().text(&f.message);
            crate::ui::log::error(&crate::ui::safe::text(&msg), f.exit.code());
            f.exit.code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Exit, Failure> {
    let g = cli.global;
    match cli.command {
        Command::Check { playbooks, json } => crate::cmd::check::run(&g, &playbooks, json),
        Command::Ping { targets, json } => crate::cmd::ping::run(&g, &targets, json).await,
        Command::Exec {
            targets,
            command,
            group,
            timeout,
            json,
        } => {
            let how = crate::cmd::exec::ExecOutput { group, json };
            crate::cmd::exec::run(&g, &targets, &command, how, &timeout).await
        }
        Command::Rollout(a) => crate::cmd::rollout::run(&g, &a).await,
        Command::Plan(a) => crate::cmd::plan::run(&g, &a).await,
        Command::Revert(a) => crate::cmd::revert::revert(&g, &a).await,
        Command::Resume(a) => crate::cmd::revert::resume(&g, &a).await,
        Command::Promote { run, yes, wait } => crate::cmd::revert::promote(&g, &run, yes, wait).await,
        Command::Abort { run, expired, yes } => crate::cmd::revert::abort(&g, run.as_deref(), expired, yes).await,
        Command::Drift { playbooks, json } => crate::cmd::drift::run(&g, &playbooks, json).await,
        Command::Runs { json } => crate::cmd::runs::list(&g, json),
        Command::Show {
            run,
            json,
            log: Some(host),
        } => {
            let _ = json;
            crate::cmd::runs::show_log(&g, &run, (!host.is_empty()).then_some(host.as_str()))
        }
        Command::Show { run, json, log: None } => crate::cmd::runs::show(&g, &run, json),
        Command::Status { json } => crate::cmd::runs::status(&g, json),
        Command::Sandbox { action } => crate::cmd::sandbox::run(&action).await,
        Command::Demo { dir, hosts } => crate::cmd::sandbox::demo(dir, hosts).await,
        Command::Gate(a) => crate::cmd::gate::run(&g, &a),
        Command::Calendar { days, tz, at, json } => {
            crate::cmd::calendar::run(&g, days, tz.as_deref(), at.as_deref(), json)
        }
        Command::Completions { shell } => crate::cmd::completions::run(Cli::command(), shell),
        Command::Man { out } => crate::cmd::man::run(Cli::command(), out.as_deref()),
    }
}
