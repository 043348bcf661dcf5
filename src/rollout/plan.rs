//! The batch plan: which hosts form the canary and which go in each batch after it.

use crate::config::playbook::{Amount, RolloutSpec, Strategy};
use serde::{Deserialize, Serialize};

/// Hosts per phase, in the order they are changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    pub canary: Vec<String>,
    pub batches: Vec<Vec<String>>,
    /// Phases after which the run stops and waits for `bellwether promote RUN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_after: Vec<String>,
    /// `region_plan`: one wave per region, in order, each with its own canary and batches
    /// (then `canary` and `batches` above are empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
}

/// One region's share of a run rolled region by region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub region: String,
    pub canary: Vec<String>,
    pub batches: Vec<Vec<String>>,
}

/// Phase names: "canary", "batch 1", …; in a region wave "us-east-1: canary".
fn phases_of(prefix: &str, canary: &[String], batches: &[Vec<String>], v: &mut Vec<(String, Vec<String>)>) {
    if !canary.is_empty() {
        v.push((format!("{prefix}canary"), canary.to_vec()));
    }
    for (i, b) in batches.iter().enumerate() {
        v.push((format!("{prefix}batch {}", i + 1), b.clone()));
    }
}

impl BatchPlan {
    /// Phase names and hosts: ("canary", ..), ("batch 1", ..), ...; with region waves
    /// ("ap-southeast-1: canary", ..), ("ap-southeast-1: batch 1", ..), ("eu-west-1: canary", ..).
    pub fn phases(&self) -> Vec<(String, Vec<String>)> {
        let mut v = Vec::new();
        phases_of("", &self.canary, &self.batches, &mut v);
        for w in &self.waves {
            phases_of(&format!("{}: ", w.region), &w.canary, &w.batches, &mut v);
        }
        v
    }

    /// Every host in plan order.
    pub fn all(&self) -> Vec<String> {
        self.phases().into_iter().flat_map(|(_, h)| h).collect()
    }

    /// Is this phase a canary (of the run, or of a region wave)?
    pub fn is_canary(phase: &str) -> bool {
        phase == "canary" || phase.ends_with(": canary")
    }

    /// The region wave a phase belongs to, if the run goes region by region.
    pub fn wave_of(phase: &str) -> Option<&str> {
        phase.split_once(": ").map(|(r, _)| r)
    }
}

/// Build the plan over `targets` (already in a deterministic order). `canary_override` is the
/// `--canary` flag; `canary_count` lets the emergency profile replace the playbook's size.
pub fn make_plan(
    targets: &[String],
    spec: &RolloutSpec,
    canary_override: Option<&str>,
    canary_count: Option<usize>,
) -> Result<BatchPlan, String> {
    if targets.is_empty() {
        return Ok(BatchPlan::default());
    }
    if spec.strategy == Strategy::AllAtOnce {
        return Ok(BatchPlan {
            batches: vec![targets.to_vec()],
            ..Default::default()
        });
    }
    let n = canary_count
        .unwrap_or_else(|| spec.canary.of(targets.len()).max(1))
        .min(targets.len());
    let canary = choose_canary(targets, spec, canary_override, n)?;
    let rest: Vec<String> = targets.iter().filter(|t| !canary.contains(t)).cloned().collect();
    let (batches, pauses) = split_batches(&rest, spec);
    // Pause after the canary (`promote = "manual"`, or a "pause" first in `batches`) and
    // before each batch that follows a "pause" step (named by the phase it waits after).
    let mut pause_after = Vec::new();
    for i in pauses {
        let after = if i == 0 {
            "canary".to_string()
        } else {
            format!("batch {i}")
        };
        if !pause_after.contains(&after) {
            pause_after.push(after);
        }
    }
    if spec.promote == crate::config::controls::Promote::Manual && !pause_after.iter().any(|p| p == "canary") {
        pause_after.insert(0, "canary".to_string());
    }
    if batches.is_empty() {
        pause_after.clear(); // nothing to wait for after the last phase
    }
    Ok(BatchPlan {
        canary,
        batches,
        pause_after,
        waves: Vec::new(),
    })
}

/// Region waves: `targets` split by `region_of` in `order`, each region planned on its own
/// (its own canary and batches); pauses are named with the region.
pub fn make_waves(
    targets: &[String],
    spec: &RolloutSpec,
    order: &[String],
    region_of: impl Fn(&str) -> Option<String>,
    canary_override: Option<&str>,
    canary_count: Option<usize>,
) -> Result<BatchPlan, String> {
    let mut plan = BatchPlan::default();
    for region in order {
        let hosts: Vec<String> = targets
            .iter()
            .filter(|t| region_of(t).as_deref() == Some(region.as_str()))
            .cloned()
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let over = canary_override.filter(|c| hosts.iter().any(|h| h == c));
        let p = make_plan(&hosts, spec, over, canary_count)?;
        plan.pause_after
            .extend(p.pause_after.iter().map(|ph| format!("{region}: {ph}")));
        plan.waves.push(Wave {
            region: region.clone(),
            canary: p.canary,
            batches: p.batches,
        });
    }
    Ok(plan)
}

/// `n` canary hosts: the `--canary` host first, then the playbook's preferred canaries that
/// are targets, then targets in order.
fn choose_canary(
    targets: &[String],
    spec: &RolloutSpec,
    canary_override: Option<&str>,
    n: usize,
) -> Result<Vec<String>, String> {
    let mut canary: Vec<String> = Vec::new();
    if let Some(c) = canary_override {
        if !targets.iter().any(|t| t == c) {
            return Err(format!(
                "--canary {c:?} is not one of this playbook's reachable targets"
            ));
        }
        canary.push(c.to_string());
    }
    for p in &spec.canary_hosts {
        if canary.len() < n && targets.contains(p) && !canary.contains(p) {
            canary.push(p.clone());
        }
    }
    for t in targets {
        if canary.len() >= n {
            break;
        }
        if !canary.contains(t) {
            canary.push(t.clone());
        }
    }
    Ok(canary)
}

/// The hosts after the canary in batches: each step of `spec.batches` is cumulative (a
/// percentage of `rest`, or a count more), empty batches are dropped, and whatever is left
/// goes last. Also the batches that a "pause" step comes before, as the number of batches
/// before them (0: the pause is right after the canary).
fn split_batches(rest: &[String], spec: &RolloutSpec) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut batches = Vec::new();
    let mut pauses = Vec::new();
    let mut pause_pending = false;
    let mut done = 0;
    for step in &spec.batches {
        let upto = match step {
            Amount::Percent(p) => ((rest.len() as f64) * p / 100.0).ceil() as usize,
            Amount::Count(c) => done + c,
            Amount::Pause => {
                pause_pending = true;
                continue;
            }
        }
        .min(rest.len());
        if upto > done {
            if std::mem::take(&mut pause_pending) {
                pauses.push(batches.len());
            }
            batches.push(rest[done..upto].to_vec());
            done = upto;
        }
    }
    if done < rest.len() {
        if pause_pending {
            pauses.push(batches.len());
        }
        batches.push(rest[done..].to_vec());
    }
    (batches, pauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i:02}")).collect()
    }

    #[test]
    fn pause_steps_and_manual_promotion_name_the_phase_they_wait_after() {
        let spec = RolloutSpec {
            batches: vec![Amount::Percent(25.0), Amount::Pause, Amount::Percent(100.0)],
            ..Default::default()
        };
        let p = make_plan(&hosts(9), &spec, None, None).unwrap();
        assert_eq!(p.batches.len(), 2);
        assert_eq!(p.pause_after, vec!["batch 1"]);
        let spec = RolloutSpec {
            promote: crate::config::controls::Promote::Manual,
            ..spec
        };
        let p = make_plan(&hosts(9), &spec, None, None).unwrap();
        assert_eq!(p.pause_after, vec!["canary", "batch 1"]);
        // One host: nothing follows the canary, so nothing to wait for.
        assert!(make_plan(&hosts(1), &spec, None, None).unwrap().pause_after.is_empty());
    }

    #[test]
    fn region_waves_plan_each_region_on_its_own_in_order() {
        let spec = RolloutSpec {
            batches: vec![Amount::Percent(100.0)],
            promote: crate::config::controls::Promote::Manual,
            ..Default::default()
        };
        let region = |h: &str| Some(if h <= "h03" { "eu" } else { "ap" }.to_string());
        let order = vec!["ap".to_string(), "eu".to_string()];
        let p = make_waves(&hosts(6), &spec, &order, region, None, None).unwrap();
        let names: Vec<String> = p.phases().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["ap: canary", "ap: batch 1", "eu: canary", "eu: batch 1"]);
        assert_eq!(p.phases()[0].1, vec!["h04"]);
        assert_eq!(p.pause_after, vec!["ap: canary", "eu: canary"]);
        assert!(BatchPlan::is_canary("eu: canary") && BatchPlan::is_canary("canary"));
        assert_eq!(BatchPlan::wave_of("eu: batch 1"), Some("eu"));
        assert_eq!(BatchPlan::wave_of("batch 1"), None);
        assert_eq!(p.all().len(), 6);
    }

    #[test]
    fn canary_then_cumulative_batches() {
        let spec = RolloutSpec::default(); // canary 1, 10% / 50% / 100%
        let p = make_plan(&hosts(12), &spec, None, None).unwrap();
        assert_eq!(p.canary, vec!["h01"]);
        assert_eq!(p.batches.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 4, 5]);
        assert_eq!(p.all().len(), 12);
    }

    #[test]
    fn preferred_and_override_canaries() {
        let mut spec = RolloutSpec {
            canary_hosts: vec!["h05".into()],
            ..Default::default()
        };
        assert_eq!(make_plan(&hosts(6), &spec, None, None).unwrap().canary, vec!["h05"]);
        assert_eq!(
            make_plan(&hosts(6), &spec, Some("h03"), None).unwrap().canary,
            vec!["h03"]
        );
        assert!(make_plan(&hosts(6), &spec, Some("h99"), None).is_err());
        spec.canary = Amount::Percent(50.0);
        assert_eq!(
            make_plan(&hosts(6), &spec, None, None).unwrap().canary,
            vec!["h05", "h01", "h02"]
        );
        assert_eq!(make_plan(&hosts(6), &spec, None, Some(1)).unwrap().canary, vec!["h05"]);
    }

    #[test]
    fn small_fleets_have_no_empty_batches() {
        let p = make_plan(&hosts(2), &RolloutSpec::default(), None, None).unwrap();
        assert_eq!(p.batches, vec![vec!["h02".to_string()]]);
        let all = RolloutSpec {
            strategy: Strategy::AllAtOnce,
            ..Default::default()
        };
        assert_eq!(make_plan(&hosts(3), &all, None, None).unwrap().batches.len(), 1);
    }
}
