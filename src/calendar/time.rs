//! Parsing the times people write in calendars and on the command line.
//!
//! Everything is compared in UTC, but operators think in local time: a freeze "from Christmas
//! Eve 18:00 in Berlin" is written `2026-12-24T18:00:00` plus `timezone = "Europe/Berlin"`.
//! This module turns both spellings into UTC instants, and refuses the ambiguous middle ground
//! (a local time with no zone), because guessing the zone is exactly how releases miss windows.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a time or time-zone string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The zone is not in the IANA database.
    #[error("unknown time zone {name:?}; expected an IANA name such as \"Europe/Berlin\" or \"UTC\"{hint}")]
    UnknownZone { name: String, hint: String },
    /// Neither RFC 3339 nor a local date-time.
    #[error("{value:?} is not a valid time; expected RFC 3339 with an offset (e.g. \"2026-12-24T18:00:00Z\") or a local time plus a time zone (e.g. \"2026-12-24T18:00:00\" with Europe/Berlin)")]
    Unparseable { value: String },
    /// A local date-time was given with no zone to place it in.
    #[error("{value:?} has no UTC offset; expected RFC 3339 with an offset (e.g. \"{value}Z\") or a local time plus a time zone")]
    NoZone { value: String },
    /// A local time that the clocks skip over (spring-forward gap).
    #[error("{value} does not exist in {zone} (the clocks skip it when daylight saving time starts); pick a time outside the gap or write it with an explicit offset")]
    Nonexistent { value: String, zone: String },
}

/// Which instant to take when a local time occurs twice (autumn fall-back).
///
/// Window starts take the earlier instant and window ends the later one, so an ambiguous
/// freeze is never shorter than what the operator wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// The first occurrence (still on summer time).
    Earliest,
    /// The second occurrence (already on standard time).
    Latest,
}

/// Look up an IANA zone name, suggesting the nearest real name when it is misspelt.
pub fn parse_zone(name: &str) -> Result<Tz, TimeError> {
    let name = name.trim();
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let best = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            (
                strsim::jaro_winkler(&name.to_ascii_lowercase(), &tz.name().to_ascii_lowercase()),
                tz.name(),
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = match best {
        Some((score, candidate)) if score > 0.85 => format!(" (did you mean {candidate:?}?)"),
        _ => String::new(),
    };
    Err(TimeError::UnknownZone {
        name: name.to_string(),
        hint,
    })
}

/// Parse a local date-time without offset: `YYYY-MM-DDTHH:MM[:SS]` (a space may replace `T`).
pub fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
}

/// Place a user-written local time in `tz`, refusing times inside a DST gap.
///
/// A hand-written time in the gap is almost always a mistake worth pointing out, unlike a
/// computed one (see [`localize_lenient`]).
pub fn localize_strict(naive: NaiveDateTime, tz: Tz, pick: Ambiguity) -> Result<DateTime<Utc>, TimeError> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Ok(match pick {
            Ambiguity::Earliest => a.min(b),
            Ambiguity::Latest => a.max(b),
        }
        .with_timezone(&Utc)),
        LocalResult::None => Err(TimeError::Nonexistent {
            value: naive.format("%Y-%m-%dT%H:%M:%S").to_string(),
            zone: tz.name().to_string(),
        }),
    }
}

/// Place a computed local time in `tz`; a time inside a DST gap moves forward by the gap's
/// length (what a wall clock shows an hour "later"), as RFC 5545 and Temporal do.
pub fn localize_lenient(naive: NaiveDateTime, tz: Tz, pick: Ambiguity) -> DateTime<Utc> {
    if let Ok(t) = localize_strict(naive, tz, pick) {
        return t;
    }
    // Read the naive time with the offset in force before the gap; no zone's gap lasts a day.
    match tz.from_local_datetime(&(naive - Duration::days(1))) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
            let offset = i64::from(t.offset().fix().local_minus_utc());
            Utc.from_utc_datetime(&(naive - Duration::seconds(offset)))
        }
        // Two gaps a day apart do not occur in the tz database; read it as UTC rather than panic.
        LocalResult::None => Utc.from_utc_datetime(&naive),
    }
}

/// Parse a calendar time: RFC 3339 with offset, or a local time read in `zone`.
pub fn parse_instant(value: &str, zone: Option<Tz>, pick: Ambiguity) -> Result<DateTime<Utc>, TimeError> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = parse_naive(v).ok_or_else(|| TimeError::Unparseable { value: v.to_string() })?;
    match zone {
        Some(tz) => localize_strict(naive, tz, pick),
        None => Err(TimeError::NoZone { value: v.to_string() }),
    }
}

/// Parse an `--at` argument: RFC 3339 (`2026-11-28T12:00:00Z`), or a local time followed by
/// a zone name (`2026-12-24T18:00 Europe/Berlin`), or `now`.
pub fn parse_at(arg: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    let arg = arg.trim();
    if arg.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(arg) {
        return Ok(t.with_timezone(&Utc));
    }
    match arg.rsplit_once(' ') {
        Some((time, zone)) if parse_naive(time).is_some() => {
            parse_instant(time, Some(parse_zone(zone)?), Ambiguity::Earliest)
        }
        _ => parse_instant(arg, None, Ambiguity::Earliest),
    }
}

/// The operator's zone for display: `$TZ` if it names an IANA zone, else the zone that
/// `/etc/localtime` links to, else UTC (a wrong guess only affects display, never decisions).
pub fn operator_zone() -> Tz {
    if let Some(tz) = std::env::var("TZ")
        .ok()
        .and_then(|v| v.trim_start_matches(':').parse::<Tz>().ok())
    {
        return tz;
    }
    std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            let (_, name) = s.split_once("zoneinfo/")?;
            name.parse::<Tz>().ok()
        })
        .unwrap_or(Tz::UTC)
}

/// Format an instant as `YYYY-MM-DD HH:MM ZONE-ABBR` in `tz`, for listings and messages.
pub fn show_in(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Format an instant as RFC 3339 in UTC with a `Z`, the form used in decision files.
pub fn show_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rfc3339_and_local_with_zone() {
        let now = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            parse_at("2026-11-28T12:00:00+01:00", now).unwrap(),
            utc("2026-11-28T11:00:00Z")
        );
        // Berlin is UTC+1 in December.
        assert_eq!(
            parse_at("2026-12-24T18:00 Europe/Berlin", now).unwrap(),
            utc("2026-12-24T17:00:00Z")
        );
        assert_eq!(
            parse_at("2026-07-01T18:00:00 Europe/Berlin", now).unwrap(),
            utc("2026-07-01T16:00:00Z")
        );
        assert_eq!(parse_at("now", now).unwrap(), now);
    }

    #[test]
    fn local_without_zone_is_refused() {
        let err = parse_at("2026-12-24T18:00:00", Utc::now()).unwrap_err();
        assert!(err.to_string().contains("has no UTC offset"), "{err}");
        let err = parse_at("tomorrow", Utc::now()).unwrap_err();
        assert!(err.to_string().contains("expected RFC 3339 with an offset"), "{err}");
    }

    #[test]
    fn misspelt_zone_gets_a_suggestion() {
        let err = parse_zone("Europe/Berln").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown time zone \"Europe/Berln\"; expected an IANA name such as \"Europe/Berlin\" or \"UTC\" (did you mean \"Europe/Berlin\"?)"
        );
    }

    #[test]
    fn dst_gap_and_overlap() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let gap = parse_naive("2026-03-29T02:30").unwrap();
        let err = localize_strict(gap, tz, Ambiguity::Earliest).unwrap_err();
        assert!(err.to_string().contains("does not exist in Europe/Berlin"), "{err}");
        assert_eq!(
            localize_lenient(gap, tz, Ambiguity::Earliest),
            utc("2026-03-29T01:30:00Z")
        );
        let twice = parse_naive("2026-10-25T02:30").unwrap();
        assert_eq!(
            localize_lenient(twice, tz, Ambiguity::Earliest),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            localize_lenient(twice, tz, Ambiguity::Latest),
            utc("2026-10-25T01:30:00Z")
        );
    }
}
