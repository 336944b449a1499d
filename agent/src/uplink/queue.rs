//! What the uplink drains: a queue of records in delivery order, from which it deletes what
//! the broker has acknowledged.
//!
//! The uplink does not import the outbox: the daemon hands it the outbox as a [`Queue`]
//! (`daemon::uplink_queue`). That keeps the dependency one way (DESIGN.md, "The agent crate's
//! rooms") and says exactly which things the uplink needs from its store.

use std::future::Future;

use tokio::sync::watch;

use crate::support::record::{LaneCursor, LaneRange, Record};

/// A store of records the uplink publishes and then deletes.
pub trait Queue: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `limit` records past `after` in each lane, in delivery order (lane, then id).
    fn fetch(
        &self,
        limit: usize,
        after: LaneCursor,
    ) -> impl Future<Output = Result<Vec<Record>, Self::Error>> + Send;

    /// Deletes records for good (unpublishable ones).
    fn delete(&self, ids: Vec<u64>) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes acknowledged records: every record of a range's lane inside the range.
    fn delete_ranges(
        &self,
        ranges: Vec<LaneRange>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Changes on every commit of new records; closed when the queue is.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Whether `error` means the queue is gone for good (the uplink then stops).
    fn is_closed(error: &Self::Error) -> bool;

    /// The error for a queue that has gone (its [`changes`](Queue::changes) closed).
    fn closed() -> Self::Error;

    /// Counts `n` records the uplink deleted unpublished (data lost, see the uplink's log).
    fn count_discarded(&self, n: u64);
}
