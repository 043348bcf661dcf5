//! The batch plan: which hosts form the canary and which go in each batch after it.

use crate::config::playbook::{Amount, RolloutSpec, Strategy};
use serde::{Deserialize, Serialize};

/// Hosts per phase, in the order they are changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    pub canary: Vec<String>,
    pub batches: Vec<Vec<String>>,
}

impl BatchPlan {
    /// Phase names and hosts: ("canary", ..), ("batch 1", ..), ...
    pub fn phases(&self) -> Vec<(String, Vec<String>)> {
        let mut v = Vec::new();
        if !self.canary.is_empty() {
            v.push(("canary".to_string(), self.canary.clone()));
        }
        for (i, b) in self.batches.iter().enumerate() {
            v.push((format!("batch {}", i + 1), b.clone()));
        }
        v
    }

    /// Every host in plan order.
    pub fn all(&self) -> Vec<String> {
        self.canary
            .iter()
            .chain(self.batches.iter().flatten())
            .cloned()
            .collect()
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
        return Ok(BatchPlan {
            canary: vec![],
            batches: vec![],
        });
    }
    if spec.strategy == Strategy::AllAtOnce {
        return Ok(BatchPlan {
            canary: vec![],
            batches: vec![targets.to_vec()],
        });
    }
    let n = canary_count
        .unwrap_or_else(|| spec.canary.of(targets.len()).max(1))
        .min(targets.len());
    let canary = choose_canary(targets, spec, canary_override, n)?;
    let rest: Vec<String> = targets.iter().filter(|t| !canary.contains(t)).cloned().collect();
    let batches = split_batches(&rest, spec);
    Ok(BatchPlan { canary, batches })
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
/// goes last.
fn split_batches(rest: &[String], spec: &RolloutSpec) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut done = 0;
    for step in &spec.batches {
        let upto = match step {
            Amount::Percent(p) => ((rest.len() as f64) * p / 100.0).ceil() as usize,
            Amount::Count(c) => done + c,
        }
        .min(rest.len());
        if upto > done {
            batches.push(rest[done..upto].to_vec());
            done = upto;
        }
    }
    if done < rest.len() {
        batches.push(rest[done..].to_vec());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i:02}")).collect()
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
