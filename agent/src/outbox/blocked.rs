//! `overflow: block` as a reported state: while an append waits for room, the outbox says so
//! (since when, and how many episodes there were), so the daemon can report it on systemd's
//! STATUS=, `/healthz` and the metrics instead of mistaking the waiting engine for a wedged
//! one. An episode starts when the first append has to wait and ends when no append waits any
//! more; its start is logged once at ERROR (the sources are pushed back: device messages stay
//! unacknowledged, and a source without acks loses what it cannot deliver), its end at INFO.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Appends waiting for room, and since when (µs since the epoch; 0 = none waits).
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    waiting: AtomicU64,
    since_us: AtomicI64,
    episodes: AtomicU64,
}

impl Blocked {
    /// Marks one append as waiting until the returned guard is dropped.
    pub(crate) fn wait(&self, max_bytes: u64) -> Waiting<'_> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            self.since_us
                .store(weir_drivers::now_us().max(1), Ordering::Release);
            self.episodes.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                max_bytes,
                "outbox full under overflow: block: the engine waits for the uplink to make \
                 room; sources are pushed back (device messages stay unacknowledged)"
            );
        }
        Waiting { blocked: self }
    }

    /// When the current episode started (µs since the epoch), if an append waits now.
    pub(crate) fn since_us(&self) -> Option<i64> {
        match self.since_us.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    pub(crate) fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }
}

/// One waiting append; the last one dropped ends the episode.
pub(crate) struct Waiting<'a> {
    blocked: &'a Blocked,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let b = self.blocked;
        if b.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = b.since_us.swap(0, Ordering::AcqRel);
            tracing::info!(
                blocked_for_ms = weir_drivers::now_us().saturating_sub(since) / 1000,
                "outbox has room again: the engine goes on"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_lasts_while_any_append_waits() {
        let b = Blocked::default();
        assert_eq!(b.since_us(), None);
        let first = b.wait(1);
        let since = b.since_us().expect("blocked");
        let second = b.wait(1);
        assert_eq!(b.since_us(), Some(since), "one episode, not two");
        drop(first);
        assert!(b.since_us().is_some(), "the second still waits");
        drop(second);
        assert_eq!(b.since_us(), None);
        assert_eq!(b.episodes(), 1);
        drop(b.wait(1));
        assert_eq!(b.episodes(), 2);
    }
}
