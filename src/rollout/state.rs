//! The states of a run (see machine.rs for the transitions and the diagram).

use super::error::HostError;
use super::error::RecordFailed;
use super::outcome::Ending;
use std::time::Duration;

/// Hosts that failed in a phase, with why.
pub(crate) type Failures = Vec<(String, HostError)>;

/// One phase as the steps see it: worked out once so they agree on hosts and window.
pub(crate) struct Phase {
    pub(crate) idx: usize,
    pub(crate) name: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) is_canary: bool,
    /// Unchanged (or already passed) hosts whose logs are compared with this phase's.
    pub(crate) watched_base: Vec<String>,
    pub(crate) window: Duration,
}

/// Where the run is.
pub(crate) enum State {
    /// Re-check the calendar, record phase `k`, reach its hosts, start its log tails.
    Begin(usize),
    /// Change the phase's hosts.
    Change(Phase),
    /// Watch the window (or wait it out without a log watch), then health.
    Observe(Phase, Failures),
    /// Decide: passed, revert some hosts and go on, or revert the run.
    Judge(Phase, Failures),
    /// The calendar closed: stop before the next phase, keeping what passed.
    Paused(String),
    /// A manual promotion point after `phase`, before phase `at` (named `next`): stop for
    /// `promote RUN` (exit 7), or with `--wait` wait here for it (promotion.rs).
    AwaitPromotion { phase: String, next: String, at: usize },
    /// The operator pressed Ctrl-C (or SIGTERM/SIGHUP arrived).
    Interrupted,
    /// Put back every host the run changed.
    Reverting(String),
    /// The end.
    Finished(Ending),
}

/// What a step returns: the next state, or a record write that failed.
pub(crate) type Step = Result<State, RecordFailed>;
