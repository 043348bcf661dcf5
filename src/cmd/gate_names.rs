//! The region and component names `gate` knows, so a misspelt `--region` cannot pass.
//!
//! A freeze window applies when its regions overlap the change's, so `--region ap-southeast1`
//! overlaps nothing and the gate would say ALLOW while `ap-southeast-1` is frozen: a CI gate
//! that fails open on a typo. Every name given on the command line must therefore be one the
//! fleet, the calendar or the playbooks use; anything else is bad input (exit 2).

use crate::calendar::CalendarSpec;
use crate::config::{load::playbook_files, Fleet};
use crate::exit::Failure;
use std::path::Path;

/// Names in use, each list sorted and without duplicates (compared case-insensitively, as the
/// calendar compares them).
#[derive(Debug, Default)]
pub struct Known {
    regions: Vec<String>,
    components: Vec<String>,
}

impl Known {
    /// The names the calendar's windows, the fleet's hosts, the playbooks in `playbooks` and
    /// the playbook in hand (`component`) use.
    pub fn gather(cal: &CalendarSpec, fleet: Option<&Fleet>, playbooks: &Path, component: Option<&str>) -> Known {
        let mut k = Known::default();
        for w in &cal.freeze {
            k.regions.extend(w.regions.iter().cloned());
            k.components.extend(w.components.iter().cloned());
        }
        if let Some(f) = fleet {
            k.regions.extend(f.regions());
        }
        k.components.extend(component.map(str::to_string));
        k.components
            .extend(playbook_files(playbooks).iter().filter_map(|p| component_of(p)));
        for list in [&mut k.regions, &mut k.components] {
            for s in list.iter_mut() {
                *s = s.trim().to_string();
            }
            list.retain(|s| !s.is_empty());
            list.sort_by_key(|s| s.to_ascii_lowercase());
            list.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        }
        k
    }

    /// Bad input naming every unknown `--region`/`--component`, the known names and the
    /// nearest one; `Ok` when all are known.
    pub fn check(&self, regions: &[String], components: &[String]) -> Result<(), Failure> {
        let mut problems = Vec::new();
        let kinds = [
            (
                "--region",
                "region",
                "no fleet host, freeze window or playbook",
                regions,
                &self.regions,
            ),
            (
                "--component",
                "component",
                "no freeze window or playbook",
                components,
                &self.components,
            ),
        ];
        for (flag, what, names_it, given, known) in kinds {
            for name in given
                .iter()
                .filter(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n.trim())))
            {
                let hint = closest(name, known)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                let list = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                problems.push(format!(
                    "{flag} {name:?} is not a known {what}: {names_it} uses it{hint}; known {what}s: {list}"
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.push(
            "a misspelt name would match no freeze window and pass the gate; give a name from the \
             fleet, the calendar or a playbook, or leave the flag out to judge the change against all"
                .to_string(),
        );
        Err(Failure::input(problems.join("\n  ")))
    }
}

/// A playbook file's `component`, read leniently: a playbook that does not parse adds nothing
/// (it is `check`'s job to report it, not the gate's).
fn component_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("component")?.as_str().map(str::to_string)
}

/// The known name nearest to `name` when it is close enough to be a typo of it.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let name = name.trim().to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&name, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            regions: vec!["ap-southeast-1".into(), "eu-west-1".into(), "us-east-1".into()],
            components: vec!["model".into(), "provider".into()],
        }
    }

    #[test]
    fn known_names_pass_whatever_their_case() {
        let k = known();
        assert!(k.check(&["EU-West-1".into()], &[" model".into()]).is_ok());
        assert!(k.check(&[], &[]).is_ok());
    }

    #[test]
    fn a_typo_is_bad_input_with_the_near_miss_and_the_list() {
        let e = known().check(&["ap-southeast1".into()], &[]).unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::BadInput);
        assert!(
            e.message.starts_with(
                "--region \"ap-southeast1\" is not a known region: no fleet host, freeze window or \
                 playbook uses it (did you mean \"ap-southeast-1\"?); known regions: \
                 ap-southeast-1, eu-west-1, us-east-1"
            ),
            "{e}"
        );
    }

    #[test]
    fn every_unknown_name_is_listed_and_a_far_one_gets_no_guess() {
        let e = known()
            .check(&["mars-1".into()], &["modle".into(), "tokenizer".into()])
            .unwrap_err();
        let m = e.message;
        assert!(
            m.contains(
                "--region \"mars-1\" is not a known region: no fleet host, freeze window or playbook uses it; known"
            ),
            "{m}"
        );
        assert!(m.contains("--component \"modle\" is not a known component: no freeze window or playbook uses it (did you mean \"model\"?); known components: model, provider"), "{m}");
        assert!(
            m.contains(
                "--component \"tokenizer\" is not a known component: no freeze window or playbook uses it; known"
            ),
            "{m}"
        );
    }

    #[test]
    fn names_come_from_windows_hosts_and_playbooks() {
        let cal: CalendarSpec = toml::from_str(
            "[[freeze]]\nid = \"w\"\nkind = \"soft\"\nstart = \"2026-01-01T00:00:00Z\"\nend = \"2026-01-02T00:00:00Z\"\nregions = [\"eu-west-1\"]\ncomponents = [\"provider\"]\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "id = \"a\"\ncomponent = \"model\"\n").unwrap();
        std::fs::write(dir.path().join("broken.toml"), "component = \n").unwrap();
        let k = Known::gather(&cal, None, dir.path(), Some("router"));
        assert_eq!(k.regions, ["eu-west-1"]);
        assert_eq!(k.components, ["model", "provider", "router"]);
    }
}
