//! What most commands need first: the loaded fleet and a way to reach each host.

use crate::config::{load_fleet, Host, LoadedFleet, TargetSpec};
use crate::exit::Failure;
use crate::options::Global;
pub use crate::ssh::fleet::{endpoint, expand, known_hosts_files};
use crate::value::FieldPath;

/// Load the fleet named by `--fleet`. A missing file says how to name another one: the
/// default `fleet.toml` in the current folder is the usual surprise.
pub fn fleet(g: &Global) -> Result<LoadedFleet, Failure> {
    if !g.fleet.exists() {
        return Err(Failure::input(format!(
            "no fleet file at {}: give its path with --fleet FILE or set BELLWETHER_FLEET \
             (the default is fleet.toml in the current folder)",
            g.fleet.display()
        )));
    }
    Ok(load_fleet(&g.fleet)?)
}

/// Concurrency in force: `-j`, else the fleet's.
pub fn concurrency(g: &Global, lf: &LoadedFleet) -> usize {
    g.concurrency.unwrap_or(lf.fleet.defaults.concurrency).max(1)
}

/// Resolve the hosts a CLI selector names; an unknown name is bad input.
pub fn select<'f>(lf: &'f LoadedFleet, words: &[String]) -> Result<Vec<&'f Host>, Failure> {
    let spec = TargetSpec::parse_cli(words);
    let problems = spec.validate(&lf.fleet, &FieldPath::root().key("TARGETS"));
    if let Some(p) = problems.first() {
        return Err(Failure::input(format!("TARGETS: {}", p.message)));
    }
    Ok(spec.resolve(&lf.fleet))
}
