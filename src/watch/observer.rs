//! One observer per watched host per window: the engine feeds it every log line with its time,
//! asks [`Observer::fail_fast`] after each line (and when [`Observer::silence_deadline_ms`]
//! comes) to fail fast, and [`Observer::finish`] at window end. Pure: no clock, no I/O, so
//! every gate is testable with literal lines and times.

use super::baseline;
use super::compiled::CompiledWatch;
use super::gate::{truncate, Breach, Verdict};
use super::judge::{error_count_breach, gap_breach, judge, stat_breach, Judged, Stat};
use super::stats::{Counts, ErrorLine, Gap, MetricAcc, Stats};

/// Error lines kept verbatim as evidence; the count covers the rest.
pub const FIRST_ERRORS_KEPT: usize = 20;

/// Characters of an error line kept; agents log whole prompts and stack traces on one line.
pub const MAX_LINE_CHARS: usize = 500;

/// Watches one host's log for one window.
#[derive(Debug, Clone)]
pub struct Observer {
    watch: CompiledWatch,
    counts: Counts,
    ignored_lines: u64,
    first_line_ms: Option<u64>,
    last_line_ms: Option<u64>,
    /// The longest stretch between two lines, or from the window's start to the first.
    longest_gap: Gap,
    first_errors: Vec<ErrorLine>,
    metrics: Vec<MetricAcc>,
    /// When the error count first exceeded `max_errors`: baseline mode waits a grace period
    /// from here before failing fast.
    errors_over_at_ms: Option<u64>,
    /// Each metric's capture slots, reused line after line (a `captures` call allocates).
    slots: Vec<regex::CaptureLocations>,
}

impl Observer {
    /// A fresh observer for one host and one window.
    pub fn new(watch: &CompiledWatch) -> Self {
        Observer {
            watch: watch.clone(),
            counts: Counts::default(),
            ignored_lines: 0,
            first_line_ms: None,
            last_line_ms: None,
            longest_gap: Gap::default(),
            first_errors: Vec::new(),
            metrics: vec![MetricAcc::default(); watch.metrics().len()],
            errors_over_at_ms: None,
            slots: watch.metrics().iter().map(|m| m.capture.capture_locations()).collect(),
        }
    }

    /// Account one log line received `at_ms` milliseconds after the window start; true when
    /// it is an error line (an `errors` pattern and no `ignore` pattern). A trailing newline
    /// is ignored; every line, blank or not, counts for the silence gate. Every line of every
    /// watched host comes through here: one pass of the error set over it (the ignore set
    /// only for the rare line that matched), metrics captured into reused slots, nothing
    /// allocated unless the line is kept as evidence.
    pub fn feed(&mut self, line: &str, at_ms: u64) -> bool {
        let line = line.trim_end_matches(['\n', '\r']);
        self.counts.lines += 1;
        self.first_line_ms.get_or_insert(at_ms);
        let gap = Gap {
            from_ms: self.last_line_ms.unwrap_or(0),
            to_ms: at_ms,
        };
        self.longest_gap = self.longest_gap.longer(gap);
        self.last_line_ms = Some(at_ms);
        let mut is_error = false;
        if self.watch.errors.is_match(line) {
            if self.watch.ignore.is_match(line) {
                self.ignored_lines += 1;
            } else {
                is_error = true;
                self.error(line, at_ms);
            }
        }
        self.capture_metrics(line);
        is_error
    }

    fn capture_metrics(&mut self, line: &str) {
        let all = self.watch.metrics.iter().zip(&mut self.metrics).zip(&mut self.slots);
        for ((m, acc), slots) in all {
            if m.capture.captures_read(slots, line).is_none() {
                continue;
            }
            if let Some((a, b)) = slots.get(1) {
                match line[a..b].trim().parse::<f64>() {
                    Ok(v) => acc.push(v),
                    Err(_) => acc.unparsed += 1,
                }
            }
        }
    }

    fn error(&mut self, line: &str, at_ms: u64) {
        self.counts.error_lines += 1;
        if self.first_errors.len() < FIRST_ERRORS_KEPT {
            self.first_errors.push(ErrorLine {
                at_ms,
                line: truncate(&self.watch.masked(line), MAX_LINE_CHARS),
            });
        }
        let over = self
            .watch
            .spec()
            .effective_max_errors()
            .is_some_and(|max| self.counts.error_lines > max);
        if over && self.errors_over_at_ms.is_none() {
            self.errors_over_at_ms = Some(at_ms);
        }
    }

    /// The live p95 to show on a terminal: of the first metric with a `p95_max` gate, else of
    /// the first metric; with the metric's name. `None` without metrics or samples.
    pub fn live_p95(&self) -> Option<(&str, f64)> {
        let metrics = &self.watch.metrics;
        let i = metrics
            .iter()
            .position(|m| m.spec.p95_max.is_some())
            .or((!metrics.is_empty()).then_some(0))?;
        Some((metrics[i].spec.name.as_str(), self.metrics.get(i)?.p95_now()?))
    }

    /// Line and error counts so far (cheap; for progress display and baseline fail-fast).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Fail-fast check, for use after each line without a baseline: a breach that later lines
    /// cannot undo. That is the error count over `max_errors`, or a metric value over its
    /// `max`. Silence, rates and percentiles need the whole window and wait for `finish`.
    pub fn breach(&self) -> Option<Breach> {
        let spec = self.watch.spec();
        if let Some(b) = error_count_breach(
            spec.effective_max_errors(),
            self.counts.error_lines,
            self.first_errors.first(),
        ) {
            return Some(b);
        }
        self.watch.metrics.iter().zip(&self.metrics).find_map(|(m, acc)| {
            let (limit, value) = (m.spec.max?, acc.max?);
            stat_breach(&m.spec.name, Stat::Max, value, limit, acc.count)
        })
    }

    /// Fail-fast check for the canary while baseline hosts are watched alongside it; give the
    /// baseline observers' [`Observer::counts`]. Only an error count over `max_errors` that
    /// the baseline does not show fails fast, and only after it has lasted
    /// [`baseline::FAIL_FAST_GRACE_MS`], because an outage reaches the hosts' logs a few
    /// seconds apart. Everything else waits for [`Observer::finish_with_baseline`]. Without a
    /// configured baseline, or with no baseline host, this is [`Observer::breach`].
    pub fn breach_with_baseline(&self, now_ms: u64, baseline: &[Counts]) -> Option<Breach> {
        match self.watch.baseline() {
            Some(spec) if !baseline.is_empty() => baseline::fail_fast(
                spec,
                self.counts,
                self.watch.spec().effective_max_errors(),
                self.errors_over_at_ms,
                self.first_errors.first(),
                now_ms,
                baseline,
            ),
            _ => self.breach(),
        }
    }

    /// Fail-fast check of every gate that can fail before the window ends, `now_ms` into it,
    /// given the baseline observers' [`Observer::counts`] (empty without a baseline):
    /// [`Observer::breach_with_baseline`], then the gap gate ([`Observer::silence_breach`]).
    pub fn fail_fast(&self, now_ms: u64, baseline: &[Counts]) -> Option<Breach> {
        self.breach_with_baseline(now_ms, baseline).or_else(|| {
            let b = self.silence_breach(now_ms)?;
            Some(match self.watch.baseline() {
                Some(_) => baseline::blame_the_watch(b, self.counts.lines, baseline),
                None => b,
            })
        })
    }

    /// The gap gate as it happens: the host has gone longer than `max_silence` without a log
    /// line by `now_ms` (the stretch still running, or an earlier one). Never excused by a
    /// baseline: a stalled canary gives no evidence to judge the change on.
    pub fn silence_breach(&self, now_ms: u64) -> Option<Breach> {
        let max = self.watch.spec().max_silence?;
        let tail = self.tail(now_ms);
        let (gap, judged) = match tail.longer(self.longest_gap) {
            gap if gap == tail => (tail, Judged::Running { tail: true }),
            gap => (gap, Judged::Running { tail: false }),
        };
        gap_breach(max, gap, self.counts.lines, judged)
    }

    /// When (ms since the window start) this host will have been silent longer than
    /// `max_silence` unless a line arrives first; `None` without `max_silence`. The engine
    /// sleeps until the earliest of its hosts' deadlines instead of polling.
    pub fn silence_deadline_ms(&self) -> Option<u64> {
        let max = self.watch.spec().max_silence?.get().as_millis();
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        Some(self.last_line_ms.unwrap_or(0).saturating_add(max).saturating_add(1))
    }

    /// The longest stretch without a line up to `now_ms`: between two lines, from the window's
    /// start to the first line, or from the last line to now (the tail).
    pub fn longest_silence(&self, now_ms: u64) -> Gap {
        self.longest_gap.longer(self.tail(now_ms))
    }

    /// The stretch from the last line (or the window's start) to `now_ms`.
    fn tail(&self, now_ms: u64) -> Gap {
        let last = self.last_line_ms.unwrap_or(0);
        Gap {
            from_ms: last,
            to_ms: now_ms.max(last),
        }
    }

    /// Everything seen in a window that ended `window_ms` after its start (the longest
    /// silence measured to that end).
    pub fn window_stats(&self, window_ms: u64) -> Stats {
        Stats {
            longest_silence: Some(self.longest_silence(window_ms)),
            ..self.stats()
        }
    }

    /// Everything seen so far.
    pub fn stats(&self) -> Stats {
        Stats {
            lines: self.counts.lines,
            error_lines: self.counts.error_lines,
            ignored_lines: self.ignored_lines,
            error_rate: self.counts.error_rate(),
            first_line_ms: self.first_line_ms,
            last_line_ms: self.last_line_ms,
            metrics: self
                .watch
                .metrics
                .iter()
                .zip(&self.metrics)
                .map(|(m, acc)| acc.stats(&m.spec.name))
                .collect(),
            first_errors: self.first_errors.clone(),
            longest_silence: None,
        }
    }

    /// The verdict at the end of a window of `window_ms`, every absolute gate judged.
    pub fn finish(&self, window_ms: u64) -> Verdict {
        let stats = self.window_stats(window_ms);
        let j = judge(&self.watch, &stats, window_ms);
        let mut v = Verdict::new(j.findings.into_iter().map(|f| f.breach).collect(), stats);
        v.skipped = j.skipped;
        v
    }

    /// The canary's verdict judged against the baseline hosts' stats for the same window
    /// (see `baseline.rs` for the rules). Without a configured baseline this is
    /// [`Observer::finish`]; with an empty `baseline` the absolute gates apply, noted in
    /// `skipped`, so losing the baseline hosts never makes a canary pass more easily.
    pub fn finish_with_baseline(&self, window_ms: u64, baseline: &[Stats]) -> Verdict {
        match self.watch.baseline() {
            Some(spec) => baseline::verdict(&self.watch, spec, self.window_stats(window_ms), window_ms, baseline),
            None => self.finish(window_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::gate::GateKind;
    use crate::watch::testutil::watch;

    fn gates(v: &Verdict) -> Vec<GateKind> {
        v.breaches.iter().map(|b| b.gate).collect()
    }

    #[test]
    fn errors_and_ignore_patterns_classify_lines() {
        let w = watch("errors = ['ERROR', 'model not found']\nignore = ['rate limit']\nmax_errors = 5");
        let mut o = Observer::new(&w);
        o.feed("INFO started\n", 0);
        o.feed("ERROR 429 retrying after rate limit", 10);
        o.feed("WARN model not found: claude-x\r\n", 20);
        o.feed("INFO fine", 30);
        let s = o.stats();
        assert_eq!((s.lines, s.error_lines, s.ignored_lines), (4, 1, 1));
        assert_eq!(s.error_rate, Some(0.25));
        assert_eq!(s.first_errors[0].line, "WARN model not found: claude-x");
        assert_eq!(
            (s.first_errors[0].at_ms, s.first_line_ms, s.last_line_ms),
            (20, Some(0), Some(30))
        );
    }

    #[test]
    fn kept_error_lines_are_masked_before_they_are_cut() {
        let mask = |l: &str| l.replace("sk-ABCDEFGHIJKLMNOP", "sk-••••");
        let w = watch("errors = ['ERROR']\nmax_errors = 5").with_mask(mask);
        let mut o = Observer::new(&w);
        // Cut first at 500 characters, the token would be `sk-ABCDE…`: too short to be
        // recognised as one by the time the record masks it.
        let line = format!("ERROR {} sk-ABCDEFGHIJKLMNOP", "a".repeat(MAX_LINE_CHARS - 14));
        o.feed(&line, 0);
        let kept = &o.stats().first_errors[0].line;
        assert!(!kept.contains("sk-ABC"), "{kept}");
        assert!(kept.ends_with("sk-••••"), "{kept}");
    }

    #[test]
    fn max_errors_fails_fast_on_the_line_that_exceeds_it() {
        let w = watch("errors = ['ERROR']\nmax_errors = 2");
        let mut o = Observer::new(&w);
        for (i, line) in ["ERROR model not found: claude-x", "ok", "ERROR again"]
            .iter()
            .enumerate()
        {
            o.feed(line, i as u64);
            assert_eq!(o.breach(), None);
        }
        o.feed("ERROR third", 3);
        let b = o.breach().unwrap();
        assert_eq!(b.gate, GateKind::Errors);
        assert_eq!(
            b.message,
            "3 error lines (max 2): first: 'ERROR model not found: claude-x'"
        );
    }

    #[test]
    fn errors_default_to_zero_tolerance() {
        let w = watch("errors = ['ERROR']");
        let mut o = Observer::new(&w);
        o.feed("ERROR model not found: claude-x", 5);
        let b = o.breach().unwrap();
        assert_eq!(
            b.message,
            "1 error line (max 0): first: 'ERROR model not found: claude-x'"
        );
        assert_eq!(gates(&o.finish(1000)), [GateKind::Errors]);
    }

    #[test]
    fn silence_fails_at_window_end() {
        let w = watch("min_lines = 10");
        let mut o = Observer::new(&w);
        (0..9).for_each(|i| {
            o.feed("tick", i);
        });
        assert_eq!(o.breach(), None, "silence is not fail-fast");
        let v = o.finish(600_000);
        assert!(!v.passed);
        assert_eq!(v.breaches[0].gate, GateKind::Silence);
        assert!(
            v.breaches[0].message.starts_with("9 log lines in 10m (min 10)"),
            "{}",
            v.breaches[0]
        );
        o.feed("tick", 9);
        assert!(o.finish(600_000).passed);
    }

    #[test]
    fn error_rate_fails_above_and_passes_at_the_limit() {
        let w = watch("errors = ['ERROR']\nmax_errors = 1000\nmax_error_rate = '3%'\nmin_lines = 10");
        let run = |errors: u64| {
            let mut o = Observer::new(&w);
            for i in 0..100 {
                o.feed(if i < errors { "ERROR boom" } else { "INFO ok" }, i);
            }
            o.finish(10_000)
        };
        let pass = run(3);
        assert!(pass.passed, "{:?}", pass.breaches);
        let fail = run(4);
        assert_eq!(gates(&fail), [GateKind::ErrorRate]);
        assert_eq!(
            fail.breaches[0].message,
            "error rate 4% (4 of 100 lines) exceeds max_error_rate 3%"
        );
    }

    #[test]
    fn error_rate_needs_a_sample() {
        let w = watch("errors = ['ERROR']\nmax_errors = 10\nmax_error_rate = '3%'");
        let mut o = Observer::new(&w);
        o.feed("ERROR one", 0);
        o.feed("INFO two", 1);
        let v = o.finish(1000);
        assert!(v.passed);
        assert_eq!(
            v.skipped,
            ["error_rate: not judged, 2 lines in the window (needs 20; min_lines sets it)"]
        );
    }

    fn latencies(w: &CompiledWatch, values: impl IntoIterator<Item = u32>) -> Observer {
        let mut o = Observer::new(w);
        for (i, v) in values.into_iter().enumerate() {
            o.feed(&format!("INFO reply sent latency_ms={v} tokens=12"), i as u64);
        }
        o
    }

    #[test]
    fn p95_latency_gate_fails_and_passes() {
        let w = watch("metrics = [{ name = 'latency_ms', capture = 'latency_ms=(\\d+)', p95_max = 800 }]");
        // 100 values 1..=100 scaled: p95 is the 95th value.
        let fail = latencies(&w, (1..=100).map(|i| i * 10)).finish(60_000);
        assert_eq!(fail.breaches.len(), 1);
        assert_eq!(
            fail.breaches[0].message,
            "latency_ms p95 950 exceeds p95_max 800 (100 samples)"
        );
        let pass = latencies(&w, (1..=100).map(|i| if i <= 95 { 700 } else { 5000 })).finish(60_000);
        assert!(pass.passed, "{:?}", pass.breaches);
        let m = &pass.stats.metrics[0];
        assert_eq!(
            (m.p50, m.p95, m.p99, m.max),
            (Some(700.0), Some(700.0), Some(5000.0), Some(5000.0))
        );
    }

    #[test]
    fn metric_max_fails_fast() {
        let w = watch("metrics = [{ name = 'latency_ms', capture = 'latency_ms=(\\d+)', max = 5000 }]");
        let mut o = latencies(&w, [100, 200]);
        assert_eq!(o.breach(), None);
        o.feed("latency_ms=5001", 3);
        assert_eq!(
            o.breach().unwrap().message,
            "latency_ms max 5001 exceeds max 5000 (3 samples)"
        );
    }

    #[test]
    fn min_samples_and_min_rate() {
        let w = watch(
            "metrics = [{ name = 'latency_ms', capture = 'latency_ms=([^ ]+)', p95_max = 800, \
             min_samples = 5, min_rate = 0.5 }]",
        );
        let mut o = latencies(&w, [100, 200, 300]);
        o.feed("latency_ms=n/a", 4);
        let v = o.finish(10_000);
        let msgs: Vec<&str> = v.breaches.iter().map(|b| b.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "latency_ms: 3 samples in 10s (min_samples 5); 1 captures were not numbers",
                "latency_ms: 0.3/s (3 samples in 10s) is below min_rate 0.5/s",
            ]
        );
        let v = latencies(&w, [100; 5]).finish(10_000);
        assert!(v.passed, "{:?}", v.breaches);
        let v = latencies(&w, []).finish(0);
        assert!(v.skipped.iter().any(|s| s.contains("p95_max: not judged, no samples")));
    }

    #[test]
    fn verdicts_serialize_for_the_record() {
        let w = watch("errors = ['ERROR']\nmetrics = [{ name = 'lat', capture = 'lat=(\\d+)' }]");
        let mut o = Observer::new(&w);
        o.feed("ERROR x lat=5", 7);
        let json = serde_json::to_value(o.finish(1000)).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["breaches"][0]["gate"], "errors");
        assert_eq!(json["stats"]["first_errors"][0]["at_ms"], 7);
        assert_eq!(json["stats"]["metrics"][0]["p95"], 5.0);
        assert!(json["stats"]["metrics"][0].get("samples").is_none());
    }
}
