//! `bellwether revert RUN` and `bellwether resume RUN`: parse → `Run::revert`/`Run::resume`
//! → render.

use super::context;
use super::rollout::options;
use crate::exit::{Exit, Failure};
use crate::options::{Global, ReopenArgs};
use crate::rollout::{Outcome, Run};

/// Put back every file the run changed and every link it flipped, not yet restored, and
/// clear its markers. A requested revert that worked is exit 0.
pub async fn revert(g: &Global, a: &ReopenArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let done = Run::revert(&lf, &reopen_options(g, a), &a.run).await?;
    let o = &done.ending;
    if o.outcome == Outcome::Reverted {
        crate::record::run_dir::Progress::for_output(false).line(&o.message);
        return Ok(Exit::Done);
    }
    Err(Failure::new(
        o.exit(),
        format!("{}\nretry with: bellwether revert {}", o.message, done.run_id),
    ))
}

/// Continue an interrupted or paused run from its first phase that did not pass.
pub async fn resume(g: &Global, a: &ReopenArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let done = Run::resume(&lf, &reopen_options(g, a), &a.run).await?;
    super::rollout::render(&done, false)
}

fn reopen_options(g: &Global, a: &ReopenArgs) -> crate::rollout::RunOptions {
    let mut o = options(g, false, a.yes);
    o.break_lock = a.break_lock;
    o
}
