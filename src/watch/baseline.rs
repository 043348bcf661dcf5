//! Judging the canary against K hosts that did not get the change, watched over the same
//! window, so that what the whole fleet suffers (a provider outage, a traffic spike) does not
//! fail the canary, and what only the canary suffers does.
//!
//! The rules, in baseline mode (the canary window with `[watch.baseline]` configured):
//! - Baseline hosts are pooled as if one host had logged all their lines ([`Stats::pooled`]).
//! - Relative gates ([`comparison`]): the canary fails when its error rate exceeds the
//!   baseline's by more than `max_error_rate_increase` percentage points, or its p95 of the
//!   compared metric exceeds the baseline's p95 by more than `max_p95_increase` (relative),
//!   or its log lines per second fall below `min_line_rate_ratio` times a baseline host's
//!   (the pooled lines divided by the hosts; judged once a baseline host has logged the lines
//!   an error rate needs, on average, so a quiet fleet is not compared).
//! - Absolute gates are still judged on the canary, but a breach of `max_errors`,
//!   `max_error_rate`, a metric percentile/max or `min_rate` is *excused* when the baseline is
//!   at least as bad on that measure (within the same margins, 0 when not configured): e.g.
//!   `max_errors = 0` and 30% errors on every host is an outage, not the change. Excused
//!   breaches stay in the verdict, so the record shows what was waived and why.
//! - Silence (`min_lines`), gaps (`max_silence`) and `min_samples` are never excused: they
//!   mean there is not enough canary evidence to judge the change at all, whatever the
//!   baseline does. When the canary logged nothing **and** neither did any baseline host, the
//!   silence is blamed on the watch (a wrong log path or command), not on the change
//!   ([`blame_the_watch`]); it still fails, since nothing was judged.
//! - No baseline host (all unreachable, or none configured to watch) means the absolute gates
//!   apply unchanged: losing the baseline must never make a canary pass more easily.
//! - Fail-fast ([`fail_fast`]): an error count over `max_errors` that the baseline does not
//!   show, once it has lasted [`FAIL_FAST_GRACE_MS`]; and a gap over `max_silence`, at once
//!   (never excused, see above). Everything else waits for the window end, where the full
//!   comparison is made.

use super::compiled::CompiledWatch;
use super::gate::{num, pct, secs, Breach, Excused, GateKind, Verdict};
use super::judge::{error_count_breach, judge, Finding, Measure, GAP_HINT, SILENCE_HINT};
use super::spec::BaselineSpec;
use super::stats::{Counts, ErrorLine, Stats};
use crate::value::Percent;

/// How long the canary's error count must stay over `max_errors`, unexplained by the
/// baseline, before baseline mode fails fast: an outage reaches every host's log within
/// seconds of each other, and the canary's lines may simply arrive first.
pub const FAIL_FAST_GRACE_MS: u64 = 15_000;

/// Float noise allowance so "exactly at the limit" passes.
const EPS: f64 = 1e-9;

/// Sample sizes below which a relative gate is skipped rather than judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minimums {
    /// Lines needed to compare rates: the canary's for the error rate, a baseline host's (on
    /// average) for the line rate.
    pub lines: u64,
    /// Canary and pooled-baseline samples needed to compare p95.
    pub samples: u64,
}

impl Default for Minimums {
    fn default() -> Self {
        Minimums { lines: 1, samples: 1 }
    }
}

/// The relative gates' outcome and the pooled baseline they used.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The baseline hosts pooled.
    pub baseline: Stats,
    /// Relative gates that failed.
    pub breaches: Vec<Breach>,
    /// Relative gates that could not be judged and why.
    pub skipped: Vec<String>,
}

/// The relative gates with the smallest samples (1 line, 1 value); the breaches joined into
/// one. [`Observer::finish_with_baseline`](super::Observer::finish_with_baseline) is the full
/// judgement with the playbook's sample sizes and excusals.
pub fn compare(canary: &Stats, baseline: &[Stats], spec: &BaselineSpec, window_ms: u64) -> Option<Breach> {
    let c = comparison(canary, baseline, spec, Minimums::default(), window_ms);
    let message = c
        .breaches
        .iter()
        .map(|b| b.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    (!c.breaches.is_empty()).then(|| Breach::new(GateKind::Baseline, message))
}

/// Judge the relative gates of `spec` on the canary against the pooled `baseline`, both
/// watched over the same window of `window_ms`.
pub fn comparison(
    canary: &Stats,
    baseline: &[Stats],
    spec: &BaselineSpec,
    min: Minimums,
    window_ms: u64,
) -> Comparison {
    let mut c = Comparison {
        baseline: Stats::pooled(baseline),
        breaches: Vec::new(),
        skipped: Vec::new(),
    };
    if baseline.is_empty() {
        c.skipped
            .push("baseline: no baseline host was watched; the absolute gates applied unchanged".into());
        return c;
    }
    if let Some(inc) = spec.max_error_rate_increase {
        compare_error_rate(canary, baseline.len(), inc, min, &mut c);
    }
    if let Some(inc) = spec.max_p95_increase {
        let name = spec
            .metric
            .as_deref()
            .or(canary.metrics.first().map(|m| m.name.as_str()));
        compare_p95(canary, name, baseline.len(), inc, min, &mut c);
    }
    if let Some(ratio) = spec.min_line_rate_ratio {
        compare_line_rate(canary, baseline.len(), ratio, min, window_ms, &mut c);
    }
    c
}

/// Throughput: a stalled or starved canary logs fewer lines than its unchanged peers over the
/// same window, even when it logs enough for `min_lines`.
fn compare_line_rate(canary: &Stats, hosts: usize, ratio: f64, min: Minimums, window_ms: u64, c: &mut Comparison) {
    let per_host = c.baseline.lines as f64 / hosts.max(1) as f64;
    if per_host < min.lines as f64 {
        c.skipped.push(format!(
            "baseline line rate: not judged, the baseline hosts logged {} lines per host (needs {})",
            num(per_host),
            min.lines
        ));
        return;
    }
    let share = canary.lines as f64 / per_host;
    if share + EPS < ratio {
        let per_sec = |lines: f64| num(lines * 1000.0 / window_ms.max(1) as f64);
        let message = format!(
            "line rate {}/s ({} lines in {}) vs baseline {}/s per host ({} lines on {hosts} hosts): \
             {:.0}% of the baseline's, below min_line_rate_ratio {}",
            per_sec(canary.lines as f64),
            canary.lines,
            secs(window_ms),
            per_sec(per_host),
            c.baseline.lines,
            share * 100.0,
            num(ratio)
        );
        c.breaches.push(Breach::new(GateKind::Baseline, message));
    }
}

/// A silence breach on a canary that logged nothing while every baseline host logged nothing
/// either: the same watch sees nothing anywhere, so it is the watch (a misspelt log path, a
/// log command for the wrong unit) that is wrong, not the change. The gate still fails — the
/// change could not be judged — but the message says where to look.
pub(crate) fn blame_the_watch(b: Breach, canary_lines: u64, baseline: &[Counts]) -> Breach {
    if canary_lines > 0 || baseline.is_empty() || baseline.iter().any(|c| c.lines > 0) {
        return b;
    }
    let numbers = [SILENCE_HINT, GAP_HINT]
        .iter()
        .find_map(|hint| b.message.strip_suffix(hint))
        .unwrap_or(&b.message)
        .trim_end_matches([':', ' ']);
    let who = match baseline.len() {
        1 => "the baseline host".to_string(),
        n => format!("the {n} baseline hosts"),
    };
    Breach::new(b.gate, format!("{numbers}; {who} logged nothing either: {BLAME}"))
}

/// How a silence breach blamed on the watch ends.
const BLAME: &str = "the watch itself is probably wrong (check watch.log, its file path or command), not the change";

fn compare_error_rate(canary: &Stats, hosts: usize, inc: Percent, min: Minimums, c: &mut Comparison) {
    if canary.lines < min.lines {
        c.skipped.push(format!(
            "baseline error rate: not judged, canary logged {} lines (needs {})",
            canary.lines, min.lines
        ));
        return;
    }
    let (Some(cr), Some(br)) = (canary.error_rate, c.baseline.error_rate) else {
        c.skipped
            .push("baseline error rate: not judged, baseline hosts logged no lines".into());
        return;
    };
    if cr * 100.0 > br * 100.0 + inc.0 + EPS {
        let message = format!(
            "error rate {} vs baseline {}: +{} points exceeds max_error_rate_increase {inc}",
            rate_of(canary.counts(), None),
            rate_of(c.baseline.counts(), Some(hosts)),
            num((cr - br) * 100.0)
        );
        c.breaches.push(Breach::new(GateKind::Baseline, message));
    }
}

fn compare_p95(canary: &Stats, name: Option<&str>, hosts: usize, inc: Percent, min: Minimums, c: &mut Comparison) {
    let p95s = name.and_then(|n| {
        let (cm, bm) = (canary.metric(n)?, c.baseline.metric(n)?);
        let enough = cm.count >= min.samples && bm.count >= min.samples;
        Some((n, cm.p95.filter(|_| enough)?, bm.p95.filter(|_| enough)?))
    });
    let Some((n, cp, bp)) = p95s else {
        c.skipped.push(format!(
            "baseline p95 of {}: not judged, fewer than {} samples on the canary or the baseline",
            name.unwrap_or("(no metric)"),
            min.samples
        ));
        return;
    };
    if cp > bp * (1.0 + inc.fraction()) + EPS {
        let by = if bp > 0.0 {
            format!("+{}", pct(cp / bp - 1.0))
        } else {
            "up from 0".into()
        };
        let message = format!(
            "{n} p95 {} vs baseline {} ({hosts} hosts): {by} exceeds max_p95_increase {inc}",
            num(cp),
            num(bp)
        );
        c.breaches.push(Breach::new(GateKind::Baseline, message));
    }
}

/// "8% (8 of 100 lines)" or, for the pooled baseline, "0.2% (2 of 900 lines on 3 hosts)".
fn rate_of(c: Counts, hosts: Option<usize>) -> String {
    let on = hosts.map(|h| format!(" on {h} hosts")).unwrap_or_default();
    let rate = c.error_rate().map(pct).unwrap_or_else(|| "n/a".into());
    format!("{rate} ({} of {} lines{on})", c.error_lines, c.lines)
}

/// The canary's verdict in baseline mode (rules in the module doc).
pub(crate) fn verdict(
    watch: &CompiledWatch,
    spec: &BaselineSpec,
    stats: Stats,
    window_ms: u64,
    baseline: &[Stats],
) -> Verdict {
    let j = judge(watch, &stats, window_ms);
    let samples = watch
        .spec()
        .baseline_metric()
        .and_then(|m| m.min_samples)
        .unwrap_or(1)
        .max(1);
    let min = Minimums {
        lines: watch.spec().rate_min_lines(),
        samples,
    };
    let cmp = comparison(&stats, baseline, spec, min, window_ms);
    let counts: Vec<Counts> = baseline.iter().map(Stats::counts).collect();
    let mut breaches: Vec<Breach> = Vec::new();
    let mut excused = Vec::new();
    let mut skipped = j.skipped;
    for f in j.findings {
        let silent = matches!(f.measure, Measure::Silence | Measure::Gap);
        match excuse(&f, &stats, &cmp.baseline, baseline.len(), spec, window_ms) {
            Some(reason) => excused.push(Excused {
                breach: f.breach,
                reason,
            }),
            None if silent => match blame_the_watch(f.breach, stats.lines, &counts) {
                // One sentence blaming the watch says it all; the gap adds nothing to it.
                b if b.message.ends_with(BLAME) && breaches.iter().any(|x| x.message.ends_with(BLAME)) => {
                    skipped.push(format!("{}: {}", b.gate, b.message))
                }
                b => breaches.push(b),
            },
            None => breaches.push(f.breach),
        }
    }
    breaches.extend(cmp.breaches);
    let mut v = Verdict::new(breaches, stats);
    v.excused = excused;
    v.skipped = skipped;
    v.skipped.extend(cmp.skipped);
    v.baseline = Some(cmp.baseline);
    v
}

/// Why the baseline explains an absolute breach, or `None` when it does not.
fn excuse(
    f: &Finding,
    canary: &Stats,
    pooled: &Stats,
    hosts: usize,
    spec: &BaselineSpec,
    window_ms: u64,
) -> Option<String> {
    if hosts == 0 {
        return None;
    }
    match &f.measure {
        Measure::Silence | Measure::Gap | Measure::MinSamples => None,
        Measure::ErrorCount | Measure::ErrorRate => {
            let margin = spec.max_error_rate_increase.map_or(0.0, |p| p.0);
            let (cr, br) = (canary.error_rate?, pooled.error_rate?);
            (cr * 100.0 <= br * 100.0 + margin + EPS).then(|| {
                format!(
                    "the baseline shows the same errors: {} vs canary {}",
                    rate_of(pooled.counts(), Some(hosts)),
                    rate_of(canary.counts(), None)
                )
            })
        }
        Measure::Stat { metric, stat, value } => {
            let margin = spec.max_p95_increase.map_or(0.0, |p| p.fraction());
            let base = stat.of(pooled.metric(metric)?)?;
            (*value <= base * (1.0 + margin) + EPS).then(|| {
                format!(
                    "the baseline is as high: {metric} {} {} on {hosts} hosts",
                    stat.label(),
                    num(base)
                )
            })
        }
        Measure::MinRate { metric, per_sec } => {
            let count = pooled.metric(metric)?.count;
            let base = count as f64 * 1000.0 / window_ms.max(1) as f64 / hosts as f64;
            (*per_sec + EPS >= base).then(|| {
                format!(
                    "the baseline is as low: {metric} {}/s per host on {hosts} hosts",
                    num(base)
                )
            })
        }
    }
}

/// Baseline-mode fail-fast (see the module doc); `over_at_ms` is when the canary's error count
/// first exceeded `max_errors`.
pub(crate) fn fail_fast(
    spec: &BaselineSpec,
    canary: Counts,
    max_errors: Option<u64>,
    over_at_ms: Option<u64>,
    first: Option<&ErrorLine>,
    now_ms: u64,
    baseline: &[Counts],
) -> Option<Breach> {
    let since = over_at_ms?;
    if now_ms < since.saturating_add(FAIL_FAST_GRACE_MS) {
        return None;
    }
    let pooled = baseline.iter().fold(Counts::default(), |a, c| a.plus(*c));
    // A baseline that logged nothing yet has shown no errors.
    let br = pooled.error_rate().unwrap_or(0.0);
    let cr = canary.error_rate()?;
    let margin = spec.max_error_rate_increase.map_or(0.0, |p| p.0);
    if cr * 100.0 <= br * 100.0 + margin + EPS {
        return None;
    }
    let b = error_count_breach(max_errors, canary.error_lines, first)?;
    Some(Breach::new(
        b.gate,
        format!(
            "{}; not seen on the baseline: {} vs canary {}",
            b.message,
            rate_of(pooled, Some(baseline.len())),
            rate_of(canary, None)
        ),
    ))
}
