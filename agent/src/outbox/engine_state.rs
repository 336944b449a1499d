//! The rule engine's checkpoints, in the outbox database beside the records they produced.
//!
//! Why here and not in a file of their own: every batch of engine input is logged in the SAME
//! transaction as the records of the events it caused (and before the device acks fire), and
//! a checkpoint empties the log in the transaction that writes it, so after `kill -9` or a
//! power cut the last checkpoint plus the logged input is exactly the state that produced
//! the committed records: they never disagree. A second file could not give that without a
//! two-phase commit. See `weir_rules::InputLog` for why input is logged rather than state.
//!
//! ```sql
//! CREATE TABLE engine_state (series INTEGER PRIMARY KEY, state BLOB NOT NULL);
//! CREATE TABLE engine_log (seq INTEGER PRIMARY KEY, batch BLOB NOT NULL); -- input since
//! CREATE TABLE engine_meta (
//!     id INTEGER PRIMARY KEY CHECK (id = 0),  -- one row
//!     global BLOB NOT NULL,                   -- the engine-wide record
//!     written_at INTEGER NOT NULL,            -- µs since the epoch, of the last checkpoint
//!     last_record_id INTEGER NOT NULL         -- the newest record id when it was written
//! );
//! CREATE TABLE run_hours (                    -- `runtime` rules' counters, by rule and series
//!     rule TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL,
//!     run_us INTEGER NOT NULL, starts INTEGER NOT NULL,
//!     PRIMARY KEY (rule, device, metric)
//! ) WITHOUT ROWID;
//! ```
//! `run_hours` holds the run-hour counters apart from the checkpoint, written in the same
//! transactions (each checkpoint's, or every minute when checkpoints are off) with the
//! counters that changed since: they must survive what the rest of the state may not — a
//! checkpoint of another format, `engine.checkpoint_interval: 0s` — since a maintenance
//! counter that starts from zero is wrong for months. It replaced `runtime.json` beside the
//! outbox (imported once at start; see `daemon::run_hours`).
//! `state` and `global` are `weir_rules` checkpoint records (byte 0 = their format). A
//! checkpoint updates only the series that changed; a full one replaces the table. The tables
//! are created with `IF NOT EXISTS` on every open, so an outbox of an older weir gains them
//! without a schema version change, and an older weir ignores them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rusqlite::{Connection, Transaction, params};
use weir_rules::{Checkpoint, RuntimeCounter};

/// What the pipeline writes of the engine, in queue order within a transaction.
#[derive(Debug)]
pub enum StateOp {
    /// A batch of engine input ([`weir_rules::InputLog`]), beside the records it caused.
    Log(Vec<u8>),
    /// Run-hour counters that changed (each replaces its row).
    RunHours(Vec<RuntimeCounter>),
    /// A checkpoint: it holds the effect of every input logged before it, so the log is
    /// emptied in the same transaction. Its series records arrive while the writer writes
    /// them, a chunk at a time ([`crate::outbox::Outbox::checkpoint_stream`]): the agent holds
    /// one chunk of encoded state, not a second copy of the engine's.
    Stream(CheckpointStream),
}

/// The writer's end of a streamed checkpoint.
#[derive(Debug)]
pub struct CheckpointStream {
    pub(super) full: bool,
    pub(super) global: Vec<u8>,
    pub(super) parts: flume::Receiver<Part>,
    pub(super) status: Arc<AtomicU8>,
}

/// What the pipeline sends down a [`CheckpointStream`].
#[derive(Debug)]
pub(super) enum Part {
    /// `(series id, record)`, as in [`Checkpoint::series`].
    Series(Vec<(u32, Vec<u8>)>),
    /// Every record has been sent.
    End,
}

/// [`CheckpointStream::status`]: not taken by the writer yet.
pub(super) const NEW: u8 = 0;
/// Taken by a transaction and not written in it: abandoned half way, or a retry of a
/// transaction that failed after taking it (its parts are gone). Never stored.
pub(super) const BEGUN: u8 = 1;
/// Written in the current transaction, not committed yet.
pub(super) const WRITTEN: u8 = 2;
/// Committed.
pub(super) const STORED: u8 = 3;

/// What was stored: the last checkpoint and the input logged after it, oldest first.
#[derive(Debug, Default)]
pub struct StoredState {
    pub checkpoint: Option<Checkpoint>,
    pub log: Vec<Vec<u8>>,
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS engine_state (series INTEGER PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS engine_log (seq INTEGER PRIMARY KEY, batch BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS engine_meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    global BLOB NOT NULL,
    written_at INTEGER NOT NULL,
    last_record_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run_hours (
    rule TEXT NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    run_us INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    PRIMARY KEY (rule, device, metric)
) WITHOUT ROWID;
";

/// What `weir outbox stats` shows of the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// µs since the epoch.
    pub written_at: i64,
    /// Series and groups held.
    pub series: u64,
    /// Bytes of state held (all records).
    pub bytes: u64,
}

/// Applies `op` inside `tx` (the transaction of the records queued with and before it).
pub(super) fn apply(
    tx: &Transaction<'_>,
    op: &StateOp,
    now: i64,
    last_id: i64,
) -> rusqlite::Result<()> {
    match op {
        StateOp::Log(batch) => {
            tx.prepare_cached("INSERT INTO engine_log (batch) VALUES (?1)")?
                .execute(params![batch])?;
            Ok(())
        }
        StateOp::RunHours(counters) => {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO run_hours (rule, device, metric, run_us, starts) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in counters {
                let starts = i64::try_from(c.starts).unwrap_or(i64::MAX);
                put.execute(params![c.rule, c.device, c.metric, c.run_us, starts])?;
            }
            Ok(())
        }
        StateOp::Stream(c) => write_stream(tx, c, now, last_id),
    }
}

/// Every stored run-hour counter.
pub(super) fn read_run_hours(conn: &Connection) -> rusqlite::Result<Vec<RuntimeCounter>> {
    let mut q =
        conn.prepare("SELECT rule, device, metric, run_us, starts FROM run_hours ORDER BY rule")?;
    q.query_map([], |r| {
        Ok(RuntimeCounter {
            rule: r.get(0)?,
            device: r.get(1)?,
            metric: r.get(2)?,
            run_us: r.get(3)?,
            starts: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        })
    })?
    .collect()
}

/// Writes the parts of `c` as they arrive. A stream that ends without [`Part::End`] (the
/// pipeline stopped half way) is rolled back to where it began and the rest of the
/// transaction commits without it; a stream an earlier attempt of this transaction took
/// (a retry after a full disk: its parts are gone) is left out. Either way its status stays
/// [`BEGUN`], and the pipeline makes its next checkpoint full.
fn write_stream(
    tx: &Transaction<'_>,
    c: &CheckpointStream,
    now: i64,
    last_id: i64,
) -> rusqlite::Result<()> {
    if c.status.swap(BEGUN, Ordering::AcqRel) != NEW {
        return Ok(());
    }
    tx.execute_batch("SAVEPOINT engine_checkpoint")?;
    if c.full {
        tx.execute("DELETE FROM engine_state", [])?;
    }
    let mut put =
        tx.prepare_cached("INSERT OR REPLACE INTO engine_state (series, state) VALUES (?1, ?2)")?;
    loop {
        match c.parts.recv() {
            Ok(Part::Series(series)) => {
                for (id, bytes) in &series {
                    put.execute(params![i64::from(*id), bytes])?;
                }
            }
            Ok(Part::End) => break,
            Err(flume::RecvError::Disconnected) => {
                tracing::warn!("engine checkpoint abandoned half way: not stored");
                tx.execute_batch("ROLLBACK TO engine_checkpoint; RELEASE engine_checkpoint")?;
                return Ok(());
            }
        }
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO engine_meta (id, global, written_at, last_record_id) \
         VALUES (0, ?1, ?2, ?3)",
    )?
    .execute(params![c.global, now, last_id])?;
    tx.prepare_cached("DELETE FROM engine_log")?.execute([])?;
    tx.execute_batch("RELEASE engine_checkpoint")?;
    c.status.store(WRITTEN, Ordering::Release);
    Ok(())
}

/// The stored checkpoint and the input logged after it.
pub(super) fn read(conn: &Connection) -> rusqlite::Result<StoredState> {
    let mut q = conn.prepare("SELECT batch FROM engine_log ORDER BY seq")?;
    let log = q
        .query_map([], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoredState {
        checkpoint: read_checkpoint(conn)?,
        log,
    })
}

fn read_checkpoint(conn: &Connection) -> rusqlite::Result<Option<Checkpoint>> {
    let global: Option<Vec<u8>> = conn
        .query_row("SELECT global FROM engine_meta WHERE id = 0", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some(global) = global else {
        return Ok(None);
    };
    let mut q = conn.prepare("SELECT series, state FROM engine_state ORDER BY series")?;
    let series = q
        .query_map([], |r| {
            let id: i64 = r.get(0)?;
            Ok((
                u32::try_from(id).unwrap_or(u32::MAX),
                r.get::<_, Vec<u8>>(1)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Checkpoint::from_store(global, series)))
}

/// Age and size of the stored checkpoint (`None` also for an outbox of an older weir,
/// opened read-only, that has no checkpoint tables yet).
pub fn info(conn: &Connection) -> rusqlite::Result<Option<CheckpointInfo>> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'engine_meta'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        return Ok(None);
    }
    let meta = conn.query_row(
        "SELECT written_at, length(global) FROM engine_meta WHERE id = 0",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    );
    let (written_at, global) = match meta {
        Ok(m) => m,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (series, bytes) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(state)), 0) FROM engine_state",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    Ok(Some(CheckpointInfo {
        written_at,
        series: u64::try_from(series).unwrap_or(0),
        bytes: u64::try_from(bytes.saturating_add(global)).unwrap_or(0),
    }))
}
