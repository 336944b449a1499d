//! The SQLite side of the outbox: the synchronous operations the writer thread performs
//! (opening, with quarantine of unusable files, is in `open`). Nothing here is async or shared:
//! exactly one thread owns a [`Store`], which is what lets byte totals live in memory.

use rusqlite::{Connection, OptionalExtension, params};

use super::checkpoint::Checkpointer;
use super::schema::{INSERT_ROWS, insert_sql, row_params};
use super::{Lane, LaneCursor, LaneRange, LaneStats, NewRecord, OutboxError, Record};

mod open;

/// Current schema version, kept in `PRAGMA user_version` (`weir outbox` reads it too).
pub const SCHEMA_VERSION: i64 = 2;

/// After an unclean shutdown, ids jump by this much so an id handed out in a transaction that
/// a power cut rolled back (possible with `synchronous=NORMAL`) is never handed out again.
pub const ID_GAP_AFTER_UNCLEAN_SHUTDOWN: i64 = 1_000_000;

/// Size of a row as the bound counts it (`octet_length`, not `length`: topics are TEXT).
const ROW_BYTES: &str = "octet_length(topic) + length(payload)";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub count: u64,
    pub bytes: u64,
}

/// What one committed append did.
#[derive(Debug, Default)]
pub(crate) struct AppendOutcome {
    /// Records evicted per lane (index = lane) to stay under the bound.
    pub evicted: [u64; 3],
    /// Bytes those evictions freed.
    pub evicted_bytes: u64,
    /// New records refused per lane because they did not fit (`overflow: drop_newest`).
    pub refused: [u64; 3],
    /// Bytes of the refused records.
    pub refused_bytes: u64,
    /// New records refused because the sequence is exhausted (the last id is `i64::MAX`):
    /// an id is never reused and never wraps to a negative one.
    pub unnumbered: u64,
}

/// Records removed per lane, and the bytes they held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub count: [u64; 3],
    pub bytes: u64,
}

pub(crate) struct Store {
    conn: Connection,
    totals: [Totals; 3],
    max_bytes: u64,
    /// A lower bound while the disk is full (see [`Store::set_disk_bound`]).
    disk_bound: Option<u64>,
    /// `PRAGMA data_version` when the totals were last known right: it changes when another
    /// connection (`weir outbox purge`) commits, and then the totals are read again.
    data_version: i64,
    /// The last id handed out (as committed in `sequence`); only this thread hands out ids.
    last_id: i64,
    /// After `conn`: dropped (and joined) once the connection has closed.
    _checkpointer: Option<Checkpointer>,
}

impl Store {
    /// Last id handed out (0 when none ever was).
    pub(crate) fn last_id(&self) -> Result<i64, OutboxError> {
        Ok(self.last_id)
    }

    fn bump_sequence(&mut self, gap: i64) -> Result<(), OutboxError> {
        let last = self.last_id()?;
        if last > 0 {
            tracing::info!(
                last_id = last,
                gap,
                "outbox was not closed cleanly: skipping ids so none can be reused"
            );
            self.raise_sequence_to(last.saturating_add(gap))?;
        }
        Ok(())
    }

    fn raise_sequence_to(&mut self, seq: i64) -> Result<(), OutboxError> {
        let seq = seq.max(self.last_id);
        self.conn
            .execute("UPDATE sequence SET last_id = ?1", [seq])
            .map_err(|source| OutboxError::Sqlite {
                op: "raise sequence",
                source,
            })?;
        self.last_id = seq;
        Ok(())
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The bound appends enforce: `max_bytes`, or less while the disk is full.
    pub(crate) fn bound(&self) -> u64 {
        self.disk_bound
            .map_or(self.max_bytes, |b| b.min(self.max_bytes))
    }

    /// A new `max_bytes` (a reload): appends enforce it from now on; [`Store::shrink`] brings
    /// what is stored under it.
    pub(crate) fn set_max_bytes(&mut self, max_bytes: u64) {
        self.max_bytes = max_bytes;
    }

    /// Evicts, in one transaction, what is stored above the bound (after a lowered
    /// `max_bytes`): the oldest records of the lowest lane first, as `drop_oldest` does on
    /// append, whatever the policy (what is already stored cannot be refused).
    pub(crate) fn shrink(&mut self) -> Result<Removed, rusqlite::Error> {
        let mut totals = self.totals;
        let bound = self.bound();
        if totals.iter().map(|t| t.bytes).sum::<u64>() <= bound {
            return Ok(Removed::default());
        }
        let tx = self.conn.transaction()?;
        let removed = evict_to(&tx, &mut totals, bound)?;
        tx.commit()?;
        self.totals = totals;
        Ok(removed)
    }

    /// While the disk is full the outbox cannot grow: `Some(bytes)` makes appends evict (or
    /// refuse) as if `max_bytes` were `bytes`; `None` lifts that again.
    pub(crate) fn set_disk_bound(&mut self, bytes: Option<u64>) {
        self.disk_bound = bytes;
    }

    /// The bound set by [`Store::set_disk_bound`], if any.
    pub(crate) fn disk_bound(&self) -> Option<u64> {
        self.disk_bound
    }

    /// Gives space back on a full disk: the WAL is checkpointed into the database and
    /// truncated (it holds many versions of the same pages, so this frees more than the
    /// database grows), and from then on (until a restart) the WAL is reset after 64 pages
    /// instead of 1,000 and truncated to 512 KiB at each reset, so it stays small (bounded) on
    /// a disk that has proved small. Best effort:
    /// errors are the next append's to report.
    /// Bounds SQLite's page cache on the writer's connection (`PRAGMA cache_size`), KiB.
    pub(crate) fn set_cache_kib(&self, kib: u32) {
        // A negative cache_size is in KiB. Best effort: SQLite's default cache still works.
        if let Err(e) = self
            .conn
            .pragma_update(None, "cache_size", -i64::from(kib.max(1)))
        {
            tracing::warn!(error = %e, "outbox: cannot set the page cache size");
        }
    }

    pub(crate) fn relieve_disk(&mut self) {
        let _ = self.conn.pragma_update(None, "wal_autocheckpoint", 64);
        // A WAL reset after a checkpoint is cut back to this size, so it cannot keep the
        // space a burst once took.
        let _ = self
            .conn
            .pragma_update(None, "journal_size_limit", 512 * 1024);
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// Bytes stored (topic + payload), as the bound counts them.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.totals.iter().map(|t| t.bytes).sum()
    }

    pub(crate) fn totals(&self) -> [Totals; 3] {
        self.totals
    }

    /// Reads the totals again if another connection changed the file since they were known
    /// (a `weir outbox purge` while the agent runs). Returns the bytes that vanished.
    pub(crate) fn refresh_if_changed(&mut self) -> Result<u64, rusqlite::Error> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        if version == self.data_version {
            return Ok(0);
        }
        let before: u64 = self.totals.iter().map(|t| t.bytes).sum();
        match read_totals(&self.conn) {
            Ok(totals) => self.totals = totals,
            Err(TotalsError::Sqlite(e)) => return Err(e),
            // Rows of an unknown lane are ignored by every query; keep the old totals.
            Err(TotalsError::UnknownLane(_)) => {}
        }
        self.data_version = version;
        let after: u64 = self.totals.iter().map(|t| t.bytes).sum();
        tracing::info!(
            bytes_before = before,
            bytes_after = after,
            "outbox changed by another process (purge?): totals read again"
        );
        Ok(before.saturating_sub(after))
    }

    /// Inserts `records` and applies the bound, in one transaction: with `make_room` the
    /// oldest records of the lowest lane are evicted, else records that do not fit are
    /// refused (not inserted). Totals change only once the commit succeeded.
    #[cfg(test)]
    pub(crate) fn append<'a>(
        &mut self,
        records: impl Iterator<Item = &'a NewRecord>,
        make_room: bool,
    ) -> Result<AppendOutcome, rusqlite::Error> {
        self.append_with_state(records, make_room, &[])
    }

    /// [`Store::append`], with engine checkpoints written in the same transaction, after
    /// the records (module `engine_state`).
    pub(crate) fn append_with_state<'a>(
        &mut self,
        records: impl Iterator<Item = &'a NewRecord>,
        make_room: bool,
        states: &[super::engine_state::StateOp],
    ) -> Result<AppendOutcome, rusqlite::Error> {
        let mut totals = self.totals;
        let mut outcome = AppendOutcome::default();
        let bound = self.bound();
        let mut last_id = self.last_id;
        let tx = self.conn.transaction()?;
        {
            // Accepted records with their (lane, id), inserted INSERT_ROWS to a statement (one
            // statement step per row was most of the writer thread's time) as they are
            // numbered: a group's rows are never all held at once (24 B a row, up to
            // `batch_max`).
            let mut rows: Vec<(i64, i64, &NewRecord)> = Vec::with_capacity(INSERT_ROWS);
            let mut insert_many = None;
            let mut total: u64 = totals.iter().map(|t| t.bytes).sum();
            for r in records {
                if !make_room && total + r.size() > bound {
                    outcome.refused[r.lane as usize] += 1;
                    outcome.refused_bytes += r.size();
                    continue;
                }
                let Some(id) = last_id.checked_add(1) else {
                    outcome.unnumbered += 1;
                    continue;
                };
                last_id = id;
                rows.push((r.lane as i64, last_id, r));
                let t = &mut totals[r.lane as usize];
                t.count += 1;
                t.bytes += r.size();
                total += r.size();
                if rows.len() == INSERT_ROWS {
                    let insert = match &mut insert_many {
                        Some(insert) => insert,
                        None => insert_many.insert(tx.prepare_cached(&insert_sql(INSERT_ROWS))?),
                    };
                    insert.execute(rusqlite::params_from_iter(row_params(&rows)))?;
                    rows.clear();
                }
            }
            drop(insert_many);
            if !rows.is_empty() {
                let mut insert = tx.prepare_cached(&insert_sql(1))?;
                for row in &rows {
                    insert.execute(rusqlite::params_from_iter(row_params(
                        std::slice::from_ref(row),
                    )))?;
                }
            }
        }
        let evicted = evict_to(&tx, &mut totals, bound)?;
        outcome.evicted = evicted.count;
        outcome.evicted_bytes = evicted.bytes;
        if last_id != self.last_id {
            tx.prepare_cached("UPDATE sequence SET last_id = ?1")?
                .execute([last_id])?;
        }
        if !states.is_empty() {
            let now = weir_drivers::now_us();
            for op in states {
                super::engine_state::apply(&tx, op, now, last_id)?;
            }
        }
        tx.commit()?;
        self.totals = totals;
        self.last_id = last_id;
        Ok(outcome)
    }

    /// Evicts, per lane, the oldest records (in id order) created before `cutoff[lane]` (µs),
    /// stopping at the first younger one so a lane stays FIFO even if the clock stepped back.
    pub(crate) fn expire(&mut self, cutoff: [Option<i64>; 3]) -> Result<Removed, rusqlite::Error> {
        let mut totals = self.totals;
        let mut removed = Removed::default();
        let tx = self.conn.transaction()?;
        for lane in Lane::ALL {
            let Some(cutoff) = cutoff[lane as usize] else {
                continue;
            };
            let (last_id, count, freed) = {
                let mut scan = tx.prepare_cached(&format!(
                    "SELECT id, created_at, {ROW_BYTES} FROM records WHERE lane = ?1 ORDER BY id"
                ))?;
                let mut rows = scan.query([lane as i64])?;
                let (mut last_id, mut count, mut freed) = (0i64, 0u64, 0u64);
                while let Some(row) = rows.next()? {
                    if row.get::<_, i64>(1)? >= cutoff {
                        break;
                    }
                    last_id = row.get(0)?;
                    freed += row.get::<_, i64>(2)?.max(0) as u64;
                    count += 1;
                }
                (last_id, count, freed)
            };
            if count > 0 {
                delete_oldest(
                    &tx,
                    (&mut totals, &mut removed),
                    lane,
                    (last_id, count, freed),
                )?;
            }
        }
        tx.commit()?;
        self.totals = totals;
        Ok(removed)
    }

    /// Oldest records in lane order, skipping each lane's ids up to `after`.
    pub(crate) fn fetch(
        &mut self,
        limit: usize,
        after: LaneCursor,
    ) -> Result<Vec<Record>, rusqlite::Error> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, topic, created_at, payload FROM records \
             WHERE lane = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        for lane in Lane::ALL {
            let room = limit.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let after_id = i64::try_from(after.after(lane)).unwrap_or(i64::MAX);
            let rows = stmt.query_map(
                params![
                    lane as i64,
                    after_id,
                    i64::try_from(room).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(Record {
                        id: r.get::<_, i64>(0)?.max(0) as u64,
                        lane,
                        topic: r.get(1)?,
                        created_at: r.get(2)?,
                        payload: r.get(3)?,
                    })
                },
            )?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// Deletes the given ids (unknown ones, e.g. already evicted, are skipped); returns how
    /// many rows went and the bytes they held. Runs of consecutive ids go in one range
    /// `DELETE` each: acknowledged ids mostly come in such runs (a lane's records are sent
    /// in id order, and a backlog of one lane is contiguous), and one statement per run
    /// instead of per row is most of a delete's CPU cost. A range holds only ids from
    /// `ids`, so nothing else is ever deleted.
    pub(crate) fn delete(&mut self, ids: &[u64]) -> Result<(u64, u64), rusqlite::Error> {
        let mut sorted: Vec<i64> = ids
            .iter()
            .filter_map(|&id| i64::try_from(id).ok())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut totals = self.totals;
        let mut deleted = 0;
        let mut freed = 0;
        let tx = self.conn.transaction()?;
        {
            // `lane IN (…)`: the key starts with the lane, so this is three range seeks.
            let mut stmt = tx.prepare_cached(&format!(
                "DELETE FROM records WHERE lane IN (0, 1, 2) AND id BETWEEN ?1 AND ?2 \
                 RETURNING lane, {ROW_BYTES}"
            ))?;
            for (first, last) in runs(&sorted) {
                let mut rows = stmt.query([first, last])?;
                while let Some(row) = rows.next()? {
                    let (lane, bytes) = (row.get::<_, i64>(0)?, row.get::<_, i64>(1)?);
                    if let Some(lane) = Lane::from_i64(lane) {
                        let t = &mut totals[lane as usize];
                        t.count = t.count.saturating_sub(1);
                        t.bytes = t.bytes.saturating_sub(bytes.max(0) as u64);
                    }
                    deleted += 1;
                    freed += bytes.max(0) as u64;
                }
            }
        }
        tx.commit()?;
        self.totals = totals;
        Ok((deleted, freed))
    }

    /// Deletes every record of each range's lane with `after < id <= last` (see
    /// [`LaneRange`]), in one transaction; returns how many rows went and the bytes they
    /// held. Per range: one aggregate for the totals and one range delete, two seeks however
    /// many rows (no `RETURNING`, which copies every deleted row into a temporary table).
    pub(crate) fn delete_ranges(
        &mut self,
        ranges: &[LaneRange],
    ) -> Result<(u64, u64), rusqlite::Error> {
        let mut totals = self.totals;
        let mut deleted = 0;
        let mut freed = 0;
        let tx = self.conn.transaction()?;
        {
            let mut sum = tx.prepare_cached(&format!(
                "SELECT count(*), coalesce(sum({ROW_BYTES}), 0) FROM records \
                 WHERE lane = ?1 AND id > ?2 AND id <= ?3"
            ))?;
            let mut delete =
                tx.prepare_cached("DELETE FROM records WHERE lane = ?1 AND id > ?2 AND id <= ?3")?;
            for range in ranges {
                let after = i64::try_from(range.after).unwrap_or(i64::MAX);
                let last = i64::try_from(range.last).unwrap_or(i64::MAX);
                if last <= after {
                    continue;
                }
                let args = params![range.lane as i64, after, last];
                let (count, bytes) = sum.query_row(args, |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        r.get::<_, i64>(1)?.max(0) as u64,
                    ))
                })?;
                if count == 0 {
                    continue;
                }
                delete.execute(args)?;
                let t = &mut totals[range.lane as usize];
                t.count = t.count.saturating_sub(count);
                t.bytes = t.bytes.saturating_sub(bytes);
                deleted += count;
                freed += bytes;
            }
        }
        tx.commit()?;
        self.totals = totals;
        Ok((deleted, freed))
    }

    pub(crate) fn engine_state(&self) -> Result<super::engine_state::StoredState, rusqlite::Error> {
        super::engine_state::read(&self.conn)
    }

    pub(crate) fn run_hours(&self) -> Result<Vec<weir_rules::RuntimeCounter>, rusqlite::Error> {
        super::engine_state::read_run_hours(&self.conn)
    }

    pub(crate) fn checkpoint_info(
        &self,
    ) -> Result<Option<super::engine_state::CheckpointInfo>, rusqlite::Error> {
        super::engine_state::info(&self.conn)
    }

    pub(crate) fn lane_stats(&mut self) -> Result<[LaneStats; 3], rusqlite::Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT created_at FROM records WHERE lane = ?1 ORDER BY id LIMIT 1")?;
        let mut out = Lane::ALL.map(|lane| LaneStats {
            lane,
            count: 0,
            bytes: 0,
            oldest_created_at: None,
        });
        for s in &mut out {
            let t = self.totals[s.lane as usize];
            s.count = t.count;
            s.bytes = t.bytes;
            s.oldest_created_at = stmt.query_row([s.lane as i64], |r| r.get(0)).optional()?;
        }
        Ok(out)
    }
}

/// Evicts within `tx` until the stored total is at most `bound`: the oldest records of the
/// lowest-priority lane first (aggregates, then predictions, alerts last). `totals` follows.
fn evict_to(
    tx: &rusqlite::Transaction<'_>,
    totals: &mut [Totals; 3],
    bound: u64,
) -> Result<Removed, rusqlite::Error> {
    let mut removed = Removed::default();
    for lane in Lane::ALL.iter().rev() {
        let total: u64 = totals.iter().map(|t| t.bytes).sum();
        if total <= bound {
            break;
        }
        let excess = total - bound;
        let (last_id, count, freed) = {
            let mut scan = tx.prepare_cached(&format!(
                "SELECT id, {ROW_BYTES} FROM records WHERE lane = ?1 ORDER BY id"
            ))?;
            let mut rows = scan.query([*lane as i64])?;
            let (mut last_id, mut count, mut freed) = (0i64, 0u64, 0u64);
            while freed < excess {
                let Some(row) = rows.next()? else { break };
                last_id = row.get(0)?;
                freed += row.get::<_, i64>(1)?.max(0) as u64;
                count += 1;
            }
            (last_id, count, freed)
        };
        if count > 0 {
            delete_oldest(tx, (totals, &mut removed), *lane, (last_id, count, freed))?;
        }
    }
    Ok(removed)
}

/// Deletes `lane`'s records up to `last_id` (its oldest, `count` of them, `freed` bytes:
/// what the caller's scan found) and takes them off `totals` and onto `removed`.
fn delete_oldest(
    tx: &rusqlite::Transaction<'_>,
    (totals, removed): (&mut [Totals; 3], &mut Removed),
    lane: Lane,
    (last_id, count, freed): (i64, u64, u64),
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("DELETE FROM records WHERE lane = ?1 AND id <= ?2")?
        .execute(params![lane as i64, last_id])?;
    let t = &mut totals[lane as usize];
    t.count = t.count.saturating_sub(count);
    t.bytes = t.bytes.saturating_sub(freed);
    removed.count[lane as usize] = count;
    removed.bytes += freed;
    Ok(())
}

/// Maximal runs of consecutive values in `sorted` (ascending, no duplicates), as
/// `(first, last)`.
fn runs(sorted: &[i64]) -> impl Iterator<Item = (i64, i64)> + '_ {
    let mut rest = sorted;
    std::iter::from_fn(move || {
        let (&first, _) = rest.split_first()?;
        let len = rest
            .iter()
            .enumerate()
            .take_while(|&(i, &v)| v == first.wrapping_add(i as i64))
            .count();
        let last = rest[len - 1];
        rest = &rest[len..];
        Some((first, last))
    })
}

enum TotalsError {
    Sqlite(rusqlite::Error),
    UnknownLane(i64),
}

/// Count and bytes per lane: one scan of the table (on open, and after another process wrote).
fn read_totals(conn: &Connection) -> Result<[Totals; 3], TotalsError> {
    let mut totals = [Totals::default(); 3];
    let mut stmt = conn
        .prepare(&format!(
            "SELECT lane, COUNT(*), COALESCE(SUM({ROW_BYTES}), 0) FROM records GROUP BY lane"
        ))
        .map_err(TotalsError::Sqlite)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(TotalsError::Sqlite)?;
    for row in rows {
        let (lane, count, bytes) = row.map_err(TotalsError::Sqlite)?;
        let lane = Lane::from_i64(lane).ok_or(TotalsError::UnknownLane(lane))?;
        totals[lane as usize] = Totals {
            count: count.max(0) as u64,
            bytes: bytes.max(0) as u64,
        };
    }
    Ok(totals)
}
