//! Window resolution: time zones, DST edges, recurring and bounded windows.

use super::spec::{CalendarSpec, FreezeWindow};
use super::window::{WindowError, MAX_OCCURRENCES};
use chrono::{DateTime, Utc};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn window(fields: &str) -> FreezeWindow {
    let cal: CalendarSpec = toml::from_str(&format!("[[freeze]]\nid = \"w\"\nkind = \"hard\"\n{fields}")).unwrap();
    cal.freeze.into_iter().next().unwrap()
}

fn span(a: &str, b: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((utc(a), utc(b)))
}

const WEEKEND: &str = "every = \"0 16 * * FRI\"\nduration = \"62h\"\ntimezone = \"Europe/Berlin\"";

#[test]
fn one_off_in_berlin_local_time_compares_in_utc() {
    let w = window("start = \"2026-12-24T18:00:00\"\nend = \"2026-12-27T00:00:00\"\ntimezone = \"Europe/Berlin\"");
    // Berlin is UTC+1 in winter.
    let want = span("2026-12-24T17:00:00Z", "2026-12-26T23:00:00Z");
    assert_eq!(w.active_at(utc("2026-12-24T16:59:59Z")).unwrap(), None);
    assert_eq!(w.active_at(utc("2026-12-24T17:00:00Z")).unwrap(), want);
    assert_eq!(w.active_at(utc("2026-12-26T22:59:59Z")).unwrap(), want);
    assert_eq!(
        w.active_at(utc("2026-12-26T23:00:00Z")).unwrap(),
        None,
        "end is exclusive"
    );
}

#[test]
fn offset_in_the_value_wins_over_timezone() {
    let w = window("start = \"2026-07-01T00:00:00Z\"\nend = \"2026-07-02T00:00:00+02:00\"\ntimezone = \"Asia/Tokyo\"");
    assert_eq!(w.resolve().unwrap().end, Some(utc("2026-07-01T22:00:00Z")));
}

#[test]
fn weekend_window_in_ordinary_weeks() {
    let w = window(WEEKEND);
    // Summer (CEST, UTC+2): Friday 16:00 is 14:00Z, Monday 06:00 is 04:00Z.
    let summer = span("2026-07-03T14:00:00Z", "2026-07-06T04:00:00Z");
    assert_eq!(
        w.active_at(utc("2026-07-03T14:00:00Z")).unwrap(),
        summer,
        "active from its first instant"
    );
    assert_eq!(w.active_at(utc("2026-07-05T12:00:00Z")).unwrap(), summer);
    assert_eq!(w.active_at(utc("2026-07-03T13:59:59Z")).unwrap(), None);
    assert_eq!(w.active_at(utc("2026-07-06T04:00:00Z")).unwrap(), None);
    assert_eq!(w.active_at(utc("2026-07-08T12:00:00Z")).unwrap(), None, "midweek");
    // Winter (CET, UTC+1).
    let winter = span("2026-11-06T15:00:00Z", "2026-11-09T05:00:00Z");
    assert_eq!(w.active_at(utc("2026-11-08T23:00:00Z")).unwrap(), winter);
}

#[test]
fn weekend_window_over_the_october_dst_change_ends_monday_0600_local() {
    let w = window(WEEKEND);
    // Clocks go back on Sunday 25 October 2026: the window starts on summer time (14:00Z) and
    // ends on winter time, Monday 06:00 CET = 05:00Z, 63 real hours later.
    let want = span("2026-10-23T14:00:00Z", "2026-10-26T05:00:00Z");
    assert_eq!(w.active_at(utc("2026-10-25T12:00:00Z")).unwrap(), want);
    assert_eq!(
        w.active_at(utc("2026-10-26T04:30:00Z")).unwrap(),
        want,
        "a naive 62h would end at 04:00Z"
    );
    assert_eq!(w.active_at(utc("2026-10-26T05:00:00Z")).unwrap(), None);
}

#[test]
fn weekend_window_over_the_march_dst_change() {
    let w = window(WEEKEND);
    // Clocks go forward on 29 March 2026: Friday 16:00 CET = 15:00Z, Monday 06:00 CEST = 04:00Z.
    let want = span("2026-03-27T15:00:00Z", "2026-03-30T04:00:00Z");
    assert_eq!(w.active_at(utc("2026-03-29T12:00:00Z")).unwrap(), want);
    assert_eq!(w.active_at(utc("2026-03-30T04:00:00Z")).unwrap(), None);
}

#[test]
fn recurring_in_utc_by_default_with_numeric_weekday() {
    // Crontab's 5 is Friday.
    let w = window("every = \"30 1 * * 5\"\nduration = \"2h\"");
    assert_eq!(
        w.active_at(utc("2026-07-03T02:00:00Z")).unwrap(),
        span("2026-07-03T01:30:00Z", "2026-07-03T03:30:00Z")
    );
    assert_eq!(w.active_at(utc("2026-07-02T02:00:00Z")).unwrap(), None, "Thursday");
}

#[test]
fn bounded_recurrence_only_between_start_and_end() {
    let w = window(&format!(
        "{WEEKEND}\nstart = \"2026-12-01T00:00:00Z\"\nend = \"2027-01-01T00:00:00Z\""
    ));
    assert_eq!(
        w.active_at(utc("2026-11-28T12:00:00Z")).unwrap(),
        None,
        "before the season"
    );
    assert!(w.active_at(utc("2026-12-05T12:00:00Z")).unwrap().is_some());
    // The last occurrence starts on 25 December and may run past the season's end.
    assert_eq!(
        w.active_at(utc("2026-12-27T12:00:00Z")).unwrap(),
        span("2026-12-25T15:00:00Z", "2026-12-28T05:00:00Z")
    );
    assert_eq!(
        w.active_at(utc("2027-01-02T12:00:00Z")).unwrap(),
        None,
        "after the season"
    );
    let all = w
        .occurrences_between(utc("2026-01-01T00:00:00Z"), utc("2028-01-01T00:00:00Z"))
        .unwrap();
    let starts: Vec<String> = all.iter().map(|s| s.0.format("%m-%d").to_string()).collect();
    assert_eq!(starts, ["12-04", "12-11", "12-18", "12-25"]);
}

#[test]
fn occurrences_include_the_one_already_running() {
    let w = window(WEEKEND);
    // 1 November 2026 is a Sunday inside the 30 October weekend.
    let got = w
        .occurrences_between(utc("2026-11-01T00:00:00Z"), utc("2026-12-01T00:00:00Z"))
        .unwrap();
    let starts: Vec<String> = got.iter().map(|s| s.0.to_rfc3339()).collect();
    assert_eq!(
        starts,
        [
            "2026-10-30T15:00:00+00:00",
            "2026-11-06T15:00:00+00:00",
            "2026-11-13T15:00:00+00:00",
            "2026-11-20T15:00:00+00:00",
            "2026-11-27T15:00:00+00:00",
        ]
    );
    let one_off = window("start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-30T00:00:00Z\"");
    assert_eq!(
        one_off
            .occurrences_between(utc("2026-11-29T00:00:00Z"), utc("2026-11-29T01:00:00Z"))
            .unwrap()
            .len(),
        1
    );
    assert!(one_off
        .occurrences_between(utc("2026-11-30T00:00:00Z"), utc("2026-12-30T00:00:00Z"))
        .unwrap()
        .is_empty());
}

#[test]
fn occurrences_are_capped() {
    let w = window("every = \"* * * * *\"\nduration = \"1m\"");
    let got = w
        .occurrences_between(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z"))
        .unwrap();
    assert_eq!(got.len(), MAX_OCCURRENCES);
}

#[test]
fn scope_matching() {
    let w = window("start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-30T00:00:00Z\"\nregions = [\"us-east-1\"]\ncomponents = [\"index\"]");
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(w.covers(&v(&["us-east-1"]), &v(&["index"])));
    assert!(
        w.covers(&v(&["US-East-1"]), &v(&[])),
        "case-insensitive; unknown components meet every freeze"
    );
    assert!(w.covers(&v(&[]), &v(&["index", "model"])));
    assert!(!w.covers(&v(&["eu-west-1"]), &v(&["index"])));
    assert!(!w.covers(&v(&["us-east-1"]), &v(&["model"])));
    let global = window("start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-30T00:00:00Z\"");
    assert!(global.covers(&v(&["anywhere"]), &v(&["anything"])));
}

#[test]
fn unresolvable_windows_say_why() {
    let never = window("every = \"0 0 30 2 *\"\nduration = \"1h\"");
    assert_eq!(
        never.resolve().unwrap_err(),
        WindowError::Never {
            expr: "0 0 30 2 *".to_string()
        }
    );
    assert_eq!(
        never.resolve().unwrap_err().to_string(),
        "every \"0 0 30 2 *\" never matches a date (e.g. 30 February)"
    );
    let gap = window("start = \"2026-03-29T02:30:00\"\nend = \"2026-03-29T05:00:00\"\ntimezone = \"Europe/Berlin\"");
    assert!(gap
        .resolve()
        .unwrap_err()
        .to_string()
        .starts_with("start 2026-03-29T02:30:00 does not exist in Europe/Berlin"));
    let long = window("every = \"0 0 * * *\"\nduration = \"400days\"");
    assert_eq!(
        long.resolve().unwrap_err().to_string(),
        "duration 1year 1month 4days 7h 26m 24s is out of range; expected more than 0s and at most 366 days"
    );
    let both = window("start = \"2026-11-28T00:00:00Z\"\nend = \"2026-11-27T00:00:00Z\"\nevery = \"0 0 * * *\"");
    assert_eq!(both.problems().len(), 2, "{:?}", both.problems());
}

const NIGHTLY_0230_BERLIN: &str = "every = \"30 2 * * *\"\nduration = \"1h\"\ntimezone = \"Europe/Berlin\"";

#[test]
fn a_start_in_the_spring_forward_gap_starts_when_the_gap_ends() {
    // 29 March 2026: Berlin jumps from 02:00 CET to 03:00 CEST, so 02:30 never happens. Like
    // cron daemons, the occurrence starts at 03:00 CEST (01:00Z) and lasts its hour of wall
    // clock; the night's freeze must not vanish.
    let w = window(NIGHTLY_0230_BERLIN);
    let want = span("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z");
    assert_eq!(w.active_at(utc("2026-03-29T01:15:00Z")).unwrap(), want);
    let night = w.occurrences_between(utc("2026-03-28T12:00:00Z"), utc("2026-03-29T12:00:00Z"));
    assert_eq!(night.unwrap(), vec![want.unwrap()]);
}

#[test]
fn a_start_in_the_repeated_autumn_hour_starts_once_at_the_earlier_instant() {
    // 25 October 2026: 02:30 happens twice in Berlin (00:30Z in CEST, 01:30Z in CET). One
    // occurrence, from the first; its end (03:30 CET) is unambiguous, so it lasts two real
    // hours: never shorter than written.
    let w = window(NIGHTLY_0230_BERLIN);
    let want = span("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z");
    assert_eq!(w.active_at(utc("2026-10-25T00:45:00Z")).unwrap(), want);
    assert_eq!(
        w.active_at(utc("2026-10-25T01:45:00Z")).unwrap(),
        want,
        "the second 02:45"
    );
    let night = w.occurrences_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"));
    assert_eq!(night.unwrap(), vec![want.unwrap()]);
}
