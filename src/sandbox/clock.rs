//! The one clock of every sandbox agent: a thread that wakes every 100 ms and lets each
//! running agent log its request. One wake-up and one `write` per host per tick is what 2,000
//! hosts cost at idle, instead of a `sh` loop per host forking `sleep` ten times a second.
//!
//! A thread rather than a tokio task: a tick at 2,000 hosts is a few milliseconds of blocking
//! file writes, which must not hold up the SSH servers' worker threads.

use super::agent::Agent;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Time between two requests of an agent (the shell agent's `sleep 0.1`).
pub const TICK: Duration = Duration::from_millis(100);

/// The tick in use: [`TICK`], or `BELLWETHER_SANDBOX_TICK_MS` (10 to 10,000) when set, so a
/// benchmark can give the agents another line rate (bench/watch.sh: five lines a second).
pub fn tick() -> Duration {
    std::env::var("BELLWETHER_SANDBOX_TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| (10..=10_000).contains(ms))
        .map_or(TICK, Duration::from_millis)
}

/// Every this many ticks an agent reads its fault, outage and broken-model files again and
/// reopens its log. Agents are staggered, so each tick re-reads a tenth of them.
const REFRESH_EVERY: u64 = 10;

/// Tick `agents` until the last strong reference to the list is dropped (the sandbox ends).
pub fn start(agents: &Arc<Vec<Arc<Agent>>>) -> std::io::Result<()> {
    let weak = Arc::downgrade(agents);
    std::thread::Builder::new()
        .name("sandbox-agents".into())
        .spawn(move || run(weak))
        .map(|_| ())
}

fn run(agents: Weak<Vec<Arc<Agent>>>) {
    let period = tick();
    let origin = Instant::now();
    let mut tick: u64 = 0;
    loop {
        tick += 1;
        let due = origin + period * tick as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > period {
            // Fell behind (a stopped process, a loaded machine): skip the missed ticks rather
            // than log a burst of them.
            tick = (now - origin).as_millis() as u64 / period.as_millis() as u64;
        }
        let Some(agents) = agents.upgrade() else {
            return;
        };
        for (k, a) in agents.iter().enumerate() {
            a.tick((tick + k as u64).is_multiple_of(REFRESH_EVERY));
        }
    }
}
