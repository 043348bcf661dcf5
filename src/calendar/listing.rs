//! `bellwether calendar`: the windows coming up, in UTC and in the operator's zone.
//!
//! Showing both zones side by side is the cheap cure for the seed's most common pitfall
//! ("time zones not normalized so releases miss the window").

use super::spec::{CalendarSpec, FreezeKind};
use super::time::show_in;
use super::window::WindowError;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::fmt::Write as _;

/// One concrete occurrence of a freeze window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    pub id: String,
    pub kind: FreezeKind,
    pub start_utc: DateTime<Utc>,
    pub end_utc: DateTime<Utc>,
    pub active_now: bool,
    pub regions: Vec<String>,
    pub components: Vec<String>,
    pub vendor: Option<String>,
    pub note: Option<String>,
}

/// A window that could not be listed, with its id (the calendar should have been validated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("freeze window `{id}`: {source}")]
pub struct ListError {
    pub id: String,
    pub source: WindowError,
}

/// Every occurrence overlapping `[now, now + days)`, active ones included, sorted by start
/// then id.
pub fn upcoming(cal: &CalendarSpec, now: DateTime<Utc>, days: u32) -> Result<Vec<Occurrence>, ListError> {
    let until = now + Duration::days(i64::from(days));
    let mut out = Vec::new();
    for w in &cal.freeze {
        let spans = w.occurrences_between(now, until).map_err(|source| ListError {
            id: w.id.clone(),
            source,
        })?;
        out.extend(spans.into_iter().map(|(start, end)| Occurrence {
            id: w.id.clone(),
            kind: w.kind,
            start_utc: start,
            end_utc: end,
            active_now: start <= now && now < end,
            regions: w.regions.clone(),
            components: w.components.clone(),
            vendor: w.vendor.clone(),
            note: w.note.clone(),
        }));
    }
    out.sort_by(|a, b| (a.start_utc, &a.id).cmp(&(b.start_utc, &b.id)));
    Ok(out)
}

/// Render occurrences for a terminal: one block per occurrence, times in UTC and in `zone`.
pub fn render_text(occurrences: &[Occurrence], zone: Tz, days: u32) -> String {
    if occurrences.is_empty() {
        return format!("no freeze windows in the next {days} days\n");
    }
    let mut s = String::new();
    for o in occurrences {
        let mark = if o.active_now { "ACTIVE  " } else { "        " };
        let _ = writeln!(s, "{mark}{} freeze  {}", o.kind, o.id);
        let _ = writeln!(
            s,
            "        UTC: {} -> {}",
            show_in(o.start_utc, Tz::UTC),
            show_in(o.end_utc, Tz::UTC)
        );
        if zone != Tz::UTC {
            let _ = writeln!(
                s,
                "        {}: {} -> {}",
                zone.name(),
                show_in(o.start_utc, zone),
                show_in(o.end_utc, zone)
            );
        }
        let all = |v: &[String]| {
            if v.is_empty() {
                "all".to_string()
            } else {
                v.join(", ")
            }
        };
        let _ = writeln!(
            s,
            "        regions: {}  components: {}",
            all(&o.regions),
            all(&o.components)
        );
        if let Some(v) = &o.vendor {
            let _ = writeln!(s, "        vendor: {v}");
        }
        if let Some(n) = &o.note {
            let _ = writeln!(s, "        note: {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cal() -> CalendarSpec {
        toml::from_str(
            r#"
            [[freeze]]
            id = "black_friday"
            kind = "hard"
            start = "2026-11-27T00:00:00Z"
            end = "2026-11-30T23:59:59Z"
            regions = ["us-east-1"]
            note = "peak traffic"

            [[freeze]]
            id = "weekend"
            kind = "soft"
            every = "0 16 * * FRI"
            duration = "62h"
            timezone = "Europe/Berlin"
            vendor = "anthropic"

            [[freeze]]
            id = "long_ago"
            kind = "hard"
            start = "2025-01-01T00:00:00Z"
            end = "2025-01-02T00:00:00Z"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn upcoming_is_sorted_and_marks_active() {
        // Saturday 28 November 2026: both the weekend and Black Friday are on.
        let now = utc("2026-11-28T10:00:00Z");
        let occ = upcoming(&cal(), now, 8).unwrap();
        let got: Vec<(&str, String, String, bool)> = occ
            .iter()
            .map(|o| {
                (
                    o.id.as_str(),
                    o.start_utc.to_rfc3339(),
                    o.end_utc.to_rfc3339(),
                    o.active_now,
                )
            })
            .collect();
        let want = [
            (
                "black_friday",
                "2026-11-27T00:00:00+00:00",
                "2026-11-30T23:59:59+00:00",
                true,
            ),
            (
                "weekend",
                "2026-11-27T15:00:00+00:00",
                "2026-11-30T05:00:00+00:00",
                true,
            ),
            (
                "weekend",
                "2026-12-04T15:00:00+00:00",
                "2026-12-07T05:00:00+00:00",
                false,
            ),
        ];
        let want: Vec<(&str, String, String, bool)> = want
            .iter()
            .map(|(i, s, e, a)| (*i, s.to_string(), e.to_string(), *a))
            .collect();
        assert_eq!(got, want);
        assert!(upcoming(&cal(), utc("2027-06-01T00:00:00Z"), 1).unwrap().is_empty());
    }

    #[test]
    fn text_shows_both_zones_and_active_marks() {
        let now = utc("2026-11-28T10:00:00Z");
        let occ = upcoming(&cal(), now, 8).unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let text = render_text(&occ, ny, 8);
        let first: Vec<&str> = text.lines().take(5).collect();
        assert_eq!(
            first,
            vec![
                "ACTIVE  hard freeze  black_friday",
                "        UTC: 2026-11-27 00:00 UTC -> 2026-11-30 23:59 UTC",
                "        America/New_York: 2026-11-26 19:00 EST -> 2026-11-30 18:59 EST",
                "        regions: us-east-1  components: all",
                "        note: peak traffic",
            ]
        );
        assert!(text.contains("        soft freeze  weekend"), "{text}");
        assert!(text.contains("vendor: anthropic"), "{text}");
        assert_eq!(render_text(&[], Tz::UTC, 7), "no freeze windows in the next 7 days\n");
    }
}
