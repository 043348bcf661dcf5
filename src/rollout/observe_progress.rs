//! What an observation window shows while it runs: a spinner with each host's line and error
//! counts, on a terminal only (cron mail and CI logs get the plain timestamped lines).
//! Kept apart from `observe.rs`, whose concern is judging the lines.

use crate::watch::Observer;
use std::time::{Duration, Instant};

/// A spinner for the observation window, only when stdout is a terminal (cron mail and CI logs
/// get the plain timestamped lines instead).
pub(super) fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || crate::ui::log::is_json() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
        b.set_style(style);
    }
    Some(b)
}

/// "canary: 7m 12s left | h01 1204 lines 0 errors | baseline h02 998 lines 0 errors"
pub(super) fn progress_line(
    phase: &str,
    window: Duration,
    start: Instant,
    names: &[String],
    base: &[bool],
    obs: &[Observer],
) -> String {
    let left = window.saturating_sub(start.elapsed());
    let mut s = format!(
        "{phase}: {} left",
        humantime::format_duration(Duration::from_secs(left.as_secs()))
    );
    for (i, o) in obs.iter().enumerate().take(6) {
        let c = o.counts();
        let tag = if base[i] { "baseline " } else { "" };
        s.push_str(&format!(
            " | {tag}{} {} lines {} errors",
            names[i], c.lines, c.error_lines
        ));
    }
    if obs.len() > 6 {
        s.push_str(&format!(" | +{} more", obs.len() - 6));
    }
    s
}
