//! Recurring-window schedules: the classic 5-field crontab form, parsed by `croner`.
//!
//! Why `croner` (it replaced the `cron` crate and a hand-written translation of the
//! day-of-week field): croner reads crontab's own syntax, where the `cron` crate wanted a
//! seconds field and numbered weekdays 1=Sunday..7=Saturday, so `* * 5` would have frozen
//! Thursdays without the rewrite. The tests below pin both day-of-week conventions (0 and 7 are
//! Sunday; `1-5` is `MON-FRI`). It also places a start that falls on a DST change the way cron
//! daemons do: in the spring-forward gap the occurrence starts when the gap ends, and in the
//! repeated autumn hour it starts once, at the earlier instant. The two DST tests in
//! `window_tests.rs` fail with the `cron` crate: it skipped the gap night's freeze altogether
//! and found none active in the repeated hour.
//!
//! Given up with the translation, because crontab does not have them either: full day names
//! (`friday`), ranges that wrap past Sunday (`FRI-MON`; `FRI-SUN,MON` is fine) and a bare
//! start with a step (`5/2`). Each is refused with what to write instead.

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The five fields, for messages.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31 (or L for the last day)"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
];

/// Parse a 5-field crontab expression into a schedule; the error says what is wrong.
pub fn parse_every(expr: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [_, _, dom, _, dow] = fields.as_slice() else {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 16 * * FRI\"; got {}",
            fields.len()
        ));
    };
    let restricted = |f: &str| f != "*" && f != "?";
    if restricted(dom) && restricted(dow) {
        // crontab ORs the two fields, other dialects AND them: refuse rather than pick one.
        return Err(
            "restrict either day-of-month or day-of-week, not both (cron dialects disagree on how they combine)"
                .to_string(),
        );
    }
    parser().parse(expr).map_err(|e| explain(&fields, &e))
}

/// Crontab's dialect: minutes to weekdays, no seconds or years, 0 and 7 both Sunday.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// Name the field at fault (the one whose replacement by `*` makes the expression parse) and
/// what it accepts; croner's own message does not say which field it means.
fn explain(fields: &[&str], e: &CronError) -> String {
    let culprit = (0..fields.len()).find(|&i| {
        let mut probe = fields.to_vec();
        probe[i] = "*";
        parser().parse(&probe.join(" ")).is_ok()
    });
    let reason = match e {
        // croner has already replaced day names with numbers here (`friday` reads `5DAY`).
        CronError::IllegalCharacters(_) => "not a number or a three-letter name".to_string(),
        CronError::ComponentError(m) | CronError::InvalidPattern(m) => m.trim_end_matches('.').to_string(),
        other => other.to_string(),
    };
    let Some(i) = culprit else {
        return reason;
    };
    let (name, accepts) = FIELDS[i];
    let value = fields[i];
    let hint = if i == 4 { dow_hint(value) } else { None };
    format!("{name} {value:?}: {}; expected {accepts}", hint.unwrap_or(reason))
}

/// What to write instead of the day-of-week forms the old translation accepted.
fn dow_hint(field: &str) -> Option<String> {
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let day = |t: &str| {
        let t = t.to_ascii_uppercase();
        t.parse::<usize>()
            .ok()
            .filter(|n| *n <= 7)
            .or_else(|| DAYS.iter().position(|d| *d == t))
    };
    for part in field.split(',') {
        let range = part.split('/').next().unwrap_or(part);
        if let Some(long) = range
            .split('-')
            .find(|t| t.len() > 3 && DAYS.iter().any(|d| t.to_ascii_uppercase().starts_with(d)))
        {
            return Some(format!(
                "day names are three letters ({:.3} for {long})",
                long.to_ascii_uppercase()
            ));
        }
        if let Some((a, b)) = range.split_once('-') {
            // As in croner, a range may end on SUN meaning 7 (`FRI-SUN`).
            let end = if b.eq_ignore_ascii_case("SUN") { Some(7) } else { day(b) };
            if let (Some(lo), Some(hi)) = (day(a), end) {
                if lo > hi {
                    return Some(format!(
                        "the range {range} wraps past Sunday, and crontab ranges only run forwards: \
                         split it at Sunday (e.g. FRI-SUN,MON or 5-7,1)"
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike, TimeZone, Utc, Weekday};

    /// The days a schedule fires on in the week from Sunday 2026-01-04.
    fn days(expr: &str) -> Vec<Weekday> {
        let s = parse_every(expr).unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 0).unwrap();
        s.iter_from(from, croner::Direction::Forward)
            .take_while(|t: &DateTime<Utc>| *t < from + chrono::Duration::days(7))
            .map(|t| t.weekday())
            .collect()
    }

    #[test]
    fn both_sunday_numbers_and_names_follow_crontab() {
        use Weekday::*;
        assert_eq!(days("0 16 * * 0"), [Sun]);
        assert_eq!(days("0 16 * * 7"), [Sun], "7 is Sunday too");
        assert_eq!(days("0 16 * * SUN"), [Sun]);
        assert_eq!(days("0 16 * * 5"), [Fri], "5 is Friday, not Thursday as in Quartz");
        assert_eq!(days("0 16 * * fri"), [Fri], "names are case-insensitive");
        let weekdays = [Mon, Tue, Wed, Thu, Fri];
        assert_eq!(days("0 16 * * 1-5"), weekdays);
        assert_eq!(days("0 16 * * MON-FRI"), weekdays);
        assert_eq!(days("0 16 * * 5-7"), [Sun, Fri, Sat]);
        assert_eq!(days("0 16 * * FRI-SUN"), [Sun, Fri, Sat], "a range may end on SUN as 7");
        assert_eq!(days("0 16 * * 0,6"), [Sun, Sat]);
        assert_eq!(days("0 16 * * MON,WED"), [Mon, Wed]);
        assert_eq!(days("0 16 * * */2"), [Sun, Tue, Thu, Sat]);
        assert_eq!(days("0 16 * * 0-7").len(), 7);
        assert_eq!(days("0 16 * * *").len(), 7);
    }

    #[test]
    fn croner_extensions_named_in_the_docs_work() {
        let first = |expr: &str, from: (i32, u32, u32)| {
            let t = Utc.with_ymd_and_hms(from.0, from.1, from.2, 0, 0, 0).unwrap();
            let next: DateTime<Utc> = parse_every(expr).unwrap().find_next_occurrence(&t, false).unwrap();
            next.format("%Y-%m-%d %a").to_string()
        };
        assert_eq!(first("0 16 L * *", (2026, 2, 1)), "2026-02-28 Sat");
        assert_eq!(
            first("0 16 15W * *", (2026, 2, 1)),
            "2026-02-16 Mon",
            "the 15th is a Sunday"
        );
        assert_eq!(first("0 16 * * 5#2", (2026, 1, 1)), "2026-01-09 Fri");
        assert_eq!(first("0 16 * * 5#L", (2026, 1, 1)), "2026-01-30 Fri");
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        let e = |expr: &str| parse_every(expr).unwrap_err();
        assert!(e("0 16 * FRI").contains("expected 5 fields"));
        assert!(e("0 16 1 * FRI").contains("not both"));
        assert_eq!(
            e("0 16 * * FUN"),
            "day-of-week \"FUN\": not a number or a three-letter name; expected 0-7 (0 and 7 are Sunday) or SUN-SAT"
        );
        assert!(
            e("0 16 * * 8").starts_with("day-of-week \"8\": Number out of bounds;"),
            "{}",
            e("0 16 * * 8")
        );
        assert!(e("0 25 * * *").starts_with("hour \"25\": "), "{}", e("0 25 * * *"));
        assert!(e("0 16 * 13 *").starts_with("month \"13\": "), "{}", e("0 16 * 13 *"));
    }

    #[test]
    fn forms_crontab_lacks_are_refused_with_what_to_write() {
        let e = |expr: &str| parse_every(expr).unwrap_err();
        assert!(e("0 16 * * friday").contains("day names are three letters (FRI for friday)"));
        assert_eq!(
            e("0 16 * * FRI-MON"),
            "day-of-week \"FRI-MON\": the range FRI-MON wraps past Sunday, and crontab ranges only run \
             forwards: split it at Sunday (e.g. FRI-SUN,MON or 5-7,1); expected 0-7 (0 and 7 are Sunday) or SUN-SAT"
        );
        assert!(e("0 16 * * 6-1").contains("wraps past Sunday"));
        assert!(e("0 16 * * SAT-SUN,FUN").contains("not a number"), "SAT-SUN is no wrap");
        assert!(
            e("0 16 * * 5/2").contains("single number steps"),
            "{}",
            e("0 16 * * 5/2")
        );
    }
}
