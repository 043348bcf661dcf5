//! Turning a freeze window into concrete UTC intervals.
//!
//! A one-off window is a single interval. A recurring window starts at each match of its cron
//! expression in its zone and lasts `duration` of *wall-clock* time in that zone: "every
//! Friday 16:00 for 62h" in Berlin must end Monday 06:00 local even on the weekend the clocks
//! go back, which is 63 real hours. Operators describe such windows by the clock on the wall,
//! so that is what the arithmetic follows.

use super::recur::parse_every;
use super::spec::FreezeWindow;
use super::time::{localize_lenient, parse_instant, parse_zone, show_utc, Ambiguity, TimeError};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A concrete interval `[start, end)` in UTC.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// Upper bound on occurrences listed per window, so `every = "* * * * *"` cannot flood output.
pub const MAX_OCCURRENCES: usize = 1000;

/// Longest allowed occurrence; anything longer is a typo or should be a one-off window.
const MAX_DURATION_DAYS: u64 = 366;

/// A problem with one window's times; `field()` says which key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("{0}")]
    Zone(TimeError),
    #[error("{field} {source}")]
    Time { field: &'static str, source: TimeError },
    #[error("end {end} is before start {start}")]
    EndBeforeStart { start: String, end: String },
    #[error("end {end} equals start; a window needs a positive length")]
    Empty { end: String },
    #[error(
        "start is set but end is missing; a one-off window needs both (or every and duration for a recurring one)"
    )]
    MissingEnd,
    #[error(
        "end is set but start is missing; a one-off window needs both (or every and duration for a recurring one)"
    )]
    MissingStart,
    #[error("the window has neither start/end nor every; give start and end for a one-off window, or every and duration for a recurring one")]
    NoTimes,
    #[error("every {expr:?} is not a valid cron expression: {reason}")]
    Cron { expr: String, reason: String },
    #[error("every {expr:?} never matches a date (e.g. 30 February)")]
    Never { expr: String },
    #[error("every is set but duration is missing; a recurring window needs the length of each occurrence, e.g. duration = \"62h\"")]
    NoDuration,
    #[error("duration only applies to recurring windows; add every (a cron expression) or remove duration")]
    StrayDuration,
    #[error("duration {0} is out of range; expected more than 0s and at most 366 days")]
    BadDuration(String),
}

impl WindowError {
    /// The key of the `[[freeze]]` entry the problem is about (`None`: the entry as a whole).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WindowError::Zone(_) => Some("timezone"),
            WindowError::Time { field, .. } => Some(field),
            WindowError::EndBeforeStart { .. } | WindowError::Empty { .. } | WindowError::MissingEnd => Some("end"),
            WindowError::MissingStart => Some("start"),
            WindowError::NoTimes => None,
            WindowError::Cron { .. } | WindowError::Never { .. } => Some("every"),
            WindowError::NoDuration | WindowError::StrayDuration | WindowError::BadDuration(_) => Some("duration"),
        }
    }
}

/// A window whose times are parsed: ready to answer "is it active at t?".
#[derive(Debug, Clone)]
pub struct ResolvedWindow {
    /// One-off start, or the earliest a recurring occurrence may start.
    pub start: Option<DateTime<Utc>>,
    /// One-off end, or the time from which no recurring occurrence starts.
    pub end: Option<DateTime<Utc>>,
    /// Zone of the cron expression and of wall-clock durations (UTC unless given).
    pub zone: Tz,
    recurrence: Option<(Cron, Duration)>,
}

impl FreezeWindow {
    /// Parse the window's times, or say what is wrong with the first bad field.
    pub fn resolve(&self) -> Result<ResolvedWindow, WindowError> {
        self.resolve_all().map_err(|mut errs| errs.remove(0))
    }

    /// Every problem with the window's times (empty when it resolves).
    pub fn problems(&self) -> Vec<WindowError> {
        self.resolve_all().err().unwrap_or_default()
    }

    /// The interval of this window containing `t`, if it is active then.
    pub fn active_at(&self, t: DateTime<Utc>) -> Result<Option<Span>, WindowError> {
        Ok(self.resolve()?.active_at(t))
    }

    /// The intervals of this window overlapping `[from, to)`, in order.
    pub fn occurrences_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Span>, WindowError> {
        Ok(self.resolve()?.occurrences_between(from, to))
    }

    /// Whether the window covers a change touching `regions` and `components`: an empty list
    /// on either side means "all" (a change whose regions are unknown meets every regional
    /// freeze). Names compare case-insensitively so `US-East-1` cannot slip past a freeze.
    pub fn covers(&self, regions: &[String], components: &[String]) -> bool {
        overlaps(&self.regions, regions) && overlaps(&self.components, components)
    }

    fn resolve_all(&self) -> Result<ResolvedWindow, Vec<WindowError>> {
        let mut errs = Vec::new();
        let zone = match self.timezone.as_deref().map(parse_zone) {
            None => None,
            Some(Ok(z)) => Some(z),
            Some(Err(e)) => {
                errs.push(WindowError::Zone(e));
                None
            }
        };
        let zone_ok = self.timezone.is_none() || zone.is_some();
        let start = instant(
            "start",
            self.start.as_deref(),
            zone,
            zone_ok,
            Ambiguity::Earliest,
            &mut errs,
        );
        let end = instant("end", self.end.as_deref(), zone, zone_ok, Ambiguity::Latest, &mut errs);
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                errs.push(WindowError::EndBeforeStart {
                    start: show_utc(s),
                    end: show_utc(e),
                });
            } else if e == s {
                errs.push(WindowError::Empty { end: show_utc(e) });
            }
        }
        let zone = zone.unwrap_or(Tz::UTC);
        let recurrence = match (&self.every, self.duration) {
            (Some(expr), duration) => recurrence(expr, duration.map(|d| d.get()), zone, &mut errs),
            (None, Some(_)) => {
                errs.push(WindowError::StrayDuration);
                None
            }
            (None, None) => {
                match (&self.start, &self.end) {
                    (None, None) => errs.push(WindowError::NoTimes),
                    (Some(_), None) => errs.push(WindowError::MissingEnd),
                    (None, Some(_)) => errs.push(WindowError::MissingStart),
                    (Some(_), Some(_)) => {}
                }
                None
            }
        };
        if errs.is_empty() {
            Ok(ResolvedWindow {
                start,
                end,
                zone,
                recurrence,
            })
        } else {
            Err(errs)
        }
    }
}

/// Parse one of `start`/`end`, recording a problem unless the zone itself was the problem.
fn instant(
    field: &'static str,
    value: Option<&str>,
    zone: Option<Tz>,
    zone_ok: bool,
    pick: Ambiguity,
    errs: &mut Vec<WindowError>,
) -> Option<DateTime<Utc>> {
    match parse_instant(value?, zone, pick) {
        Ok(t) => Some(t),
        // "no offset" is a consequence of the unknown zone already reported.
        Err(TimeError::NoZone { .. }) if !zone_ok => None,
        Err(source) => {
            errs.push(WindowError::Time { field, source });
            None
        }
    }
}

/// Parse `every` + `duration`, recording every problem found.
fn recurrence(
    expr: &str,
    duration: Option<std::time::Duration>,
    zone: Tz,
    errs: &mut Vec<WindowError>,
) -> Option<(Cron, Duration)> {
    let schedule = match parse_every(expr) {
        Ok(s) => Some(s),
        Err(reason) => {
            errs.push(WindowError::Cron {
                expr: expr.to_string(),
                reason,
            });
            None
        }
    };
    if let Some(s) = &schedule {
        // croner gives up after a bounded search, which is how "never" shows.
        if s.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH.with_timezone(&zone), false)
            .is_err()
        {
            errs.push(WindowError::Never { expr: expr.to_string() });
        }
    }
    let duration = match duration {
        None => {
            errs.push(WindowError::NoDuration);
            None
        }
        Some(d) if d.is_zero() || d.as_secs() > MAX_DURATION_DAYS * 86_400 => {
            errs.push(WindowError::BadDuration(humantime::format_duration(d).to_string()));
            None
        }
        // In range by the check above, so the conversion cannot overflow.
        Some(d) => Duration::from_std(d).ok(),
    };
    Some((schedule?, duration?))
}

/// Scope intersection where an empty list means "everything".
fn overlaps(window: &[String], request: &[String]) -> bool {
    window.is_empty()
        || request.is_empty()
        || window
            .iter()
            .any(|w| request.iter().any(|r| w.trim().eq_ignore_ascii_case(r.trim())))
}

impl ResolvedWindow {
    /// The interval containing `t`, if any. For a recurring window: the most recent occurrence
    /// starting at or before `t`, if it has not ended yet.
    pub fn active_at(&self, t: DateTime<Utc>) -> Option<Span> {
        let Some((schedule, duration)) = &self.recurrence else {
            let (s, e) = (self.start?, self.end?);
            return (s <= t && t < e).then_some((s, e));
        };
        // Occurrences start strictly before `end`; look back from there if `t` is later.
        let anchor = match self.end {
            Some(e) if e <= t => e - Duration::nanoseconds(1),
            _ => t,
        };
        // Inclusive, so a start at `t` counts.
        let local_start = schedule
            .find_previous_occurrence(&anchor.with_timezone(&self.zone), true)
            .ok()?;
        let span = self.span_from(local_start, *duration);
        if self.start.is_some_and(|b| span.0 < b) {
            return None;
        }
        (span.0 <= t && t < span.1).then_some(span)
    }

    /// The intervals overlapping `[from, to)` in start order, at most [`MAX_OCCURRENCES`].
    pub fn occurrences_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
        if to <= from {
            return Vec::new();
        }
        let Some((schedule, duration)) = &self.recurrence else {
            return match (self.start, self.end) {
                (Some(s), Some(e)) if s < to && e > from => vec![(s, e)],
                _ => Vec::new(),
            };
        };
        let mut out: Vec<Span> = self.active_at(from).into_iter().collect();
        // `iter_after` is exclusive; start just before the lower bound so a start on it counts.
        let begin = match self.start {
            Some(b) if b > from => b - Duration::nanoseconds(1),
            _ => from,
        };
        for local_start in schedule.iter_after(begin.with_timezone(&self.zone)) {
            let s = local_start.with_timezone(&Utc);
            if s >= to || self.end.is_some_and(|e| s >= e) || out.len() >= MAX_OCCURRENCES {
                break;
            }
            out.push(self.span_from(local_start, *duration));
        }
        out
    }

    /// One occurrence: from `local_start`, lasting `duration` on the zone's wall clock. An
    /// ambiguous end takes the later instant, so the freeze is never cut short.
    fn span_from(&self, local_start: DateTime<Tz>, duration: Duration) -> Span {
        let start = local_start.with_timezone(&Utc);
        let end = localize_lenient(local_start.naive_local() + duration, self.zone, Ambiguity::Latest);
        // Wall-clock arithmetic across a DST change cannot invert a positive duration, but keep
        // the interval well-formed regardless.
        (start, if end > start { end } else { start + duration })
    }
}
