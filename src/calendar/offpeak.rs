//! Off-peak windows for scheduled runs: `rollout --within "02:00-05:00 Europe/London"`.
//!
//! The cron line can fire every night (or every hour) and the tool decides: outside the
//! window a run refuses to start. The window is daily wall-clock time in a named zone, so it
//! follows the region's night through DST changes; it may span midnight ("22:00-04:00 UTC").

use super::time::{localize_lenient, parse_zone, Ambiguity};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// A daily time-of-day window `[start, end)` in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffPeak {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub zone: Tz,
}

/// Why an off-peak window could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid off-peak window {input:?}: {reason}; expected \"HH:MM-HH:MM Zone/Name\", e.g. \"02:00-05:00 Europe/London\"")]
pub struct OffPeakError {
    pub input: String,
    pub reason: String,
}

impl FromStr for OffPeak {
    type Err = OffPeakError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| OffPeakError {
            input: s.to_string(),
            reason,
        };
        let (range, zone) = s
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| fail("no time zone (write UTC explicitly if that is meant)".to_string()))?;
        let zone = parse_zone(zone).map_err(|e| fail(e.to_string()))?;
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| fail("no '-' between start and end".to_string()))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| fail(format!("{t:?} is not a time of day (HH:MM)")))
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(fail("start equals end; the window would be empty".to_string()));
        }
        Ok(OffPeak { start, end, zone })
    }
}

impl fmt::Display for OffPeak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.zone.name()
        )
    }
}

impl OffPeak {
    /// Whether `t` falls inside the window on the zone's wall clock.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.zone).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            // Spans midnight: the evening part or the morning part.
            local >= self.start || local < self.end
        }
    }

    /// The next time the window opens strictly after `t` (for "refusing to start; next window
    /// opens at ..." messages).
    pub fn next_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let today = t.with_timezone(&self.zone).date_naive();
        // Yesterday's opening can be later than `t` only around DST changes; checking three
        // days covers every case, and the fallback is a day ahead regardless.
        (-1..=2)
            .map(|k| {
                localize_lenient(
                    (today + Duration::days(k)).and_time(self.start),
                    self.zone,
                    Ambiguity::Earliest,
                )
            })
            .find(|open| *open > t)
            .unwrap_or(t + Duration::days(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn london_night_follows_summer_time() {
        let w: OffPeak = "02:00-05:00 Europe/London".parse().unwrap();
        assert_eq!(w.to_string(), "02:00-05:00 Europe/London");
        // Winter: London is UTC.
        assert!(w.contains(utc("2026-01-10T02:00:00Z")));
        assert!(w.contains(utc("2026-01-10T04:59:59Z")));
        assert!(!w.contains(utc("2026-01-10T05:00:00Z")));
        // Summer: 02:00 BST is 01:00 UTC.
        assert!(w.contains(utc("2026-07-10T01:30:00Z")));
        assert!(!w.contains(utc("2026-07-10T04:30:00Z")));
        assert_eq!(w.next_start(utc("2026-07-10T12:00:00Z")), utc("2026-07-11T01:00:00Z"));
    }

    #[test]
    fn window_spanning_midnight() {
        let w: OffPeak = "22:00-04:00 UTC".parse().unwrap();
        assert!(w.contains(utc("2026-03-01T22:00:00Z")));
        assert!(w.contains(utc("2026-03-01T23:59:00Z")));
        assert!(w.contains(utc("2026-03-02T00:00:00Z")));
        assert!(w.contains(utc("2026-03-02T03:59:59Z")));
        assert!(!w.contains(utc("2026-03-02T04:00:00Z")));
        assert!(!w.contains(utc("2026-03-02T12:00:00Z")));
        assert!(!w.contains(utc("2026-03-02T21:59:59Z")));
        assert_eq!(w.next_start(utc("2026-03-02T01:00:00Z")), utc("2026-03-02T22:00:00Z"));
    }

    #[test]
    fn bad_windows_say_what_is_expected() {
        for (input, why) in [
            ("02:00-05:00", "no time zone"),
            ("02:00-05:00 Europe/Londn", "did you mean \"Europe/London\""),
            ("02:00 Europe/London", "no '-'"),
            ("2am-5am UTC", "\"2am\" is not a time of day"),
            ("03:00-03:00 UTC", "start equals end"),
        ] {
            let err = input.parse::<OffPeak>().unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.contains("expected \"HH:MM-HH:MM Zone/Name\""), "{err}");
        }
    }
}
