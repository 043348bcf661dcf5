//! `bellwether calendar`: the freeze windows coming up, in UTC and the operator's zone.

use super::context;
use crate::calendar::time::{parse_zone, show_in, show_utc};
use crate::calendar::{operator_zone, parse_at, render_text, upcoming, Occurrence, TimeError};
use crate::exit::{Exit, Failure};
use crate::options::Global;
use chrono::Utc;
use chrono_tz::Tz;

/// The longest look-ahead accepted: ten years is already past any real release plan, and a
/// bound keeps `now + days` far from the end of the representable calendar.
const MAX_DAYS: u32 = 3660;

/// An unreadable `--at`. The library's message for a malformed time describes the calendar
/// file's form, so add the command line's spelling of a local time.
pub fn bad_at(e: TimeError) -> Failure {
    let hint = match e {
        TimeError::Unparseable { .. } | TimeError::NoZone { .. } => {
            "; on the command line: \"now\", RFC 3339, or \"2026-12-24T18:00 Europe/Berlin\""
        }
        _ => "",
    };
    Failure::input(format!("--at: {e}{hint}"))
}

/// Whether `zone` is UTC under one of its aliases (`/etc/localtime` usually says `Etc/UTC`).
pub fn is_utc(zone: Tz) -> bool {
    matches!(
        zone,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__UCT | Tz::UCT | Tz::Etc__Universal | Tz::Universal | Tz::Etc__Zulu | Tz::Zulu
    )
}

/// List the windows overlapping the next `days` days (as of `at`, default now), marking the
/// ones active at that instant; times in UTC and in `tz` (default the operator's zone).
pub fn run(g: &Global, days: u32, tz: Option<&str>, at: Option<&str>, json: bool) -> Result<Exit, Failure> {
    if days == 0 || days > MAX_DAYS {
        return Err(Failure::input(format!(
            "--days {days} is out of range; expected 1 to {MAX_DAYS}"
        )));
    }
    let zone = match tz {
        Some(name) => parse_zone(name).map_err(|e| Failure::input(format!("--tz: {e}")))?,
        None => operator_zone(),
    };
    // One spelling of UTC, so the listing does not repeat every time under "Etc/UTC".
    let zone = if is_utc(zone) { Tz::UTC } else { zone };
    let now = match at {
        Some(s) => parse_at(s, Utc::now()).map_err(bad_at)?,
        None => Utc::now(),
    };
    let lf = context::fleet(g)?;
    let occurrences = upcoming(&lf.calendar, now, days)
        .map_err(|e| Failure::input(format!("calendar {}: {e}", lf.calendar_path.display())))?;
    if json {
        print_json(&lf.calendar_path, now, days, zone, &occurrences);
        return Ok(Exit::Done);
    }
    let local = if zone == Tz::UTC {
        String::new()
    } else {
        format!(" ({})", show_in(now, zone))
    };
    let zones = if zone == Tz::UTC {
        "UTC".to_string()
    } else {
        format!("UTC and {}", zone.name())
    };
    println!(
        "calendar {}: freeze windows from {}{local} for the next {days} days; times in {zones}",
        lf.calendar_path.display(),
        show_utc(now),
    );
    println!();
    print!("{}", render_text(&occurrences, zone, days));
    if !occurrences.is_empty() {
        let active = occurrences.iter().filter(|o| o.active_now).count();
        println!();
        println!(
            "{} occurrence{}, {active} active now",
            occurrences.len(),
            if occurrences.len() == 1 { "" } else { "s" }
        );
    }
    Ok(Exit::Done)
}

/// One document: the windows as listed, times in RFC 3339 (UTC, and in `zone` with its
/// offset).
fn print_json(path: &std::path::Path, now: chrono::DateTime<Utc>, days: u32, zone: Tz, occ: &[Occurrence]) {
    use chrono::SecondsFormat::Secs;
    let local = |t: chrono::DateTime<Utc>| t.with_timezone(&zone).to_rfc3339_opts(Secs, true);
    let windows: Vec<serde_json::Value> = occ
        .iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            v["start_utc"] = o.start_utc.to_rfc3339_opts(Secs, true).into();
            v["end_utc"] = o.end_utc.to_rfc3339_opts(Secs, true).into();
            v["start_local"] = local(o.start_utc).into();
            v["end_local"] = local(o.end_utc).into();
            v
        })
        .collect();
    let doc = serde_json::json!({
        "calendar": path.display().to_string(),
        "at": now.to_rfc3339_opts(Secs, true),
        "days": days,
        "zone": zone.name(),
        "occurrences": windows,
        "active": occ.iter().filter(|o| o.active_now).count(),
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
}
