//! Shared state of a run in progress: the record, connections, prepared hosts, interrupts.

use super::host::Prepared;
use super::record_plan::PlanRecord;
use super::revert::RestoreCommands;
use crate::record::RunDir;
use crate::ssh::{Connection, Endpoint};
use crate::watch::CompiledWatch;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything the phases need.
pub struct RunCtx {
    pub run: RunDir,
    pub record: PlanRecord,
    pub conns: BTreeMap<String, Arc<Connection>>,
    /// How to reach each host again when its connection dropped (see `reconnect`).
    pub endpoints: BTreeMap<String, Endpoint>,
    pub prepared: BTreeMap<String, Prepared>,
    pub watch: Option<CompiledWatch>,
    pub concurrency: usize,
    /// 0 = running, 1 = first Ctrl-C (stop and revert), 2 = second (leave as is).
    pub interrupt: watch::Receiver<u8>,
    pub calendar: Option<super::engine::CalendarCheck>,
    pub json: bool,
}

impl RunCtx {
    /// Restore commands per host from the plan record.
    pub fn restore_commands(&self) -> BTreeMap<String, RestoreCommands> {
        self.record
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
    pub fn interrupted(&self) -> u8 {
        *self.interrupt.borrow()
    }

    /// Progress line for the operator (timestamped; stdout, or stderr under --json).
    pub fn say(&self, msg: &str) {
        // The span puts the run id on the JSON log event (`--log-format json`).
        let _span = tracing::info_span!("run", run_id = %self.run.id).entered();
        say(self.json, msg);
    }
}

/// Print a timestamped progress line (to stderr when stdout carries JSON).
pub fn say(json: bool, msg: &str) {
    let msg = crate::record::secrets::redact(msg);
    tracing::info!(target: "bellwether::run", "{msg}");
    if crate::ui::log::is_quiet() {
        return;
    }
    let line = format!("{} {msg}\n", chrono::Utc::now().format("%H:%M:%S"));
    // Never panic on a closed terminal or pipe (SIGHUP, `| head`): the run must still finish
    // its revert and its record.
    use std::io::Write;
    let _ = if json {
        std::io::stderr().write_all(line.as_bytes())
    } else {
        std::io::stdout().write_all(line.as_bytes())
    };
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
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "\n{name}: stopping promotion and reverting what this run changed (press Ctrl-C again to stop at once and leave hosts as they are)");
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
