//! Gates over a watched window: log lines classified by error/ignore patterns, silence,
//! error rate, metrics captured from lines (percentiles, max, rate), comparison with baseline
//! hosts that did not get the change, and the health-command retry schedule.
//!
//! Pure logic: the rollout engine streams lines from each host (`tail`/`journalctl`) into an
//! [`Observer`] with their times and asks it for breaches; nothing here touches the network,
//! the clock or the disk, so every gate is unit-tested with literal lines.

pub mod baseline;
#[cfg(test)]
mod baseline_tests;
pub mod compiled;
#[cfg(test)]
mod gap_tests;
pub mod gate;
pub mod health;
mod judge;
pub mod observer;
pub mod spec;
#[cfg(test)]
mod spec_tests;
pub mod stats;
#[cfg(test)]
mod testutil;

pub use baseline::{compare, comparison, Comparison, Minimums, FAIL_FAST_GRACE_MS};
pub use compiled::{CompiledMetric, CompiledWatch, InvalidWatch};
pub use gate::{Breach, Excused, GateKind, Verdict};
pub use health::{next_delay, HealthResult, HealthRetry, HealthStep};
pub use observer::Observer;
pub use spec::{BaselineSpec, LogKind, LogSource, MetricSpec, WatchSpec};
pub use stats::{percentile, Counts, ErrorLine, Gap, MetricStats, Stats};
