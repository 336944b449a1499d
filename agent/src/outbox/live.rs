//! The outbox settings a reload (SIGHUP) changes while the writer runs: `max_bytes`,
//! `max_age`, `overflow`, `batch_max` and `batch_delay` ([`LiveSettings`]).
//!
//! Why they can change live: every one is held by the writer thread alone, which applies a
//! change between two commands, in queue order ([`super::Outbox::set`]). The two things
//! outside it are shared with the appenders through [`Shared`]: the `max_bytes` each append
//! validates a record's size against, and, under `overflow: block`, the semaphore of free
//! bytes appends take permits from.
//!
//! What a change does, so the module's invariants hold again right after it:
//! - `max_bytes` lowered: what is stored above the new bound is evicted at once, in one
//!   transaction, the oldest of the lowest lane first (as `drop_oldest` evicts), counted in
//!   `evicted` / `evicted_full` and logged at ERROR like any eviction, whatever the policy:
//!   stored records cannot be refused. Raised: appends take more from the next one on.
//! - Under `block` the semaphore is resized, not replaced (a waiter keeps its place): a raise
//!   adds the difference; a lowering forgets free permits, and what it could not forget
//!   (they were already taken by appends still queued) is a debt the next freed bytes pay
//!   before any permit is given back. So stored + queued + free returns to the new bound.
//!   Records queued under the old bound that no longer fit are evicted on commit by `block`'s
//!   fallback (`drop_oldest`), counted.
//! - `overflow` to `block`: a semaphore is made with the bytes free now (`max_bytes` −
//!   stored); appends already queued did not take permits, so they may push the total over
//!   once more, and the fallback evicts then (counted). From `block` to another policy: the
//!   semaphore is closed, so appends waiting on it go on at once and the new policy decides.
//! - `max_age`: the next age check runs at once with the new ages.
//! - `batch_max`, `batch_delay`: used from the next group of appends on.
//!
//! Not live: `path` (another file is another outbox: ids, checkpoint and input log live in
//! it) and `synchronous` (set on two connections, the writer's and the WAL checkpoint
//! thread's, the latter only reachable through its own thread; a restart is cheap next to
//! getting that half-changed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::config::{MaxAge, OutboxConfig, Overflow};

/// The settings [`super::Outbox::set`] applies while the outbox runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSettings {
    pub max_bytes: u64,
    pub max_age: MaxAge,
    pub overflow: Overflow,
    pub batch_max: usize,
    pub batch_delay: Duration,
}

impl LiveSettings {
    pub fn of(cfg: &OutboxConfig) -> LiveSettings {
        LiveSettings {
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
            overflow: cfg.overflow,
            batch_max: cfg.batch_max.max(1),
            batch_delay: cfg.batch_delay,
        }
    }
}

/// What applying new settings did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Records evicted at once because the stored total was above a lowered `max_bytes`.
    pub evicted: u64,
    /// The bytes they held.
    pub evicted_bytes: u64,
}

/// What the appenders read of the writer's settings.
#[derive(Debug)]
pub(super) struct Shared {
    max_bytes: AtomicU64,
    /// Free bytes under `overflow: block` (`None` under the other policies).
    room: Mutex<Option<Arc<Semaphore>>>,
}

impl Shared {
    pub(super) fn new(max_bytes: u64, room: Option<Arc<Semaphore>>) -> Shared {
        Shared {
            max_bytes: AtomicU64::new(max_bytes),
            room: Mutex::new(room),
        }
    }

    pub(super) fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Acquire)
    }

    pub(super) fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Release);
    }

    /// The semaphore appends take permits from now (`None`: not `block`).
    pub(super) fn room(&self) -> Option<Arc<Semaphore>> {
        self.room.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_room(&self, room: Option<Arc<Semaphore>>) {
        *self.room.lock().unwrap_or_else(|e| e.into_inner()) = room;
    }
}

/// The most permits a semaphore of `max_bytes` free bytes holds.
pub(super) fn room_cap(max_bytes: u64) -> usize {
    usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS)
}

/// A semaphore with the bytes free under `max_bytes` when `stored` are stored.
pub(super) fn new_room(max_bytes: u64, stored: u64) -> Arc<Semaphore> {
    let free = usize::try_from(max_bytes.saturating_sub(stored)).unwrap_or(usize::MAX);
    Arc::new(Semaphore::new(free.min(room_cap(max_bytes))))
}
