//! How a run ends: one closed set of outcomes, each with its exit code (docs/run-records.md).

use crate::exit::Exit;
use std::fmt;

/// The outcome of a run, recorded in `run_finished` and mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every target has the change.
    Done,
    /// `--dry-run`: planned and recorded, nothing changed.
    DryRun,
    /// The operator said no at the prompt: nothing changed.
    Declined,
    /// A gate failed and every host the run changed was put back and verified.
    Reverted,
    /// Putting hosts back failed on some host: they need a person.
    RevertFailed,
    /// The calendar closed before the next phase: the hosts changed so far keep the change.
    Paused,
    /// Stopped at a manual promotion point: waits for `promote RUN` or `abort RUN`.
    AwaitingPromotion,
    /// Stopped at once by a second interrupt: hosts left as they are.
    Interrupted,
    /// The record could not be written: the run stopped (and tried to put hosts back).
    RecordFailed,
    /// Preflight failed on too many hosts: nothing changed.
    PreflightFailed,
    /// Another run holds some of the hosts: nothing changed.
    Locked,
}

impl Outcome {
    /// The word in the record and in `runs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::DryRun => "dry_run",
            Outcome::Declined => "declined",
            Outcome::Reverted => "reverted",
            Outcome::RevertFailed => "revert_failed",
            Outcome::Paused => "paused",
            Outcome::AwaitingPromotion => "awaiting_promotion",
            Outcome::Interrupted => "interrupted",
            Outcome::RecordFailed => "record_failed",
            Outcome::PreflightFailed => "preflight_failed",
            Outcome::Locked => "locked",
        }
    }

    /// Read the word back from a record.
    pub fn parse(s: &str) -> Option<Outcome> {
        use Outcome::*;
        [
            Done,
            DryRun,
            Declined,
            Reverted,
            RevertFailed,
            Paused,
            AwaitingPromotion,
            Interrupted,
            RecordFailed,
            PreflightFailed,
            Locked,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The process exit code for this outcome.
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Done | Outcome::DryRun => Exit::Done,
            Outcome::Declined => Exit::BadInput,
            Outcome::Reverted => Exit::Reverted,
            Outcome::Paused => Exit::Blocked,
            Outcome::AwaitingPromotion => Exit::AwaitingPromotion,
            Outcome::Locked => Exit::Locked,
            Outcome::PreflightFailed => Exit::Preflight,
            Outcome::RevertFailed | Outcome::Interrupted | Outcome::RecordFailed => Exit::NeedsAttention,
        }
    }

    /// A run that can be continued with `resume`.
    pub fn resumable(self) -> bool {
        matches!(self, Outcome::Paused | Outcome::Interrupted)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished run: its outcome and the message for people.
#[derive(Debug, Clone)]
pub struct Ending {
    pub outcome: Outcome,
    pub message: String,
    /// The start of `message` that a progress line already said as it happened (why a revert
    /// began: `REVERTING 1 host(s): WHY`), so the run's last line need not say it again.
    pub cause: Option<String>,
}

impl Ending {
    /// An ending with `outcome` and `message`.
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Ending {
        Ending {
            outcome,
            message: message.into(),
            cause: None,
        }
    }

    /// The same ending, its message starting with `cause`, already said.
    pub fn said_first(mut self, cause: &str) -> Ending {
        self.cause = Some(cause.to_string());
        self
    }

    /// The message without the cause already said: `every changed host (1) was reverted and
    /// verified` after `REVERTING 1 host(s): canary failed on h01: …`.
    pub fn news(&self) -> &str {
        self.cause
            .as_deref()
            .and_then(|c| self.message.strip_prefix(c))
            .map(|rest| rest.trim_start_matches(';').trim_start())
            .filter(|rest| !rest.is_empty())
            .unwrap_or(&self.message)
    }

    /// The process exit code.
    pub fn exit(&self) -> Exit {
        self.outcome.exit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_and_has_its_exit_code() {
        for (o, code) in [
            (Outcome::Done, 0),
            (Outcome::DryRun, 0),
            (Outcome::Reverted, 1),
            (Outcome::Declined, 2),
            (Outcome::Paused, 3),
            (Outcome::Locked, 4),
            (Outcome::RevertFailed, 5),
            (Outcome::Interrupted, 5),
            (Outcome::RecordFailed, 5),
            (Outcome::PreflightFailed, 6),
            (Outcome::AwaitingPromotion, 7),
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(o.exit().code(), code, "{o}");
        }
        assert_eq!(Outcome::parse("running"), None);
    }

    #[test]
    fn the_news_leaves_out_the_cause_already_said() {
        let e = Ending::new(
            Outcome::Reverted,
            "canary failed on h01: 3 errors; every changed host (1) was reverted",
        )
        .said_first("canary failed on h01: 3 errors");
        assert_eq!(e.news(), "every changed host (1) was reverted");
        assert!(e.message.starts_with("canary failed"), "the record keeps it all");
        assert_eq!(Ending::new(Outcome::Done, "done").news(), "done");
    }
}
