//! `bellwether revert RUN` and `bellwether resume RUN`: parse → `Run::revert`/`Run::resume`
//! → render.

use super::context;
use super::rollout::options;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::rollout::{Outcome, Run};

/// Put back every file the run changed and every link it flipped, not yet restored, and
/// clear its markers. A requested revert that worked is exit 0.
pub async fn revert(g: &Global, id: &str, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let done = Run::revert(&lf, &options(g, false, yes), id).await?;
    let o = &done.ending;
    if o.outcome == Outcome::Reverted {
        crate::record::run_dir::Progress::for_output(false).line(o.news());
        return Ok(Exit::Done);
    }
    // The message already says what to do next (retry, or what needs a person).
    Err(Failure::new(o.exit(), o.message.clone()))
}

/// Continue an interrupted or paused run from its first phase that did not pass.
pub async fn resume(g: &Global, id: &str, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let done = Run::resume(&lf, &options(g, false, yes), id).await?;
    super::rollout::render(&done, false)
}
