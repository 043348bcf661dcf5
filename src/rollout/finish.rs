//! The end of every run, by any path (done, reverted, paused, `revert RUN`, `resume RUN`):
//! take the run's markers off every host it placed them on — except hosts that still need a
//! person — record the outcome, write the summary, close the connections.

use super::outcome::{Ending, Outcome};
use super::reconnect::reconnect;
use super::revert::Outstanding;
use super::run::Run;
use crate::exit::{Exit, Failure};
use crate::record::history::{markers_held, records_markers};
use crate::record::{read_events, EventKind, RunDir};

/// A run that has ended: where its record is and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub run_id: String,
    pub dir: std::path::PathBuf,
    pub ending: Ending,
}

impl Run {
    /// Finish the run: markers, `run_finished`, `summary.md`, connections.
    pub(crate) async fn finish(mut self, mut ending: Ending) -> Finished {
        self.stop_tails().await;
        if let Err(e) = self.release_markers(ending.outcome).await {
            ending.message.push_str(&format!("\n{e}"));
        }
        let ev = serde_json::json!({"outcome": ending.outcome.as_str(), "exit": ending.exit().code(), "message": self.rec.secrets().text(&ending.message)});
        let outcome = ending.outcome.as_str();
        // Recorded like every callback; a failure is never fatal (the run is over).
        let _ = super::callbacks::call(&self, super::callbacks::Milestone::Finish, None, Some(outcome), ev).await;
        let per_host = self.conns.iter().map(|(h, c)| (h.clone(), c.commands_run())).collect();
        let reopened = self
            .conns
            .iter()
            .filter(|(_, c)| c.reopened() > 0)
            .map(|(h, c)| (h.clone(), c.reopened()))
            .collect();
        // Evidence for the benchmark, not the write-ahead log: a failure is reported below
        // by the run_finished write that follows on the same file.
        self.rec
            .emit_or_remember(EventKind::RemoteCommands { per_host, reopened });
        if let Err(e) = self.rec.close_logs() {
            ending.message.push_str(&format!("\ncannot finish the kept logs: {e}"));
        }
        let recorded = self.rec.emit(EventKind::RunFinished {
            outcome: ending.outcome.as_str().to_string(),
            exit: ending.exit().code(),
            message: ending.message.clone(),
        });
        if let Err(e) = recorded {
            if ending.outcome == Outcome::Done {
                ending = Ending::new(Outcome::RecordFailed, String::new());
            }
            ending
                .message
                .push_str(&format!("\ncannot record the end of the run: {e}"));
        }
        super::summary::write(&self.rec);
        for c in self.conns.values() {
            c.close().await;
        }
        // The message is free text for people: masked like everything else they see.
        ending.message = self.rec.secrets().text(&ending.message);
        Finished {
            run_id: self.rec.id.clone(),
            dir: self.rec.dir.clone(),
            ending,
        }
    }

    /// Markers come off every host the record says holds one, except: after a second
    /// Ctrl-C (stop at once: touch nothing more), and on hosts that still hold changes the
    /// run could not put back (the marker keeps other runs off them until `revert RUN`).
    async fn release_markers(&mut self, outcome: Outcome) -> Result<(), String> {
        // Stopped at once, or waiting for a person to promote: the run is not over.
        if matches!(outcome, Outcome::Interrupted | Outcome::AwaitingPromotion) {
            return Ok(());
        }
        let events = read_events(&self.rec.dir).map_err(|e| e.to_string())?;
        let mut held = markers_held(&events);
        if !records_markers(&events) {
            // An older record: any target may hold one (removal only takes ours).
            held = self.endpoints.keys().cloned().collect();
        }
        // Done and paused runs keep their changes on purpose; only a failed revert leaves
        // hosts that need a person.
        if matches!(outcome, Outcome::RevertFailed | Outcome::RecordFailed) {
            let keep = Outstanding::from_events(&events).hosts();
            held.retain(|h| !keep.contains(h));
        }
        if held.is_empty() {
            return Ok(());
        }
        reconnect(self, &held, "finish").await;
        let kept = super::markers::release(&self.rec, &self.conns, &held).await;
        if kept.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = kept.iter().map(|(h, why)| format!("{h} ({why})")).collect();
        Err(format!(
            "the run marker is still on {} host(s): {}; clear it with: bellwether revert {}",
            kept.len(),
            list.join(", "),
            self.rec.id
        ))
    }
}

/// Record how a run ended that never reached the machine, and write its summary.
pub(crate) fn finish_early(rec: &RunDir, mut ending: Ending) -> Result<Finished, Failure> {
    rec.emit(EventKind::RunFinished {
        outcome: ending.outcome.as_str().into(),
        exit: ending.exit().code(),
        message: ending.message.clone(),
    })
    .map_err(|e| Failure::new(Exit::NeedsAttention, format!("cannot write the run record: {e}")))?;
    super::summary::write(rec);
    ending.message = rec.secrets().text(&ending.message);
    Ok(Finished {
        run_id: rec.id.clone(),
        dir: rec.dir.clone(),
        ending,
    })
}
