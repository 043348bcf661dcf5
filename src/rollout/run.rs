//! A run in progress: its record (the event sink), its plan, one connection per host, the
//! prepared hosts and the operator's interrupts. Built only by `Run::start` (start.rs),
//! `Run::resume` and `Run::revert` (reopen.rs); driven by the state machine (machine.rs).

use super::host::Prepared;
use super::observe::Tails;
use super::record_plan::PlanRecord;
use super::revert::RestoreCommands;
use crate::calendar::{CalendarSpec, GateRequest};
use crate::record::lock::Lock;
use crate::record::RunDir;
use crate::ssh::{Connection, Endpoint};
use crate::watch::CompiledWatch;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the calendar is re-checked against before each phase.
#[derive(Clone)]
pub struct CalendarCheck {
    pub calendar: CalendarSpec,
    pub request: GateRequest,
    /// `--at` shifts "now" for rehearsals; the offset is kept for later checks.
    pub offset: chrono::Duration,
}

/// How `revert`, `resume` and `rollout` reach hosts: from the fleet, not from `cli`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where run folders live.
    pub runs_dir: std::path::PathBuf,
    /// `-j`, overriding the fleet's concurrency.
    pub concurrency: Option<usize>,
    /// Record unknown host keys (OpenSSH accept-new).
    pub accept_new: bool,
    /// Stdout carries JSON: progress lines go to stderr.
    pub json: bool,
    /// `--yes`: no confirmation prompt.
    pub yes: bool,
    /// `rollout`/`resume`/`promote --wait`: wait at promotion points (see `promotion.rs`).
    pub wait: bool,
    /// `revert`/`resume --break-lock`: break another run's stale lock or marker (recorded).
    /// `rollout` says it in its `StartRequest`.
    pub break_lock: bool,
}

/// A run in progress.
pub struct Run {
    /// The record: events, plan, snapshots; also the sink for progress lines.
    pub(crate) rec: RunDir,
    pub(crate) plan: PlanRecord,
    pub(crate) conns: BTreeMap<String, Arc<Connection>>,
    /// How to reach each host again when its connection dropped (see `reconnect`).
    pub(crate) endpoints: BTreeMap<String, Endpoint>,
    pub(crate) prepared: BTreeMap<String, Prepared>,
    pub(crate) watch: Option<CompiledWatch>,
    pub(crate) concurrency: usize,
    /// 0 = running, 1 = first Ctrl-C (stop and revert), 2 = second (leave as is).
    pub(crate) interrupt: watch::Receiver<u8>,
    pub(crate) calendar: Option<CalendarCheck>,
    /// A resumed run: hosts may already hold this run's change.
    pub(crate) resumed: bool,
    /// Hosts that failed so far (preflight failures count; frozen regions do not).
    pub(crate) failed_hosts: usize,
    /// Hosts the run did not write because someone else changed them: left alone.
    pub(crate) left_alone: Vec<(String, String)>,
    /// `[callbacks]` of the fleet and of the playbook (only the fleet's for a revert whose
    /// playbook cannot be loaded).
    pub(crate) callbacks: crate::config::controls::CallbackSets,
    /// Phases whose promotion wait is over (`promoted` events): not waited for again.
    pub(crate) promoted: Vec<String>,
    /// `--wait`: at a promotion point, wait in this process for `promote`/`abort` (or the
    /// `pause_timeout`, then revert) instead of stopping with exit 7.
    pub(crate) wait_for_promotion: bool,
    /// `pause_timeout`: how long a promotion wait may last before a promotion reverts.
    pub(crate) pause_timeout: Option<std::time::Duration>,
    /// The playbook's `[[edit]]` tables that pin values (rendered per host when checked).
    pub(crate) pinned: Vec<crate::edit::EditSpec>,
    /// Per-region off-peak windows (`rollout.within`), checked at each wave's start.
    pub(crate) within: std::collections::BTreeMap<String, String>,
    /// Tails of the phase being observed (stopped on every way out of the phase).
    pub(crate) tails: Option<Tails>,
    /// When each host of the phase began its change (after its `before` hooks): what its
    /// log tail received earlier is the old agent's, left out of the phase's window.
    pub(crate) changed_at: std::sync::Mutex<BTreeMap<String, std::time::Instant>>,
    /// Held until the run ends: dropping it releases the hosts to other runs.
    pub(crate) _lock: Option<Lock>,
}

impl Run {
    /// `host` begins its change now (see `changed_at`).
    pub(crate) fn changing(&self, host: &str) {
        if let Ok(mut m) = self.changed_at.lock() {
            m.insert(host.to_string(), std::time::Instant::now());
        }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.rec.id
    }

    /// The run folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.rec.dir
    }

    /// Restore commands per host from the plan record.
    pub(crate) fn restore_commands(&self) -> BTreeMap<String, RestoreCommands> {
        self.plan
            .hosts
            .iter()
            .map(|(h, p)| {
                (
                    h.clone(),
                    RestoreCommands {
                        apply: p.apply.clone(),
                        health: p.health.clone(),
                        apply_timeout: Duration::from_millis(p.apply_timeout_ms),
                        health_timeout: Duration::from_millis(p.health_timeout_ms),
                        on_revert: p.on_revert.clone(),
                    },
                )
            })
            .collect()
    }

    /// The interrupt level now.
    pub(crate) fn interrupted(&self) -> u8 {
        *self.interrupt.borrow()
    }

    /// Progress line for the operator, through the run's sink.
    pub(crate) fn say(&self, msg: &str) {
        self.rec.say(msg);
    }

    /// "; left alone (not written by this run): h05 (…)" — or nothing.
    pub(crate) fn left_alone_note(&self) -> String {
        if self.left_alone.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self.left_alone.iter().map(|(h, why)| format!("{h} ({why})")).collect();
        format!(
            "\nleft alone, not written by this run (someone else changed them; nothing to undo): {}",
            list.join("; ")
        )
    }

    /// Stop the current phase's log tails, if any.
    pub(crate) async fn stop_tails(&mut self) {
        if let Some(t) = self.tails.take() {
            t.stop().await;
        }
    }
}

/// Install the Ctrl-C handler: the first press asks for a stop-and-revert, the second for an
/// immediate stop that leaves hosts as they are.
pub fn interrupts() -> watch::Receiver<u8> {
    let (tx, rx) = watch::channel(0u8);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // SIGTERM (systemd, `timeout`, a container stop) and SIGHUP (the terminal or SSH
        // session went away) mean the same as Ctrl-C: stop promoting and put hosts back.
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let mut n = 0u8;
        loop {
            let name = tokio::select! {
                s = int.recv() => s.map(|_| "interrupt"),
                s = term.recv() => s.map(|_| "SIGTERM"),
                s = hup.recv() => s.map(|_| "SIGHUP"),
            };
            let Some(name) = name else { return };
            n = n.saturating_add(1);
            if n == 1 {
                crate::ui::log::notice(None, &format!("\n{name}: stopping promotion and reverting what this run changed (press Ctrl-C again to stop at once and leave hosts as they are)"));
            }
            let _ = tx.send(n);
        }
    });
    rx
}

/// Is stdin a terminal (may we ask)?
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}
