//! `bellwether revert RUN` and `bellwether resume RUN`: parse → `Run::revert`/`Run::resume`
//! → render.

use super::context;
use super::rollout::options;
use crate::exit::{Exit, Failure};
use crate::options::{Global, ReopenArgs, ResumeArgs};
use crate::record::decision::Verb;
use crate::rollout::{hand_over, Ending, Handed, Outcome, Run};

/// Put back every file the run changed and every link it flipped, not yet restored, and
/// clear its markers. A requested revert that worked is exit 0.
pub async fn revert(g: &Global, a: &ReopenArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let done = Run::revert(&lf, &reopen_options(g, a), &a.run).await?;
    let o = &done.ending;
    if o.outcome == Outcome::Reverted {
        crate::record::run_dir::Progress::for_output(false).line(o.news());
        return Ok(Exit::Done);
    }
    // The message already says what to do next (retry, or what needs a person).
    Err(Failure::new(o.exit(), o.message.clone()))
}

/// Continue an interrupted or paused run from its first phase that did not pass.
pub async fn resume(g: &Global, a: &ResumeArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let mut opts = reopen_options(g, &a.reopen);
    opts.wait = a.wait;
    let done = Run::resume(&lf, &opts, &a.reopen.run).await?;
    super::rollout::render(&done, false)
}

fn reopen_options(g: &Global, a: &ReopenArgs) -> crate::rollout::RunOptions {
    let mut o = options(g, false, a.yes);
    o.break_lock = a.break_lock;
    o
}

/// Continue a run waiting for promotion (or revert it, when its wait expired). A run whose
/// process waits (`--wait`) is handed the promotion; otherwise this process goes on with it.
pub async fn promote(g: &Global, id: &str, yes: bool, wait: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let mut opts = options(g, false, yes);
    opts.wait = wait;
    if let Some(Handed::Promoted(msg)) = hand_over(&lf, &opts, id, Verb::Promote).await? {
        crate::record::run_dir::Progress::for_output(false).line(&msg);
        return Ok(Exit::Done);
    }
    let done = Run::promote(&lf, &opts, id).await?;
    super::rollout::render(&done, false)
}

/// Revert a run on purpose (exit 0 when every host is back), or every expired waiting run.
pub async fn abort(g: &Global, id: Option<&str>, expired: bool, yes: bool) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let ids: Vec<String> = match id {
        Some(i) => vec![i.to_string()],
        None if expired => crate::rollout::expired_waits(&g.runs_dir()),
        None => return Err(Failure::input("name a RUN, or --expired")),
    };
    if ids.is_empty() {
        crate::record::run_dir::Progress::for_output(false).line("no run waits for promotion past its pause_timeout");
        return Ok(Exit::Done);
    }
    if let (Some(id), false) = (id, expired) {
        if let Some(Handed::Aborted(o)) = hand_over(&lf, &options(g, false, yes), id, Verb::Abort).await? {
            return aborted(id, &o);
        }
    }
    let mut worst = Exit::Done;
    for id in ids {
        let why = format!("aborted by {}", crate::record::lock::username());
        let done = Run::revert_because(&lf, &options(g, false, yes), &id, Some(why)).await?;
        let o = &done.ending;
        crate::record::run_dir::Progress::for_output(false).line(&format!("run {}: {}", done.run_id, o.message));
        if o.outcome != Outcome::Reverted {
            worst = o.exit();
        }
    }
    match worst {
        Exit::Done => Ok(Exit::Done),
        e => Err(Failure::new(
            e,
            "some aborted runs could not be reverted cleanly; see above",
        )),
    }
}

/// How an abort handed to a waiting process ended: exit 0 when every host is back.
fn aborted(id: &str, o: &Ending) -> Result<Exit, Failure> {
    if o.outcome == Outcome::Reverted {
        crate::record::run_dir::Progress::for_output(false).line(&format!("run {id}: {}", o.message));
        return Ok(Exit::Done);
    }
    Err(Failure::new(o.exit(), format!("run {id} {}: {}", o.outcome, o.message)))
}
