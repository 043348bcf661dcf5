//! The live view of a run on a terminal (indicatif's multi-bar): a phase line (the phase,
//! hosts changed of its total, what it is doing) and, during an observation window, one line
//! per watched host with its live gate counts (lines, errors, p95).
//!
//! It exists only when the run's progress stream is a terminal (and `TERM` is not `dumb`):
//! without one nothing here is created, and the timestamped lines are written exactly as
//! before (cron mail, CI logs). It follows the run's events (`RunDir::emit`) and draws; it
//! decides nothing. Progress lines are printed above the bars, log lines on stderr suspend
//! them, so neither is torn by a redraw.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Host lines shown during a window; the rest are summed up in one "+N more" line.
pub const MAX_HOST_LINES: usize = 6;

/// The multi-bar of the run being drawn, for log lines to suspend it (see [`suspended`]).
static DRAWING: OnceLock<Mutex<Option<MultiProgress>>> = OnceLock::new();

/// The terminal view of one run.
pub struct Live {
    multi: MultiProgress,
    state: Mutex<State>,
    /// The bars (and lines printed while they show) go to stderr, else stdout.
    to_stderr: bool,
}

#[derive(Default)]
struct State {
    /// The phase line (`None` before the first phase, after the end, while waiting).
    phase: Option<ProgressBar>,
    /// Hosts of the phase (or revert) that are done.
    done: BTreeSet<String>,
    reverting: bool,
}

/// A step of the run the view follows: a phase or a revert starts a phase line, the end of
/// the run (or a stop to wait) clears everything.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Phase {
        name: &'a str,
        hosts: usize,
    },
    Observing,
    Passed,
    Revert {
        hosts: usize,
    },
    /// A host of the revert is done (put back, or failed to be).
    HostPutBack(&'a str),
    Stopped,
}

/// One watched host's live gate counts.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGate<'a> {
    pub name: &'a str,
    /// Unchanged, watched to compare with.
    pub baseline: bool,
    pub lines: u64,
    pub errors: u64,
    /// The p95 of a metric so far, with the metric's name.
    pub p95: Option<(&'a str, f64)>,
}

impl Live {
    /// A live view when the progress stream (stderr if `to_stderr`, else stdout) is a terminal.
    pub fn for_terminal(to_stderr: bool) -> Option<Live> {
        use std::io::IsTerminal;
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        if !tty || std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
            return None;
        }
        let target = if to_stderr {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::stdout()
        };
        let multi = MultiProgress::with_draw_target(target);
        if let Ok(mut d) = DRAWING.get_or_init(Default::default).lock() {
            *d = Some(multi.clone());
        }
        Some(Live {
            multi,
            state: Mutex::default(),
            to_stderr,
        })
    }

    /// Print a finished line (a timestamped progress line, with its newline): above the bars
    /// while they show, else as it is.
    pub fn println(&self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let showing = self.state.lock().map(|s| s.phase.is_some()).unwrap_or(false);
        match (showing, self.to_stderr) {
            (true, _) => self.multi.println(line.trim_end_matches('\n')),
            (false, true) => std::io::stderr().write_all(line.as_bytes()),
            (false, false) => std::io::stdout().write_all(line.as_bytes()),
        }
    }

    /// What the run did, as far as the view cares (the record's events, translated by
    /// `record::progress::follow`, so this module needs nothing of the record).
    pub fn step(&self, step: Step<'_>) {
        let Ok(mut st) = self.state.lock() else { return };
        match step {
            Step::Phase { name, hosts } => self.start(&mut st, name, hosts, false),
            Step::Observing => set_message(&st, "observing"),
            Step::Passed => set_message(&st, "passed"),
            Step::Revert { hosts } => self.start(&mut st, "revert", hosts, true),
            Step::HostPutBack(host) if st.reverting => {
                st.done.insert(host.to_string());
                if let Some(b) = &st.phase {
                    b.set_position(st.done.len() as u64);
                }
            }
            Step::HostPutBack(_) => {}
            Step::Stopped => clear(&mut st),
        }
    }

    /// `host` of the phase under way is changed (or failed to be): one more done.
    pub fn host_done(&self, host: &str) {
        let Ok(mut st) = self.state.lock() else { return };
        if st.done.insert(host.to_string()) {
            if let Some(b) = &st.phase {
                b.set_position(st.done.len() as u64);
            }
        }
    }

    fn start(&self, st: &mut State, name: &str, total: usize, reverting: bool) {
        clear(st);
        let b = ProgressBar::new(total as u64);
        let template = if reverting {
            "{spinner} {prefix} [{bar:16}] {pos}/{len} hosts reverted · {wide_msg}"
        } else {
            "{spinner} {prefix} [{bar:16}] {pos}/{len} hosts changed · {wide_msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_prefix(name.to_string());
        b.set_message(if reverting { "reverting" } else { "changing" });
        // Styled before it is added: its first frame is already complete.
        let b = self.multi.add(b);
        b.enable_steady_tick(Duration::from_millis(200));
        st.phase = Some(b);
        st.reverting = reverting;
    }

    /// The lines of an observation window over `hosts` tails, below the phase line; they go
    /// away when the returned view is dropped. `before`: the canary's window before its change.
    pub fn window(&self, hosts: usize, before: bool) -> Window {
        let phase = self.state.lock().ok().and_then(|s| s.phase.clone());
        let n = hosts.min(MAX_HOST_LINES) + usize::from(hosts > MAX_HOST_LINES);
        let lines = (0..n)
            .map(|_| {
                let b = self.multi.add(ProgressBar::new(0));
                if let Ok(style) = ProgressStyle::with_template("  {wide_msg}") {
                    b.set_style(style);
                }
                b
            })
            .collect();
        Window { phase, lines, before }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.lock() {
            clear(&mut st);
        }
        let _ = self.multi.clear();
        if let Some(Ok(mut d)) = DRAWING.get().map(|m| m.lock()) {
            *d = None;
        }
    }
}

fn set_message(st: &State, msg: &'static str) {
    if let Some(b) = &st.phase {
        b.set_message(msg);
    }
}

fn clear(st: &mut State) {
    if let Some(b) = st.phase.take() {
        b.finish_and_clear();
    }
    st.done.clear();
    st.reverting = false;
}

/// An observation window on the terminal: the phase line says the time left, each host line
/// its gate counts.
pub struct Window {
    phase: Option<ProgressBar>,
    lines: Vec<ProgressBar>,
    before: bool,
}

impl Window {
    /// Redraw with `left` of the window to go and the hosts' counts.
    pub fn update(&self, left: Duration, hosts: &[HostGate<'_>]) {
        if let Some(p) = &self.phase {
            p.set_message(window_status(self.before, left));
        }
        for (bar, text) in self.lines.iter().zip(window_lines(hosts)) {
            bar.set_message(text);
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        for b in &self.lines {
            b.finish_and_clear();
        }
    }
}

/// The phase line's message during a window: "observing, 7m 12s left" (`before`: "logs before
/// the change, 2s left").
pub fn window_status(before: bool, left: Duration) -> String {
    let left = humantime::format_duration(Duration::from_secs(left.as_secs()));
    if before {
        format!("logs before the change, {left} left")
    } else {
        format!("observing, {left} left")
    }
}

/// The host lines of a window: one per host up to [`MAX_HOST_LINES`], then "+N more hosts"
/// with their summed counts.
pub fn window_lines(hosts: &[HostGate<'_>]) -> Vec<String> {
    let width = hosts
        .iter()
        .take(MAX_HOST_LINES)
        .map(|h| label(h).chars().count())
        .max()
        .unwrap_or(0);
    let mut out: Vec<String> = hosts.iter().take(MAX_HOST_LINES).map(|h| host_line(h, width)).collect();
    if hosts.len() > MAX_HOST_LINES {
        let rest = &hosts[MAX_HOST_LINES..];
        let lines: u64 = rest.iter().map(|h| h.lines).sum();
        let errors: u64 = rest.iter().map(|h| h.errors).sum();
        out.push(format!("+{} more hosts: {lines} lines, {errors} errors", rest.len()));
    }
    out
}

fn label(h: &HostGate<'_>) -> String {
    if h.baseline {
        format!("{} (baseline)", h.name)
    } else {
        h.name.to_string()
    }
}

/// "h01           1204 lines     0 errors  latency_ms p95 812"
pub fn host_line(h: &HostGate<'_>, width: usize) -> String {
    // The name comes from the fleet, but it reaches a terminal: escaped like host text.
    let name = crate::ui::safe::text(&label(h)).into_owned();
    let mut s = format!(
        "{name:<width$}  {:>7} lines  {:>5} error{}",
        h.lines,
        h.errors,
        if h.errors == 1 { " " } else { "s" }
    );
    if let Some((metric, v)) = h.p95 {
        s.push_str(&format!("  {metric} p95 {}", number(v)));
    }
    s
}

/// 812 rather than 812.0; 0.25 as it is.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Run `f` (a write to the terminal outside the bars: a log line) with the bars of the run
/// being drawn, if any, taken off the screen and redrawn after.
pub fn suspended<R>(f: impl FnOnce() -> R) -> R {
    let multi = DRAWING.get().and_then(|m| m.lock().ok()).and_then(|d| d.clone());
    match multi {
        Some(m) => m.suspend(f),
        None => f(),
    }
}

/// stderr for `tracing`, writing through [`suspended`] so a warning during a run does not
/// tear the bars.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspended(|| std::io::stderr().write_all(buf)).map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(name: &str, baseline: bool, lines: u64, errors: u64) -> HostGate<'_> {
        HostGate {
            name,
            baseline,
            lines,
            errors,
            p95: None,
        }
    }

    #[test]
    fn a_host_line_shows_lines_errors_and_the_p95() {
        let mut h = gate("h01", false, 1204, 0);
        h.p95 = Some(("latency_ms", 812.0));
        assert_eq!(host_line(&h, 3), "h01     1204 lines      0 errors  latency_ms p95 812");
        h.p95 = Some(("ratio", 0.25));
        h.errors = 1;
        assert_eq!(host_line(&h, 5), "h01       1204 lines      1 error   ratio p95 0.25");
        let b = gate("h02", true, 998, 3);
        assert_eq!(host_line(&b, 14), "h02 (baseline)      998 lines      3 errors");
    }

    #[test]
    fn window_lines_align_names_and_sum_up_past_six_hosts() {
        let names: Vec<String> = (1..=9).map(|i| format!("host-{i}")).collect();
        let mut hosts: Vec<HostGate<'_>> = names.iter().map(|n| gate(n, false, 10, 1)).collect();
        hosts[0].name = "h1";
        let lines = window_lines(&hosts);
        assert_eq!(lines.len(), MAX_HOST_LINES + 1);
        assert!(lines[0].starts_with("h1      "), "{lines:?}");
        assert!(lines[1].starts_with("host-2  "), "{lines:?}");
        assert_eq!(lines[6], "+3 more hosts: 30 lines, 3 errors");
        assert_eq!(window_lines(&hosts[..2]).len(), 2);
    }

    #[test]
    fn the_phase_line_says_the_time_left_in_whole_seconds() {
        assert_eq!(
            window_status(false, Duration::from_millis(432_900)),
            "observing, 7m 12s left"
        );
        assert_eq!(window_status(false, Duration::ZERO), "observing, 0s left");
        assert_eq!(
            window_status(true, Duration::from_millis(2_500)),
            "logs before the change, 2s left"
        );
    }

    #[test]
    fn host_names_are_escaped_for_the_terminal() {
        let h = gate("h\x1b[2J", false, 1, 0);
        assert!(!host_line(&h, 0).contains('\x1b'));
    }

    #[test]
    fn without_a_terminal_there_is_no_live_view() {
        // Test harness output is captured (a pipe), never a terminal.
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() {
            assert!(Live::for_terminal(false).is_none());
        }
        if !std::io::stderr().is_terminal() {
            assert!(Live::for_terminal(true).is_none());
        }
    }
}
