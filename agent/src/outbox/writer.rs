//! The dedicated SQLite thread. Every operation goes through its bounded queue, so SQLite is
//! only ever touched by one thread and async tasks never block on disk.
//!
//! Appends are grouped: the writer takes an append, keeps taking appends that are already
//! queued (or arrive within `batch_delay`) up to `batch_max` records, commits them as ONE
//! transaction, and only then runs their after-commit hooks (the transport acks). A read or
//! delete found while grouping ends the group first, so it never sees uncommitted rows. So
//! does an appender waiting for the queue's bytes ([`Command::Commit`]): what it waits for
//! is this group's commit.
//!
//! The writer also applies the bounds: the byte bound inside every append transaction (by
//! the configured [`Overflow`] policy), the age bound every [`EXPIRE_EVERY`], and it gives
//! freed bytes back to the `block` policy's semaphore after every delete or eviction.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot, watch};

use super::config::{MaxAge, Overflow};
use super::store::Store;
use super::{
    Lane, LaneCursor, LaneRange, NewRecord, OutboxCounters, OutboxError, OutboxStats, Record,
};

/// How often records past `max_age` are looked for.
pub(crate) const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Runs on the writer thread once the records queued with it are committed. The agent uses it
/// to fire transport acks; tests use it to observe ordering.
pub type AfterCommit = Box<dyn FnOnce() + Send + 'static>;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, OutboxError>>;

pub(crate) enum Command {
    Append {
        records: Vec<NewRecord>,
        after_commit: Vec<AfterCommit>,
        /// Engine input and checkpoints, written after the records in the same transaction.
        state: Vec<super::engine_state::StateOp>,
        /// Permits of [`super::QUEUE_BYTES`] it holds, given back once it is committed.
        queued: u32,
    },
    /// An append waits for [`super::QUEUE_BYTES`]: the group being gathered is all there
    /// will be until it is committed, so it is committed now rather than after
    /// `batch_delay`. Outside a group, nothing to do.
    Commit,
    /// The stored engine checkpoint (read once at start).
    LoadState {
        reply: Reply<super::engine_state::StoredState>,
    },
    /// The stored run-hour counters (read once at start).
    LoadRunHours {
        reply: Reply<Vec<weir_rules::RuntimeCounter>>,
    },
    Fetch {
        limit: usize,
        after: LaneCursor,
        reply: Reply<Vec<Record>>,
    },
    Delete {
        ids: Vec<u64>,
        reply: Reply<u64>,
    },
    DeleteRanges {
        ranges: Vec<LaneRange>,
        reply: Reply<u64>,
    },
    Stats {
        reply: Reply<OutboxStats>,
    },
    /// New bounds, policy and batching (a reload; module `live`).
    Set {
        settings: super::LiveSettings,
        reply: Reply<super::Applied>,
    },
}

/// The records of a group of appends, in the vectors their appenders queued them in.
/// Moved into one vector, the group would be copied once more (56 B a record, up to
/// `batch_max` records, 224 KiB at the default) at the moment it is largest: a burst of
/// window closes (issue 19, docs/footprint.md).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    parts: Vec<Vec<NewRecord>>,
    len: usize,
}

impl Batch {
    fn of(records: Vec<NewRecord>) -> Batch {
        let mut batch = Batch::default();
        batch.push(records);
        batch
    }

    fn push(&mut self, records: Vec<NewRecord>) {
        self.len += records.len();
        if !records.is_empty() {
            self.parts.push(records);
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = &NewRecord> {
        self.parts.iter().flatten()
    }
}

pub(crate) struct Writer {
    pub store: Store,
    pub rx: flume::Receiver<Command>,
    pub batch_max: usize,
    pub batch_delay: Duration,
    pub changes: watch::Sender<u64>,
    pub counters: Arc<OutboxCounters>,
    pub overflow: Overflow,
    pub max_age: MaxAge,
    /// Free bytes under `overflow: block` (see [`super::Outbox::append`]).
    pub room: Option<Arc<Semaphore>>,
    /// The most permits `room` may hold: `max_bytes`, capped to what a semaphore can count.
    pub room_cap: usize,
    /// Permits a lowered `max_bytes` could not take back from `room` (appends held them):
    /// paid from the next freed bytes before any is given back (module `live`).
    pub room_debt: u64,
    /// What the appenders read: `max_bytes` and `room`.
    pub shared: Arc<super::live::Shared>,
    /// Disk-full handling (see [`super::disk`]).
    pub disk: super::disk::DiskGuard,
    /// [`super::QUEUE_BYTES`]' permits, given back here.
    pub queued: Arc<Semaphore>,
}

impl Writer {
    /// Serves commands until every sender is gone; what was queued before that is committed.
    pub(crate) fn run(mut self) -> Result<(), OutboxError> {
        let mut next = None;
        let mut next_expiry = Instant::now();
        loop {
            if self.max_age.is_set() && Instant::now() >= next_expiry {
                self.expire();
                next_expiry = Instant::now() + EXPIRE_EVERY;
            }
            let cmd = match next.take() {
                Some(cmd) => cmd,
                None if self.max_age.is_set() => match self.rx.recv_deadline(next_expiry) {
                    Ok(cmd) => cmd,
                    Err(flume::RecvTimeoutError::Timeout) => continue,
                    Err(flume::RecvTimeoutError::Disconnected) => return Ok(()),
                },
                None => match self.rx.recv() {
                    Ok(cmd) => cmd,
                    Err(flume::RecvError::Disconnected) => return Ok(()),
                },
            };
            match cmd {
                Command::Append {
                    records,
                    after_commit,
                    state,
                    queued,
                } => next = self.append_group(Batch::of(records), after_commit, state, queued),
                Command::Set { settings, reply } => {
                    let _ = reply.send(Ok(self.set(settings)));
                    // New ages are applied at once.
                    next_expiry = Instant::now();
                }
                other => self.serve(other),
            }
        }
    }

    /// Gathers queued appends behind the first, commits them together, fires their hooks.
    /// Returns a non-append command met while gathering, to be served next.
    fn append_group(
        &mut self,
        mut records: Batch,
        mut hooks: Vec<AfterCommit>,
        mut states: Vec<super::engine_state::StateOp>,
        mut queued: u32,
    ) -> Option<Command> {
        let deadline = Instant::now() + self.batch_delay;
        let mut next = None;
        // At most half the queue's bytes in one group: the appenders fill the other half while
        // it is written, so they and the writer work at once.
        while records.len() < self.batch_max && queued < super::QUEUE_BYTES / 2 {
            let got = match self.rx.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(_) if self.batch_delay.is_zero() => None,
                Err(_) => self.rx.recv_deadline(deadline).ok(),
            };
            match got {
                Some(Command::Append {
                    records: more,
                    after_commit,
                    state,
                    queued: held,
                }) => {
                    queued = queued.saturating_add(held);
                    records.push(more);
                    hooks.extend(after_commit);
                    states.extend(state);
                }
                Some(Command::Commit) => break,
                Some(other) => {
                    next = Some(other);
                    break;
                }
                None => break,
            }
        }
        self.commit_inner(records, hooks, states, false);
        // Committed or failed (counted and logged): either way no longer waiting.
        self.queued.add_permits(queued as usize);
        next
    }

    /// Counts a delete's rows and returns its bytes to the `block` policy; the rows deleted.
    fn deleted(&mut self, r: Result<(u64, u64), rusqlite::Error>) -> Result<u64, OutboxError> {
        let (n, freed) = r.map_err(|source| OutboxError::Sqlite {
            op: "delete",
            source,
        })?;
        self.counters.deleted.fetch_add(n, Ordering::Relaxed);
        self.give_room(freed);
        Ok(n)
    }

    /// Returns freed bytes to the `block` policy's semaphore (after paying its debt).
    fn give_room(&mut self, bytes: u64) {
        if let Some(room) = &self.room {
            let paid = bytes.min(self.room_debt);
            self.room_debt -= paid;
            let free = self.room_cap.saturating_sub(room.available_permits());
            let add = usize::try_from(bytes - paid)
                .unwrap_or(usize::MAX)
                .min(free);
            room.add_permits(add);
        }
    }

    /// Applies new settings between two commands (module `live`): the policy's semaphore
    /// first, then the bound (what is stored above a lowered one is evicted now).
    fn set(&mut self, new: super::LiveSettings) -> super::Applied {
        let old_max = self.store.max_bytes();
        self.batch_max = new.batch_max.max(1);
        self.batch_delay = new.batch_delay;
        self.max_age = new.max_age;
        self.refresh();
        match (self.room.take(), new.overflow) {
            (Some(room), Overflow::Block) => {
                self.room_cap = super::live::room_cap(new.max_bytes);
                self.room = Some(room);
                if new.max_bytes >= old_max {
                    self.give_room(new.max_bytes - old_max);
                } else if let Some(room) = &self.room {
                    let lower = old_max - new.max_bytes;
                    let taken = room.forget_permits(usize::try_from(lower).unwrap_or(usize::MAX));
                    self.room_debt += lower - taken as u64;
                }
            }
            (Some(room), _) => {
                // Swapped out before it is closed, so an append that wakes finds the new state.
                self.shared.set_room(None);
                room.close();
                self.room_debt = 0;
            }
            (None, Overflow::Block) => {
                self.room_cap = super::live::room_cap(new.max_bytes);
                let room = super::live::new_room(new.max_bytes, self.store.stored_bytes());
                self.shared.set_room(Some(room.clone()));
                self.room = Some(room);
                self.room_debt = 0;
            }
            (None, _) => {}
        }
        self.overflow = new.overflow;
        self.store.set_max_bytes(new.max_bytes);
        self.shared.set_max_bytes(new.max_bytes);
        let mut applied = super::Applied::default();
        match self.store.shrink() {
            Ok(removed) => {
                self.give_room(removed.bytes);
                applied.evicted = removed.count.iter().sum();
                applied.evicted_bytes = removed.bytes;
                let c = Arc::clone(&self.counters);
                for lane in Lane::ALL {
                    let n = removed.count[lane as usize];
                    if n > 0 {
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        c.evicted_full.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(
                            evicted = n,
                            lane = lane.as_str(),
                            reason = "max_bytes lowered",
                            bound_bytes = self.store.bound(),
                            evicted_total = c.evicted_full.load(Ordering::Relaxed),
                            "outbox over its new max_bytes: evicted oldest records (data lost)"
                        );
                    }
                }
            }
            // The next append evicts down to the bound in its own transaction.
            Err(e) => {
                tracing::error!(error = %e, "outbox: eviction to the new max_bytes failed; the next append retries it")
            }
        }
        tracing::info!(
            max_bytes = new.max_bytes,
            overflow = ?new.overflow,
            max_age = ?new.max_age,
            batch_max = new.batch_max,
            batch_delay_ms = new.batch_delay.as_millis() as u64,
            "outbox settings applied"
        );
        applied
    }

    /// Picks up a purge by another process, so the bound is not enforced on stale totals.
    fn refresh(&mut self) {
        match self.store.refresh_if_changed() {
            Ok(freed) => self.give_room(freed),
            Err(e) => tracing::warn!(error = %e, "outbox: cannot check for outside changes"),
        }
    }

    fn expire(&mut self) {
        let now = weir_drivers::now_us();
        let cutoff = self.max_age.0.map(|age| {
            age.map(|a| now.saturating_sub(i64::try_from(a.as_micros()).unwrap_or(i64::MAX)))
        });
        self.refresh();
        match self.store.expire(cutoff) {
            Ok(removed) => {
                self.give_room(removed.bytes);
                for lane in Lane::ALL {
                    let n = removed.count[lane as usize];
                    if n > 0 {
                        let c = &self.counters;
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        c.expired.fetch_add(n, Ordering::Relaxed);
                        tracing::error!(
                            evicted = n,
                            lane = lane.as_str(),
                            reason = "max_age",
                            max_age_s = self.max_age.0[lane as usize].map_or(0, |a| a.as_secs()),
                            "outbox: evicted records older than max_age (data lost)"
                        );
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "outbox: age eviction failed; retried"),
        }
    }

    /// Commits a group; `retried_full` after a disk-full failure of the same records.
    fn commit_inner(
        &mut self,
        records: Batch,
        hooks: Vec<AfterCommit>,
        states: Vec<super::engine_state::StateOp>,
        retried_full: bool,
    ) {
        if records.is_empty() && states.is_empty() {
            // Nothing to write: everything queued before was committed already.
            hooks.into_iter().for_each(|h| h());
            return;
        }
        crate::support::fault::inject("writer");
        self.refresh();
        if !retried_full && self.disk.space_returned() {
            self.store.set_disk_bound(None);
            if let Some(since) = self.disk.full_since.take() {
                tracing::info!(
                    full_for_s = since.elapsed().as_secs(),
                    "outbox: the disk has room again; bound back to max_bytes"
                );
            }
        }
        // While the disk is full only `drop_oldest` makes room (by evicting the oldest of the
        // lowest lane); `block` cannot wait for the uplink to free disk pages it cannot see,
        // so it drops the newest like `drop_newest` (counted).
        let make_room = match self.overflow {
            Overflow::DropOldest => true,
            Overflow::Block => self.disk.full_since.is_none(),
            Overflow::DropNewest => false,
        };
        match self
            .store
            .append_with_state(records.iter(), make_room, &states)
        {
            Ok(outcome) => {
                let c = Arc::clone(&self.counters);
                let refused: u64 = outcome.refused.iter().sum::<u64>() + outcome.unnumbered;
                c.appended
                    .fetch_add(records.len() as u64 - refused, Ordering::Relaxed);
                if outcome.unnumbered > 0 {
                    c.discarded.fetch_add(outcome.unnumbered, Ordering::Relaxed);
                    if self.disk.log_drop() {
                        // ERROR: nothing new is stored until an operator resets the outbox.
                        tracing::error!(
                            records = outcome.unnumbered,
                            discarded_total = c.discarded.load(Ordering::Relaxed),
                            "outbox: the record sequence is exhausted (last id is i64::MAX); \
                             new records dropped (data lost): deliver the backlog, then move \
                             the outbox file aside to start a fresh one"
                        );
                    }
                }
                c.committed_batches.fetch_add(1, Ordering::Relaxed);
                self.give_room(outcome.evicted_bytes);
                let bound = self.store.bound();
                for lane in Lane::ALL {
                    let n = outcome.evicted[lane as usize];
                    if n > 0 {
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        c.evicted_full.fetch_add(n, Ordering::Relaxed);
                        if self.disk.log_drop() {
                            tracing::error!(
                                evicted = n,
                                lane = lane.as_str(),
                                reason = "drop_oldest",
                                bound_bytes = bound,
                                disk_full = self.disk.full_since.is_some(),
                                evicted_total = c.evicted_full.load(Ordering::Relaxed),
                                "outbox full: evicted oldest records (data lost)"
                            );
                        }
                    }
                    let n = outcome.refused[lane as usize];
                    if n > 0 {
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        c.refused_full.fetch_add(n, Ordering::Relaxed);
                        if self.disk.log_drop() {
                            tracing::error!(
                                evicted = n,
                                lane = lane.as_str(),
                                reason = "drop_newest",
                                bound_bytes = bound,
                                disk_full = self.disk.full_since.is_some(),
                                refused_total = c.refused_full.load(Ordering::Relaxed),
                                "outbox full: dropped new records (data lost)"
                            );
                        }
                    }
                }
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
                hooks.into_iter().for_each(|h| h());
            }
            Err(e) if is_disk_full(&e) && !retried_full => {
                // The file cannot grow: free the reserve, checkpoint and truncate the WAL, and
                // hold the outbox at what it stores now — never less, so what was stored stays
                // (alerts last to go under drop_oldest) — then try once more (see
                // `super::disk`). New records then only take the place of evicted ones, or are
                // dropped, by the policy.
                let stored = self.store.stored_bytes();
                let bound = self
                    .store
                    .disk_bound()
                    .map_or(stored, |held| held.min(stored));
                self.counters.disk_full.fetch_add(1, Ordering::Relaxed);
                self.disk.release();
                if self.disk.full_since.is_none() {
                    self.disk.full_since = Some(Instant::now());
                    tracing::error!(
                        error = %e,
                        stored_bytes = stored,
                        bound_bytes = bound,
                        policy = ?self.overflow,
                        "outbox: disk full; holding what is stored, new records make room or are dropped by the overflow policy (counted)"
                    );
                }
                self.store.set_disk_bound(Some(bound));
                self.store.relieve_disk();
                self.commit_inner(records, hooks, states, true);
            }
            Err(e) if is_disk_full(&e) => {
                // Even at the held size these do not fit (an insert needs pages a delete in
                // the same transaction cannot give back on a full disk): the newest are
                // dropped, counted like the policy's drops, and their acks fire — their fate
                // is decided, and what is stored is kept.
                let c = Arc::clone(&self.counters);
                for lane in Lane::ALL {
                    let n = records.iter().filter(|r| r.lane == lane).count() as u64;
                    if n > 0 {
                        c.evicted.fetch_add(n, Ordering::Relaxed);
                        c.refused_full.fetch_add(n, Ordering::Relaxed);
                    }
                }
                self.give_room(records.iter().map(NewRecord::size).sum());
                if self.disk.log_drop() {
                    tracing::error!(
                        error = %e,
                        records = records.len(),
                        bound_bytes = self.store.bound(),
                        refused_total = c.refused_full.load(Ordering::Relaxed),
                        "outbox: disk full; new records dropped, stored ones kept (data lost)"
                    );
                }
                hooks.into_iter().for_each(|h| h());
            }
            Err(e) => {
                self.give_room(records.iter().map(NewRecord::size).sum());
                // Not committed, so the acks are dropped unfired: sources that support acks
                // get their messages redelivered; others lose these records.
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    records = records.len(),
                    "outbox commit failed: records not stored"
                );
            }
        }
    }

    fn serve(&mut self, cmd: Command) {
        // A dropped reply receiver just means the caller stopped waiting.
        match cmd {
            Command::Append { .. } | Command::Set { .. } | Command::Commit => {}
            Command::LoadState { reply } => {
                let r = self
                    .store
                    .engine_state()
                    .map_err(|source| OutboxError::Sqlite {
                        op: "read engine state",
                        source,
                    });
                let _ = reply.send(r);
            }
            Command::LoadRunHours { reply } => {
                let r = self
                    .store
                    .run_hours()
                    .map_err(|source| OutboxError::Sqlite {
                        op: "read run hours",
                        source,
                    });
                let _ = reply.send(r);
            }
            Command::Fetch {
                limit,
                after,
                reply,
            } => {
                let r = self
                    .store
                    .fetch(limit, after)
                    .map_err(|source| OutboxError::Sqlite {
                        op: "fetch",
                        source,
                    });
                let _ = reply.send(r);
            }
            Command::Delete { ids, reply } => {
                let r = self.store.delete(&ids);
                let _ = reply.send(self.deleted(r));
            }
            Command::DeleteRanges { ranges, reply } => {
                let r = self.store.delete_ranges(&ranges);
                let _ = reply.send(self.deleted(r));
            }
            Command::Stats { reply } => {
                self.refresh();
                let r = self
                    .store
                    .lane_stats()
                    .and_then(|lanes| {
                        let mut s = OutboxStats::new(lanes, self.store.max_bytes(), &self.counters);
                        s.checkpoint = self.store.checkpoint_info()?;
                        Ok(s)
                    })
                    .map_err(|source| OutboxError::Sqlite {
                        op: "stats",
                        source,
                    });
                let _ = reply.send(r);
            }
        }
    }
}

/// SQLite's "database or disk is full" (`SQLITE_FULL`), also when the WAL cannot grow.
fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}
