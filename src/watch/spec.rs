//! The playbook's `[watch]` table: where the agent logs, what counts as an error, which numbers
//! to capture, and the thresholds that judge a window.
//!
//! Decisions (documented here because operators will ask):
//! - `max_errors` defaults to 0 when `errors` patterns are given (any error line fails) and to
//!   "no limit" otherwise: listing an error pattern means "I do not want to see this".
//! - `max_error_rate` is judged at window end and only on a sample of at least `min_lines`
//!   lines, or [`DEFAULT_RATE_MIN_LINES`] when `min_lines` is not set: 1 error in 3 lines is
//!   33% but says little. Below the sample the rate is reported as skipped, not passed
//!   silently, and `max_errors` still applies.
//! - A metric's thresholds are judged on whatever samples exist; `min_samples`, when set, is
//!   itself a gate (fewer samples fails), so a log format change that stops the capture cannot
//!   pass a latency gate by having no latencies.
//! - Thresholds are on the captured number as logged (ms if the log says ms).
//! - `max_silence` measures from the window's start, not from the first line: an agent that
//!   restarts with the new config and never logs again is the stall this gate exists for, and
//!   lines logged while the change was made count at the window's start. Its tail counts too
//!   (the window's end, or "now" while the window runs), so a stall is judged as it happens.

use crate::config::error::Invalid;
use crate::value::{Dur, FieldPath, Percent};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Lines needed before an error rate is judged when `min_lines` is not set.
pub const DEFAULT_RATE_MIN_LINES: u64 = 20;

/// The `[watch]` table of a playbook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// Where the agent's log comes from on each host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSource>,
    /// Regexes; a line matching any (and no `ignore` regex) is an error line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Regexes; a line matching any is never an error line (known noise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Fail as soon as the window has more error lines than this (default 0 with `errors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
    /// Fewer lines than this in the window fails at window end (silence gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lines: Option<u64>,
    /// The longest stretch without a log line allowed in the window, its head and tail
    /// included, e.g. "5s": judged as it happens (a stalled agent fails at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_silence: Option<Dur>,
    /// Error lines / all lines above this fails at window end, e.g. "3%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Percent>,
    /// Numbers captured from log lines, with thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Hosts without the change watched alongside the canary, and the allowed margins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,
    /// Length of the pre-change window recorded on the canary for before/after metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Dur>,
    /// Which hosts' log lines the run keeps in `logs/HOST.log` (see docs/run-records.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_log: Option<KeepLog>,
}

/// `keep_log`: whose log lines a run keeps besides the matched error lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepLog {
    /// The canary's and the baseline hosts' lines during the canary window (and the canary's
    /// `before` window).
    #[default]
    Canary,
    /// Every watched host's lines in every window.
    All,
    /// None: only the error lines (`matched.log`).
    Errors,
}

impl KeepLog {
    /// Are lines seen during `window` kept?
    pub fn keeps(self, window: &str) -> bool {
        match self {
            KeepLog::All => true,
            KeepLog::Canary => window == "canary" || window.ends_with(": canary") || window == "before",
            KeepLog::Errors => false,
        }
    }
}

/// `{ file = "/var/log/agent.log" }` or `{ command = "journalctl -fu hermes -o cat -n0" }`.
///
/// Two optional fields rather than an enum so that "both given" gets a precise message
/// instead of serde's "data did not match any variant".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    /// A file followed through rotation (templated by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A command whose stdout is the log stream (templated by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Which kind of log source, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind<'a> {
    /// Follow this file.
    File(&'a str),
    /// Run this command and read its stdout.
    Command(&'a str),
}

impl LogSource {
    /// The source, or `None` unless exactly one of `file`/`command` is given.
    pub fn kind(&self) -> Option<LogKind<'_>> {
        match (&self.file, &self.command) {
            (Some(f), None) => Some(LogKind::File(f)),
            (None, Some(c)) => Some(LogKind::Command(c)),
            _ => None,
        }
    }
}

/// A number captured from log lines by a regex, with optional thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Unique name, e.g. "latency_ms".
    pub name: String,
    /// Regex with exactly one capture group around the number, e.g. `latency_ms=(\d+)`.
    pub capture: String,
    /// Median above this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_max: Option<f64>,
    /// 95th percentile above this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_max: Option<f64>,
    /// 99th percentile above this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_max: Option<f64>,
    /// Any single value above this fails (fail-fast: it cannot un-happen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Fewer captured values per second over the window than this fails (throughput).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rate: Option<f64>,
    /// Fewer captured values than this in the window fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
}

/// Compare the canary with K hosts that did not get the change, watched over the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// How many unchanged hosts to watch alongside the canary.
    pub hosts: usize,
    /// Canary error rate may exceed the baseline's by at most this many percentage points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate_increase: Option<Percent>,
    /// Canary p95 may exceed the baseline's by at most this fraction, e.g. "20%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p95_increase: Option<Percent>,
    /// Which metric's p95 to compare (default: the first metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The canary's log lines per second must be at least this fraction of a baseline host's
    /// (0.5: half the baseline's rate), judged at window end: a stalled or starved agent logs
    /// less than its unchanged peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_line_rate_ratio: Option<f64>,
}

impl WatchSpec {
    /// The error-count limit in force: `max_errors`, else 0 when `errors` are given.
    pub fn effective_max_errors(&self) -> Option<u64> {
        self.max_errors.or_else(|| (!self.errors.is_empty()).then_some(0))
    }

    /// Lines needed before `max_error_rate` (or the baseline rate comparison) is judged.
    pub fn rate_min_lines(&self) -> u64 {
        self.min_lines.unwrap_or(DEFAULT_RATE_MIN_LINES).max(1)
    }

    /// The metric the baseline compares p95 on: the named one, else the first.
    pub fn baseline_metric(&self) -> Option<&MetricSpec> {
        let b = self.baseline.as_ref()?;
        match &b.metric {
            Some(name) => self.metrics.iter().find(|m| &m.name == name),
            None => self.metrics.first(),
        }
    }

    /// Every semantic problem of this table, located under `path` (normally `watch`).
    pub fn validate(&self, path: &FieldPath) -> Vec<Invalid> {
        let mut out = Vec::new();
        self.validate_log(path, &mut out);
        check_patterns(&self.errors, &path.key("errors"), &mut out);
        check_patterns(&self.ignore, &path.key("ignore"), &mut out);
        if self.errors.is_empty() {
            for (key, set) in [
                ("max_errors", self.max_errors.is_some()),
                ("max_error_rate", self.max_error_rate.is_some()),
            ] {
                if set {
                    out.push(Invalid::new(
                        path.key(key),
                        "has no effect without `errors` patterns; add e.g. errors = [\"ERROR\"]",
                    ));
                }
            }
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let p = path.key("metrics").index(i);
            if let Some(j) = self.metrics[..i].iter().position(|o| o.name == m.name) {
                out.push(Invalid::new(
                    p.key("name"),
                    format!("metric name {:?} is already used by metrics[{j}]", m.name),
                ));
            }
            m.validate(&p, &mut out);
        }
        if let Some(b) = &self.baseline {
            self.validate_baseline(b, &path.key("baseline"), &mut out);
        }
        if self.before.is_some_and(|d| d.get().is_zero()) {
            out.push(Invalid::new(path.key("before"), "must be longer than 0s, e.g. \"2m\""));
        }
        if self.max_silence.is_some_and(|d| d.get().is_zero()) {
            out.push(Invalid::new(
                path.key("max_silence"),
                "must be longer than 0s: the longest stretch without a log line, e.g. \"30s\"",
            ));
        }
        out
    }

    /// `check`'s warnings about `max_silence` against the observation windows it is judged in
    /// (`(setting, length)` pairs such as `("rollout.observe", 10m)`): a limit that is not
    /// shorter than a window can never fail in it.
    pub fn max_silence_warnings(&self, windows: &[(&str, Duration)]) -> Vec<String> {
        let Some(max) = self.max_silence else {
            return Vec::new();
        };
        windows
            .iter()
            .filter(|(_, w)| max.get() >= *w)
            .map(|(name, w)| {
                format!(
                    "watch.max_silence ({max}) is not shorter than {name} ({}): it can never fail in that \
                     window; make it a few times the agent's usual gap between log lines",
                    humantime::format_duration(*w)
                )
            })
            .collect()
    }

    fn validate_log(&self, path: &FieldPath, out: &mut Vec<Invalid>) {
        let p = path.key("log");
        let Some(log) = &self.log else {
            let gates = !self.errors.is_empty()
                || self.min_lines.is_some()
                || self.max_silence.is_some()
                || !self.metrics.is_empty()
                || self.baseline.is_some()
                || self.before.is_some();
            if gates {
                out.push(Invalid::new(
                    p,
                    "the watch gates need a log source: add log = { file = \"/var/log/agent.log\" } \
                     or log = { command = \"journalctl -fu UNIT -o cat -n0\" }",
                ));
            }
            return;
        };
        match (&log.file, &log.command) {
            (Some(_), Some(_)) => out.push(Invalid::new(p, "give either `file` or `command`, not both")),
            (None, None) => out.push(Invalid::new(
                p,
                "give `file = \"/path/to/log\"` or `command = \"journalctl -fu UNIT -o cat -n0\"`",
            )),
            (Some(s), None) | (None, Some(s)) if s.trim().is_empty() => {
                let key = if log.file.is_some() { "file" } else { "command" };
                out.push(Invalid::new(p.key(key), "must not be empty"));
            }
            _ => {}
        }
    }

    fn validate_baseline(&self, b: &BaselineSpec, p: &FieldPath, out: &mut Vec<Invalid>) {
        if b.hosts == 0 {
            out.push(Invalid::new(
                p.key("hosts"),
                "must be at least 1: the number of unchanged hosts watched alongside the canary",
            ));
        }
        if let Some(name) = &b.metric {
            if !self.metrics.iter().any(|m| &m.name == name) {
                let known: Vec<&str> = self.metrics.iter().map(|m| m.name.as_str()).collect();
                out.push(Invalid::new(
                    p.key("metric"),
                    format!("names no metric {name:?}; known metrics: [{}]", known.join(", ")),
                ));
            }
        }
        if let Some(r) = b
            .min_line_rate_ratio
            .filter(|r| !(r.is_finite() && *r > 0.0 && *r <= 1.0))
        {
            out.push(Invalid::new(
                p.key("min_line_rate_ratio"),
                format!("must be a fraction above 0 and at most 1 (0.5: half the baseline's line rate), got {r}"),
            ));
        }
        if b.max_p95_increase.is_some() && self.metrics.is_empty() {
            out.push(Invalid::new(
                p.key("max_p95_increase"),
                "needs a metric to compare: add one to `metrics`",
            ));
        }
        if b.max_error_rate_increase.is_some() && self.errors.is_empty() {
            out.push(Invalid::new(
                p.key("max_error_rate_increase"),
                "has no effect without `errors` patterns",
            ));
        }
    }
}

impl MetricSpec {
    fn validate(&self, p: &FieldPath, out: &mut Vec<Invalid>) {
        if self.name.trim().is_empty() {
            out.push(Invalid::new(p.key("name"), "must not be empty, e.g. \"latency_ms\""));
        }
        match Regex::new(&self.capture) {
            Err(e) => out.push(Invalid::new(
                p.key("capture"),
                format!("invalid regex {:?}: {e}", self.capture),
            )),
            // captures_len counts the implicit whole-match group 0.
            Ok(re) if re.captures_len() != 2 => out.push(Invalid::new(
                p.key("capture"),
                format!(
                    "regex {:?} must have exactly one capture group around the number \
                     (found {}), e.g. 'latency_ms=(\\d+)'; use (?:...) for other grouping",
                    self.capture,
                    re.captures_len() - 1
                ),
            )),
            Ok(_) => {}
        }
        for (key, v) in [
            ("p50_max", self.p50_max),
            ("p95_max", self.p95_max),
            ("p99_max", self.p99_max),
            ("max", self.max),
            ("min_rate", self.min_rate),
        ] {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v < 0.0) {
                out.push(Invalid::new(p.key(key), format!("must be a number >= 0, got {v}")));
            }
        }
    }
}

fn check_patterns(patterns: &[String], p: &FieldPath, out: &mut Vec<Invalid>) {
    for (i, pat) in patterns.iter().enumerate() {
        if pat.is_empty() {
            out.push(Invalid::new(p.index(i), "an empty pattern matches every line"));
        } else if let Err(e) = Regex::new(pat) {
            out.push(Invalid::new(p.index(i), format!("invalid regex {pat:?}: {e}")));
        }
    }
}
