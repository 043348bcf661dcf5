//! Why one host's step failed, typed: the state machine treats each kind differently.

use thiserror::Error;

/// A failed step on one host.
#[derive(Debug, Error)]
pub enum HostError {
    /// The run record could not be written: the whole run stops (an unrecorded change could
    /// not be put back).
    #[error("cannot write the run record: {0}")]
    Record(#[from] std::io::Error),
    /// The host was NOT changed: its file no longer held what preflight read (someone edited
    /// it), so the write was refused before touching it. Revert leaves it alone.
    #[error("{0}")]
    LeftAlone(String),
    /// A step failed (write, apply, health, a hook, a flip); the host may hold the change.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for HostError {
    fn from(s: String) -> Self {
        HostError::Failed(s)
    }
}

impl From<&str> for HostError {
    fn from(s: &str) -> Self {
        HostError::Failed(s.to_string())
    }
}

/// The run record could not be written: the run must stop.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct RecordFailed(pub String);

impl From<HostError> for RecordFailed {
    /// Only for steps whose sole way to fail the run is the record (health after the
    /// window reports the host's own failures separately).
    fn from(e: HostError) -> Self {
        RecordFailed(e.to_string())
    }
}

impl From<std::io::Error> for RecordFailed {
    fn from(e: std::io::Error) -> Self {
        RecordFailed(format!("cannot write the run record: {e}"))
    }
}
