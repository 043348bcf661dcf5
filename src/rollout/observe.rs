//! Watching hosts' logs for an observation window: fail fast on a breach, judge at the end.
//!
//! Every watched host's log tail runs on its existing connection; lines from all of them
//! arrive on one channel, so the window is a `select!` over "a line arrived", "a watched host
//! has been silent for `max_silence`" (a timer set to the earliest such deadline), "the window
//! ended" and "the operator pressed Ctrl-C" — nothing polls.

use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, LineStream};
use crate::watch::{Breach, CompiledWatch, GateKind, Observer, Stats, Verdict};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What a host's tail sends on the shared channel. The end of a stream is its own variant,
/// out of band: no line a host logs (whatever bytes it holds) can pass for it.
enum TailMsg {
    Line(String),
    Ended,
}

/// Log tails started before a phase's change, so start-up errors are seen.
pub struct Tails {
    names: Vec<String>,
    baseline: Vec<bool>,
    rx: mpsc::UnboundedReceiver<(usize, TailMsg)>,
    streams: Vec<tokio::task::JoinHandle<Option<LineStream>>>,
    closed: Vec<bool>,
    conns: Vec<Arc<Connection>>,
    started: Instant,
    pending: Vec<(usize, TailMsg, Instant)>,
}

/// The outcome of one window.
pub struct WindowResult {
    /// Per watched (non-baseline) host: its verdict.
    pub verdicts: Vec<(String, Verdict)>,
    /// The first breach that ended the window early, with its host.
    pub failed_fast: Option<(String, Breach)>,
    /// Pooled baseline stats, if a baseline was watched.
    pub baseline: Option<Stats>,
    pub interrupted: bool,
}

impl WindowResult {
    /// Hosts that failed, with the reason.
    pub fn failures(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .verdicts
            .iter()
            .filter(|(_, vd)| !vd.passed)
            .map(|(h, vd)| {
                (
                    h.clone(),
                    vd.breaches
                        .iter()
                        .map(|b| b.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .collect();
        if let Some((h, b)) = &self.failed_fast {
            if !v.iter().any(|(x, _)| x == h) {
                v.push((h.clone(), b.message.clone()));
            }
        }
        v
    }
}

/// Start tails on `hosts` (changed this phase) and `baseline` hosts (unchanged, compared).
pub async fn start(
    hosts: Vec<(String, Arc<Connection>, String)>,
    baseline: Vec<(String, Arc<Connection>, String)>,
) -> Result<(Tails, Vec<String>), (String, String)> {
    let mut warnings = Vec::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut names = Vec::new();
    let mut is_base = Vec::new();
    let mut streams = Vec::new();
    let mut conns = Vec::new();
    let all: Vec<(String, Arc<Connection>, String, bool)> = hosts
        .into_iter()
        .map(|(a, b, c)| (a, b, c, false))
        .chain(baseline.into_iter().map(|(a, b, c)| (a, b, c, true)))
        .collect();
    for (name, conn, cmd, b) in all {
        let mut s = match conn.stream(&cmd).await {
            Ok(s) => s,
            // A baseline host is only a comparison: without it the canary is judged on
            // fewer (or no) baseline hosts, which never makes it easier to pass.
            Err(e) if b => {
                warnings.push(format!("baseline {name} left out: cannot start its log watch: {e}"));
                continue;
            }
            Err(e) => return Err((name.clone(), format!("{name}: cannot start the log watch `{cmd}`: {e}"))),
        };
        let i = names.len();
        is_base.push(b);
        let tx = tx.clone();
        streams.push(tokio::spawn(async move {
            while let Some(line) = s.next().await {
                if tx.send((i, TailMsg::Line(line))).is_err() {
                    break;
                }
            }
            // The stream ended by itself (command exited or connection lost): mark it.
            let _ = tx.send((i, TailMsg::Ended));
            Some(s)
        }));
        names.push(name);
        conns.push(conn);
    }
    Ok((
        Tails {
            closed: vec![false; names.len()],
            names,
            baseline: is_base,
            rx,
            streams,
            conns,
            started: Instant::now(),
            pending: Vec::new(),
        },
        warnings,
    ))
}

/// One observation window's state: an observer per tail, the tails that ended during it, and
/// which tails are watched (changed this phase) or baseline (compared with).
struct Window<'a> {
    run: &'a RunDir,
    watch: &'a CompiledWatch,
    obs: Vec<Observer>,
    lost: Vec<(usize, String)>,
    watched: Vec<usize>,
    base: Vec<usize>,
    start: Instant,
    /// The window's name (`before`, `canary`, `batch 1`, …) and whether its lines are kept
    /// in `logs/HOST.log` (`watch.keep_log`).
    phase: &'a str,
    keep: bool,
}

impl Window<'_> {
    /// Milliseconds since the window opened: the time base of every observer.
    fn ms(&self) -> u64 {
        Instant::now().saturating_duration_since(self.start).as_millis() as u64
    }

    /// The earliest moment a watched host breaches `max_silence` unless a line arrives first.
    fn silence_deadline(&self) -> Option<tokio::time::Instant> {
        let ms = self
            .watched
            .iter()
            .filter_map(|&i| self.obs[i].silence_deadline_ms())
            .min()?;
        Some(tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)))
    }
}

impl Tails {
    /// Stop every tail (the remote commands are killed with their channels).
    pub async fn stop(self) {
        for t in self.streams {
            t.abort();
        }
    }

    /// Lines received so far but not yet judged (taken before the change, for "before").
    fn drain_pending(&mut self) {
        while let Ok((i, l)) = self.rx.try_recv() {
            self.pending.push((i, l, Instant::now()));
        }
    }

    /// Observe for `window`. `with_baseline` compares the watched hosts with the baseline.
    pub async fn observe(
        &mut self,
        run: &RunDir,
        phase: &str,
        watch: &CompiledWatch,
        window: Duration,
        interrupt: &mut watch::Receiver<u8>,
    ) -> WindowResult {
        self.drain_pending();
        let n = self.names.len();
        let mut w = Window {
            run,
            watch,
            obs: (0..n).map(|_| Observer::new(watch)).collect(),
            start: Instant::now(),
            lost: Vec::new(),
            watched: (0..n).filter(|i| !self.baseline[*i]).collect(),
            base: (0..n).filter(|i| self.baseline[*i]).collect(),
            phase,
            keep: watch.spec().keep_log.unwrap_or_default().keeps(phase),
        };
        // Lines on a terminal for the window's hosts; none without a terminal.
        let view = run.live().map(|l| l.window(n, phase == "before"));
        for (i, l, _) in std::mem::take(&mut self.pending) {
            self.feed(&mut w, i, &l, 0);
        }
        let (failed_fast, interrupted) = self.watch_window(&mut w, window, interrupt, view.as_ref()).await;
        drop(view);
        let (verdicts, baseline) = self.judge(&w, phase, &failed_fast);
        let _ = self.started;
        WindowResult {
            verdicts,
            failed_fast,
            baseline,
            interrupted,
        }
    }

    /// Feed the window until a watched host breaches a gate or loses its tail (that host and
    /// its breach are returned), the window ends, or Ctrl-C (`true`).
    async fn watch_window(
        &mut self,
        w: &mut Window<'_>,
        window: Duration,
        interrupt: &mut watch::Receiver<u8>,
        view: Option<&crate::ui::live::Window>,
    ) -> (Option<(String, Breach)>, bool) {
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        // Re-armed after every line: the next moment a watched host's silence breaches.
        let silence = tokio::time::sleep(window);
        tokio::pin!(silence);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            if let Some(failed) = self.failed_fast(w) {
                return (Some(failed), false);
            }
            let silence_at = w.silence_deadline();
            if let Some(at) = silence_at.filter(|at| *at != silence.deadline()) {
                silence.as_mut().reset(at);
            }
            tokio::select! {
                _ = &mut deadline => return (None, false),
                _ = interrupt.changed() => return (None, true),
                // Woken at the deadline, the loop's fail-fast check finds the gap.
                _ = &mut silence, if silence_at.is_some() => {}
                _ = tick.tick() => {
                    if let Some(v) = view {
                        v.update(window.saturating_sub(w.start.elapsed()), &self.gates(&w.obs));
                    }
                }
                m = self.rx.recv() => if let Some((i, line)) = m {
                    let at = w.ms();
                    self.feed(w, i, &line, at);
                }
            }
        }
    }

    /// The first watched host that breaches a gate now, else the first watched host whose
    /// tail ended (a host that cannot be watched fails its health gate).
    fn failed_fast(&self, w: &Window<'_>) -> Option<(String, Breach)> {
        let (now, counts): (u64, Vec<_>) = (w.ms(), w.base.iter().map(|&j| w.obs[j].counts()).collect());
        for &i in &w.watched {
            if let Some(b) = w.obs[i].fail_fast(now, &counts) {
                return Some((self.names[i].clone(), b));
            }
        }
        let (i, why) = w.lost.iter().find(|(i, _)| !self.baseline[*i]).cloned()?;
        Some((
            self.names[i].clone(),
            Breach {
                gate: GateKind::Health,
                message: why,
            },
        ))
    }

    /// One line from tail `i` at `at` ms: an end-of-stream mark closes the tail, an error line
    /// goes to `matched.log`, and every line goes to the tail's observer.
    fn feed(&mut self, w: &mut Window<'_>, i: usize, msg: &TailMsg, at: u64) {
        let TailMsg::Line(line) = msg else {
            self.closed[i] = true;
            let why = if self.conns[i].is_closed() {
                "the connection was lost"
            } else {
                "the log command ended"
            };
            w.lost.push((i, format!("{}: {why} during observation", self.names[i])));
            return;
        };
        if w.watch.is_error(line) {
            // A failed append is remembered by the sink; the machine stops after this step.
            let _ = w.run.append(
                "matched.log",
                &format!(
                    "{} {} {}\n",
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    self.names[i],
                    line
                ),
            );
        }
        if w.keep {
            // A failed write is remembered by the sink; the machine stops after this step.
            let _ = w.run.keep_log_line(&self.names[i], w.phase, line);
        }
        w.obs[i].feed(line, at);
    }

    /// Each watched host's verdict at the end of the window (recorded), and the pooled
    /// baseline stats they were compared with. A host that failed fast does not pass.
    fn judge(
        &self,
        w: &Window<'_>,
        phase: &str,
        failed_fast: &Option<(String, Breach)>,
    ) -> (Vec<(String, Verdict)>, Option<Stats>) {
        let window_ms = w.ms().max(1);
        let base_stats: Vec<Stats> = w.base.iter().map(|&j| w.obs[j].window_stats(window_ms)).collect();
        let mut verdicts = Vec::new();
        for &i in &w.watched {
            let v = if base_stats.is_empty() {
                w.obs[i].finish(window_ms)
            } else {
                w.obs[i].finish_with_baseline(window_ms, &base_stats)
            };
            let passed = v.passed && failed_fast.as_ref().is_none_or(|(h, _)| h != &self.names[i]);
            // A failed write is remembered by the sink; the machine stops after this step.
            w.run.emit_or_remember(EventKind::Verdict {
                phase: phase.to_string(),
                host: self.names[i].clone(),
                passed,
                verdict: serde_json::to_value(&v).unwrap_or_default(),
            });
            verdicts.push((self.names[i].clone(), v));
        }
        let baseline = (!base_stats.is_empty()).then(|| Stats::pooled(&base_stats));
        (verdicts, baseline)
    }
}

impl Tails {
    /// Each tail's live gate counts, watched hosts first; the p95 only for the hosts that get
    /// a line of their own (it copies the samples).
    fn gates<'a>(&'a self, obs: &'a [Observer]) -> Vec<crate::ui::live::HostGate<'a>> {
        let mut order: Vec<usize> = (0..obs.len()).collect();
        order.sort_by_key(|&i| self.baseline[i]);
        order
            .into_iter()
            .enumerate()
            .map(|(shown, i)| {
                let c = obs[i].counts();
                crate::ui::live::HostGate {
                    name: &self.names[i],
                    baseline: self.baseline[i],
                    lines: c.lines,
                    errors: c.error_lines,
                    p95: (shown < crate::ui::live::MAX_HOST_LINES)
                        .then(|| obs[i].live_p95())
                        .flatten(),
                }
            })
            .collect()
    }
}
