//! Unit tests of the gap gate (`max_silence`) and of blaming a silent watch, across
//! `observer.rs`, `judge.rs` and `baseline.rs`.

use crate::watch::observer::Observer;
use crate::watch::testutil::watch;
use crate::watch::{Counts, Gap, GateKind, Stats};

/// The stalled agent: a line every 200 ms for 5 s, then nothing (process alive).
fn stalled(w: &crate::watch::CompiledWatch) -> Observer {
    let mut o = Observer::new(w);
    for i in 1..=25u64 {
        o.feed("INFO request ok", i * 200);
    }
    o
}

#[test]
fn a_stall_fails_as_it_happens_not_at_window_end() {
    let w = watch("min_lines = 5\nmax_silence = '5s'");
    let o = stalled(&w);
    assert_eq!(o.silence_deadline_ms(), Some(10_001), "last line at 5s + 5s");
    assert_eq!(o.fail_fast(10_000, &[]), None, "exactly max_silence passes");
    let b = o.fail_fast(10_001, &[]).unwrap();
    assert_eq!(b.gate, GateKind::Gap);
    assert_eq!(
        b.message,
        "no log line for 5.001s (max_silence 5s), since 5s into the window; 25 lines so far: \
         is the agent stalled?"
    );
    // min_lines alone passes this agent: 25 lines is plenty.
    let v = o.finish(12_000);
    assert_eq!(v.breaches.iter().map(|b| b.gate).collect::<Vec<_>>(), [GateKind::Gap]);
    assert_eq!(
        v.breaches[0].message,
        "no log line for 7s (max_silence 5s), from 5s into the window to its end; \
         25 lines in 12s: is the agent stalled?"
    );
    assert_eq!(
        v.stats.longest_silence,
        Some(Gap {
            from_ms: 5_000,
            to_ms: 12_000
        })
    );
}

#[test]
fn each_line_moves_the_deadline_and_a_steady_agent_passes() {
    let w = watch("max_silence = '2s'");
    let mut o = Observer::new(&w);
    for i in 0..50u64 {
        o.feed("tick", i * 500);
        assert_eq!(o.silence_deadline_ms(), Some(i * 500 + 2_001));
        assert_eq!(o.fail_fast(i * 500 + 1_999, &[]), None);
    }
    let v = o.finish(26_000);
    assert!(v.passed, "{:?}", v.breaches);
    assert_eq!(v.stats.longest_silence.map(Gap::ms), Some(1_500), "the 1.5s tail");
    assert_eq!(Observer::new(&watch("min_lines = 1")).silence_deadline_ms(), None);
}

#[test]
fn the_head_counts_an_agent_that_never_logs_fails_early() {
    let w = watch("max_silence = '3s'");
    let o = Observer::new(&w);
    assert_eq!(o.silence_deadline_ms(), Some(3_001));
    assert_eq!(
        o.fail_fast(3_001, &[]).map(|b| b.message),
        Some(
            "no log line for 3.001s (max_silence 3s), since the window's start; 0 lines so far: \
             is the agent stalled?"
                .into()
        )
    );
    // A first line late in the window: the head was the gap.
    let mut o = Observer::new(&w);
    o.feed("INFO up at last", 4_000);
    o.feed("INFO ok", 4_100);
    let v = o.finish(5_000);
    assert_eq!(
        v.breaches[0].message,
        "no log line for 4s (max_silence 3s), from the window's start to 4s into it; \
         2 lines in 5s: is the agent stalled?"
    );
}

#[test]
fn a_past_gap_still_fails_when_its_line_came_before_the_timer() {
    // The line that ended the gap was handled before the deadline fired: the gap is kept.
    let w = watch("max_silence = '1s'");
    let mut o = Observer::new(&w);
    o.feed("a", 0);
    o.feed("b", 1_500);
    let b = o.fail_fast(1_500, &[]).unwrap();
    assert_eq!(
        b.message,
        "no log line for 1.5s (max_silence 1s), from the window's start to 1.5s into it; \
         2 lines so far: is the agent stalled?"
    );
}

const BASELINE: &str = "min_lines = 5\nmax_silence = '2s'\nbaseline = { hosts = 2 }";

#[test]
fn a_silent_canary_and_a_silent_baseline_blame_the_watch() {
    let w = watch(BASELINE);
    let quiet = Observer::new(&w);
    let silent = [Counts::default(); 2];
    let b = quiet.fail_fast(2_001, &silent).unwrap();
    assert_eq!(
        b.message,
        "no log line for 2.001s (max_silence 2s), since the window's start; 0 lines so far; \
         the 2 baseline hosts logged nothing either: the watch itself is probably wrong \
         (check watch.log, its file path or command), not the change"
    );
    let base: Vec<Stats> = (0..2).map(|_| Observer::new(&w).window_stats(10_000)).collect();
    let v = quiet.finish_with_baseline(10_000, &base);
    let msgs: Vec<&str> = v.breaches.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(v.breaches[0].gate, GateKind::Silence);
    assert_eq!(
        msgs[0],
        "0 log lines in 10s (min 5); the 2 baseline hosts logged nothing either: the watch \
         itself is probably wrong (check watch.log, its file path or command), not the change"
    );
    assert_eq!(
        msgs.len(),
        1,
        "the gap adds nothing to a watch that saw nothing: {msgs:?}"
    );
    assert!(
        v.skipped
            .iter()
            .any(|s| s.starts_with("gap: no log line for 10s (max_silence 2s)")),
        "{:?}",
        v.skipped
    );
}

#[test]
fn a_silent_canary_beside_a_logging_baseline_is_the_canary_s_fault() {
    let w = watch(BASELINE);
    let quiet = Observer::new(&w);
    let logging = [
        Counts {
            lines: 40,
            error_lines: 0,
        },
        Counts::default(),
    ];
    let b = quiet.fail_fast(2_001, &logging).unwrap();
    assert!(b.message.ends_with("is the agent stalled?"), "{}", b.message);
    // A stalled canary (it did log) is never blamed on the watch, and never excused.
    let stalled = stalled(&w);
    let b = stalled.fail_fast(7_001, &[Counts::default(); 2]).unwrap();
    assert!(b.message.ends_with("is the agent stalled?"), "{}", b.message);
    let v = stalled.finish_with_baseline(12_000, &[stalled.window_stats(12_000)]);
    assert_eq!(v.breaches.iter().map(|b| b.gate).collect::<Vec<_>>(), [GateKind::Gap]);
    assert!(v.excused.is_empty());
}
