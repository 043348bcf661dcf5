//! Watching hosts' logs for an observation window: fail fast on a breach, judge at the end.
//!
//! Every watched host's log tail runs on its existing connection and sends the chunks its
//! channel delivers, as they are, to one channel shared by all tails. The window is a
//! `select!` over "chunks arrived", "a watched host has been silent for `max_silence`" (a
//! timer set to the earliest such deadline), "the window ended" and "the operator pressed
//! Ctrl-C" — nothing polls. A window over hundreds of chatty hosts must cost the controller
//! little (issue 12: 200 hosts at 5 lines a second within 3% of a core), so chunks are taken
//! in batches, at most one batch every [`BATCH_EVERY`]; they are split into lines in place
//! (`ssh::lines`), each line goes through its observer once, and only the hosts that got
//! lines are asked whether they now fail (every host is asked on the half-second tick and at
//! a silence deadline).

use crate::record::{EventKind, RunDir};
use crate::ssh::lines::LineBuf;
use crate::ssh::{Chunk, Connection, StreamHandle};
use crate::watch::{Breach, CompiledWatch, Counts, GateKind, Observer, Stats, Verdict};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The shortest time between two batches of chunks: a line is judged at most this late,
/// and a window takes at most 1/this batches a second however many lines arrive.
pub const BATCH_EVERY: Duration = Duration::from_millis(20);

/// Most chunks taken in one batch (more wait for the next).
const BATCH_MAX: usize = 4096;

/// One host's log source to follow: its name, connection, log command and the watched file
/// (whose size the tail starts from), if the source is a file.
pub struct TailSpec {
    pub name: String,
    pub conn: Arc<Connection>,
    pub command: String,
    pub file: Option<String>,
}

/// Log tails started before a phase's change, so start-up errors are seen.
pub struct Tails {
    /// Each stream's tag (its place in the list it was started from) to its index here: a
    /// baseline host whose tail did not start has none.
    index_of: Vec<Option<usize>>,
    names: Vec<String>,
    baseline: Vec<bool>,
    rx: mpsc::UnboundedReceiver<(usize, Chunk)>,
    /// Held so the channel stays open after every tail ended (a closed one reads at once).
    _tx: mpsc::UnboundedSender<(usize, Chunk)>,
    streams: Vec<StreamHandle>,
    /// Each tail's line splitter, kept from window to window.
    lines: Vec<LineBuf>,
    /// Why each tail ended, once it has (the command ended, the connection was lost): a
    /// tail that ended in an earlier window (the canary's `before`) is lost in the next too.
    ended: Vec<Option<String>>,
    conns: Vec<Arc<Connection>>,
    /// Chunks received before a window opened: judged at its start.
    pending: Vec<(usize, Chunk)>,
    /// The batch being judged (its storage reused).
    batch: Vec<(usize, Chunk)>,
}

/// Where a window's judging starts and ends, per host.
#[derive(Clone, Copy)]
pub struct Ends<'a> {
    /// When each host began its change: what its tail received before that (the old
    /// agent's lines, while other hosts were changed first or its `before` hooks ran) is
    /// left out of the window, so it cannot make a stalled new agent look alive.
    pub changed_at: &'a BTreeMap<String, Instant>,
    /// How many watched hosts failing before the window's end end it: 1 for a canary; for
    /// a batch, one more than `max_failed_hosts` has left (within the budget the other
    /// hosts are still watched for the whole window).
    pub stop_after: usize,
    /// Watched hosts that already failed (in the change step): not asked, not counted
    /// towards `stop_after` (the budget it was computed from counts them already).
    pub failed: &'a BTreeSet<&'a str>,
}

/// The outcome of one window.
pub struct WindowResult {
    /// Per watched (non-baseline) host: its verdict.
    pub verdicts: Vec<(String, Verdict)>,
    /// The hosts that failed before the window's end, each with the breach it failed on,
    /// in the order they failed.
    pub failed_fast: Vec<(String, Breach)>,
    /// Pooled baseline stats, if a baseline was watched.
    pub baseline: Option<Stats>,
    pub interrupted: bool,
}

impl WindowResult {
    /// Hosts that failed, with the reason: a host that failed before the window's end fails
    /// for that breach alone (its verdict holds just it: the gates judged on the rest of
    /// the window say little more); the others for every gate their verdict failed.
    pub fn failures(&self) -> Vec<(String, String)> {
        // The hosts that failed early first, in the order they failed: the first of them is
        // what ended the window, when it ended early.
        let early = |h: &String| self.failed_fast.iter().position(|(f, _)| f == h);
        let mut v: Vec<(Option<usize>, String, String)> = self
            .verdicts
            .iter()
            .filter(|(_, vd)| !vd.passed)
            .map(|(h, vd)| {
                let why = vd
                    .breaches
                    .iter()
                    .map(|b| b.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                (early(h), h.clone(), why)
            })
            .collect();
        v.sort_by_key(|(at, _, _)| at.unwrap_or(usize::MAX));
        v.into_iter().map(|(_, h, why)| (h, why)).collect()
    }
}

/// Tails started at once. Each start is a shell start on its host and a wait for it, on the
/// host's own connection: not bounded by the run's concurrency (`-j 1` would start them one
/// round trip after another), but not unbounded either.
const STARTS_AT_ONCE: usize = 128;

/// Start tails on `hosts` (changed this phase) and `baseline` hosts (unchanged, compared);
/// each has started on its host when this returns.
pub async fn start(hosts: Vec<TailSpec>, baseline: Vec<TailSpec>) -> Result<(Tails, Vec<String>), (String, String)> {
    let mut warnings = Vec::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut t = Tails {
        index_of: Vec::new(),
        names: Vec::new(),
        baseline: Vec::new(),
        rx,
        _tx: tx.clone(),
        streams: Vec::new(),
        lines: Vec::new(),
        ended: Vec::new(),
        conns: Vec::new(),
        pending: Vec::new(),
        batch: Vec::new(),
    };
    let all: Vec<(TailSpec, bool)> = hosts
        .into_iter()
        .map(|s| (s, false))
        .chain(baseline.into_iter().map(|s| (s, true)))
        .collect();
    // Each start waits for its host to say the tail is running: in parallel, in order.
    let started: Vec<_> = futures::stream::iter(all.into_iter().enumerate())
        .map(|(tag, (spec, b))| {
            let tx = tx.clone();
            async move {
                let r = spec
                    .conn
                    .stream_into(&spec.command, spec.file.as_deref(), tag, tx)
                    .await;
                (spec, b, r)
            }
        })
        .buffered(STARTS_AT_ONCE)
        .collect()
        .await;
    for (spec, b, r) in started {
        let TailSpec {
            name, conn, command, ..
        } = spec;
        let s = match r {
            Ok(s) => s,
            // A baseline host is only a comparison: without it the canary is judged on
            // fewer (or no) baseline hosts, which never makes it easier to pass.
            Err(e) if b => {
                warnings.push(format!("baseline {name} left out: cannot start its log watch: {e}"));
                t.index_of.push(None);
                continue;
            }
            Err(e) => {
                return Err((
                    name.clone(),
                    format!("{name}: cannot start the log watch `{command}`: {e}"),
                ))
            }
        };
        t.index_of.push(Some(t.names.len()));
        t.baseline.push(b);
        t.streams.push(s);
        t.lines.push(LineBuf::default());
        t.ended.push(None);
        t.names.push(name);
        t.conns.push(conn);
    }
    Ok((t, warnings))
}

/// One observation window's state: an observer per tail, the tails that ended during it, and
/// which tails are watched (changed this phase) or baseline (compared with).
struct Window<'a> {
    run: &'a RunDir,
    obs: Vec<Observer>,
    lost: Vec<(usize, String)>,
    watched: Vec<usize>,
    base: Vec<usize>,
    /// Tails that got lines since the last fail-fast check, each once (`is_touched`).
    touched: Vec<usize>,
    /// Watched tails whose host already failed in this window (no longer asked).
    failed: Vec<bool>,
    is_touched: Vec<bool>,
    /// The baseline hosts' counts at a check (the storage reused).
    base_counts: Vec<Counts>,
    start: Instant,
    /// The window's name (`before`, `canary`, `batch 1`, …) and whether its lines are kept
    /// in `logs/HOST.log` (`watch.keep_log`).
    phase: &'a str,
    keep: bool,
    /// Lines from before a host's change are kept (as `before`).
    keep_before: bool,
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
            .filter(|&&i| !self.failed[i])
            .filter_map(|&i| self.obs[i].silence_deadline_ms())
            .min()?;
        Some(tokio::time::Instant::from_std(self.start + Duration::from_millis(ms)))
    }

    /// One line of host `name`, received at `got`, before its change began (the old
    /// agent's): not judged; kept in `logs/` as a `before` line, with the time it was
    /// received, when those are kept.
    fn old_line(&self, name: &str, line: &str, got: Instant) {
        if self.keep_before {
            let ago = chrono::Duration::from_std(got.elapsed()).unwrap_or_default();
            // A failed write is remembered by the sink; the machine stops after this step.
            let _ = self
                .run
                .keep_log_line_at(name, "before", line, chrono::Utc::now() - ago);
        }
    }

    /// One line of tail `i` (host `name`) at `at` ms: to its observer, an error line to
    /// `matched.log`, every line to `logs/` when kept.
    fn line(&mut self, i: usize, name: &str, line: &str, at: u64) {
        if self.obs[i].feed(line, at) {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            // A failed append is remembered by the sink; the machine stops after this step.
            let _ = self.run.append("matched.log", &format!("{ts} {name} {line}\n"));
        }
        if self.keep {
            // A failed write is remembered by the sink; the machine stops after this step.
            let _ = self.run.keep_log_line(name, self.phase, line);
        }
        if !std::mem::replace(&mut self.is_touched[i], true) {
            self.touched.push(i);
        }
    }
}

impl Tails {
    /// Stop every tail (each remote command is killed with its channel as its handle goes).
    pub async fn stop(self) {
        drop(self.streams);
    }

    /// Chunks received so far but not yet judged (taken before the change, for "before").
    fn drain_pending(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.pending.push(m);
        }
    }

    /// Observe for `window`, as `ends` says (see [`Ends`]).
    pub async fn observe(
        &mut self,
        run: &RunDir,
        phase: &str,
        watch: &CompiledWatch,
        window: Duration,
        interrupt: &mut watch::Receiver<u8>,
        ends: Ends<'_>,
    ) -> WindowResult {
        let Ends {
            changed_at,
            stop_after,
            failed,
        } = ends;
        self.drain_pending();
        let n = self.names.len();
        let keep_log = watch.spec().keep_log.unwrap_or_default();
        let mut w = Window {
            run,
            obs: (0..n).map(|_| Observer::new(watch)).collect(),
            start: Instant::now(),
            lost: Vec::new(),
            watched: (0..n).filter(|i| !self.baseline[*i]).collect(),
            base: (0..n).filter(|i| self.baseline[*i]).collect(),
            touched: Vec::new(),
            failed: self.names.iter().map(|h| failed.contains(h.as_str())).collect(),
            is_touched: vec![false; n],
            base_counts: Vec::new(),
            phase,
            keep: keep_log.keeps(phase),
            // A phase whose lines are not kept keeps none of its hosts' old lines either.
            keep_before: keep_log.keeps(phase) && keep_log.keeps("before"),
        };
        // Lines on a terminal for the window's hosts; none without a terminal.
        let view = run.live().map(|l| l.window(n, phase == "before"));
        // A tail that ended in an earlier window is still lost: nothing watches that host.
        w.lost
            .extend(self.ended.iter().enumerate().filter_map(|(i, e)| Some((i, e.clone()?))));
        let mut pending = std::mem::take(&mut self.pending);
        let cut: Vec<Option<Instant>> = self.names.iter().map(|h| changed_at.get(h).copied()).collect();
        self.feed(&mut w, &mut pending, 0, &cut);
        let (failed_fast, interrupted) = self
            .watch_window(&mut w, window, stop_after.max(1), interrupt, view.as_ref())
            .await;
        drop(view);
        let (verdicts, baseline) = self.judge(&w, phase, &failed_fast);
        WindowResult {
            verdicts,
            failed_fast,
            baseline,
            interrupted,
        }
    }

    /// Feed the window until it ends, `stop_after` watched hosts (or all of them) have
    /// breached a gate or lost their tail, or Ctrl-C (`true`). Returns the hosts that failed
    /// before the end, each with its breach, in the order they failed.
    async fn watch_window(
        &mut self,
        w: &mut Window<'_>,
        window: Duration,
        stop_after: usize,
        interrupt: &mut watch::Receiver<u8>,
        view: Option<&crate::ui::live::Window>,
    ) -> (Vec<(String, Breach)>, bool) {
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        // Re-armed after every batch: the next moment a watched host's silence breaches.
        let silence = tokio::time::sleep(window);
        tokio::pin!(silence);
        // After a batch, the next is read once this has passed.
        let gate = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(gate);
        let (mut open, mut every_host) = (true, true);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut failed = Vec::new();
        // The watched hosts that can still fail here (not failed before the window).
        let live = w.watched.iter().filter(|&&i| !w.failed[i]).count();
        loop {
            self.failed_fast(w, std::mem::take(&mut every_host), &mut failed);
            if !failed.is_empty() && failed.len() >= stop_after.min(live) {
                return (failed, false);
            }
            let silence_at = w.silence_deadline();
            if let Some(at) = silence_at.filter(|at| *at != silence.deadline()) {
                silence.as_mut().reset(at);
            }
            tokio::select! {
                _ = &mut deadline => return (failed, false),
                _ = interrupt.changed() => return (failed, true),
                // Woken at the deadline, the loop's fail-fast check finds the gap.
                _ = &mut silence, if silence_at.is_some() => every_host = true,
                _ = tick.tick() => {
                    every_host = true;
                    if let Some(v) = view {
                        v.update(window.saturating_sub(w.start.elapsed()), &self.gates(&w.obs));
                    }
                }
                _ = &mut gate, if !open => open = true,
                _ = self.rx.recv_many(&mut self.batch, BATCH_MAX), if open => {
                    let mut batch = std::mem::take(&mut self.batch);
                    self.feed(w, &mut batch, w.ms(), &[]);
                    self.batch = batch;
                    open = false;
                    gate.as_mut().reset(tokio::time::Instant::now() + BATCH_EVERY);
                }
            }
        }
    }

    /// Add to `failed` the watched hosts, not failed yet, that breach a gate now — of the
    /// hosts that got lines since the last check, or of all of them (`every_host`: time
    /// alone can fail a host, by its silence or a baseline's grace period running out) —
    /// then those whose tail ended (a host that cannot be watched fails its health gate).
    fn failed_fast(&self, w: &mut Window<'_>, every_host: bool, failed: &mut Vec<(String, Breach)>) {
        let mut touched = std::mem::take(&mut w.touched);
        touched.iter().for_each(|&i| w.is_touched[i] = false);
        let hosts = if every_host { &w.watched } else { &touched };
        let mut found = Vec::new();
        if !hosts.is_empty() {
            let now = w.ms();
            w.base_counts.clear();
            w.base_counts.extend(w.base.iter().map(|&j| w.obs[j].counts()));
            found.extend(
                hosts
                    .iter()
                    .filter(|&&i| !self.baseline[i] && !w.failed[i])
                    .filter_map(|&i| Some((i, w.obs[i].fail_fast(now, &w.base_counts)?))),
            );
        }
        touched.clear();
        w.touched = touched;
        for (i, why) in &w.lost {
            if !self.baseline[*i] && !w.failed[*i] && !found.iter().any(|(j, _)| j == i) {
                let b = Breach {
                    gate: GateKind::Health,
                    message: why.clone(),
                };
                found.push((*i, b));
            }
        }
        for (i, b) in found {
            w.failed[i] = true;
            failed.push((self.names[i].clone(), b));
        }
    }

    /// Chunks that arrived `at` ms into the window: split into lines for their tails'
    /// observers; the end of a tail closes it. `cut`: per tail, when its host's change
    /// began: the lines of chunks received earlier are old (not judged). `batch` is left
    /// empty (its storage kept).
    fn feed(&mut self, w: &mut Window<'_>, batch: &mut Vec<(usize, Chunk)>, at: u64, cut: &[Option<Instant>]) {
        for (tag, chunk) in batch.drain(..) {
            let Some(i) = self.index_of.get(tag).copied().flatten() else {
                continue;
            };
            let name = &self.names[i];
            match chunk {
                Chunk::Data(d, got) if cut.get(i).copied().flatten().is_some_and(|c| got < c) => {
                    self.lines[i].push(&d, |l| w.old_line(name, l, got))
                }
                Chunk::Data(d, _) => self.lines[i].push(&d, |l| w.line(i, name, l, at)),
                Chunk::Ended => {
                    self.lines[i].flush(|l| w.line(i, name, l, at));
                    let why = if self.conns[i].is_closed() {
                        "the connection was lost"
                    } else {
                        "the log command ended"
                    };
                    let why = format!("{why} during observation");
                    self.ended[i] = Some(why.clone());
                    w.lost.push((i, why));
                }
            }
        }
    }

    /// Each watched host's verdict at the end of the window (recorded), and the pooled
    /// baseline stats they were compared with. A host that failed fast does not pass.
    fn judge(
        &self,
        w: &Window<'_>,
        phase: &str,
        failed_fast: &[(String, Breach)],
    ) -> (Vec<(String, Verdict)>, Option<Stats>) {
        let window_ms = w.ms().max(1);
        let base_stats: Vec<Stats> = w.base.iter().map(|&j| w.obs[j].window_stats(window_ms)).collect();
        let mut verdicts = Vec::new();
        for &i in &w.watched {
            let mut v = if base_stats.is_empty() {
                w.obs[i].finish(window_ms)
            } else {
                w.obs[i].finish_with_baseline(window_ms, &base_stats)
            };
            // A host that failed before the window's end fails for that breach alone: the
            // gates judged on the rest of the window say little more (see `failures`).
            if let Some((_, b)) = failed_fast.iter().find(|(h, _)| h == &self.names[i]) {
                v.breaches = vec![b.clone()];
                v.passed = false;
            }
            let passed = v.passed;
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
