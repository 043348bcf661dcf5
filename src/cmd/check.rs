//! `bellwether check`: validate every input file and show what each playbook targets.

use super::context;
use crate::config::{load::playbook_files, load::playbook_path, load_playbook, Playbook};
use crate::exit::{Exit, Failure};
use crate::options::Global;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Warnings an operator should see before running a playbook.
pub fn warnings(pb: &Playbook) -> Vec<String> {
    let mut w = Vec::new();
    if pb.apply.health.is_none() {
        w.push("no apply.health command: a dead agent is only caught by the log gates".to_string());
    }
    match &pb.watch {
        None => w.push("no [watch] table: the canary is judged by health alone".to_string()),
        Some(wa) if wa.log.is_none() => {
            w.push("[watch] has no log source: error, silence and metric gates cannot run".to_string())
        }
        Some(wa) => w.extend(wa.max_silence_warnings(&pb.rollout.windows())),
    }
    if pb.apply.command.is_none() {
        w.push("no apply.command: the agent will not be told to pick up the change".to_string());
    }
    w
}

/// Notes on how a playbook's commands will be rendered: a `| raw` value runs as shell code.
pub fn notes(pb: &Playbook) -> Vec<String> {
    let mut n = Vec::new();
    for (at, c) in pb.commands() {
        let raw = crate::edit::command_template::check_command(c).unwrap_or_default();
        if !raw.is_empty() {
            n.push(format!(
                "`{at}` inserts {} unquoted (`| raw`): the value runs as shell code on the host; \
                 every other value in a command is shell-quoted as one word",
                raw.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    n
}

/// What `check` found about one playbook.
#[derive(Debug, Serialize)]
struct PlaybookReport {
    id: String,
    path: String,
    tier: String,
    component: String,
    edits: usize,
    strategy: &'static str,
    targets: usize,
    by_region: BTreeMap<String, usize>,
    by_group: BTreeMap<String, usize>,
    warnings: Vec<String>,
    /// How commands will be rendered (`| raw` values run as shell code).
    notes: Vec<String>,
}

/// Run the check.
pub fn run(g: &Global, names: &[String], json: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let fleet = &lf.fleet;
    let paths = if names.is_empty() {
        playbook_files(&lf.path.parent().unwrap_or(Path::new(".")).join("playbooks"))
    } else {
        names
            .iter()
            .map(|n| playbook_path(n, &lf.path))
            .collect::<Result<Vec<_>, _>>()?
    };
    // Load everything before printing anything, so an error is the only output.
    let mut loaded = Vec::new();
    for path in paths {
        let pb = load_playbook(&path, fleet)?;
        loaded.push((path, pb));
    }
    let reports: Vec<PlaybookReport> = loaded.iter().map(|(path, pb)| report(path, pb, fleet)).collect();
    let dir = lf.path.parent().unwrap_or(Path::new(".")).join("playbooks");
    let shared = shared_ids(&loaded, &dir);
    let fleet_warnings = known_hosts_warnings(&lf);
    if json {
        let doc = serde_json::json!({
            "fleet": {
                "path": lf.path.display().to_string(),
                "hosts": fleet.hosts.len(),
                "regions": fleet.regions().len(),
                "groups": fleet.groups().len(),
                "warnings": fleet_warnings,
            },
            "calendar": {
                "path": lf.calendar_path.display().to_string(),
                "freeze_windows": lf.calendar.freeze.len(),
            },
            "playbooks": reports,
            "warnings": shared,
            "ok": true,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(Exit::Done);
    }
    println!(
        "fleet {}: {} hosts, {} regions, {} groups",
        lf.path.display(),
        fleet.hosts.len(),
        fleet.regions().len(),
        fleet.groups().len()
    );
    for w in &fleet_warnings {
        println!("  warning: {w}");
    }
    println!(
        "calendar {}: {} freeze windows",
        lf.calendar_path.display(),
        lf.calendar.freeze.len()
    );
    let fmt = |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    for r in &reports {
        println!(
            "\nplaybook {} ({}): {} {} {}, {} strategy",
            r.id,
            r.path,
            r.tier,
            r.component,
            if r.edits == 1 {
                "1 edit".to_string()
            } else {
                format!("{} edits", r.edits)
            },
            r.strategy
        );
        println!("  targets: {} hosts", r.targets);
        println!("  by region: {}", fmt(&r.by_region));
        println!("  by group: {}", fmt(&r.by_group));
        for w in &r.warnings {
            println!("  warning: {w}");
        }
        for note in &r.notes {
            println!("  note: {note}");
        }
    }
    if !shared.is_empty() {
        println!();
    }
    for w in &shared {
        println!("warning: {w}");
    }
    println!("\nok");
    Ok(Exit::Done)
}

/// Playbooks that share an `id`: the checked ones, and any other file in `playbooks/` (read
/// only for its `id`, so a broken neighbour does not fail the check). Runs are named after
/// the id, so `show ID`, `revert ID` and the run list could not tell the two apart.
fn shared_ids(loaded: &[(PathBuf, Playbook)], dir: &Path) -> Vec<String> {
    let same = |a: &Path, b: &Path| {
        a == b
            || a.canonicalize()
                .ok()
                .zip(b.canonicalize().ok())
                .is_some_and(|(x, y)| x == y)
    };
    let mut ids: Vec<(String, PathBuf)> = loaded.iter().map(|(p, pb)| (pb.id.clone(), p.clone())).collect();
    for p in playbook_files(dir) {
        if ids.iter().any(|(_, q)| same(&p, q)) {
            continue;
        }
        let id = std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("id").and_then(|v| v.as_str()).map(String::from));
        if let Some(id) = id {
            ids.push((id, p));
        }
    }
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (id, _) in &ids {
        if seen.contains(&id.as_str()) {
            continue;
        }
        seen.push(id);
        let paths: Vec<String> = ids
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, p)| p.display().to_string())
            .collect();
        if paths.len() > 1 {
            out.push(format!(
                "{} share the id {id:?}: runs are named after the id, so `runs`, `show {id}` and `revert {id}` cannot tell their runs apart; give each playbook its own id",
                paths.join(" and ")
            ));
        }
    }
    out
}

/// A playbook's targets by region and group, and its warnings.
fn report(path: &Path, pb: &Playbook, fleet: &crate::config::Fleet) -> PlaybookReport {
    let hosts = pb.targets.resolve(fleet);
    let mut by_region: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_group: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hosts {
        *by_region
            .entry(h.region.clone().unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        for gname in &h.groups {
            *by_group.entry(gname.clone()).or_default() += 1;
        }
    }
    PlaybookReport {
        id: pb.id.clone(),
        path: path.display().to_string(),
        tier: pb.tier.to_string(),
        component: pb.component.clone(),
        edits: pb.edits.len(),
        strategy: strategy_name(pb.rollout.strategy),
        targets: hosts.len(),
        by_region,
        by_group,
        warnings: warnings(pb),
        notes: notes(pb),
    }
}

/// The known_hosts files each host's key will be checked against — the fleet's, or a host's
/// `UserKnownHostsFile` from the ssh config — that cannot be read: one warning per set of
/// files, naming the hosts when not every host uses it.
fn known_hosts_warnings(lf: &crate::config::LoadedFleet) -> Vec<String> {
    let fleet_files = context::known_hosts_files(lf);
    let mut sets: BTreeMap<Vec<PathBuf>, Vec<String>> = BTreeMap::new();
    for h in &lf.fleet.hosts {
        let ep = crate::ssh::fleet::endpoint(lf, h, false);
        sets.entry(ep.known_hosts).or_default().push(h.name.clone());
    }
    let order: Vec<String> = lf.fleet.hosts.iter().map(|h| h.name.clone()).collect();
    let every = sets.len() == 1;
    sets.iter()
        .filter_map(|(files, hosts)| {
            let setting = if *files == fleet_files {
                "`known_hosts` in [defaults]"
            } else {
                "`UserKnownHostsFile` in your ssh config"
            };
            let w = known_hosts_warning(files, setting)?;
            Some(if every {
                w
            } else {
                format!("{w} (hosts {})", crate::ui::hosts::host_range(hosts, &order))
            })
        })
        .collect()
}

/// A known_hosts file that cannot be read: every connection would be refused (no network
/// is needed to see it, and a misspelt path is the usual cause). `setting` names where the
/// path comes from.
fn known_hosts_warning(files: &[PathBuf], setting: &str) -> Option<String> {
    let first = files.first()?;
    let e = crate::ssh::known_hosts::unusable(first)?;
    let what = if e.kind() == std::io::ErrorKind::NotFound {
        format!("known_hosts file {} does not exist", first.display())
    } else {
        format!("cannot read known_hosts file {} ({e})", first.display())
    };
    let usable: Vec<String> = files[1..]
        .iter()
        .filter(|f| crate::ssh::known_hosts::unusable(f).is_none())
        .map(|f| f.display().to_string())
        .collect();
    let effect = if usable.is_empty() {
        "every host key will be refused as unknown".to_string()
    } else {
        format!("only host keys listed in {} will be accepted", usable.join(", "))
    };
    Some(format!("{what}: {effect}; check {setting} (a misspelt path?)"))
}

fn strategy_name(s: crate::config::playbook::Strategy) -> &'static str {
    use crate::config::playbook::Strategy::*;
    match s {
        Canary => "canary",
        BlueGreen => "blue_green",
        AllAtOnce => "all_at_once",
    }
}
