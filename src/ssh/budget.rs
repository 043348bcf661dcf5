//! The connection budget: how many SSH connections the controller holds open at once.
//!
//! Our own code, because it is a policy over russh sessions, not a pool of interchangeable
//! resources (deadpool, bb8 and mobc hand out *any* idle connection; here each connection
//! belongs to one host and must come back to the same host, verified the same way).
//!
//! A run reuses one connection per host for every step, which is what makes it fast; but a
//! russh session costs the controller ~100 KiB whether it is used or not (its channels'
//! buffers and its tasks, bench/README.md), and a file descriptor. With more hosts than the
//! fleet's `max_connections`, opening one more connection first *parks* the least recently
//! used connection that nothing is using (no command, no stream): its session is closed and
//! the [`Connection`](super::Connection) stays valid. Its next command opens the session
//! again through the same handshake — strict host-key checking, the same keys — and carries
//! on. A connection that something is using is never parked, so the budget is a soft limit:
//! a window that tails 500 hosts at once holds 500 connections whatever the budget says.
//!
//! Only connections opened by bellwether itself and reached directly are parked: a host
//! behind a jump host keeps its tunnel (and the jump connection it rides on) for the run.
//! A connection dropped by the network is not parked, and is not reopened here: that is a
//! failure of the host, handled by the run (`rollout/reconnect.rs`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::verifier::Verifier;

pub(crate) type Handle = russh::client::Handle<Verifier>;

/// One connection's session, shared between the [`Connection`](super::Connection) and the
/// budget's registry.
pub(crate) struct Slot {
    /// The open session; `None` while parked (or after `close`).
    handle: Mutex<Option<Arc<Handle>>>,
    /// Serialises reopening, so two commands starting at once open one session.
    pub(crate) opening: tokio::sync::Mutex<()>,
    /// Commands and streams running on the session now.
    in_use: AtomicUsize,
    /// When the last command or stream on it ended (a tick of [`TICK`]).
    last_used: AtomicU64,
    /// Reached directly (no jump host): may be parked and reopened.
    parkable: bool,
    /// The fleet's `max_connections` this connection was opened under.
    limit: usize,
    /// Closed for good by `close` (never reopened).
    closed: AtomicBool,
    /// Its session died on its own and was taken out by the budget (see [`Slot::is_lost`]).
    dropped: AtomicBool,
    /// Reopens after parking, for the record and the benchmark.
    reopened: AtomicU32,
    /// Reopen with the revert's patience (retry refused and timed-out attempts until
    /// `connect_timeout`).
    pub(crate) patient: AtomicBool,
}

/// Every slot ever made (dead ones are pruned as the registry is walked).
static SLOTS: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());
/// Sessions open now (or being opened), all fleets of the process together.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// A logical clock for "least recently used".
static TICK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    TICK.fetch_add(1, Ordering::Relaxed)
}

/// Sessions open now, all connections of the process together.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl Slot {
    /// A slot for a connection about to be opened, registered with the budget.
    pub(crate) fn new(parkable: bool, limit: usize) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            handle: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            in_use: AtomicUsize::new(0),
            last_used: AtomicU64::new(tick()),
            parkable,
            limit: limit.max(1),
            closed: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            reopened: AtomicU32::new(0),
            patient: AtomicBool::new(false),
        });
        lock(&SLOTS).push(Arc::downgrade(&slot));
        slot
    }

    /// Install the session a handshake opened in the place `place` took, as the most
    /// recently used, and lease it to the caller in the same step (so it cannot be parked
    /// before its first command). `None` when the connection was closed for good meanwhile
    /// (the session is dropped and its place given back).
    pub(crate) fn install(self: &Arc<Self>, place: Place, h: Handle, reopen: bool) -> Option<Lease> {
        let mut g = lock(&self.handle);
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let h = Arc::new(h);
        *g = Some(h.clone());
        place.taken();
        self.dropped.store(false, Ordering::Relaxed);
        self.last_used.store(tick(), Ordering::Relaxed);
        self.in_use.fetch_add(1, Ordering::Relaxed);
        if reopen {
            self.reopened.fetch_add(1, Ordering::Relaxed);
        }
        Some(Lease {
            slot: self.clone(),
            handle: h,
        })
    }

    /// The open session with a lease on it (the session is not parked while the lease
    /// lives); `None` when parked, lost or closed.
    pub(crate) fn lease(self: &Arc<Self>) -> Option<Lease> {
        let g = lock(&self.handle);
        let h = g.as_ref()?.clone();
        // Under the handle's lock: parking checks `in_use` under the same lock.
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            slot: self.clone(),
            handle: h,
        })
    }

    /// The open session, if any, without a lease (for a look at its state).
    pub(crate) fn current(&self) -> Option<Arc<Handle>> {
        lock(&self.handle).clone()
    }

    pub(crate) fn parkable(&self) -> bool {
        self.parkable
    }

    /// Parked by the budget: idle, to be reopened by its next command.
    pub(crate) fn is_parked(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && !self.is_lost() && lock(&self.handle).is_none()
    }

    /// Its session went away on its own (the network, the host) and the budget took the
    /// dead session out: a lost connection stays lost, it is not reopened here.
    pub(crate) fn is_lost(&self) -> bool {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed_for_good(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub(crate) fn reopened(&self) -> u32 {
        self.reopened.load(Ordering::Relaxed)
    }

    /// Take the session out for good (`close`); the caller says goodbye on it.
    pub(crate) fn take_for_close(&self) -> Option<Arc<Handle>> {
        let mut g = lock(&self.handle);
        self.closed.store(true, Ordering::Relaxed);
        let h = g.take();
        if h.is_some() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
        h
    }

    /// Take this slot's session out if nothing uses it: an open one is parked (and closed by
    /// the caller), a dead one is marked lost. Never blocks.
    fn try_take(&self) -> Taken {
        if !self.parkable {
            return Taken::No;
        }
        let Ok(mut g) = self.handle.try_lock() else {
            return Taken::No;
        };
        if self.in_use.load(Ordering::Relaxed) != 0 {
            return Taken::No;
        }
        match g.take() {
            None => Taken::No,
            Some(h) if h.is_closed() => {
                self.dropped.store(true, Ordering::Relaxed);
                LIVE.fetch_sub(1, Ordering::Relaxed);
                Taken::Lost
            }
            Some(h) => {
                LIVE.fetch_sub(1, Ordering::Relaxed);
                Taken::Parked(h)
            }
        }
    }
}

enum Taken {
    No,
    Lost,
    Parked(Arc<Handle>),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let had = self.handle.get_mut().map(|h| h.take().is_some()).unwrap_or(false);
        if had {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A command's or stream's hold on a session: while it lives the session is not parked.
pub(crate) struct Lease {
    slot: Arc<Slot>,
    pub(crate) handle: Arc<Handle>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.last_used.store(tick(), Ordering::Relaxed);
        self.slot.in_use.fetch_sub(1, Ordering::Relaxed);
        // Connections opened while others were busy put the count over the budget: now that
        // one is idle, bring it back down.
        if LIVE.load(Ordering::Relaxed) > self.slot.limit {
            park_all(make_room(self.slot.limit, 0), self.slot.limit);
        }
    }
}

/// A place for one session, counted in from [`reserve`] until the session is installed
/// ([`Slot::install`]) — or given back when the handshake fails or is cancelled (a dropped
/// future, a timeout), so the count cannot drift.
pub(crate) struct Place {
    held: bool,
}

impl Place {
    /// The session is installed: it is counted for as long as the slot holds it.
    fn taken(mut self) {
        self.held = false;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.held {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Take a place for one more session, first parking least recently used idle sessions
/// while `limit` or more are open.
pub(crate) fn reserve(limit: usize) -> Place {
    let limit = limit.max(1);
    park_all(make_room(limit, 1), limit);
    Place { held: true }
}

/// Under the registry's lock: take idle sessions out, least recently used first, until
/// `extra` more fit under `limit` (or none is idle), then count the `extra` in. Dead
/// sessions (dropped by the network) are taken out first, whatever their age: they hold a
/// place and nothing else.
fn make_room(limit: usize, extra: usize) -> Vec<Arc<Handle>> {
    let mut parked = Vec::new();
    let mut slots = lock(&SLOTS);
    slots.retain(|w| w.strong_count() > 0);
    if LIVE.load(Ordering::Relaxed) + extra > limit {
        let mut idle: Vec<(bool, u64, Arc<Slot>)> = slots
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.parkable && s.in_use.load(Ordering::Relaxed) == 0)
            .filter_map(|s| {
                let open = !s.current()?.is_closed();
                Some((open, s.last_used.load(Ordering::Relaxed), s))
            })
            .collect();
        // Dead ones first (false < true), then the least recently used.
        idle.sort_by_key(|(open, used, _)| (*open, *used));
        for (_, _, s) in idle {
            if LIVE.load(Ordering::Relaxed) + extra <= limit {
                break;
            }
            if let Taken::Parked(h) = s.try_take() {
                parked.push(h);
            }
        }
    }
    LIVE.fetch_add(extra, Ordering::Relaxed);
    parked
}

/// Close the sessions [`make_room`] took out, off the caller's path (the session also ends
/// when its handle goes, which is all that happens outside a runtime).
fn park_all(parked: Vec<Arc<Handle>>, limit: usize) {
    if parked.is_empty() {
        return;
    }
    tracing::debug!(
        parked = parked.len(),
        limit,
        "connection budget: parked idle connections"
    );
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for h in parked {
        rt.spawn(async move {
            let _ = h
                .disconnect(russh::Disconnect::ByApplication, "bellwether: idle", "en")
                .await;
        });
    }
}

/// A poisoned lock still holds good data: nothing here is left half-updated by a panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
