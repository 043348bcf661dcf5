//! The calendar as written in TOML: freeze windows, tier-rule overrides, the emergency profile.
//!
//! These types only hold what the file says; [`CalendarSpec::validate`] finds the semantic
//! problems (bad times, zones, cron expressions, duplicate ids) so the loader can report them
//! all at once with their field paths, and `decide` can assume a checked calendar.

pub use super::tiers::FreezeKind;
use super::tiers::{Tier, TierOverrides, TierRule};
use crate::config::error::Invalid;
use crate::value::{Dur, FieldPath};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// One `[[freeze]]` entry: a one-off window (`start`/`end`) or a recurring one (`every` +
/// `duration`, optionally bounded by `start`/`end`), scoped to regions and components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// Stable name, shown in decisions and logs.
    pub id: String,
    /// Hard or soft.
    pub kind: FreezeKind,
    /// RFC 3339 with offset, or a local time read in `timezone`.
    pub start: Option<String>,
    /// RFC 3339 with offset, or a local time read in `timezone`.
    pub end: Option<String>,
    /// IANA zone for offset-less `start`/`end` and for evaluating `every` (default UTC).
    pub timezone: Option<String>,
    /// 5-field crontab expression for when each occurrence starts, e.g. `0 16 * * FRI`.
    pub every: Option<String>,
    /// Length of each occurrence of a recurring window, in wall-clock time of `timezone`.
    pub duration: Option<Dur>,
    /// Regions the freeze covers; empty means every region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Components the freeze covers; empty means every component.
    #[serde(default)]
    pub components: Vec<String>,
    /// Third party whose window this is (vendor freeze), if any.
    pub vendor: Option<String>,
    /// Free text for people: why the freeze exists, who to ask.
    pub note: Option<String>,
}

/// How a change that passed a freeze by exception is rolled: small canary, long look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmergencyProfile {
    /// Canary size as a percentage of the targets (default 5).
    pub canary_percent: f64,
    /// Canary size floor in hosts (default 1), so small fleets still get a canary.
    pub min_canary_hosts: usize,
    /// Shortest observation of the canary (default 10m); a longer playbook value wins.
    pub min_observe: Dur,
}

impl Default for EmergencyProfile {
    fn default() -> Self {
        EmergencyProfile {
            canary_percent: 5.0,
            min_canary_hosts: 1,
            min_observe: Dur(Duration::from_secs(600)),
        }
    }
}

impl EmergencyProfile {
    /// Canary host count for `targets` hosts: the percentage rounded up, at least the floor,
    /// never more than there are targets.
    pub fn canary_hosts(&self, targets: usize) -> usize {
        let by_percent = (targets as f64 * self.canary_percent / 100.0).ceil() as usize;
        by_percent.max(self.min_canary_hosts).min(targets)
    }

    /// Observation window: the playbook's if longer, else the profile's minimum.
    pub fn observe(&self, playbook_observe: Duration) -> Duration {
        playbook_observe.max(self.min_observe.get())
    }
}

/// The whole calendar: `[[freeze]]` windows, `[tiers.TN]` overrides, `[emergency]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    #[serde(default)]
    pub freeze: Vec<FreezeWindow>,
    #[serde(default)]
    pub tiers: TierOverrides,
    #[serde(default)]
    pub emergency: EmergencyProfile,
}

impl CalendarSpec {
    /// The effective rule for `tier`.
    pub fn rule(&self, tier: Tier) -> TierRule {
        self.tiers.rule(tier)
    }

    /// Every semantic problem in the calendar, each at its field path under `path`
    /// (`path` is where the calendar sits: the root of its own file, or inside the fleet).
    pub fn validate(&self, path: &FieldPath) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, w) in self.freeze.iter().enumerate() {
            let wp = path.key("freeze").index(i);
            if w.id.trim().is_empty() {
                out.push(Invalid::new(wp.key("id"), "id is empty; give the window a stable name"));
            } else if let Some(first) = seen.get(w.id.as_str()) {
                out.push(Invalid::new(
                    wp.key("id"),
                    format!(
                        "duplicate id {:?} (also used by freeze[{first}]); ids must be unique",
                        w.id
                    ),
                ));
            } else {
                seen.insert(w.id.as_str(), i);
            }
            for field in ["regions", "components"] {
                let list = if field == "regions" { &w.regions } else { &w.components };
                if let Some(j) = list.iter().position(|s| s.trim().is_empty()) {
                    out.push(Invalid::new(
                        wp.key(field).index(j),
                        format!("empty name in {field}; leave the list out to mean all"),
                    ));
                }
            }
            for e in w.problems() {
                let p = e.field().map_or_else(|| wp.clone(), |f| wp.key(f));
                out.push(Invalid::new(p, e.to_string()));
            }
        }
        let ep = path.key("emergency");
        let pct = self.emergency.canary_percent;
        if !(pct > 0.0 && pct <= 100.0) {
            out.push(Invalid::new(
                ep.key("canary_percent"),
                format!("canary_percent {pct} is out of range; expected more than 0 and at most 100"),
            ));
        }
        if self.emergency.min_canary_hosts == 0 {
            out.push(Invalid::new(
                ep.key("min_canary_hosts"),
                "min_canary_hosts is 0; expected at least 1",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tiers::Permit;

    fn parse(toml_text: &str) -> CalendarSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn messages(cal: &CalendarSpec) -> Vec<String> {
        cal.validate(&FieldPath::root()).iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn full_calendar_parses_with_overrides_and_defaults() {
        let cal = parse(
            r#"
            [[freeze]]
            id = "peak_q4_black_friday"
            kind = "hard"
            start = "2026-11-27T00:00:00Z"
            end = "2026-11-30T23:59:59Z"
            regions = ["us-east-1", "eu-west-1"]
            components = ["model", "provider"]

            [[freeze]]
            id = "weekend"
            kind = "soft"
            every = "0 16 * * FRI"
            duration = "62h"
            timezone = "Europe/Berlin"
            vendor = "anthropic"

            [tiers.T1]
            soft = "allow"

            [tiers.T2]
            canary = false

            [emergency]
            canary_percent = 10
            "#,
        );
        assert_eq!(cal.freeze.len(), 2);
        assert_eq!(cal.freeze[1].duration, Some(Dur(Duration::from_secs(62 * 3600))));
        assert_eq!(cal.rule(Tier::T1).soft, Permit::Allow);
        assert_eq!(
            cal.rule(Tier::T1).hard,
            Permit::Block,
            "unset fields keep the tier default"
        );
        assert!(!cal.rule(Tier::T2).canary);
        assert!(cal.rule(Tier::T3).readiness);
        assert_eq!(cal.emergency.canary_percent, 10.0);
        assert_eq!(cal.emergency.min_observe, Dur(Duration::from_secs(600)));
        assert!(messages(&cal).is_empty(), "{:?}", messages(&cal));
    }

    #[test]
    fn unknown_fields_and_tiers_are_rejected() {
        let err = toml::from_str::<CalendarSpec>("[[freeze]]\nid='x'\nkind='hard'\nscope=['llm']\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `scope`"), "{err}");
        let err = toml::from_str::<CalendarSpec>("[tiers.T4]\nhard='allow'\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `T4`"), "{err}");
        let err = toml::from_str::<CalendarSpec>("[[freeze]]\nid='x'\nkind='frozen'\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant `frozen`"), "{err}");
    }

    #[test]
    fn emergency_profile_sizes_the_canary() {
        let p = EmergencyProfile::default();
        assert_eq!(p.canary_hosts(3), 1);
        assert_eq!(p.canary_hosts(100), 5);
        assert_eq!(p.canary_hosts(101), 6);
        assert_eq!(p.canary_hosts(0), 0);
        assert_eq!(p.observe(Duration::from_secs(60)), Duration::from_secs(600));
        assert_eq!(p.observe(Duration::from_secs(1800)), Duration::from_secs(1800));
    }

    fn one(window: &str) -> Vec<String> {
        messages(&parse(&format!("[[freeze]]\nid = \"w\"\nkind = \"hard\"\n{window}")))
    }

    #[test]
    fn validation_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-26T00:00:00Z\"",
                "field `freeze[0].end`: end 2026-11-26T00:00:00Z is before start 2026-11-27T00:00:00Z",
            ),
            (
                "start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-27T00:00:00Z\"",
                "field `freeze[0].end`: end 2026-11-27T00:00:00Z equals start; a window needs a positive length",
            ),
            (
                "start = \"next friday\"\nend = \"2026-11-27T00:00:00Z\"",
                "field `freeze[0].start`: start \"next friday\" is not a valid time; expected RFC 3339 with an offset (e.g. \"2026-12-24T18:00:00Z\") or a local time plus a time zone (e.g. \"2026-12-24T18:00:00\" with Europe/Berlin)",
            ),
            (
                "start = \"2026-12-24T18:00:00\"\nend = \"2026-12-27T00:00:00Z\"",
                "field `freeze[0].start`: start \"2026-12-24T18:00:00\" has no UTC offset; expected RFC 3339 with an offset (e.g. \"2026-12-24T18:00:00Z\") or a local time plus a time zone",
            ),
            (
                "start = \"2026-12-24T18:00:00\"\nend = \"2026-12-27T00:00:00\"\ntimezone = \"Mars/Olympus\"",
                "field `freeze[0].timezone`: unknown time zone \"Mars/Olympus\"; expected an IANA name such as \"Europe/Berlin\" or \"UTC\"",
            ),
            (
                "every = \"0 16 * FRI\"\nduration = \"2h\"",
                "field `freeze[0].every`: every \"0 16 * FRI\" is not a valid cron expression: expected 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 16 * * FRI\"; got 4",
            ),
            (
                "every = \"0 16 * * FRI\"",
                "field `freeze[0].duration`: every is set but duration is missing; a recurring window needs the length of each occurrence, e.g. duration = \"62h\"",
            ),
            (
                "start = \"2026-11-27T00:00:00Z\"\nend = \"2026-11-28T00:00:00Z\"\nduration = \"2h\"",
                "field `freeze[0].duration`: duration only applies to recurring windows; add every (a cron expression) or remove duration",
            ),
            (
                "note = \"nothing else\"",
                "field `freeze[0]`: the window has neither start/end nor every; give start and end for a one-off window, or every and duration for a recurring one",
            ),
            (
                "start = \"2026-11-27T00:00:00Z\"",
                "field `freeze[0].end`: start is set but end is missing; a one-off window needs both (or every and duration for a recurring one)",
            ),
        ];
        for (window, want) in cases {
            assert_eq!(one(window), vec![want.to_string()], "window: {window}");
        }
    }

    #[test]
    fn duplicate_ids_and_bad_emergency() {
        let cal = parse(
            r#"
            [[freeze]]
            id = "x"
            kind = "hard"
            start = "2026-11-27T00:00:00Z"
            end = "2026-11-28T00:00:00Z"
            [[freeze]]
            id = "x"
            kind = "soft"
            start = "2026-12-27T00:00:00Z"
            end = "2026-12-28T00:00:00Z"
            [emergency]
            canary_percent = 0
            "#,
        );
        assert_eq!(
            messages(&cal),
            vec![
                "field `freeze[1].id`: duplicate id \"x\" (also used by freeze[0]); ids must be unique".to_string(),
                "field `emergency.canary_percent`: canary_percent 0 is out of range; expected more than 0 and at most 100"
                    .to_string(),
            ]
        );
        let nested = cal.validate(&FieldPath::root().key("calendar"));
        assert_eq!(nested[0].path.to_string(), "calendar.freeze[1].id");
    }

    #[test]
    fn the_example_calendar_in_the_repository_is_valid() {
        // Runtime read so a rename of the example cannot break the build of the library.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/calendar.toml");
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let cal: CalendarSpec = toml::from_str(&text).unwrap();
        assert!(
            cal.validate(&FieldPath::root()).is_empty(),
            "{:?}",
            cal.validate(&FieldPath::root())
        );
        assert!(!cal.freeze.is_empty());
    }
}
