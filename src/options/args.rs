//! Per-command arguments that `cmd/` takes as they are: plan, rollout, gate, sandbox actions.

use clap::{Args, Subcommand};
use std::path::PathBuf;

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
    /// At a manual promotion point, wait in this process for `bellwether promote RUN` or
    /// `abort RUN` from another terminal instead of stopping with exit 7; past the
    /// playbook's `pause_timeout` the run reverts by itself (exit 1).
    #[arg(long)]
    pub wait: bool,
}

/// `resume` arguments: those of `revert`, and `--wait`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub reopen: ReopenArgs,
    /// At a manual promotion point, wait in this process for `bellwether promote RUN` or
    /// `abort RUN` from another terminal instead of stopping with exit 7; past the
    /// playbook's `pause_timeout` the run reverts by itself (exit 1).
    #[arg(long)]
    pub wait: bool,
}

/// `revert` and `resume` arguments.
#[derive(Debug, Args)]
pub struct ReopenArgs {
    /// The run: its id, a unique prefix or suffix, or `latest`.
    pub run: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Break another run's stale lock or host marker (its process is gone); recorded as a
    /// `lock_broken` event. Without it, a stale lock or marker stops the command (exit 4).
    #[arg(long)]
    pub break_lock: bool,
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
    /// The decision JSON on stdout (the text goes to stderr); with `--out FILE` too, both.
    #[arg(long)]
    pub json: bool,
}

/// Sandbox actions.
#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Start N simulated hosts and write DIR/fleet.toml and DIR/known_hosts.
    Up {
        /// How many hosts, 1 to 2,000.
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
