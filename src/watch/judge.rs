//! The absolute gates, judged on one host's stats at window end. Each breach carries the
//! measure it was about, so the baseline comparison can decide whether the baseline hosts
//! explain it (see `baseline.rs`).

use super::compiled::CompiledWatch;
use super::gate::{num, pct, secs, truncate, window, Breach, GateKind};
use super::spec::MetricSpec;
use super::stats::{ErrorLine, Gap, MetricStats, Stats};
use crate::value::Dur;

/// How the silence gate's message ends: the likely cause, for the operator.
pub(crate) const SILENCE_HINT: &str = "is the agent running and logging?";

/// How the gap gate's message ends.
pub(crate) const GAP_HINT: &str = "is the agent stalled?";

/// Characters of the first error line quoted in a message (the full line is in the stats).
const QUOTE_CHARS: usize = 200;

/// Which statistic of a metric a threshold is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    P50,
    P95,
    P99,
    Max,
}

impl Stat {
    pub(crate) const ALL: [Stat; 4] = [Stat::P50, Stat::P95, Stat::P99, Stat::Max];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Stat::P50 => "p50_max",
            Stat::P95 => "p95_max",
            Stat::P99 => "p99_max",
            Stat::Max => "max",
        }
    }

    pub(crate) fn of(self, m: &MetricStats) -> Option<f64> {
        match self {
            Stat::P50 => m.p50,
            Stat::P95 => m.p95,
            Stat::P99 => m.p99,
            Stat::Max => m.max,
        }
    }

    fn threshold(self, spec: &MetricSpec) -> Option<f64> {
        match self {
            Stat::P50 => spec.p50_max,
            Stat::P95 => spec.p95_max,
            Stat::P99 => spec.p99_max,
            Stat::Max => spec.max,
        }
    }
}

/// What an absolute breach measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Measure {
    Silence,
    Gap,
    ErrorCount,
    ErrorRate,
    MinSamples,
    Stat { metric: String, stat: Stat, value: f64 },
    MinRate { metric: String, per_sec: f64 },
}

/// One absolute breach and what it measured.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) breach: Breach,
    pub(crate) measure: Measure,
}

/// All absolute breaches of a window, and the gates that could not be judged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Judgement {
    pub(crate) findings: Vec<Finding>,
    pub(crate) skipped: Vec<String>,
}

impl Judgement {
    fn fail(&mut self, gate: GateKind, measure: Measure, message: String) {
        self.findings.push(Finding {
            breach: Breach::new(gate, message),
            measure,
        });
    }
}

/// Judge every absolute gate on `stats` for a window of `window_ms`.
pub(crate) fn judge(watch: &CompiledWatch, stats: &Stats, window_ms: u64) -> Judgement {
    let spec = watch.spec();
    let mut j = Judgement::default();
    if let Some(min) = spec.min_lines.filter(|min| stats.lines < *min) {
        j.fail(
            GateKind::Silence,
            Measure::Silence,
            format!(
                "{} log lines in {} (min {min}): {SILENCE_HINT}",
                stats.lines,
                window(window_ms)
            ),
        );
    }
    let gap = spec.max_silence.zip(stats.longest_silence);
    if let Some(b) = gap.and_then(|(max, gap)| gap_breach(max, gap, stats.lines, Judged::End(window_ms))) {
        j.findings.push(Finding {
            breach: b,
            measure: Measure::Gap,
        });
    }
    if let Some(b) = error_count_breach(
        spec.effective_max_errors(),
        stats.error_lines,
        stats.first_errors.first(),
    ) {
        j.findings.push(Finding {
            breach: b,
            measure: Measure::ErrorCount,
        });
    }
    if let Some(max) = spec.max_error_rate {
        let need = spec.rate_min_lines();
        if stats.lines < need {
            j.skipped.push(format!(
                "error_rate: not judged, {} lines in the window (needs {need}; min_lines sets it)",
                stats.lines
            ));
        } else if stats.error_lines as f64 * 100.0 > max.0 * stats.lines as f64 {
            j.fail(
                GateKind::ErrorRate,
                Measure::ErrorRate,
                format!(
                    "error rate {} ({} of {} lines) exceeds max_error_rate {max}",
                    pct(stats.error_lines as f64 / stats.lines as f64),
                    stats.error_lines,
                    stats.lines
                ),
            );
        }
    }
    for m in watch.metrics() {
        match stats.metric(&m.spec.name) {
            Some(ms) => judge_metric(&m.spec, ms, window_ms, &mut j),
            None => j.skipped.push(format!("metric {}: no stats", m.spec.name)),
        }
    }
    j
}

fn judge_metric(spec: &MetricSpec, m: &MetricStats, window_ms: u64, j: &mut Judgement) {
    let name = &spec.name;
    if let Some(min) = spec.min_samples.filter(|min| m.count < *min) {
        j.fail(
            GateKind::Metric,
            Measure::MinSamples,
            format!(
                "{name}: {} samples in {} (min_samples {min}){}",
                m.count,
                window(window_ms),
                unparsed_note(m)
            ),
        );
    }
    for stat in Stat::ALL {
        let Some(limit) = stat.threshold(spec) else {
            continue;
        };
        match stat.of(m) {
            None => j.skipped.push(format!(
                "metric {name} {}: not judged, no samples{}",
                stat.key(),
                unparsed_note(m)
            )),
            Some(v) => {
                if let Some(b) = stat_breach(name, stat, v, limit, m.count) {
                    j.findings.push(Finding {
                        breach: b,
                        measure: Measure::Stat {
                            metric: name.clone(),
                            stat,
                            value: v,
                        },
                    });
                }
            }
        }
    }
    if let Some(min) = spec.min_rate {
        if window_ms == 0 {
            j.skipped
                .push(format!("metric {name} min_rate: not judged, empty window"));
        } else {
            let per_sec = m.count as f64 * 1000.0 / window_ms as f64;
            if per_sec < min {
                j.fail(
                    GateKind::Metric,
                    Measure::MinRate {
                        metric: name.clone(),
                        per_sec,
                    },
                    format!(
                        "{name}: {}/s ({} samples in {}) is below min_rate {}/s",
                        num(per_sec),
                        m.count,
                        window(window_ms),
                        num(min)
                    ),
                );
            }
        }
    }
}

/// A note explaining missing samples when captures did not parse (a log format change).
fn unparsed_note(m: &MetricStats) -> String {
    if m.unparsed > 0 {
        format!("; {} captures were not numbers", m.unparsed)
    } else {
        String::new()
    }
}

/// The error-count gate: more than `max` error lines.
pub(crate) fn error_count_breach(max: Option<u64>, error_lines: u64, first: Option<&ErrorLine>) -> Option<Breach> {
    let max = max.filter(|max| error_lines > *max)?;
    let first = first
        .map(|e| format!(": first: '{}'", truncate(&e.line, QUOTE_CHARS)))
        .unwrap_or_default();
    let noun = if error_lines == 1 { "line" } else { "lines" };
    Some(Breach::new(
        GateKind::Errors,
        format!("{error_lines} error {noun} (max {max}){first}"),
    ))
}

/// A metric statistic over its threshold.
pub(crate) fn stat_breach(name: &str, stat: Stat, value: f64, limit: f64, count: u64) -> Option<Breach> {
    (value > limit).then(|| {
        Breach::new(
            GateKind::Metric,
            format!(
                "{name} {} {} exceeds {} {} ({count} samples)",
                stat.label(),
                num(value),
                stat.key(),
                num(limit)
            ),
        )
    })
}

/// When a gap is judged: while the window runs (`tail`: the stretch is still going on), or
/// at the window's end, `ms` after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judged {
    Running { tail: bool },
    End(u64),
}

/// The gap gate: `gap`, a stretch without a line, is longer than `max`.
pub(crate) fn gap_breach(max: Dur, gap: Gap, lines: u64, at: Judged) -> Option<Breach> {
    if u128::from(gap.ms()) <= max.get().as_millis() {
        return None;
    }
    let from = match gap.from_ms {
        0 => "the window's start".to_string(),
        ms => format!("{} into the window", secs(ms)),
    };
    let closed = format!("from {from} to {} into it", secs(gap.to_ms));
    let (stretch, seen) = match at {
        Judged::Running { tail: true } => (format!("since {from}"), format!("{lines} lines so far")),
        Judged::Running { tail: false } => (closed, format!("{lines} lines so far")),
        Judged::End(end) => {
            let stretch = if gap.to_ms >= end {
                format!("from {from} to its end")
            } else {
                closed
            };
            (stretch, format!("{lines} lines in {}", secs(end)))
        }
    };
    Some(Breach::new(
        GateKind::Gap,
        format!(
            "no log line for {} (max_silence {max}), {stretch}; {seen}: {GAP_HINT}",
            secs(gap.ms())
        ),
    ))
}
