//! Reading the files from disk: parse, validate, locate every problem.

use super::error::Invalid;
use super::fleet::Fleet;
use super::locate::{locate, parse_toml, ConfigError};
use super::playbook::Playbook;
use crate::calendar::CalendarSpec;
use crate::value::FieldPath;
use std::path::{Path, PathBuf};

/// A fleet together with where it came from and its effective calendar.
#[derive(Debug, Clone)]
pub struct LoadedFleet {
    pub path: PathBuf,
    pub fleet: Fleet,
    pub calendar: CalendarSpec,
    /// Where the calendar came from (the fleet file itself when inline only).
    pub calendar_path: PathBuf,
}

fn read(path: &Path, what: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, format!("cannot read the {what} file: {e}")))
}

fn first(file: &Path, text: &str, problems: Vec<Invalid>) -> Result<(), ConfigError> {
    match problems.into_iter().next() {
        Some(p) => Err(locate(file, text, &p)),
        None => Ok(()),
    }
}

/// Load a calendar file on its own.
pub fn load_calendar(path: &Path) -> Result<CalendarSpec, ConfigError> {
    let text = read(path, "calendar")?;
    let cal: CalendarSpec = parse_toml(path, &text)?;
    first(path, &text, cal.validate(&FieldPath::root()))?;
    Ok(cal)
}

/// Load and validate `fleet.toml` and the calendar it names or holds.
pub fn load_fleet(path: &Path) -> Result<LoadedFleet, ConfigError> {
    let text = read(path, "fleet")?;
    let fleet: Fleet = parse_toml(path, &text)?;
    first(path, &text, fleet.validate())?;
    let inline = CalendarSpec {
        freeze: fleet.freeze.clone(),
        tiers: fleet.tiers.unwrap_or_default(),
        emergency: fleet.emergency.unwrap_or_default(),
    };
    first(path, &text, inline.validate(&FieldPath::root()))?;
    let (calendar, calendar_path) = match &fleet.calendar {
        None => (inline, path.to_path_buf()),
        Some(rel) => {
            let cpath = path.parent().unwrap_or(Path::new(".")).join(rel);
            let mut cal = load_calendar(&cpath)?;
            cal.freeze.extend(inline.freeze);
            if fleet.tiers.is_some() {
                cal.tiers = inline.tiers;
            }
            if fleet.emergency.is_some() {
                cal.emergency = inline.emergency;
            }
            let ids: Vec<_> = cal.freeze.iter().map(|w| w.id.clone()).collect();
            for (i, id) in ids.iter().enumerate() {
                if ids[..i].contains(id) {
                    return Err(locate(
                        path,
                        &text,
                        &Invalid::new(
                            FieldPath::root().key("freeze"),
                            format!(
                                "freeze window id {id:?} is defined both here and in {}",
                                cpath.display()
                            ),
                        ),
                    ));
                }
            }
            (cal, cpath)
        }
    };
    Ok(LoadedFleet {
        path: path.to_path_buf(),
        fleet,
        calendar,
        calendar_path,
    })
}

/// Load and validate a playbook against the fleet (targets must name real hosts/groups).
pub fn load_playbook(path: &Path, fleet: &Fleet) -> Result<Playbook, ConfigError> {
    let text = read(path, "playbook")?;
    let pb: Playbook = parse_toml(path, &text)?;
    let mut problems = pb.validate();
    problems.extend(pb.targets.validate(fleet, &FieldPath::root().key("targets")));
    for (i, h) in pb.rollout.canary_hosts.iter().enumerate() {
        if fleet.host(h).is_none() {
            problems.push(Invalid::new(
                FieldPath::root().key("rollout").key("canary_hosts").index(i),
                format!("unknown host {h:?}"),
            ));
        }
    }
    problems.extend(region_plan_problems(&pb, fleet));
    first(path, &text, problems)?;
    Ok(pb)
}

/// `rollout.region_plan` must name every region the targets are in (a target left out of
/// the plan would never be rolled), and only regions of the fleet; `rollout.within` only
/// regions of the plan.
fn region_plan_problems(pb: &Playbook, fleet: &Fleet) -> Vec<Invalid> {
    let plan = &pb.rollout.region_plan;
    let at = FieldPath::root().key("rollout");
    let mut out = Vec::new();
    if plan.is_empty() {
        for r in pb.rollout.within.keys() {
            out.push(Invalid::new(
                at.key("within").key(r),
                "per-region windows need a `region_plan` (the run goes region by region)",
            ));
        }
        return out;
    }
    let known: Vec<String> = fleet.hosts.iter().filter_map(|h| h.region.clone()).collect();
    for (i, r) in plan.iter().enumerate() {
        if !known.contains(r) {
            out.push(Invalid::new(
                at.key("region_plan").index(i),
                format!("no host of the fleet is in region {r:?}"),
            ));
        } else if plan[..i].contains(r) {
            out.push(Invalid::new(
                at.key("region_plan").index(i),
                format!("region {r:?} is listed twice"),
            ));
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for h in pb.targets.resolve(fleet) {
        let r = h.region.clone().unwrap_or_default();
        if !plan.contains(&r) && !missing.contains(&r) {
            missing.push(r);
        }
    }
    if !missing.is_empty() {
        out.push(Invalid::new(
            at.key("region_plan"),
            format!(
                "targets in region(s) {} are not in the plan, so they would never be rolled: add them or narrow `targets`",
                missing.iter().map(|r| if r.is_empty() { "(none)".to_string() } else { format!("{r:?}") }).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for r in pb.rollout.within.keys() {
        if !plan.contains(r) {
            out.push(Invalid::new(
                at.key("within").key(r),
                format!("region {r:?} is not in `region_plan`"),
            ));
        }
    }
    out
}

/// The playbook files in a folder, sorted (for `check` with no names).
pub fn playbook_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Resolve a playbook argument: a path, or a bare name looked up in `playbooks/` beside the
/// fleet. Neither is an error that lists what `playbooks/` holds and suggests the closest
/// name, since a misspelt name is the usual cause.
pub fn playbook_path(arg: &str, fleet_path: &Path) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(arg);
    if p.exists() {
        return Ok(p);
    }
    let dir = fleet_path.parent().unwrap_or(Path::new(".")).join("playbooks");
    let named = dir.join(format!("{arg}.toml"));
    if named.exists() {
        return Ok(named);
    }
    Err(ConfigError::file(&p, missing_playbook(arg, &dir, &named)))
}

/// "no such playbook: … ; did you mean `model-swap`? playbooks/ has: a, b".
fn missing_playbook(arg: &str, dir: &Path, named: &Path) -> String {
    let mut msg = format!("no such playbook: neither this file nor {} exists", named.display());
    if !dir.is_dir() {
        msg.push_str(&format!("; there is no folder {}", dir.display()));
        return msg;
    }
    let names: Vec<String> = playbook_files(dir)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    if names.is_empty() {
        msg.push_str(&format!("; {} holds no .toml playbooks", dir.display()));
        return msg;
    }
    // Compare what the name would be in `playbooks/`: `playbooks/model-swp.toml` and
    // `model-swp` both mean the stem.
    let stem = Path::new(arg)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string());
    if let Some(best) = closest(&stem, &names) {
        msg.push_str(&format!("; did you mean `{best}`?"));
    }
    msg.push_str(&format!(" {}/ has: {}", dir.display(), names.join(", ")));
    msg
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a typo.
fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c.as_str()))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_playbook_names_the_folder_and_the_nearest_name() {
        let d = tempfile::tempdir().unwrap();
        let fleet = d.path().join("fleet.toml");
        std::fs::create_dir(d.path().join("playbooks")).unwrap();
        for n in ["model-swap", "provider-switch"] {
            std::fs::write(d.path().join(format!("playbooks/{n}.toml")), "").unwrap();
        }
        assert!(playbook_path("model-swap", &fleet).is_ok());
        let e = playbook_path("model-swp", &fleet).unwrap_err().to_string();
        assert!(e.starts_with("model-swp: no such playbook"), "{e}");
        assert!(!e.contains(":1:1"), "no invented position: {e}");
        assert!(e.contains("did you mean `model-swap`?"), "{e}");
        assert!(e.ends_with("has: model-swap, provider-switch"), "{e}");
        let e = playbook_path("zzz", &fleet).unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
        let e = playbook_path("x", &d.path().join("elsewhere/fleet.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("there is no folder"), "{e}");
    }
}
