//! Exit codes: cron and CI read these, so each outcome has its own (see docs/run-records.md).

use std::fmt;

/// The process outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every target has the change (or `gate` allowed it).
    Done = 0,
    /// A gate failed and every changed host was reverted and verified.
    Reverted = 1,
    /// Bad input: fleet, playbook or calendar invalid, unknown host, bad flag.
    BadInput = 2,
    /// Blocked by the calendar.
    Blocked = 3,
    /// Another run holds the lock.
    Locked = 4,
    /// Revert failed or was interrupted: hosts need attention.
    NeedsAttention = 5,
    /// Preflight failed: nothing was changed.
    Preflight = 6,
    /// The run stopped at a manual promotion point and waits for `bellwether promote RUN`
    /// (or `abort RUN`); the hosts changed so far keep the change and the run's markers.
    AwaitingPromotion = 7,
    /// `drift`: a target's file no longer holds what the last successful run left there, or a
    /// pin no longer holds.
    Drifted = 8,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that ends the command with a specific exit code and a message for people.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    /// A failure with `exit` and `message`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
    /// Bad input (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        Failure::new(Exit::BadInput, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::input(e.to_string())
    }
}
