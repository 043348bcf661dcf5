//! Watching hosts' logs for an observation window: fail fast on a breach, judge at the end.
//!
//! Every watched host's log tail runs on its existing connection; lines from all of them
//! arrive on one channel, so the window is a `select!` over "a line arrived", "the window
//! ended" and "the operator pressed Ctrl-C" — nothing polls.

use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, LineStream};
use crate::watch::{Breach, CompiledWatch, GateKind, Observer, Stats, Verdict};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Log tails started before a phase's change, so start-up errors are seen.
pub struct Tails {
    names: Vec<String>,
    baseline: Vec<bool>,
    rx: mpsc::UnboundedReceiver<(usize, String)>,
    streams: Vec<tokio::task::JoinHandle<Option<LineStream>>>,
    closed: Vec<bool>,
    conns: Vec<Arc<Connection>>,
    started: Instant,
    pending: Vec<(usize, String, Instant)>,
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
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
            // The stream ended by itself (command exited or connection lost): mark it.
            let _ = tx.send((i, String::from("\u{0}EOF")));
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
        let mut obs: Vec<Observer> = (0..n).map(|_| Observer::new(watch)).collect();
        let start = Instant::now();
        let bar = progress_bar();
        let ms = |t: Instant| t.saturating_duration_since(start).as_millis() as u64;
        let watched: Vec<usize> = (0..n).filter(|i| !self.baseline[*i]).collect();
        let base: Vec<usize> = (0..n).filter(|i| self.baseline[*i]).collect();
        let mut failed_fast = None;
        let mut lost: Vec<(usize, String)> = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        let feed = |obs: &mut Vec<Observer>,
                    i: usize,
                    line: &str,
                    at: u64,
                    lost: &mut Vec<(usize, String)>,
                    closed: &mut Vec<bool>,
                    conns: &Vec<Arc<Connection>>,
                    names: &Vec<String>| {
            if line == "\u{0}EOF" {
                closed[i] = true;
                let why = if conns[i].is_closed() {
                    "the connection was lost"
                } else {
                    "the log command ended"
                };
                lost.push((i, format!("{}: {why} during observation", names[i])));
                return;
            }
            if watch.is_error(line) {
                // A failed append is remembered by the sink; the machine stops after this step.
                let _ = run.append(
                    "matched.log",
                    &format!(
                        "{} {} {}\n",
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        names[i],
                        line
                    ),
                );
            }
            obs[i].feed(line, at);
        };
        for (i, l, _) in &pending {
            feed(
                &mut obs,
                *i,
                l,
                0,
                &mut lost,
                &mut self.closed,
                &self.conns,
                &self.names,
            );
        }
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut interrupted = false;
        'window: loop {
            for &i in &watched {
                let b = if base.is_empty() {
                    obs[i].breach()
                } else {
                    let counts: Vec<_> = base.iter().map(|&j| obs[j].counts()).collect();
                    obs[i].breach_with_baseline(ms(Instant::now()), &counts)
                };
                if let Some(b) = b {
                    failed_fast = Some((self.names[i].clone(), b));
                    break 'window;
                }
            }
            if let Some((i, why)) = lost.iter().find(|(i, _)| !self.baseline[*i]).cloned() {
                failed_fast = Some((
                    self.names[i].clone(),
                    Breach {
                        gate: GateKind::Health,
                        message: why,
                    },
                ));
                break;
            }
            tokio::select! {
                _ = &mut deadline => break,
                _ = interrupt.changed() => { interrupted = true; break; }
                _ = tick.tick() => {
                    if let Some(b) = &bar {
                        b.set_message(progress_line(phase, window, start, &self.names, &self.baseline, &obs));
                        b.tick();
                    }
                }
                m = self.rx.recv() => if let Some((i, line)) = m {
                    feed(&mut obs, i, &line, ms(Instant::now()), &mut lost, &mut self.closed, &self.conns, &self.names);
                }
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let window_ms = ms(Instant::now()).max(1);
        let base_stats: Vec<Stats> = base.iter().map(|&j| obs[j].stats()).collect();
        let mut verdicts = Vec::new();
        for &i in &watched {
            let v = if base_stats.is_empty() {
                obs[i].finish(window_ms)
            } else {
                obs[i].finish_with_baseline(window_ms, &base_stats)
            };
            let passed = v.passed && failed_fast.as_ref().is_none_or(|(h, _)| h != &self.names[i]);
            // A failed write is remembered by the sink; the machine stops after this step.
            let _ = run.emit(EventKind::Verdict {
                phase: phase.to_string(),
                host: self.names[i].clone(),
                passed,
                verdict: serde_json::to_value(&v).unwrap_or_default(),
            });
            verdicts.push((self.names[i].clone(), v));
        }
        let baseline = (!base_stats.is_empty()).then(|| Stats::pooled(&base_stats));
        let _ = self.started;
        WindowResult {
            verdicts,
            failed_fast,
            baseline,
            interrupted,
        }
    }
}

/// A spinner for the observation window, only when stdout is a terminal (cron mail and CI logs
/// get the plain timestamped lines instead).
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || crate::ui::log::is_json() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
        b.set_style(style);
    }
    Some(b)
}

/// "canary: 7m 12s left | h01 1204 lines 0 errors | baseline h02 998 lines 0 errors"
fn progress_line(
    phase: &str,
    window: Duration,
    start: Instant,
    names: &[String],
    base: &[bool],
    obs: &[Observer],
) -> String {
    let left = window.saturating_sub(start.elapsed());
    let mut s = format!(
        "{phase}: {} left",
        humantime::format_duration(Duration::from_secs(left.as_secs()))
    );
    for (i, o) in obs.iter().enumerate().take(6) {
        let c = o.counts();
        let tag = if base[i] { "baseline " } else { "" };
        s.push_str(&format!(
            " | {tag}{} {} lines {} errors",
            names[i], c.lines, c.error_lines
        ));
    }
    if obs.len() > 6 {
        s.push_str(&format!(" | +{} more", obs.len() - 6));
    }
    s
}
