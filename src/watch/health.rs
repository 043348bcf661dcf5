//! The health gate: the engine runs the playbook's health command until it exits 0 or
//! `health_timeout` passes. This file holds the pure part — the retry schedule and the
//! result — so the engine only runs commands and sleeps.
//!
//! The schedule backs off (250 ms, 500 ms, 1 s, then every 2 s) because a restarted agent is
//! usually healthy within a second, and polling a slow starter every 250 ms for 30 s would
//! only fill the log of the host being judged.

use super::gate::{truncate, window, Breach, GateKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// First retry delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);

/// Longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// Characters of the last attempt's output kept (its end, where the error usually is).
pub const OUTPUT_CHARS: usize = 2000;

/// The delay before the next attempt after `attempt` attempts (1-based) failed: 250 ms,
/// 500 ms, 1 s, then 2 s. Zero for attempt 0: the first attempt starts at once.
pub fn next_delay(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (attempt - 1).min(8);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// The outcome of the health gate on one host, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// Attempts made.
    pub attempts: u32,
    /// Exit status of the last attempt; `None` if it was killed or timed out.
    pub last_exit: Option<i32>,
    /// End of the last attempt's combined output.
    pub last_output: String,
    /// Milliseconds from the first attempt's start to the last attempt's end.
    pub elapsed_ms: u64,
    /// Whether the last attempt exited 0.
    pub passed: bool,
}

impl HealthResult {
    /// A result from the last attempt; keeps the end of `output`.
    pub fn new(attempts: u32, last_exit: Option<i32>, output: &str, elapsed_ms: u64) -> Self {
        HealthResult {
            attempts,
            last_exit,
            last_output: tail(output.trim_end(), OUTPUT_CHARS),
            elapsed_ms,
            passed: last_exit == Some(0),
        }
    }

    /// The health-gate breach, when the command never succeeded.
    pub fn breach(&self) -> Option<Breach> {
        if self.passed {
            return None;
        }
        let exit = match self.last_exit {
            Some(code) => format!("last exit {code}"),
            None => "last attempt killed or timed out".into(),
        };
        let out = self
            .last_output
            .lines()
            .last()
            .map(|l| format!(": '{}'", truncate(l, 200)))
            .unwrap_or_default();
        let times = if self.attempts == 1 { "once" } else { "times" };
        let count = if self.attempts == 1 {
            String::new()
        } else {
            format!("{} ", self.attempts)
        };
        Some(Breach::new(
            GateKind::Health,
            format!(
                "health command failed {count}{times} in {} ({exit}){out}",
                window(self.elapsed_ms)
            ),
        ))
    }
}

/// The last `max` characters of `s`, with a leading ellipsis when cut.
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let start = s.char_indices().nth(n - max).map_or(0, |(i, _)| i);
    format!("…{}", &s[start..])
}

/// What the engine does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStep {
    /// The command exited 0: the gate passed.
    Passed(HealthResult),
    /// Sleep this long, then run the command again (bounded by [`HealthRetry::remaining_ms`]).
    RetryAfter(Duration),
    /// The timeout passed without success: the gate failed.
    Failed(HealthResult),
}

/// Retry state for one host's health gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRetry {
    timeout_ms: u64,
    attempts: u32,
}

impl HealthRetry {
    /// Retry until `timeout` (the playbook's `health_timeout`) has passed.
    pub fn new(timeout: Duration) -> Self {
        HealthRetry {
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            attempts: 0,
        }
    }

    /// Time left for an attempt starting `elapsed_ms` after the first: the engine's per-attempt
    /// command timeout, so a hanging health command cannot outlive the gate.
    pub fn remaining_ms(&self, elapsed_ms: u64) -> u64 {
        self.timeout_ms.saturating_sub(elapsed_ms)
    }

    /// Record an attempt that ended `elapsed_ms` after the first began, with its exit status
    /// (`None`: killed or timed out) and output; say what to do next. The last retry is
    /// scheduled at the deadline, so a slow starter still gets one attempt at the limit.
    pub fn record(&mut self, exit: Option<i32>, output: &str, elapsed_ms: u64) -> HealthStep {
        self.attempts += 1;
        let result = || HealthResult::new(self.attempts, exit, output, elapsed_ms);
        if exit == Some(0) {
            return HealthStep::Passed(result());
        }
        let left = self.remaining_ms(elapsed_ms);
        if left == 0 {
            return HealthStep::Failed(result());
        }
        HealthStep::RetryAfter(next_delay(self.attempts).min(Duration::from_millis(left)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_back_off_and_cap() {
        let ms: Vec<u128> = (0..7).map(|a| next_delay(a).as_millis()).collect();
        assert_eq!(ms, [0, 250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(next_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn retries_until_the_timeout_then_fails() {
        let mut r = HealthRetry::new(Duration::from_secs(1));
        assert_eq!(
            r.record(Some(3), "activating", 10),
            HealthStep::RetryAfter(Duration::from_millis(250))
        );
        assert_eq!(
            r.record(Some(3), "activating", 270),
            HealthStep::RetryAfter(Duration::from_millis(500))
        );
        // 1 s backoff clipped to the 220 ms left.
        assert_eq!(
            r.record(Some(3), "activating", 780),
            HealthStep::RetryAfter(Duration::from_millis(220))
        );
        match r.record(Some(3), "line one\ninactive\n", 1005) {
            HealthStep::Failed(res) => {
                assert_eq!((res.attempts, res.passed, res.last_exit), (4, false, Some(3)));
                assert_eq!(
                    res.breach().map(|b| b.message),
                    Some("health command failed 4 times in 1s 5ms (last exit 3): 'inactive'".into())
                );
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn passes_on_exit_zero_and_records_attempts() {
        let mut r = HealthRetry::new(Duration::from_secs(30));
        assert!(matches!(r.record(None, "", 5000), HealthStep::RetryAfter(_)));
        match r.record(Some(0), "active", 5300) {
            HealthStep::Passed(res) => {
                assert_eq!((res.attempts, res.passed), (2, true));
                assert_eq!(res.breach(), None);
            }
            other => panic!("expected pass, got {other:?}"),
        }
    }

    #[test]
    fn output_keeps_its_end_and_timeouts_are_named() {
        let long = format!("{}END", "x".repeat(5000));
        let res = HealthResult::new(1, None, &long, 30_000);
        assert_eq!(res.last_output.chars().count(), OUTPUT_CHARS + 1);
        assert!(res.last_output.ends_with("END"));
        let msg = res.breach().map(|b| b.message).unwrap_or_default();
        assert!(
            msg.starts_with("health command failed once in 30s (last attempt killed or timed out)"),
            "{msg}"
        );
    }
}
