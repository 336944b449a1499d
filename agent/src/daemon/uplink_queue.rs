//! The outbox as the uplink's [`Queue`]: the one place the two meet, so neither imports the
//! other.

use std::future::Future;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::outbox::{LaneCursor, LaneRange, Outbox, OutboxError, Record};
use crate::uplink::Queue;

impl Queue for Outbox {
    type Error = OutboxError;

    fn fetch(
        &self,
        limit: usize,
        after: LaneCursor,
    ) -> impl Future<Output = Result<Vec<Record>, OutboxError>> + Send {
        Outbox::fetch(self, limit, after)
    }

    fn delete(&self, ids: Vec<u64>) -> impl Future<Output = Result<(), OutboxError>> + Send {
        Outbox::delete(self, ids)
    }

    fn delete_ranges(
        &self,
        ranges: Vec<LaneRange>,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send {
        Outbox::delete_ranges(self, ranges)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        Outbox::changes(self)
    }

    fn is_closed(error: &OutboxError) -> bool {
        matches!(error, OutboxError::Closed)
    }

    fn closed() -> OutboxError {
        OutboxError::Closed
    }

    fn count_discarded(&self, n: u64) {
        self.counters().discarded.fetch_add(n, Ordering::Relaxed);
    }
}
