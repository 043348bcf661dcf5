//! What a watched window saw: line and error counts, metric distributions, first error lines.
//!
//! Percentiles use the nearest-rank method (see [`percentile`]) because it always returns a
//! value that was actually observed: "p95 = 812 ms" then names a real request, which is what an
//! operator reading a run record expects, and it needs no interpolation policy to explain.

use serde::{Deserialize, Serialize};

/// Samples kept per metric per host; beyond this a uniform reservoir sample is kept, so a long
/// window on a chatty agent uses bounded memory while percentiles stay representative.
pub const MAX_SAMPLES: usize = 100_000;

/// The nearest-rank percentile `p` (0 < p <= 100) of ascending `sorted` data: the value at
/// 1-based rank `ceil(p / 100 * n)`. `None` for empty data.
///
/// Example: for `[15, 20, 35, 40, 50]`, p30 = 20, p50 = 35, p100 = 50. With few samples the
/// high percentiles are the maximum (p99 of 5 values is the largest), which is the cautious
/// reading for a latency gate.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // p * n is exact for the percentiles and sample counts we use, so ceil() does not round up
    // a value that should have been an integer.
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Line counts only: cheap to take after every line, used for mid-window baseline checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Log lines seen.
    pub lines: u64,
    /// Lines that matched an `errors` pattern and no `ignore` pattern.
    pub error_lines: u64,
}

impl Counts {
    /// These counts added to `other`'s: pooling several baseline hosts.
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            lines: self.lines + other.lines,
            error_lines: self.error_lines + other.error_lines,
        }
    }
    /// Error lines as a fraction of lines; `None` without lines (no evidence either way).
    pub fn error_rate(self) -> Option<f64> {
        (self.lines > 0).then(|| self.error_lines as f64 / self.lines as f64)
    }
}

/// One error line kept as evidence, with its time since the window start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// Milliseconds since the window start.
    pub at_ms: u64,
    /// The line as received (truncated; NOT redacted: the record writer redacts).
    pub line: String,
}

/// Distribution of one metric over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// The metric's name from the playbook.
    pub name: String,
    /// Values captured.
    pub count: u64,
    /// Lines whose capture was not a finite number (a log format change shows up here).
    pub unparsed: u64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value (exact, even past [`MAX_SAMPLES`]).
    pub max: Option<f64>,
    /// Arithmetic mean (exact).
    pub mean: Option<f64>,
    /// Nearest-rank 50th percentile.
    pub p50: Option<f64>,
    /// Nearest-rank 95th percentile.
    pub p95: Option<f64>,
    /// Nearest-rank 99th percentile.
    pub p99: Option<f64>,
    /// Kept samples, ascending; not serialized (a record needs the summary, not every value)
    /// but needed in memory to pool baseline hosts.
    #[serde(skip)]
    pub samples: Vec<f64>,
}

/// Everything a window saw on one host (or several, pooled).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Log lines seen.
    pub lines: u64,
    /// Lines that matched an `errors` pattern and no `ignore` pattern.
    pub error_lines: u64,
    /// Lines that matched an `errors` pattern but were excused by an `ignore` pattern.
    pub ignored_lines: u64,
    /// `error_lines / lines` as a fraction (0.03 = 3%); `None` without lines.
    pub error_rate: Option<f64>,
    /// Time of the first line, ms since the window start.
    pub first_line_ms: Option<u64>,
    /// Time of the last line, ms since the window start.
    pub last_line_ms: Option<u64>,
    /// One entry per configured metric, in playbook order.
    pub metrics: Vec<MetricStats>,
    /// The first error lines (up to a fixed number), oldest first.
    pub first_errors: Vec<ErrorLine>,
    /// The longest stretch without a log line, the window's head and tail included; set when
    /// the window is judged (pooled: the longest of any host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_silence: Option<Gap>,
}

/// A stretch of a window without a log line, in ms since the window start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The last line before the stretch (0: the window's start).
    pub from_ms: u64,
    /// The line that ended it, or the window's end (or "now", while it runs).
    pub to_ms: u64,
}

impl Gap {
    /// How long it lasted.
    pub fn ms(self) -> u64 {
        self.to_ms.saturating_sub(self.from_ms)
    }

    /// The longer of two stretches (the earlier one when they are equal).
    pub fn longer(self, other: Gap) -> Gap {
        if other.ms() > self.ms() {
            other
        } else {
            self
        }
    }
}

impl Stats {
    /// The stats of the metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&MetricStats> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Line counts only.
    pub fn counts(&self) -> Counts {
        Counts {
            lines: self.lines,
            error_lines: self.error_lines,
        }
    }

    /// Several hosts' stats pooled as if one host had logged all their lines: counts add up,
    /// percentiles are recomputed over the union of kept samples. Stats read back from a record
    /// carry no samples, so their pooled percentiles are `None`.
    pub fn pooled(hosts: &[Stats]) -> Stats {
        let counts = hosts.iter().fold(Counts::default(), |a, s| a.plus(s.counts()));
        let mut names: Vec<&str> = Vec::new();
        for m in hosts.iter().flat_map(|s| &s.metrics) {
            if !names.contains(&m.name.as_str()) {
                names.push(&m.name);
            }
        }
        let metrics = names
            .iter()
            .map(|name| pool_metric(name, hosts.iter().filter_map(|s| s.metric(name))))
            .collect();
        let mut first_errors: Vec<ErrorLine> = hosts.iter().flat_map(|s| s.first_errors.iter().cloned()).collect();
        first_errors.sort_by_key(|e| e.at_ms);
        first_errors.truncate(hosts.iter().map(|s| s.first_errors.len()).max().unwrap_or(0));
        Stats {
            lines: counts.lines,
            error_lines: counts.error_lines,
            ignored_lines: hosts.iter().map(|s| s.ignored_lines).sum(),
            error_rate: counts.error_rate(),
            first_line_ms: hosts.iter().filter_map(|s| s.first_line_ms).min(),
            last_line_ms: hosts.iter().filter_map(|s| s.last_line_ms).max(),
            metrics,
            first_errors,
            longest_silence: hosts.iter().filter_map(|s| s.longest_silence).reduce(Gap::longer),
        }
    }
}

fn pool_metric<'a>(name: &str, parts: impl Iterator<Item = &'a MetricStats>) -> MetricStats {
    let mut acc = MetricAcc::default();
    for m in parts {
        acc.count += m.count;
        acc.unparsed += m.unparsed;
        acc.sum += m.mean.unwrap_or(0.0) * m.count as f64;
        acc.min = min_opt(acc.min, m.min);
        acc.max = max_opt(acc.max, m.max);
        acc.samples.values.extend_from_slice(&m.samples);
    }
    acc.stats(name)
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// A bounded uniform sample of a stream (Vitter's algorithm R) with a fixed-seed generator, so
/// the same log gives the same percentiles on every run.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    values: Vec<f64>,
    seen: u64,
    limit: usize,
    rng: u64,
}

impl Default for Samples {
    fn default() -> Self {
        Samples::with_limit(MAX_SAMPLES)
    }
}

impl Samples {
    pub(crate) fn with_limit(limit: usize) -> Self {
        Samples {
            values: Vec::new(),
            seen: 0,
            limit: limit.max(1),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn push(&mut self, v: f64) {
        self.seen += 1;
        if self.values.len() < self.limit {
            self.values.push(v);
            return;
        }
        // xorshift64: plenty for choosing which sample to replace.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let j = self.rng % self.seen;
        if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.values.get_mut(j)) {
            *slot = v;
        }
    }
}

/// Running accumulation of one metric during a window.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricAcc {
    pub(crate) samples: Samples,
    pub(crate) count: u64,
    pub(crate) unparsed: u64,
    pub(crate) sum: f64,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl MetricAcc {
    /// Add one captured value; non-finite values count as unparsed (they would poison the
    /// ordering and the mean).
    pub(crate) fn push(&mut self, v: f64) {
        if !v.is_finite() {
            self.unparsed += 1;
            return;
        }
        self.count += 1;
        self.sum += v;
        self.min = min_opt(self.min, Some(v));
        self.max = max_opt(self.max, Some(v));
        self.samples.push(v);
    }

    /// The nearest-rank 95th percentile so far, in linear time (a selection, not a sort):
    /// cheap enough to show live twice a second. The same value [`MetricAcc::stats`] gives.
    pub(crate) fn p95_now(&self) -> Option<f64> {
        let mut v = self.samples.values.clone();
        if v.is_empty() {
            return None;
        }
        let rank = (95.0 / 100.0 * v.len() as f64).ceil() as usize;
        let i = rank.clamp(1, v.len()) - 1;
        Some(*v.select_nth_unstable_by(i, f64::total_cmp).1)
    }

    /// The summary of what was accumulated, under `name`.
    pub(crate) fn stats(&self, name: &str) -> MetricStats {
        let mut samples = self.samples.values.clone();
        samples.sort_by(f64::total_cmp);
        MetricStats {
            name: name.to_string(),
            count: self.count,
            unparsed: self.unparsed,
            min: self.min,
            max: self.max,
            mean: (self.count > 0).then(|| self.sum / self.count as f64),
            p50: percentile(&samples, 50.0),
            p95: percentile(&samples, 95.0),
            p99: percentile(&samples, 99.0),
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_the_textbook_example() {
        let d = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&d, 5.0), Some(15.0));
        assert_eq!(percentile(&d, 30.0), Some(20.0));
        assert_eq!(percentile(&d, 40.0), Some(20.0));
        assert_eq!(percentile(&d, 50.0), Some(35.0));
        assert_eq!(percentile(&d, 100.0), Some(50.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_live_p95_is_the_judged_p95() {
        let mut acc = MetricAcc::default();
        assert_eq!(acc.p95_now(), None);
        for v in [50.0, 10.0, 40.0, 30.0, 20.0, 90.0, 70.0, 60.0, 80.0, 100.0, 5.0] {
            acc.push(v);
            assert_eq!(acc.p95_now(), acc.stats("m").p95);
        }
        assert_eq!(acc.p95_now(), Some(100.0));
    }

    #[test]
    fn nearest_rank_on_one_to_a_hundred() {
        let d: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&d, 50.0), Some(50.0));
        assert_eq!(percentile(&d, 95.0), Some(95.0));
        assert_eq!(percentile(&d, 99.0), Some(99.0));
        // Twenty values: p95 is the 19th, not an interpolation between 19th and 20th.
        let d: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&d, 95.0), Some(19.0));
        assert_eq!(percentile(&d[..1], 99.0), Some(1.0));
    }

    #[test]
    fn accumulator_summarises_and_rejects_non_finite() {
        let mut acc = MetricAcc::default();
        for v in [30.0, 10.0, 20.0, f64::NAN, f64::INFINITY] {
            acc.push(v);
        }
        let s = acc.stats("latency_ms");
        assert_eq!((s.count, s.unparsed), (3, 2));
        assert_eq!((s.min, s.max, s.mean), (Some(10.0), Some(30.0), Some(20.0)));
        assert_eq!((s.p50, s.p95), (Some(20.0), Some(30.0)));
    }

    #[test]
    fn reservoir_stays_bounded_and_exact_extremes() {
        let mut acc = MetricAcc {
            samples: Samples::with_limit(1000),
            ..MetricAcc::default()
        };
        for i in 1..=100_000 {
            acc.push(f64::from(i));
        }
        let s = acc.stats("x");
        assert_eq!(s.samples.len(), 1000);
        assert_eq!((s.count, s.max, s.min), (100_000, Some(100_000.0), Some(1.0)));
        let p50 = s.p50.unwrap_or_default();
        assert!((40_000.0..60_000.0).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn pooling_adds_counts_and_recomputes_percentiles() {
        let host = |vals: &[f64], lines, errors| {
            let mut acc = MetricAcc::default();
            vals.iter().for_each(|v| acc.push(*v));
            Stats {
                lines,
                error_lines: errors,
                error_rate: Counts {
                    lines,
                    error_lines: errors,
                }
                .error_rate(),
                metrics: vec![acc.stats("lat")],
                ..Stats::default()
            }
        };
        let a = host(&[1.0, 2.0, 3.0, 4.0, 5.0], 10, 1);
        let b = host(&[6.0, 7.0, 8.0, 9.0, 10.0], 30, 3);
        let p = Stats::pooled(&[a, b]);
        assert_eq!((p.lines, p.error_lines, p.error_rate), (40, 4, Some(0.1)));
        let m = p.metric("lat").cloned().unwrap_or_else(|| panic!("no metric"));
        assert_eq!((m.count, m.p50, m.p95, m.max), (10, Some(5.0), Some(10.0), Some(10.0)));
        assert_eq!(m.mean, Some(5.5));
        assert_eq!(Stats::pooled(&[]).error_rate, None);
    }
}
