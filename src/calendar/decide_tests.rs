//! The gate: every tier x freeze kind, scoping, exceptions, requirements, decision file.

use super::decide::{decide, Decision, Effect, Exception, GateRequest, Readiness};
use super::spec::CalendarSpec;
use super::tiers::Tier;
use chrono::{DateTime, Utc};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cal(text: &str) -> CalendarSpec {
    let cal: CalendarSpec = toml::from_str(text).unwrap();
    assert!(cal.validate(&Default::default()).is_empty());
    cal
}

const TWO_FREEZES: &str = r#"
[[freeze]]
id = "q4_hard"
kind = "hard"
start = "2026-11-27T00:00:00Z"
end = "2026-11-30T23:59:59Z"

[[freeze]]
id = "dec_soft"
kind = "soft"
start = "2026-12-10T00:00:00Z"
end = "2026-12-12T00:00:00Z"
"#;

const NO_FREEZE: &str = "2026-10-01T12:00:00Z";
const IN_SOFT: &str = "2026-12-11T12:00:00Z";
const IN_HARD: &str = "2026-11-28T12:00:00Z";

fn req(tier: Tier, at: &str) -> GateRequest {
    GateRequest {
        tier,
        regions: vec![],
        components: vec![],
        at: utc(at),
        exception: None,
        playbook_id: Some("model-swap".to_string()),
        readiness: None,
    }
}

fn exception() -> Option<Exception> {
    Some(Exception {
        reason: "INC-42 outage fix".to_string(),
        approver: "alice".to_string(),
    })
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_tier_and_freeze_kind() {
    use Tier::*;
    let c = cal(TWO_FREEZES);
    // (tier, when, with exception, allowed, emergency)
    let table = [
        (T0, NO_FREEZE, false, true, false),
        (T0, IN_SOFT, false, true, false),
        (T0, IN_HARD, false, false, false),
        (T0, NO_FREEZE, true, true, false),
        (T0, IN_SOFT, true, true, false),
        (T0, IN_HARD, true, true, true),
        (T1, NO_FREEZE, false, true, false),
        (T1, IN_SOFT, false, false, false),
        (T1, IN_HARD, false, false, false),
        (T1, NO_FREEZE, true, true, false),
        (T1, IN_SOFT, true, true, true),
        (T1, IN_HARD, true, false, false),
        (T2, NO_FREEZE, false, true, false),
        (T2, IN_SOFT, false, false, false),
        (T2, IN_HARD, false, false, false),
        (T2, NO_FREEZE, true, true, false),
        (T2, IN_SOFT, true, false, false),
        (T2, IN_HARD, true, false, false),
        (T3, NO_FREEZE, false, true, false),
        (T3, IN_SOFT, false, false, false),
        (T3, IN_HARD, false, false, false),
        (T3, NO_FREEZE, true, true, false),
        (T3, IN_SOFT, true, false, false),
        (T3, IN_HARD, true, false, false),
    ];
    for (tier, at, with_exception, allowed, emergency) in table {
        let mut r = req(tier, at);
        if with_exception {
            r.exception = exception();
        }
        let d = decide(&c, &r);
        let case = format!("{tier} at {at} exception={with_exception}: {}", d.summary());
        assert_eq!(d.allowed, allowed, "{case}");
        assert_eq!(d.emergency, emergency, "{case}");
        assert_eq!(d.decision, if allowed { "allow" } else { "block" }, "{case}");
        assert_eq!(d.emergency_profile.is_some(), emergency, "{case}");
        assert_eq!(d.windows.len(), usize::from(at != NO_FREEZE), "{case}");
        if !allowed {
            assert!(d.blocked_everywhere, "global windows block everywhere: {case}");
        }
    }
}

#[test]
fn block_reasons_name_the_window_and_what_would_pass() {
    let c = cal(TWO_FREEZES);
    let d = decide(&c, &req(Tier::T2, IN_HARD));
    assert_eq!(
        d.reasons,
        [
            "hard freeze `q4_hard` (2026-11-27T00:00:00Z to 2026-11-30T23:59:59Z) blocks T2 (admits only T0 with an exception)",
            "T2 requirements (canary/readiness) not checked: no playbook given",
        ]
    );
    assert_eq!(d.windows[0].effect, Effect::Blocks);
    let d = decide(&c, &req(Tier::T2, IN_SOFT));
    assert!(
        d.reasons[0].ends_with("blocks T2 (admits only T0, T1 with an exception)"),
        "{:?}",
        d.reasons
    );
    let d = decide(&c, &req(Tier::T2, NO_FREEZE));
    assert_eq!(
        d.reasons[0],
        "no freeze window covering this change is active at 2026-10-01T12:00:00Z"
    );
}

#[test]
fn exceptions_are_recorded_and_only_lift_what_they_may() {
    let c = cal(TWO_FREEZES);
    // T0 without an exception is told how to get one.
    let d = decide(&c, &req(Tier::T0, IN_HARD));
    assert!(d.reasons[0].ends_with("lets T0 through only with an exception (--exception REASON --approver NAME)"));
    // T0 with one passes, and the record says who and why.
    let mut r = req(Tier::T0, IN_HARD);
    r.exception = exception();
    let d = decide(&c, &r);
    assert!(d.allowed && d.emergency);
    assert_eq!(d.approver.as_deref(), Some("alice"));
    assert_eq!(d.exception_reason.as_deref(), Some("INC-42 outage fix"));
    assert_eq!(d.windows[0].effect, Effect::AllowsWithException);
    assert!(
        d.reasons[0].starts_with("T0 passes hard freeze `q4_hard`"),
        "{:?}",
        d.reasons
    );
    assert!(d.reasons[0].ends_with("under an exception approved by alice: INC-42 outage fix"));
    assert_eq!(d.emergency_profile, Some(c.emergency));
    // T1 in a soft freeze with an approver.
    let mut r = req(Tier::T1, IN_SOFT);
    r.exception = exception();
    assert!(decide(&c, &r).allowed);
    // T2 with an exception is still blocked, and says so.
    let mut r = req(Tier::T2, IN_SOFT);
    r.exception = exception();
    let d = decide(&c, &r);
    assert!(!d.allowed && !d.emergency);
    assert!(
        d.reasons[0].ends_with("; an exception does not lift it"),
        "{:?}",
        d.reasons
    );
    // An exception without an approver does not count.
    let mut r = req(Tier::T0, IN_HARD);
    r.exception = Some(Exception {
        reason: "urgent".to_string(),
        approver: " ".to_string(),
    });
    let d = decide(&c, &r);
    assert!(!d.allowed);
    assert_eq!(
        d.reasons[0],
        "the exception is incomplete: it needs both a reason and an approver"
    );
}

#[test]
fn regional_freeze_blocks_only_its_regions() {
    let c = cal(r#"
        [[freeze]]
        id = "us_peak"
        kind = "hard"
        start = "2026-11-27T00:00:00Z"
        end = "2026-11-30T23:59:59Z"
        regions = ["us-east-1", "us-west-2"]
        "#);
    let with_regions = |regions: &[&str]| {
        let mut r = req(Tier::T2, IN_HARD);
        r.regions = strings(regions);
        decide(&c, &r)
    };
    let d = with_regions(&["eu-west-1"]);
    assert!(d.allowed && d.windows.is_empty());
    let d = with_regions(&["eu-west-1", "US-EAST-1"]);
    assert!(!d.allowed && !d.blocked_everywhere);
    assert_eq!(d.blocked_regions, ["US-EAST-1"]);
    assert!(d.allows_region(Some("eu-west-1")), "--skip-frozen proceeds elsewhere");
    assert!(!d.allows_region(Some("us-east-1")));
    assert!(
        !d.allows_region(None),
        "a host without a region cannot be shown to be outside"
    );
    // Unknown regions: the window applies, and names the regions it freezes.
    let d = with_regions(&[]);
    assert!(!d.allowed && !d.blocked_everywhere);
    assert_eq!(d.blocked_regions, ["us-east-1", "us-west-2"]);
    assert!(d.allows_region(Some("ap-southeast-1")));
}

#[test]
fn component_freeze_blocks_only_its_components() {
    let c = cal(r#"
        [[freeze]]
        id = "index_rebuild_freeze"
        kind = "soft"
        start = "2026-12-10T00:00:00Z"
        end = "2026-12-12T00:00:00Z"
        components = ["index"]
        vendor = "pinecone"
        "#);
    let with_components = |components: &[&str]| {
        let mut r = req(Tier::T2, IN_SOFT);
        r.components = strings(components);
        decide(&c, &r)
    };
    assert!(with_components(&["model"]).allowed);
    let d = with_components(&["index", "model"]);
    assert!(!d.allowed);
    assert_eq!(d.windows[0].vendor.as_deref(), Some("pinecone"));
    assert!(
        !with_components(&[]).allowed,
        "unknown components meet every component freeze"
    );
    assert!(!decide(&c, &req(Tier::T2, IN_SOFT)).allows_region(Some("anywhere")));
}

#[test]
fn readiness_and_canary_requirements() {
    let c = cal(TWO_FREEZES);
    let full = Readiness {
        has_health: true,
        has_log_watch: true,
        batch_steps: 3,
        has_canary: true,
    };
    let mut r = req(Tier::T3, NO_FREEZE);
    r.readiness = Some(full);
    assert!(decide(&c, &r).allowed);
    r.readiness = Some(Readiness {
        has_health: false,
        has_log_watch: false,
        batch_steps: 2,
        has_canary: true,
    });
    let d = decide(&c, &r);
    assert!(!d.allowed && d.blocked_everywhere);
    assert_eq!(
        d.reasons.last().unwrap(),
        "T3 requires the readiness checks; missing: a health command, a log watch, a batch plan with at least 3 steps (has 2)"
    );
    // Without a playbook the requirements cannot be checked; the gate says so.
    let d = decide(&c, &req(Tier::T3, NO_FREEZE));
    assert!(d.allowed);
    assert!(d.reasons.last().unwrap().contains("not checked: no playbook given"));
    // T2 needs a canary.
    let mut r = req(Tier::T2, NO_FREEZE);
    r.readiness = Some(Readiness {
        has_canary: false,
        ..full
    });
    let d = decide(&c, &r);
    assert!(!d.allowed);
    assert_eq!(
        d.reasons.last().unwrap(),
        "T2 requires a canary step, but the playbook has none"
    );
    // T0 and T1 need neither.
    let mut r = req(Tier::T1, NO_FREEZE);
    r.readiness = Some(Readiness::default());
    assert!(decide(&c, &r).allowed);
}

#[test]
fn berlin_local_window_is_compared_in_utc() {
    let c = cal(r#"
        [[freeze]]
        id = "xmas"
        kind = "hard"
        start = "2026-12-24T18:00:00"
        end = "2026-12-27T00:00:00"
        timezone = "Europe/Berlin"
        "#);
    assert!(decide(&c, &req(Tier::T2, "2026-12-24T16:59:00Z")).allowed);
    assert!(!decide(&c, &req(Tier::T2, "2026-12-24T17:00:00Z")).allowed);
    assert!(!decide(&c, &req(Tier::T2, "2026-12-26T22:59:59Z")).allowed);
    assert!(decide(&c, &req(Tier::T2, "2026-12-26T23:00:00Z")).allowed);
}

#[test]
fn recurring_weekend_freeze_gates_friday_evening() {
    let c = cal("[[freeze]]\nid = \"weekend\"\nkind = \"soft\"\nevery = \"0 16 * * FRI\"\nduration = \"62h\"\ntimezone = \"Europe/Berlin\"\n");
    assert!(decide(&c, &req(Tier::T2, "2026-10-23T13:59:00Z")).allowed);
    assert!(!decide(&c, &req(Tier::T2, "2026-10-23T14:00:00Z")).allowed);
    assert!(!decide(&c, &req(Tier::T2, "2026-10-26T04:59:00Z")).allowed);
    assert!(decide(&c, &req(Tier::T2, "2026-10-26T05:00:00Z")).allowed);
}

#[test]
fn tier_overrides_change_the_verdict() {
    let c = cal(&format!(
        "{TWO_FREEZES}\n[tiers.T2]\nsoft = \"allow\"\n[tiers.T0]\nhard = \"allow\"\n"
    ));
    assert!(decide(&c, &req(Tier::T2, IN_SOFT)).allowed);
    let d = decide(&c, &req(Tier::T0, IN_HARD));
    assert!(d.allowed && !d.emergency);
    assert!(!decide(&c, &req(Tier::T2, IN_HARD)).allowed);
}

#[test]
fn broken_window_fails_closed() {
    let mut c = cal(TWO_FREEZES);
    c.freeze[0].end = Some("whenever".to_string());
    let d = decide(&c, &req(Tier::T2, NO_FREEZE));
    assert!(!d.allowed && d.blocked_everywhere);
    assert!(d.reasons[0].starts_with("freeze window `q4_hard` is invalid (end \"whenever\" is not a valid time"));
}

#[test]
fn decision_file_shape() {
    let c = cal(TWO_FREEZES);
    let mut r = req(Tier::T0, IN_HARD);
    r.exception = exception();
    r.regions = strings(&["eu-west-1"]);
    let d: Decision = decide(&c, &r);
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["tier"], "T0");
    assert_eq!(v["at"], "2026-11-28T12:00:00Z");
    assert_eq!(v["playbook_id"], "model-swap");
    assert_eq!(v["approver"], "alice");
    assert_eq!(v["windows"][0]["id"], "q4_hard");
    assert_eq!(v["windows"][0]["kind"], "hard");
    assert_eq!(v["windows"][0]["start"], "2026-11-27T00:00:00Z");
    assert_eq!(v["windows"][0]["effect"], "allows_with_exception");
    assert_eq!(v["emergency"], true);
    assert_eq!(v["emergency_profile"]["canary_percent"], 5.0);
    assert_eq!(v["emergency_profile"]["min_observe"], "10m");
    assert_eq!(v["regions"][0], "eu-west-1");
}
