//! Controller callbacks (`[callbacks]`): the operator's own tooling — a chat webhook, a CI
//! trigger, a pager — run on the controller at the run's milestones, with the milestone as
//! JSON on stdin and `BELLWETHER_RUN_ID`, `BELLWETHER_OUTCOME`, `BELLWETHER_PHASE` in the
//! environment. A run has two sets: the fleet's (`fleet.toml`, for every playbook) and the
//! playbook's; at each milestone both run, the fleet's first, each recorded as its own
//! `callback` event naming its source. A failure is never fatal, except a failing
//! `on_promote` of a set with `veto = true`: that vetoes the promotion (the machine then
//! reverts) and the callbacks after it are not run (there is no promotion to announce).

use super::error::RecordFailed;
use super::run::Run;
use crate::config::controls::{CallbackSets, Callbacks};
use crate::record::events::CallbackSource;
use crate::record::EventKind;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Characters of a failing callback's output kept in the record.
const DETAIL_CHARS: usize = 1000;

/// A run's callback sets in the order they run: the fleet's, then the playbook's.
fn each(sets: &CallbackSets) -> [(CallbackSource, &Callbacks); 2] {
    [
        (CallbackSource::Fleet, &sets.fleet),
        (CallbackSource::Playbook, &sets.playbook),
    ]
}

/// Which milestone.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Milestone {
    Start,
    Promote,
    Revert,
    Finish,
    Cutover,
}

impl Milestone {
    fn name(self) -> &'static str {
        match self {
            Milestone::Start => "on_start",
            Milestone::Promote => "on_promote",
            Milestone::Revert => "on_revert",
            Milestone::Finish => "on_finish",
            Milestone::Cutover => "on_cutover",
        }
    }

    /// The command of this milestone in one set, if it has one.
    fn command(self, cb: &Callbacks) -> Option<&String> {
        match self {
            Milestone::Start => cb.on_start.as_ref(),
            Milestone::Promote => cb.on_promote.as_ref(),
            Milestone::Revert => cb.on_revert.as_ref(),
            Milestone::Finish => cb.on_finish.as_ref(),
            Milestone::Cutover => cb.on_cutover.as_ref(),
        }
    }
}

/// What the callbacks of a milestone came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Called {
    /// Every callback ran (failures are recorded, never fatal).
    Ran,
    /// A failing `on_promote` of this set, which has `veto = true`, stopped the promotion.
    Vetoed(CallbackSource),
}

/// Run the callbacks for `m` (the fleet's, then the playbook's), each recorded.
pub(crate) async fn call(
    run: &Run,
    m: Milestone,
    phase: Option<&str>,
    outcome: Option<&str>,
    event: serde_json::Value,
) -> Result<Called, RecordFailed> {
    let doc = serde_json::json!({"callback": m.name(), "run_id": run.id(), "phase": phase, "outcome": outcome, "event": event});
    for (source, cb) in each(&run.callbacks) {
        let Some(cmd) = m.command(cb) else { continue };
        let (ok, detail) = execute(cmd, run.id(), phase, outcome, &doc, cb.limit()).await;
        run.rec.emit(EventKind::Callback {
            callback: m.name().to_string(),
            source,
            phase: phase.map(str::to_string),
            command: cmd.clone(),
            ok,
            detail: detail.clone(),
        })?;
        if ok {
            continue;
        }
        run.say(&format!("callback {} ({}) failed: {detail}", m.name(), source.as_str()));
        if matches!(m, Milestone::Promote) && cb.veto {
            return Ok(Called::Vetoed(source));
        }
    }
    Ok(Called::Ran)
}

/// `sh -c CMD` with the document on stdin, killed past `limit`.
async fn execute(
    cmd: &str,
    run_id: &str,
    phase: Option<&str>,
    outcome: Option<&str>,
    doc: &serde_json::Value,
    limit: std::time::Duration,
) -> (bool, String) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("BELLWETHER_RUN_ID", run_id)
        .env("BELLWETHER_PHASE", phase.unwrap_or(""))
        .env("BELLWETHER_OUTCOME", outcome.unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot start `sh`: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A callback that ignores its stdin closes the pipe early: that is not a failure.
        let _ = stdin.write_all(format!("{doc}\n").as_bytes()).await;
    }
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => (
            false,
            format!("did not finish within {}; killed", humantime::format_duration(limit)),
        ),
        Ok(Err(e)) => (false, e.to_string()),
        Ok(Ok(out)) if out.status.success() => (true, String::new()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err
                .trim()
                .chars()
                .rev()
                .take(DETAIL_CHARS)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (
                false,
                format!(
                    "exit {}: {tail}",
                    out.status.code().map_or("signal".into(), |c| c.to_string())
                ),
            )
        }
    }
}
