//! Unit tests of `baseline.rs`, kept apart so that file stays about its rules.

use super::baseline::*;
use crate::value::Percent;
use crate::watch::observer::Observer;
use crate::watch::testutil::watch;
use crate::watch::{BaselineSpec, CompiledWatch, Counts, GateKind, Stats};

const TABLE: &str = "errors = ['ERROR']\nmax_errors = 0\nmax_error_rate = '3%'\nmin_lines = 10\n\
    metrics = [{ name = 'latency_ms', capture = 'latency_ms=(\\d+)', p95_max = 800 }]\n\
    baseline = { hosts = 3, max_error_rate_increase = '1%', max_p95_increase = '20%' }";

/// A host logging 100 lines over the window: `errors` of them errors, all with `latency`.
fn host(w: &CompiledWatch, errors: u64, latency: u32) -> Observer {
    let mut o = Observer::new(w);
    for i in 0..100u64 {
        let level = if i < errors { "ERROR provider 503" } else { "INFO ok" };
        o.feed(&format!("{level} latency_ms={latency}"), i * 100);
    }
    o
}

#[test]
fn fleet_wide_outage_passes_the_canary() {
    let w = watch(TABLE);
    let canary = host(&w, 30, 2000);
    let base: Vec<Stats> = (0..3).map(|_| host(&w, 30, 2000).stats()).collect();
    assert!(!canary.finish(10_000).passed, "absolute gates alone fail it");
    let v = canary.finish_with_baseline(10_000, &base);
    assert!(v.passed, "{:#?}", v.breaches);
    let excused: Vec<GateKind> = v.excused.iter().map(|e| e.breach.gate).collect();
    assert_eq!(excused, [GateKind::Errors, GateKind::ErrorRate, GateKind::Metric]);
    assert!(v.excused[0]
        .reason
        .starts_with("the baseline shows the same errors: 30% (90 of 300 lines on 3 hosts)"));
    assert_eq!(v.baseline.as_ref().map(|b| b.lines), Some(300));
    assert_eq!(
        compare(
            &canary.stats(),
            &base,
            w.baseline().unwrap_or(&BaselineSpec::default()),
            10_000
        ),
        None
    );
}

#[test]
fn canary_only_errors_fail() {
    let w = watch(TABLE);
    let canary = host(&w, 30, 200);
    let base: Vec<Stats> = (0..3).map(|_| host(&w, 0, 200).stats()).collect();
    let v = canary.finish_with_baseline(10_000, &base);
    assert!(!v.passed);
    let gates: Vec<GateKind> = v.breaches.iter().map(|b| b.gate).collect();
    assert_eq!(gates, [GateKind::Errors, GateKind::ErrorRate, GateKind::Baseline]);
    assert_eq!(
        v.breaches[2].message,
        "error rate 30% (30 of 100 lines) vs baseline 0% (0 of 300 lines on 3 hosts): \
         +30 points exceeds max_error_rate_increase 1%"
    );
    assert!(v.excused.is_empty());
}

#[test]
fn canary_only_latency_regression_fails_and_within_margin_passes() {
    let w = watch(TABLE);
    let base: Vec<Stats> = (0..3).map(|_| host(&w, 0, 500).stats()).collect();
    let v = host(&w, 0, 700).finish_with_baseline(10_000, &base);
    assert_eq!(
        v.breaches.iter().map(|b| b.message.as_str()).collect::<Vec<_>>(),
        ["latency_ms p95 700 vs baseline 500 (3 hosts): +40% exceeds max_p95_increase 20%"]
    );
    let v = host(&w, 0, 600).finish_with_baseline(10_000, &base);
    assert!(v.passed, "{:#?}", v.breaches);
    // A fleet-wide slowdown over p95_max is excused only within the same 20% margin.
    let slow: Vec<Stats> = (0..3).map(|_| host(&w, 0, 900).stats()).collect();
    let v = host(&w, 0, 1000).finish_with_baseline(10_000, &slow);
    assert!(v.passed, "{:#?}", v.breaches);
    assert_eq!(
        v.excused[0].reason,
        "the baseline is as high: latency_ms p95 900 on 3 hosts"
    );
}

#[test]
fn silence_is_never_excused_and_no_baseline_means_absolute_gates() {
    let w = watch(TABLE);
    let quiet = Observer::new(&w);
    let base: Vec<Stats> = (0..3).map(|_| Observer::new(&w).stats()).collect();
    let v = quiet.finish_with_baseline(10_000, &base);
    assert_eq!(v.breaches.first().map(|b| b.gate), Some(GateKind::Silence));
    let v = host(&w, 30, 200).finish_with_baseline(10_000, &[]);
    assert!(!v.passed);
    assert!(v.skipped.iter().any(|s| s.contains("absolute gates applied unchanged")));
}

#[test]
fn fail_fast_waits_for_the_grace_and_the_baseline() {
    let w = watch(TABLE);
    let mut canary = Observer::new(&w);
    canary.feed("ERROR provider 503", 1_000);
    assert!(canary.breach().is_some(), "without a baseline it fails at once");
    let clean = [Counts {
        lines: 50,
        error_lines: 0,
    }; 3];
    let outage = [Counts {
        lines: 50,
        error_lines: 50,
    }; 3];
    assert_eq!(canary.breach_with_baseline(1_000, &clean), None, "grace not over");
    assert_eq!(canary.breach_with_baseline(1_000 + FAIL_FAST_GRACE_MS, &outage), None);
    let b = canary.breach_with_baseline(1_000 + FAIL_FAST_GRACE_MS, &clean).unwrap();
    assert_eq!(b.gate, GateKind::Errors);
    assert_eq!(
        b.message,
        "1 error line (max 0): first: 'ERROR provider 503'; not seen on the baseline: \
         0% (0 of 150 lines on 3 hosts) vs canary 100% (1 of 1 lines)"
    );
    assert!(
        canary.breach_with_baseline(20_000, &[]).is_some(),
        "no baseline host: absolute"
    );
}

#[test]
fn comparison_skips_without_samples() {
    let spec = BaselineSpec {
        hosts: 2,
        max_error_rate_increase: Some(Percent(1.0)),
        max_p95_increase: Some(Percent(20.0)),
        metric: None,
        min_line_rate_ratio: None,
    };
    let c = comparison(
        &Stats::default(),
        &[Stats::default()],
        &spec,
        Minimums { lines: 10, samples: 5 },
        10_000,
    );
    assert!(c.breaches.is_empty());
    assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
    assert!(c.skipped[0].contains("canary logged 0 lines (needs 10)"));
}

/// A host logging `lines` lines evenly over a 10 s window.
fn logging(w: &CompiledWatch, lines: u64) -> Observer {
    let mut o = Observer::new(w);
    for i in 0..lines {
        o.feed("INFO ok", i * 10_000 / lines.max(1));
    }
    o
}

#[test]
fn a_canary_logging_below_the_line_rate_ratio_fails_with_both_rates() {
    let w = watch("min_lines = 5\nbaseline = { hosts = 2, min_line_rate_ratio = 0.5 }");
    let base: Vec<Stats> = (0..2).map(|_| logging(&w, 100).window_stats(10_000)).collect();
    let v = logging(&w, 20).finish_with_baseline(10_000, &base);
    assert_eq!(
        v.breaches.iter().map(|b| b.message.as_str()).collect::<Vec<_>>(),
        [
            "line rate 2/s (20 lines in 10s) vs baseline 10/s per host (200 lines on 2 hosts): \
          20% of the baseline's, below min_line_rate_ratio 0.5"
        ]
    );
    assert_eq!(v.breaches[0].gate, GateKind::Baseline);
    // Exactly half passes; so does a canary busier than its peers.
    assert!(logging(&w, 50).finish_with_baseline(10_000, &base).passed);
    assert!(logging(&w, 300).finish_with_baseline(10_000, &base).passed);
}

#[test]
fn the_line_rate_is_not_compared_with_a_quiet_baseline() {
    let w = watch("min_lines = 5\nbaseline = { hosts = 2, min_line_rate_ratio = 0.5 }");
    let base: Vec<Stats> = [logging(&w, 6), logging(&w, 2)]
        .iter()
        .map(|o| o.window_stats(10_000))
        .collect();
    let v = logging(&w, 5).finish_with_baseline(10_000, &base);
    assert!(v.passed, "{:?}", v.breaches);
    assert_eq!(
        v.skipped,
        ["baseline line rate: not judged, the baseline hosts logged 4 lines per host (needs 5)"]
    );
    let v = logging(&w, 5).finish_with_baseline(10_000, &[]);
    assert!(v.passed, "no baseline host: only the absolute gates");
}
