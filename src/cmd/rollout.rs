//! `bellwether rollout`: parse → `Run::start` → render.

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::{Global, RolloutArgs};
use crate::rollout::planner::PlanRequest;
use crate::rollout::{Finished, Outcome, Run, RunOptions, StartRequest};

/// The options every run-changing command shares, from the global flags.
pub fn options(g: &Global, json: bool, yes: bool) -> RunOptions {
    RunOptions {
        runs_dir: g.runs_dir(),
        concurrency: g.concurrency,
        accept_new: g.accept_new,
        json,
        yes,
        break_lock: false,
        wait: false,
    }
}

/// Run the rollout.
pub async fn run(g: &Global, a: &RolloutArgs) -> Result<Exit, Failure> {
    let lf = context::fleet(g)?;
    let req = StartRequest {
        plan: PlanRequest {
            playbook: a.playbook.clone(),
            canary: a.canary.clone(),
            observe: a.observe.clone(),
            batch_observe: a.batch_observe.clone(),
            at: a.at.clone(),
            exception: a.exception.clone(),
            approver: a.approver.clone(),
            skip_frozen: a.skip_frozen,
            within: a.within.clone(),
        },
        dry_run: a.dry_run,
        break_lock: a.break_lock,
    };
    let mut opts = options(g, a.json, a.yes);
    opts.wait = a.wait;
    let done = Run::start(&lf, &opts, &req).await?;
    render(&done, a.json)
}

/// Dry runs, declined runs and runs with nothing to do said so as they ended.
fn ended_before_change(o: &crate::rollout::Ending) -> bool {
    matches!(o.outcome, Outcome::DryRun | Outcome::Declined) || o.message.starts_with("nothing to do")
}

/// Print how a run ended (a line for people, or one JSON document) and map its exit code.
pub fn render(f: &Finished, json: bool) -> Result<Exit, Failure> {
    let o = &f.ending;
    if json {
        let doc = serde_json::json!({"run_id": f.run_id, "outcome": o.outcome.as_str(), "exit": o.exit().code(), "message": o.message, "record": f.dir});
        // After the run's end is recorded; a closed stdout only loses this line.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{doc}");
    } else if !ended_before_change(o) {
        let p = crate::record::run_dir::Progress::for_output(false);
        let mut fields = serde_json::Map::new();
        fields.insert("run_id".into(), f.run_id.clone().into());
        fields.insert("outcome".into(), o.outcome.as_str().into());
        fields.insert("exit".into(), o.exit().code().into());
        // Why a revert began was said when it began, and the error line below says it all
        // again for stderr: this line says what came of it.
        p.line_with(&format!("{}: {}", o.outcome.as_str().to_uppercase(), o.news()), fields);
        p.line(&format!("record: {}", f.dir.join("summary.md").display()));
    }
    match o.exit() {
        Exit::Done => Ok(Exit::Done),
        exit => Err(Failure::new(
            exit,
            format!("run {} {}: {}", f.run_id, o.outcome, o.message),
        )),
    }
}
