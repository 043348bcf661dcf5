//! Reopening a recorded run for `revert RUN` and `resume RUN`: its folder, the operator's
//! go-ahead, connections to its hosts and the commands recorded in its plan.

use super::context;
use crate::config::Host;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::record::RunDir;
use crate::rollout::ctx::interactive;
use crate::ssh::Connection;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A run id that names no folder is bad input (exit 2), not a failure of the tool.
pub(super) fn open(g: &Global, id: &str) -> Result<RunDir, Failure> {
    RunDir::open(&g.runs_dir(), id).map_err(|e| Failure::input(e.to_string()))
}

/// Changing hosts again needs `--yes` or a "y" on a terminal; cron without `--yes` is refused.
pub(super) fn need_yes(yes: bool, what: &str) -> Result<(), Failure> {
    if !yes && !interactive() {
        return Err(Failure::input(format!(
            "refusing to {what} without --yes: there is no terminal to confirm on"
        )));
    }
    if !yes {
        use std::io::Write;
        print!("{what}? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut l = String::new();
        let _ = std::io::stdin().read_line(&mut l);
        if !matches!(l.trim(), "y" | "Y" | "yes") {
            return Err(Failure::input("not confirmed: nothing was changed"));
        }
    }
    Ok(())
}

/// Connect to the named hosts; those gone from the fleet or unreachable come back as lines
/// for the operator instead of failing the whole command.
pub(super) async fn connect(
    g: &Global,
    lf: &crate::config::LoadedFleet,
    names: &[String],
) -> (BTreeMap<String, Arc<Connection>>, Vec<String>) {
    let mut conns = BTreeMap::new();
    let mut missing = Vec::new();
    let hosts: Vec<&Host> = names.iter().filter_map(|n| lf.fleet.host(n)).collect();
    for n in names {
        if lf.fleet.host(n).is_none() {
            missing.push(format!("{n}: no longer in {}", lf.path.display()));
        }
    }
    let eps: Vec<_> = hosts.iter().map(|h| context::endpoint(lf, h, g.accept_new)).collect();
    let res = crate::ssh::pool::connect_all(&eps, context::concurrency(g, lf)).await;
    for (ep, r) in eps.iter().zip(res) {
        match r {
            Ok(c) => {
                conns.insert(ep.name.clone(), c);
            }
            Err(e) => missing.push(format!("{}: {e}", ep.name)),
        }
    }
    (conns, missing)
}

/// The endpoints of the named fleet hosts (for reconnecting).
pub(super) fn endpoints(
    g: &Global,
    lf: &crate::config::LoadedFleet,
    names: &[String],
) -> BTreeMap<String, crate::ssh::Endpoint> {
    names
        .iter()
        .filter_map(|n| lf.fleet.host(n))
        .map(|h| (h.name.clone(), context::endpoint(lf, h, g.accept_new)))
        .collect()
}

/// `plan.json` is written with secrets masked, so a command that had a secret spliced in
/// (`--auth {{ vars.api_token }}`) is recorded as `--auth ••••`. Before running recorded
/// commands, re-render those from the playbook and the fleet (which hold the real values).
pub(super) fn unmask_commands(
    record: &mut crate::rollout::record_plan::PlanRecord,
    lf: &crate::config::LoadedFleet,
) -> Result<(), Failure> {
    let masked = |c: &Option<String>| c.as_deref().is_some_and(|c| c.contains(crate::edit::MASK));
    let needs = record.hosts.values().any(|h| {
        masked(&h.apply)
            || masked(&h.health)
            || h.on_revert
                .iter()
                .chain(h.after_hooks.iter())
                .any(|c| c.contains(crate::edit::MASK))
    });
    if !needs {
        return Ok(());
    }
    let pb = crate::config::load_playbook(std::path::Path::new(&record.playbook_path), &lf.fleet).map_err(|e| {
        Failure::new(
            Exit::NeedsAttention,
            format!(
                "the recorded commands hold masked secrets and the playbook to re-render them cannot be loaded: {e}"
            ),
        )
    })?;
    for (name, hp) in record.hosts.iter_mut() {
        let Some(host) = lf.fleet.host(name) else { continue };
        let ctx = crate::rollout::host::template_ctx(host);
        let render = |t: &str| {
            crate::edit::render(t, &ctx).map_err(|e| Failure::new(Exit::NeedsAttention, format!("{name}: {e}")))
        };
        hp.apply = pb.apply.command.as_deref().map(render).transpose()?;
        hp.health = pb.apply.health.as_deref().map(render).transpose()?;
        hp.on_revert = pb.hooks.on_revert.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
        hp.after_hooks = pb.hooks.after.iter().map(|c| render(c)).collect::<Result<_, _>>()?;
    }
    Ok(())
}
