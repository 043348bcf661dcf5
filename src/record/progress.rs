//! Where a run's progress lines go (a terminal, stderr beside JSON on stdout, nothing, or
//! JSON lines), and what a JSON line can say about where the run is.

use super::events::EventKind;
use chrono::Utc;

/// Where a run's progress lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Timestamped lines on stdout (a terminal, cron mail).
    Stdout,
    /// Timestamped lines on stderr, because stdout carries the command's JSON.
    Stderr,
    /// Nothing (`-q`): the record and the exit code say it all.
    Quiet,
    /// `--log-format json`: one JSON object a line on stderr, for progress lines and for
    /// every event of the run (see `ui::json_log`); stdout keeps only the command's output.
    Json,
}

impl Progress {
    /// The renderer for a command: stderr when stdout carries JSON, nothing under `-q`, JSON
    /// lines under `--log-format json`.
    pub fn for_output(json: bool) -> Progress {
        if crate::ui::log::is_quiet() {
            Progress::Quiet
        } else if crate::ui::log::is_json() {
            Progress::Json
        } else if json {
            Progress::Stderr
        } else {
            Progress::Stdout
        }
    }

    /// The terminal view for a run printing here: only for text lines on a terminal.
    pub(crate) fn live(self) -> Option<crate::ui::live::Live> {
        match self {
            Progress::Stdout => crate::ui::live::Live::for_terminal(false),
            Progress::Stderr => crate::ui::live::Live::for_terminal(true),
            Progress::Quiet | Progress::Json => None,
        }
    }

    /// Print one timestamped line. Never panics on a closed terminal or pipe (SIGHUP,
    /// `| head`): the run must still finish its revert and its record.
    pub fn line(self, msg: &str) {
        self.line_with(msg, serde_json::Map::new());
    }

    /// [`Progress::line`], with the fields a JSON line carries beside its `message`
    /// (`run_id`, `phase`, `host`); text lines show the message alone.
    pub fn line_with(self, msg: &str, fields: serde_json::Map<String, serde_json::Value>) {
        use std::io::Write;
        // It may quote a host's log line or error: control characters escaped for terminals.
        let msg = crate::ui::safe::text(msg);
        let msg: &str = &msg;
        let line = stamped(msg);
        let _ = match self {
            Progress::Stdout => std::io::stdout().write_all(line.as_bytes()),
            Progress::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Progress::Quiet => Ok(()),
            Progress::Json => {
                let mut m = crate::ui::json_log::object("info");
                m.extend(fields);
                m.insert("message".into(), msg.into());
                crate::ui::json_log::write_line(m);
                Ok(())
            }
        };
    }
}

/// A text progress line as written: `HH:MM:SS message\n` (UTC), the message already escaped.
pub(crate) fn stamped(msg: &str) -> String {
    format!("{} {msg}\n", Utc::now().format("%H:%M:%S"))
}

/// What a JSON progress line can say about where the run is: the phase under way and the
/// run's hosts (to tell which host a line is about).
#[derive(Default)]
pub(crate) struct Whereabouts {
    /// The phase under way.
    pub(crate) phase: Option<String>,
    hosts: Vec<String>,
}

impl Whereabouts {
    /// Follow the run through its events.
    pub(crate) fn note(&mut self, kind: &EventKind) {
        match kind {
            EventKind::RunStarted { targets, .. } => self.hosts.extend(targets.iter().cloned()),
            EventKind::PhaseStarted { phase, .. } => self.phase = Some(phase.clone()),
            EventKind::RevertStarted { .. } => self.phase = Some("revert".into()),
            _ => {}
        }
    }

    /// `run_id`, `phase` and `host` for a progress line: "batch 1: h03: 31 lines…" is about
    /// h03 in batch 1, "h01: reverted and verified" about h01.
    pub(crate) fn fields(&self, run_id: &str, msg: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("run_id".into(), run_id.into());
        let mut rest = msg;
        let mut phase = self.phase.clone();
        if let Some((head, tail)) = msg.split_once(": ") {
            if head == "canary"
                || head == "revert"
                || head.strip_prefix("batch ").is_some_and(|n| n.parse::<u32>().is_ok())
            {
                phase = Some(head.to_string());
                rest = tail;
            }
        }
        if let Some(p) = phase {
            m.insert("phase".into(), p.into());
        }
        let host = rest
            .split([':', ' '])
            .next()
            .filter(|w| self.hosts.iter().any(|h| h == w));
        if let Some(h) = host {
            m.insert("host".into(), h.into());
        }
        m
    }
}

/// The step of the terminal view an event is, if any (the view knows nothing of events).
pub(crate) fn follow(kind: &EventKind) -> Option<crate::ui::live::Step<'_>> {
    use crate::ui::live::Step;
    Some(match kind {
        EventKind::PhaseStarted { phase, hosts } => Step::Phase {
            name: phase,
            hosts: hosts.len(),
        },
        EventKind::ObserveStarted { .. } => Step::Observing,
        EventKind::PhasePassed { .. } => Step::Passed,
        EventKind::RevertStarted { hosts, .. } => Step::Revert { hosts: hosts.len() },
        EventKind::HostRestored { host, .. } | EventKind::RevertFailed { host, .. } => Step::HostPutBack(host),
        EventKind::RunFinished { .. }
        | EventKind::AwaitingPromotion { .. }
        | EventKind::Paused { .. }
        | EventKind::Interrupted { .. } => Step::Stopped,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_names_its_phase_and_host() {
        let mut w = Whereabouts::default();
        w.note(&EventKind::RunStarted {
            run_id: "r".into(),
            playbook: "p".into(),
            playbook_path: "p.toml".into(),
            tier: "T2".into(),
            component: "model".into(),
            user: "ops".into(),
            pid: 1,
            targets: vec!["h01".into(), "h02".into()],
            resumed: false,
        });
        let f = w.fields("r", "plan: canary: h01");
        assert_eq!((f.get("phase"), f.get("host")), (None, None), "{f:?}");
        w.note(&EventKind::PhaseStarted {
            phase: "batch 1".into(),
            hosts: vec!["h02".into()],
        });
        let f = w.fields("r", "batch 1: h02: 31 lines, 0 errors, gates passed");
        assert_eq!(f["phase"], "batch 1");
        assert_eq!(f["host"], "h02");
        assert_eq!(f["run_id"], "r");
        let f = w.fields("r", "h01: reverted and verified (agent/config.toml)");
        assert_eq!(
            (f["phase"].as_str(), f["host"].as_str()),
            (Some("batch 1"), Some("h01"))
        );
        let f = w.fields("r", "REVERTING 2 host(s): batch 1 failed on h02: x");
        assert!(f.get("host").is_none(), "{f:?}");
    }
}
