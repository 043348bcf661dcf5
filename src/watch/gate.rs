//! The vocabulary of a judgement: which gate broke, why, and the verdict of a window. These
//! go into run records as JSON, so every message is written for the operator reading
//! `summary.md` at 3 a.m., with the numbers that decided it.

use super::stats::Stats;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The kind of gate that judged a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Too many error lines (`max_errors`).
    Errors,
    /// Too few log lines (`min_lines`): a dead or wedged agent logs nothing.
    Silence,
    /// Too long without a log line (`max_silence`): a stalled agent stops logging.
    Gap,
    /// Error lines over all lines above `max_error_rate`.
    ErrorRate,
    /// A metric threshold: percentile, max, `min_rate` or `min_samples`.
    Metric,
    /// The canary is worse than the baseline hosts by more than the configured margin.
    Baseline,
    /// The health command did not succeed within `health_timeout`.
    Health,
}

impl GateKind {
    /// The name used in playbooks, records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Errors => "errors",
            GateKind::Silence => "silence",
            GateKind::Gap => "gap",
            GateKind::ErrorRate => "error_rate",
            GateKind::Metric => "metric",
            GateKind::Baseline => "baseline",
            GateKind::Health => "health",
        }
    }
}

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed gate: which one, and a human sentence with the deciding numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// The gate that failed.
    pub gate: GateKind,
    /// E.g. "3 error lines (max 0): first: 'ERROR model not found: claude-x'".
    pub message: String,
}

impl Breach {
    /// A breach of `gate` described by `message`.
    pub fn new(gate: GateKind, message: impl Into<String>) -> Self {
        Breach {
            gate,
            message: message.into(),
        }
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} gate: {}", self.gate, self.message)
    }
}

/// An absolute gate the canary breached but the baseline hosts breached just as badly, so the
/// change is not to blame (e.g. a provider outage). Kept in the record so nothing is hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excused {
    /// What the canary breached.
    pub breach: Breach,
    /// Why the baseline explains it, with the baseline's numbers.
    pub reason: String,
}

/// The judgement of one host at the end of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when `breaches` is empty.
    pub passed: bool,
    /// Every gate that failed, in gate order.
    pub breaches: Vec<Breach>,
    /// Absolute breaches excused by the baseline (baseline mode only).
    #[serde(default)]
    pub excused: Vec<Excused>,
    /// Gates that could not be judged and why (e.g. too few lines for an error rate).
    #[serde(default)]
    pub skipped: Vec<String>,
    /// What the host's window saw.
    pub stats: Stats,
    /// The baseline hosts pooled, when a baseline was compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Stats>,
}

impl Verdict {
    /// A verdict that passed exactly when there are no breaches.
    pub fn new(breaches: Vec<Breach>, stats: Stats) -> Self {
        Verdict {
            passed: breaches.is_empty(),
            breaches,
            excused: Vec::new(),
            skipped: Vec::new(),
            stats,
            baseline: None,
        }
    }

    /// The first breach, the one a one-line report names.
    pub fn first_breach(&self) -> Option<&Breach> {
        self.breaches.first()
    }
}

/// A number as people write it: integers without ".0", others to two decimals.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A short stretch of time in seconds to the millisecond, a long one as in playbooks:
/// 5100 -> "5.1s", 2004 -> "2.004s" (just over a 2s limit must not read as 2s),
/// 90000 -> "1m 30s".
pub(crate) fn secs(ms: u64) -> String {
    if ms < 60_000 {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        window(ms)
    }
}

/// A fraction as a percentage: 0.125 -> "12.5%".
pub(crate) fn pct(fraction: f64) -> String {
    format!("{}%", num(fraction * 100.0))
}

/// A window length as in playbooks: 600000 -> "10m".
pub(crate) fn window(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// At most `max` characters of `s`, with an ellipsis when cut: log lines can be huge, and a
/// record or message should stay readable.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(num(800.0), "800");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(0.333333), "0.33");
        assert_eq!(pct(0.125), "12.5%");
        assert_eq!(pct(0.03), "3%");
        assert_eq!(window(600_000), "10m");
        assert_eq!(
            (secs(5_100), secs(0), secs(90_000), secs(2_004)),
            ("5.1s".into(), "0s".into(), "1m 30s".into(), "2.004s".into())
        );
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }

    #[test]
    fn gate_kinds_serialize_snake_case() {
        let b = Breach::new(GateKind::ErrorRate, "x");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#"{"gate":"error_rate","message":"x"}"#);
        assert_eq!(b.to_string(), "error_rate gate: x");
    }
}
