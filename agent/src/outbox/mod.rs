//! The store-and-forward buffer: every event the rules emit is committed here before anything
//! else happens to it, and stays until the uplink's broker has acknowledged it.
//!
//! # Invariants
//! - A record's `id` is one more than the last handed out (kept in the `sequence` table, in
//!   the append's transaction): strictly increasing, never reused, also across restarts and
//!   after the newest rows were deleted. It is the record's
//!   `seq` on the wire, so `"{gateway}:{seq}"` identifies it for consumers that deduplicate.
//!   After an unclean shutdown ids jump by `store::ID_GAP_AFTER_UNCLEAN_SHUTDOWN`, and after a
//!   quarantine they restart above the current time in µs, so an id that may have reached a
//!   consumer is not handed out again even when its transaction was rolled back or lost.
//!   Ids never wrap: once the last id is `i64::MAX` (only a hand-edited sequence gets near),
//!   new records are dropped, counted in `discarded` and logged at ERROR.
//! - Acks handed to [`Outbox::append`] fire only after the transaction holding those records
//!   has committed (guarantee 3). An ack that never fires makes the source's broker redeliver.
//! - The sum of `octet_length(topic) + length(payload)` over all rows never exceeds
//!   `max_bytes` after a commit. The `overflow` policy decides how, inside the same
//!   transaction: `drop_oldest` evicts the oldest rows of the lowest-priority lane first
//!   (aggregates, then predictions, then alerts); `drop_newest` does not insert new records
//!   that do not fit; `block` makes [`Outbox::append`] wait on a semaphore of free bytes
//!   (stored + queued never exceed the bound), so the sources are pushed back and nothing is
//!   dropped for space (should the totals be off, it falls back to `drop_oldest`). A wait
//!   is a reported state ([`Outbox::blocked_since`], one ERROR line per episode: `blocked`).
//! - Records older than `max_age` (by `created_at`, per lane) are evicted within about
//!   [`writer::EXPIRE_EVERY`], oldest first in id order.
//! - The bounds, the policy and the batching may change while the outbox runs
//!   ([`Outbox::set`], a reload; module `live`): a lowered `max_bytes` is met at once by
//!   evicting what is stored above it (counted like any eviction), and under `block` the
//!   free-byte permits are resized so that stored + queued + free equals the new bound again.
//! - Every record dropped by a bound is counted in [`OutboxCounters::evicted`] and by reason
//!   (`evicted_full`, `refused_full`, `expired`) and logged at ERROR with its lane and reason.
//! - The totals live in memory (one `SUM` on open), so an append never scans the table.
//!   Another process may delete rows (`weir outbox purge`, WAL allows a second connection):
//!   the writer checks `PRAGMA data_version` before every append and age check and reads
//!   the totals again when it changed, so the bound is never enforced on stale totals for
//!   longer than one batch; a delivered id that was purged meanwhile is simply not found.
//! - Only the writer thread touches SQLite; its queue is bounded, in commands
//!   ([`QUEUE_CAPACITY`]) and in the bytes of records waiting, queued or in the group being
//!   written ([`QUEUE_BYTES`]), so a slow disk or a burst of records slows producers down
//!   (`append().await`) instead of growing memory.
//! - Every stored payload starts with a format version byte: 1, a body of the form `{ … }`
//!   (a JSON object when written by the agent, which uses serde_json), or 2, the same body
//!   with its common keys as one-byte tokens (see `payload`; a format-1 record is packed on
//!   append, the pipeline packs its own as it encodes them); `append` rejects anything else,
//!   so the uplink can always splice in its id fields. The body is not
//!   parsed on append (a full JSON parse per record is avoidable work on the ingest path).
//!
//! # Schema (`PRAGMA user_version = 2`)
//! ```sql
//! CREATE TABLE records (
//!     lane       INTEGER NOT NULL CHECK (lane IN (0, 1, 2)),
//!     id         INTEGER NOT NULL,                   -- the record's seq
//!     topic      TEXT    NOT NULL,
//!     created_at INTEGER NOT NULL,                   -- µs since the Unix epoch
//!     payload    BLOB    NOT NULL,                   -- byte 0 = format version
//!     PRIMARY KEY (lane, id)                         -- fetch: per lane, oldest first
//! ) WITHOUT ROWID;
//! CREATE TABLE sequence (last_id INTEGER NOT NULL);  -- one row: the last id handed out
//! ```
//! Clustered by lane so that delivering a lane frees whole pages (see `schema::SCHEMA`).
//! Version 1 (a rowid table with AUTOINCREMENT ids, lanes interleaved) is migrated on open.
//!
//! # Crashes and power loss
//! The database runs in WAL mode. `kill -9` at any instant loses nothing committed: a commit
//! is in the WAL before `append`'s acks fire, and the next open replays it. With the default
//! `synchronous = normal` the WAL is fsynced only at checkpoints (run by a thread of their own,
//! see `checkpoint`, so that commits do not wait for them), so a power cut can roll back
//! the last few committed transactions (the records are lost; their source acks may already
//! have fired) but never corrupts the file. `synchronous: full` fsyncs every commit and
//! loses nothing, at the cost of one flash write per batch (hence the batching). A file that
//! is nevertheless unusable — not a database, failing `PRAGMA quick_check`, or of an unknown
//! schema version — is moved to `<path>.corrupt-<unix-secs>` with its WAL, logged at ERROR,
//! and a fresh outbox is started: the agent never refuses to start because of a *bad file*.
//!
//! What it does refuse is a *place* it cannot write: an `outbox.path` that is a directory, or
//! a file or directory it cannot write (a read-only mount, the wrong owner). Quarantining
//! cannot help there and running without a buffer would break guarantee 1, so `weir run`
//! exits with the reason. A directory is refused when the config is loaded (`weir check` and
//! `weir run` alike, exit 2); `weir check` also probes the place and refuses a read-only
//! filesystem first (exit 2); a permission problem is only a warning there, since `weir check`
//! is often run by another user than the agent's (see [`OutboxConfig::check_path`]).

mod blocked;
mod checkpoint;
pub mod config;
mod disk;
mod engine_handle;
mod engine_state;
pub mod event_records;
mod live;
mod schema;
mod store;
mod writer;

#[cfg(test)]
mod bounds_tests;
#[cfg(test)]
mod engine_state_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{oneshot, watch};

pub use config::{OutboxConfig, Overflow};
pub use engine_handle::{CheckpointSink, CheckpointStored};
use engine_state::StateOp;
pub use engine_state::{CheckpointInfo, StoredState, info as checkpoint_info};
pub use live::{Applied, LiveSettings};
pub use store::SCHEMA_VERSION;
pub use writer::AfterCommit;
use writer::{Command, Writer};

/// Commands the writer's queue holds before `append` has to wait.
const QUEUE_CAPACITY: usize = 64;

/// Bytes of records and engine input (see [`queued_bytes`]) that may wait for the writer,
/// queued or in the group it is writing, before `append` has to wait. The queue's length
/// alone does not bound memory: one append may hold any number of records (an advance at
/// 100,000 series closes 100,000 windows into one append), and in the outbox bench 64
/// appends of 512 records, ~5 MB, waited at once.
///
/// A group takes at most half of it, so appenders fill the other half while it is written.
/// The bound caps a group, and a group is a commit: fewer records per commit is more flash
/// written per record (and, with `synchronous: full`, one fsync per group). Measured in the
/// outbox bench (docs/footprint.md, "Memory, eighth round"): 128 KiB made groups of 512
/// records and 2.40–2.74 bytes written per payload byte (over issue 6's 2.0); 256 KiB, 1,527
/// and 1.88–1.99; 1 MiB, 3,077 and 1.74–1.81, against 4,082 and 1.68–1.74 unbounded. So
/// the bound is a ceiling for memory, not the way a burst's peak is cut: that is done by
/// making each waiting record cheap (a shared topic, a payload of its exact size).
pub(crate) const QUEUE_BYTES: u32 = 1024 * 1024;

/// What an append holds while it waits for the writer, as [`QUEUE_BYTES`] counts it: the
/// records (their struct and payload; a topic is shared) and the engine input logged with
/// them. A streamed checkpoint holds one chunk at a time by itself and counts nothing.
fn queued_bytes(records: &[NewRecord], state: &[StateOp]) -> u32 {
    let records: usize = records
        .iter()
        .map(|r| size_of::<NewRecord>() + r.payload.len())
        .sum();
    let logs: usize = state
        .iter()
        .map(|op| match op {
            StateOp::Log(log) => log.len(),
            StateOp::RunHours(_) | StateOp::Stream(_) => 0,
        })
        .sum();
    // One append larger than the bound waits until nothing else waits, then goes alone.
    u32::try_from(records + logs).map_or(QUEUE_BYTES, |n| n.min(QUEUE_BYTES))
}

#[cfg(test)]
pub use crate::support::payload::compact;
pub use crate::support::payload::{PAYLOAD_V1, json_body};
pub use crate::support::record::{Lane, LaneCursor, LaneRange, Record, check_topic};

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub lane: Lane,
    /// MQTT topic the uplink publishes it to (see [`crate::uplink::topic_for`]). Shared: the
    /// records of a lane all carry the same one, and a burst holds thousands at once.
    pub topic: Arc<str>,
    /// µs since the Unix epoch.
    pub created_at: i64,
    /// Byte 0 = format version, then a JSON object: [`PAYLOAD_V1`], or format 2 as
    /// `support::payload::compacted` packs it (format 1 is packed on append).
    pub payload: Vec<u8>,
}

impl NewRecord {
    /// Size as counted against `max_bytes`.
    pub fn size(&self) -> u64 {
        (self.topic.len() + self.payload.len()) as u64
    }

    /// Builds a version-1 record from a JSON object body.
    #[cfg(test)]
    pub fn json(lane: Lane, topic: &str, created_at: i64, body: &[u8]) -> NewRecord {
        let mut payload = Vec::with_capacity(body.len() + 1);
        payload.push(PAYLOAD_V1);
        payload.extend_from_slice(body);
        NewRecord {
            lane,
            topic: topic.into(),
            created_at,
            payload,
        }
    }

    fn validate(&self, max_bytes: u64) -> Result<(), &'static str> {
        check_topic(&self.topic)?;
        if self.size() > max_bytes {
            return Err("record is larger than the outbox's max_bytes");
        }
        crate::support::payload::check_object(&self.payload)?;
        Ok(())
    }
}

/// Live counters, shared by `Arc`; all monotonic.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Records committed.
    pub appended: AtomicU64,
    /// Append transactions committed.
    pub committed_batches: AtomicU64,
    /// Records deleted after delivery.
    pub deleted: AtomicU64,
    /// Records dropped by a bound, every reason (data loss): the sum of the next three.
    pub evicted: AtomicU64,
    /// Evicted oldest-first to make room (`overflow: drop_oldest`, and `block`'s fallback).
    pub evicted_full: AtomicU64,
    /// New records not stored because they did not fit (`overflow: drop_newest`).
    pub refused_full: AtomicU64,
    /// Evicted for being older than `max_age`.
    pub expired: AtomicU64,
    /// Stored records the uplink could not encode or publish (a bad topic) and dropped, and
    /// new records that could not get an id because the sequence is exhausted (data loss).
    pub discarded: AtomicU64,
    /// Append transactions that failed to commit (data loss unless the source redelivers).
    pub write_errors: AtomicU64,
    /// Appends that found the disk full (the outbox is then held at its size, see writer).
    pub disk_full: AtomicU64,
}

impl OutboxCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneStats {
    pub lane: Lane,
    pub count: u64,
    /// Topic + payload bytes.
    pub bytes: u64,
    /// `created_at` of the lane's oldest record.
    pub oldest_created_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// Indexed by lane, in priority order.
    pub lanes: [LaneStats; 3],
    pub count: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    /// Evicted since this process opened the outbox.
    pub evicted: u64,
    /// The rule engine's last checkpoint (module `engine_state`), if any.
    pub checkpoint: Option<CheckpointInfo>,
}

impl OutboxStats {
    fn new(lanes: [LaneStats; 3], max_bytes: u64, counters: &OutboxCounters) -> OutboxStats {
        OutboxStats {
            count: lanes.iter().map(|l| l.count).sum(),
            bytes: lanes.iter().map(|l| l.bytes).sum(),
            lanes,
            max_bytes,
            evicted: OutboxCounters::get(&counters.evicted),
            checkpoint: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    #[error("cannot create outbox directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot move unusable outbox {path} aside: {source}")]
    Quarantine {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox {path} is unusable: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("outbox {op} failed: {source}")]
    Sqlite {
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("record {index} rejected: {reason}")]
    InvalidRecord { index: usize, reason: &'static str },
    #[error("cannot start the outbox writer thread: {source}")]
    Spawn { source: std::io::Error },
    #[error("the outbox writer thread has stopped")]
    Closed,
    #[error("the outbox writer thread panicked")]
    WriterPanicked,
}

/// Cheap, cloneable handle to the writer thread.
#[derive(Clone)]
pub struct Outbox {
    tx: flume::Sender<Command>,
    changes: watch::Receiver<u64>,
    counters: Arc<OutboxCounters>,
    /// `max_bytes` and, under `overflow: block`, the free bytes appends take permits from
    /// (the writer returns them); both change with [`Outbox::set`].
    shared: Arc<live::Shared>,
    /// Appends waiting for `room`, reported by [`Outbox::blocked_since`].
    blocked: Arc<blocked::Blocked>,
    /// Permits for [`QUEUE_BYTES`]: an append takes its [`queued_bytes`], the writer gives
    /// them back once the group holding it is committed (or failed).
    queued: Arc<tokio::sync::Semaphore>,
}

/// The permits a record of `size` bytes takes under `overflow: block`.
fn permits(size: u64) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

/// The writer thread; [`OutboxThread::join`] it after dropping every [`Outbox`] handle.
#[derive(Debug)]
pub struct OutboxThread {
    handle: std::thread::JoinHandle<Result<(), OutboxError>>,
}

impl OutboxThread {
    /// Waits for the writer to commit what is pending and exit. It exits once every
    /// [`Outbox`] handle (including the uplink's) has been dropped.
    pub fn join(self) -> Result<(), OutboxError> {
        self.handle
            .join()
            .map_err(|_| OutboxError::WriterPanicked)?
    }
}

impl Outbox {
    /// Opens or creates the database (and its parent directories), then starts the writer.
    pub fn open(cfg: &OutboxConfig) -> Result<(Outbox, OutboxThread), OutboxError> {
        let store = store::Store::open(&cfg.path, cfg.max_bytes, cfg.synchronous)?;
        store.set_cache_kib(cfg.cache_kib);
        let totals = store.totals();
        tracing::info!(
            path = %cfg.path.display(),
            pending = totals.iter().map(|t| t.count).sum::<u64>(),
            bytes = totals.iter().map(|t| t.bytes).sum::<u64>(),
            "outbox opened"
        );
        let (tx, rx) = flume::bounded(QUEUE_CAPACITY);
        let (changes_tx, changes) = watch::channel(0);
        let counters = Arc::new(OutboxCounters::default());
        let stored = totals.iter().map(|t| t.bytes).sum::<u64>();
        let room = (cfg.overflow == Overflow::Block).then(|| live::new_room(cfg.max_bytes, stored));
        let shared = Arc::new(live::Shared::new(cfg.max_bytes, room.clone()));
        let settings = LiveSettings::of(cfg);
        let queued = Arc::new(tokio::sync::Semaphore::new(QUEUE_BYTES as usize));
        let writer = Writer {
            store,
            rx,
            batch_max: settings.batch_max,
            batch_delay: settings.batch_delay,
            changes: changes_tx,
            counters: Arc::clone(&counters),
            overflow: settings.overflow,
            max_age: settings.max_age,
            room,
            room_cap: live::room_cap(cfg.max_bytes),
            room_debt: 0,
            shared: Arc::clone(&shared),
            disk: disk::DiskGuard::new(&cfg.path),
            queued: Arc::clone(&queued),
        };
        let handle = std::thread::Builder::new()
            .name("weir-outbox".into())
            .spawn(move || writer.run())
            .map_err(|source| OutboxError::Spawn { source })?;
        let outbox = Outbox {
            tx,
            changes,
            counters,
            shared,
            blocked: Arc::default(),
            queued,
        };
        Ok((outbox, OutboxThread { handle }))
    }

    /// Queues `records` for the next transaction; waits while the writer's queue is full or
    /// holds [`QUEUE_BYTES`] (back-pressure) and, under `overflow: block`, until the bound
    /// has room for them. Once they are committed the writer fires `acks` (a failed ack
    /// is logged: the source redelivers, a duplicate at worst). With no records, the acks
    /// fire after everything queued before them has been committed. Invalid records (see
    /// the module docs) reject the whole call before anything is queued.
    pub async fn append(
        &self,
        records: Vec<NewRecord>,
        acks: Vec<weir_drivers::Ack>,
    ) -> Result<(), OutboxError> {
        self.append_with(records, ack_hooks(acks)).await
    }

    /// [`Outbox::append`] with a batch of engine input ([`weir_rules::InputLog`]) written in
    /// the same transaction as the records, before the acks fire.
    pub async fn append_logged(
        &self,
        records: Vec<NewRecord>,
        acks: Vec<weir_drivers::Ack>,
        log: Vec<u8>,
    ) -> Result<(), OutboxError> {
        self.append_ops(records, ack_hooks(acks), vec![StateOp::Log(log)])
            .await
    }

    /// [`Outbox::append`] with arbitrary after-commit hooks.
    pub async fn append_with(
        &self,
        records: Vec<NewRecord>,
        after_commit: Vec<AfterCommit>,
    ) -> Result<(), OutboxError> {
        self.append_ops(records, after_commit, Vec::new()).await
    }

    async fn append_ops(
        &self,
        mut records: Vec<NewRecord>,
        after_commit: Vec<AfterCommit>,
        state: Vec<StateOp>,
    ) -> Result<(), OutboxError> {
        let max_bytes = self.shared.max_bytes();
        for (index, r) in records.iter().enumerate() {
            r.validate(max_bytes)
                .map_err(|reason| OutboxError::InvalidRecord { index, reason })?;
        }
        // Here, on the caller's task, not on the writer thread that every record waits for.
        for r in &mut records {
            r.payload = crate::support::payload::compact(std::mem::take(&mut r.payload));
        }
        for r in &records {
            self.take_room(r.size()).await;
        }
        let queued = queued_bytes(&records, &state);
        // Never closed: the writer holds the other handle and only adds permits.
        match self.queued.try_acquire_many(queued) {
            Ok(permits) => permits.forget(),
            Err(_) => {
                // The writer may be gathering a group, waiting `batch_delay` for appends that
                // cannot come until it commits: it commits now. (A full queue already ends
                // its wait, and a stale request only ends a later group early.)
                let _ = self.tx.try_send(Command::Commit);
                if let Ok(permits) = self.queued.acquire_many(queued).await {
                    permits.forget();
                }
            }
        }
        self.tx
            .send_async(Command::Append {
                records,
                after_commit,
                state,
                queued,
            })
            .await
            .map_err(|_| OutboxError::Closed)
    }

    /// Under `overflow: block`, takes `size` permits of free bytes, waiting until the uplink
    /// has made room. A closed semaphore means a reload moved away from `block` (see
    /// `live`): the current one, if any, is looked up again.
    async fn take_room(&self, size: u64) {
        while let Some(room) = self.shared.room() {
            // A record is never larger than `max_bytes` (validated), unless a reload lowered
            // it since: never wait for more permits than the semaphore can hold.
            let wanted = permits(size.min(self.shared.max_bytes()));
            let taken = match room.try_acquire_many(wanted) {
                Ok(permit) => Some(permit),
                Err(tokio::sync::TryAcquireError::Closed) => None,
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    let _waiting = self.blocked.wait(self.shared.max_bytes());
                    room.acquire_many(wanted).await.ok()
                }
            };
            match taken {
                Some(permit) => return permit.forget(),
                // Closed, and still the current one: the writer is gone.
                None if self
                    .shared
                    .room()
                    .is_some_and(|now| Arc::ptr_eq(&now, &room)) =>
                {
                    return;
                }
                None => {}
            }
        }
    }

    /// Applies new bounds, overflow policy and batching (a reload), in queue order: after
    /// every command queued before it. What a change does is in module `live`; a lowered
    /// `max_bytes` evicts what is stored above it before this returns.
    pub async fn set(&self, settings: LiveSettings) -> Result<Applied, OutboxError> {
        self.request(|reply| Command::Set { settings, reply }).await
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Command,
    ) -> Result<T, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send_async(make(reply))
            .await
            .map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }

    /// Up to `limit` committed records above `after`, alerts first, then predictions, then
    /// aggregates, oldest (lowest id) first within each lane.
    pub async fn fetch(&self, limit: usize, after: LaneCursor) -> Result<Vec<Record>, OutboxError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.request(|reply| Command::Fetch {
            limit,
            after,
            reply,
        })
        .await
    }

    /// Deletes delivered records in one transaction; ids no longer stored are ignored.
    pub async fn delete(&self, ids: Vec<u64>) -> Result<(), OutboxError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.request(|reply| Command::Delete { ids, reply })
            .await
            .map(|_| ())
    }

    /// Deletes acknowledged ranges (see [`LaneRange`]) in one transaction; the uplink's path,
    /// one seek per range rather than per run of consecutive ids.
    pub async fn delete_ranges(&self, ranges: Vec<LaneRange>) -> Result<(), OutboxError> {
        if ranges.is_empty() {
            return Ok(());
        }
        self.request(|reply| Command::DeleteRanges { ranges, reply })
            .await
            .map(|_| ())
    }

    pub async fn stats(&self) -> Result<OutboxStats, OutboxError> {
        self.request(|reply| Command::Stats { reply }).await
    }

    /// Changes (to an opaque counter) after every commit that added records.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    pub fn counters(&self) -> Arc<OutboxCounters> {
        Arc::clone(&self.counters)
    }

    /// Under `overflow: block`, while an append waits for the uplink to make room: since
    /// when (µs since the epoch). A reported state, not a fault (see `outbox/blocked.rs`).
    pub fn blocked_since(&self) -> Option<i64> {
        self.blocked.since_us()
    }

    /// Times appends started waiting for room (`overflow: block` episodes).
    pub fn block_episodes(&self) -> u64 {
        self.blocked.episodes()
    }
}

/// Transport acks as after-commit hooks (one that finds the client's queue full waits in
/// the source: `weir_drivers::Ack::ack`).
fn ack_hooks(acks: Vec<weir_drivers::Ack>) -> Vec<AfterCommit> {
    acks.into_iter()
        .map(|ack| -> AfterCommit { Box::new(move || ack.ack()) })
        .collect()
}
