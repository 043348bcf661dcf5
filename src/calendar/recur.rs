//! Recurring-window schedules: the classic 5-field cron form, translated for the `cron` crate.
//!
//! Operators write `0 16 * * FRI` (minute hour day-of-month month day-of-week), the form
//! crontab uses. The `cron` crate wants a leading seconds field and numbers weekdays 1=Sunday
//! ..7=Saturday, where crontab uses 0=Sunday..6=Saturday (7 also Sunday): passed through
//! unchanged, `* * 5` would freeze Thursdays instead of Fridays. So the day-of-week field is
//! parsed here with crontab's meaning and handed over as day names, which both agree on.

use cron::Schedule;
use std::str::FromStr;

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parse a 5-field crontab expression into a schedule; the error says what is wrong.
pub fn parse_every(expr: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 16 * * FRI\"; got {}",
            fields.len()
        ));
    };
    let restricted = |f: &str| f != "*" && f != "?";
    if restricted(dom) && restricted(dow) {
        // crontab ORs the two fields, the cron crate ANDs them: refuse rather than pick one.
        return Err(
            "restrict either day-of-month or day-of-week, not both (cron dialects disagree on how they combine)"
                .to_string(),
        );
    }
    let dow = translate_dow(dow)?;
    let six = format!("0 {minute} {hour} {dom} {month} {dow}");
    Schedule::from_str(&six).map_err(|e| {
        // The crate's message repeats our rewritten expression with a caret; keep its last line.
        let msg = e.to_string();
        msg.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .to_string()
    })
}

/// Rewrite a crontab day-of-week field (numbers 0-7, names, lists, ranges, steps; ranges may
/// wrap, e.g. `FRI-MON`) as an explicit list of day names.
fn translate_dow(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".to_string());
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: usize = s
                    .parse()
                    .map_err(|_| format!("invalid step {s:?} in day-of-week {field:?}"))?;
                if step == 0 {
                    return Err(format!("step 0 in day-of-week {field:?}; expected a positive step"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day(a, field)?, day(b, field)?)
        } else {
            let d = day(range, field)?;
            // crontab reads `5/2` as "from 5 to the end of the week, every 2nd day".
            (d, if step > 1 { 6 } else { d })
        };
        let len = if hi >= lo { hi - lo } else { hi + 7 - lo };
        for k in (0..=len).step_by(step) {
            days[(lo + k) % 7] = true;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".to_string());
    }
    let names: Vec<&str> = DAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    Ok(names.join(","))
}

/// One day-of-week token as crontab means it: 0..=7 (0 and 7 are Sunday) or a day name.
fn day(token: &str, field: &str) -> Result<usize, String> {
    let t = token.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!(
                "day-of-week {n} in {field:?} is out of range; expected 0-7 (0 and 7 are Sunday) or MON..SUN"
            ))
        };
    }
    let short = t.get(..3).unwrap_or(&t);
    DAY_NAMES
        .iter()
        .position(|n| *n == short && (t.len() == 3 || full_name(n) == t))
        .ok_or_else(|| format!("{token:?} in day-of-week {field:?} is not a day; expected 0-7 or MON..SUN"))
}

/// The full English name of a three-letter day abbreviation.
fn full_name(short: &str) -> &'static str {
    match short {
        "SUN" => "SUNDAY",
        "MON" => "MONDAY",
        "TUE" => "TUESDAY",
        "WED" => "WEDNESDAY",
        "THU" => "THURSDAY",
        "FRI" => "FRIDAY",
        _ => "SATURDAY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    fn first_weekday(expr: &str) -> Weekday {
        let s = parse_every(expr).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        s.after(&t).next().unwrap().weekday()
    }

    #[test]
    fn crontab_day_numbers_keep_their_meaning() {
        // 2026-01-01 is a Thursday, so the first match names the day the field means.
        assert_eq!(first_weekday("0 16 * * 5"), Weekday::Fri);
        assert_eq!(first_weekday("0 16 * * FRI"), Weekday::Fri);
        assert_eq!(first_weekday("0 16 * * friday"), Weekday::Fri);
        assert_eq!(first_weekday("0 16 * * 0"), Weekday::Sun);
        assert_eq!(first_weekday("0 16 * * 7"), Weekday::Sun);
        assert_eq!(first_weekday("0 16 * * 1-3"), Weekday::Mon);
        assert_eq!(first_weekday("0 16 * * SAT-MON"), Weekday::Sat);
    }

    #[test]
    fn translation_of_lists_ranges_and_steps() {
        assert_eq!(translate_dow("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(translate_dow("FRI-MON").unwrap(), "SUN,MON,FRI,SAT");
        assert_eq!(translate_dow("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(translate_dow("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(translate_dow("0-7").unwrap(), "*");
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(parse_every("0 16 * FRI").unwrap_err().contains("expected 5 fields"));
        assert!(parse_every("0 16 1 * FRI").unwrap_err().contains("not both"));
        assert!(parse_every("0 16 * * FUN").unwrap_err().contains("is not a day"));
        assert!(parse_every("0 16 * * 8").unwrap_err().contains("out of range"));
        assert!(!parse_every("0 25 * * *").unwrap_err().is_empty());
    }
}
