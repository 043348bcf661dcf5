//! Unit tests of `spec.rs`, kept apart so that file stays about its rules.

use super::spec::*;
use crate::value::FieldPath;
use serde::Deserialize;

fn parse(src: &str) -> WatchSpec {
    #[derive(Deserialize)]
    struct Doc {
        watch: WatchSpec,
    }
    toml::from_str::<Doc>(src).map(|d| d.watch).unwrap()
}

fn problems(w: &WatchSpec) -> Vec<String> {
    w.validate(&FieldPath::root().key("watch"))
        .iter()
        .map(|i| i.to_string())
        .collect()
}

#[test]
fn the_design_example_parses_and_validates() {
    let w = parse(
        r#"
[watch]
log = { command = "journalctl -fu {{ vars.agent_unit }} -o cat -n0" }
errors = ["ERROR", "FATAL", "Traceback", "401 Unauthorized", "model not found"]
ignore = ["retrying after rate limit"]
max_errors = 0
min_lines = 10
max_error_rate = "3%"
metrics = [{ name = "latency_ms", capture = 'latency_ms=(\d+)', p95_max = 800 }]
baseline = { hosts = 3, max_error_rate_increase = "1%" }
before = "2m"
"#,
    );
    assert_eq!(problems(&w), Vec::<String>::new());
    assert!(matches!(
        w.log.as_ref().and_then(|l| l.kind()),
        Some(LogKind::Command(_))
    ));
    assert_eq!(w.metrics[0].p95_max, Some(800.0));
    assert_eq!(w.baseline_metric().map(|m| m.name.as_str()), Some("latency_ms"));
}

#[test]
fn unknown_fields_are_rejected() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        watch: WatchSpec,
    }
    let e = toml::from_str::<Doc>("[watch]\nmax_error = 1\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `max_error`"), "{e}");
    let e = toml::from_str::<Doc>("[watch]\nlog = { path = \"/x\" }\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `path`"), "{e}");
}

#[test]
fn max_errors_defaults_to_zero_only_with_patterns() {
    let mut w = WatchSpec::default();
    assert_eq!(w.effective_max_errors(), None);
    w.errors = vec!["ERROR".into()];
    assert_eq!(w.effective_max_errors(), Some(0));
    w.max_errors = Some(5);
    assert_eq!(w.effective_max_errors(), Some(5));
    assert_eq!(w.rate_min_lines(), DEFAULT_RATE_MIN_LINES);
    w.min_lines = Some(0);
    assert_eq!(w.rate_min_lines(), 1);
}

#[test]
fn bad_regexes_name_their_entry_and_the_regex_error() {
    let w = parse(
        r#"
[watch]
log = { file = "/var/log/agent.log" }
errors = ["ERROR", "FATAL", "model (not found"]
ignore = [""]
"#,
    );
    let p = problems(&w);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("field `watch.errors[2]`: invalid regex \"model (not found\""));
    assert!(p[0].contains("unclosed group"), "{}", p[0]);
    assert_eq!(p[1], "field `watch.ignore[0]`: an empty pattern matches every line");
}

#[test]
fn log_needs_exactly_one_source() {
    let w = parse("[watch]\nlog = { file = \"/x\", command = \"tail -F /x\" }\n");
    assert_eq!(
        problems(&w),
        ["field `watch.log`: give either `file` or `command`, not both"]
    );
    let w = parse("[watch]\nlog = {}\n");
    assert!(problems(&w)[0].contains("give `file = "));
    let w = parse("[watch]\nlog = { file = \" \" }\n");
    assert_eq!(problems(&w), ["field `watch.log.file`: must not be empty"]);
    let w = parse("[watch]\nmin_lines = 5\n");
    assert!(problems(&w)[0].contains("need a log source"));
}

#[test]
fn metric_problems_are_located() {
    let w = parse(
        r#"
[watch]
log = { file = "/x" }
metrics = [
  { name = "lat", capture = 'latency_ms=\d+' },
  { name = "lat", capture = '(a)(b)', p95_max = -1 },
  { name = "tok", capture = 'tokens=(\d+', min_rate = -0.5 },
]
baseline = { hosts = 0, metric = "latency" }
"#,
    );
    let p = problems(&w);
    let expect = [
        "field `watch.metrics[0].capture`: regex \"latency_ms=\\\\d+\" must have exactly one capture group around the number (found 0)",
        "field `watch.metrics[1].name`: metric name \"lat\" is already used by metrics[0]",
        "field `watch.metrics[1].capture`: regex \"(a)(b)\" must have exactly one capture group around the number (found 2)",
        "field `watch.metrics[1].p95_max`: must be a number >= 0, got -1",
        "field `watch.metrics[2].capture`: invalid regex",
        "field `watch.metrics[2].min_rate`: must be a number >= 0, got -0.5",
        "field `watch.baseline.hosts`: must be at least 1",
        "field `watch.baseline.metric`: names no metric \"latency\"; known metrics: [lat, lat, tok]",
    ];
    assert_eq!(p.len(), expect.len(), "{p:#?}");
    for (got, want) in p.iter().zip(expect) {
        assert!(got.starts_with(want), "got {got:?}\nwant {want:?}");
    }
}

#[test]
fn gates_without_patterns_are_flagged() {
    let w = parse(
        "[watch]\nlog = { file = \"/x\" }\nmax_errors = 3\nmax_error_rate = \"1%\"\n\
         baseline = { hosts = 2, max_p95_increase = \"20%\" }\n",
    );
    let p = problems(&w);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].starts_with("field `watch.max_errors`: has no effect without `errors`"));
    assert!(p[1].starts_with("field `watch.max_error_rate`: has no effect"));
    assert!(p[2].starts_with("field `watch.baseline.max_p95_increase`: needs a metric"));
}

#[test]
fn max_silence_and_the_line_rate_ratio_are_validated() {
    let w = parse(
        "[watch]\nlog = { file = \"/x\" }\nmax_silence = \"0s\"\n\
         baseline = { hosts = 2, min_line_rate_ratio = 1.5 }\n",
    );
    assert_eq!(
        problems(&w),
        [
            "field `watch.baseline.min_line_rate_ratio`: must be a fraction above 0 and at most 1 \
             (0.5: half the baseline's line rate), got 1.5",
            "field `watch.max_silence`: must be longer than 0s: the longest stretch without a log \
             line, e.g. \"30s\"",
        ]
    );
    let w = parse(
        "[watch]\nlog = { file = \"/x\" }\nmax_silence = \"5s\"\nbaseline = { hosts = 2, min_line_rate_ratio = 0.5 }\n",
    );
    assert_eq!(problems(&w), Vec::<String>::new());
    assert!(
        problems(&parse("[watch]\nbaseline = { hosts = 1, min_line_rate_ratio = 0 }\n"))
            .iter()
            .any(|p| p.contains("min_line_rate_ratio"))
    );
    let w = parse("[watch]\nmax_silence = \"5s\"\n");
    assert!(problems(&w)[0].contains("need a log source"));
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        watch: WatchSpec,
    }
    let e = toml::from_str::<Doc>("[watch]\nmax_silence = \"soon\"\n").unwrap_err();
    assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
}

#[test]
fn check_warns_when_max_silence_cannot_fail_in_a_window() {
    use std::time::Duration;
    let w = parse("[watch]\nlog = { file = \"/x\" }\nmax_silence = \"2m\"\n");
    let windows = [
        ("rollout.observe", Duration::from_secs(600)),
        ("rollout.batch_observe", Duration::from_secs(120)),
    ];
    assert_eq!(
        w.max_silence_warnings(&windows),
        [
            "watch.max_silence (2m) is not shorter than rollout.batch_observe (2m): it can never \
          fail in that window; make it a few times the agent's usual gap between log lines"
        ]
    );
    assert!(w.max_silence_warnings(&windows[..1]).is_empty());
    assert!(WatchSpec::default().max_silence_warnings(&windows).is_empty());
}
