//! Model-based test of the outbox's storage (in the style of Vector's disk buffer
//! `tests/model/`): random sequences of operations run on the real SQLite [`Store`] and on a
//! [`Model`] of plain per-lane queues, and after every step both must agree on every record,
//! every total, the last id handed out and each operation's own result.
//!
//! Why the store and not the async [`super::Outbox`] handle: every rule the outbox keeps (ids,
//! lane order, byte bound and its overflow policy, age bound, totals after an outside purge,
//! id gaps after a crash) lives in [`Store`]; the writer thread around it only groups appends
//! and runs age checks on a wall-clock timer. Here the clock enters as the explicit cutoff
//! `expire` takes, like the rules engine's `advance(now)`, so every case is reproducible and
//! a failure shrinks to a short sequence (committed under `proptest-regressions/`).
//!
//! Operations: append (with `drop_oldest`'s eviction or `drop_newest`'s refusal), fetch from
//! a cursor, delete (acked ids, mixed with ids that are gone or never existed), expire by age,
//! purge by another connection (what `weir outbox purge` does), a clean reopen (possibly
//! with another `max_bytes`), a reload's new `max_bytes` on the open store, and a crash: the files as they are on disk at that instant
//! (the database, then its WAL: what `kill -9` leaves) are reopened by a fresh store.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;

use super::config::Synchronous;
use super::store::{ID_GAP_AFTER_UNCLEAN_SHUTDOWN, Store};
use super::{Lane, LaneCursor, NewRecord, PAYLOAD_V1, Record};

/// `created_at` of generated records: `T0 + k * TICK` for small `k`, so that age cutoffs and
/// purges fall between records. Not monotonic in append order on purpose: `expire` must stop
/// at the first younger record of a lane even when an older one sits behind it.
const T0: i64 = 1_700_000_000_000_000;
const TICK: i64 = 1_000_000;

/// The bounds a case may run under: tight (evicts or refuses often), middling, and loose.
const MAX_BYTES: [u64; 3] = [900, 3_000, 1 << 20];

#[derive(Debug, Clone)]
struct Gen {
    lane: usize,
    topic_len: usize,
    pad: usize,
    age: i64,
}

#[derive(Debug, Clone)]
enum Op {
    /// `make_room`: `drop_oldest` (true) or `drop_newest` (false).
    Append {
        records: Vec<Gen>,
        make_room: bool,
    },
    /// `cursor`: per lane, a fraction (of 255) of the last id handed out.
    Fetch {
        limit: usize,
        cursor: [u8; 3],
    },
    /// Ids of stored records picked by index, plus ids that are not stored.
    Delete {
        picks: Vec<Index>,
        strays: bool,
    },
    /// Per lane, evict what was created before `T0 + k * TICK`.
    Expire {
        cutoff: [Option<i64>; 3],
    },
    /// Another connection deletes a lane's (or every lane's) records created before a time.
    Purge {
        lane: Option<usize>,
        before: i64,
    },
    Reopen {
        max_bytes: usize,
    },
    /// A reload's new `max_bytes` on the open store: a lowered one evicts at once.
    SetMaxBytes {
        max_bytes: usize,
    },
    Crash,
}

fn gen_record() -> impl Strategy<Value = Gen> {
    (0..3usize, 1..24usize, 0..260usize, 0..12i64).prop_map(|(lane, topic_len, pad, age)| Gen {
        lane,
        topic_len,
        pad,
        age,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(gen_record(), 1..8), any::<bool>())
            .prop_map(|(records, make_room)| Op::Append { records, make_room }),
        2 => (0..12usize, any::<[u8; 3]>()).prop_map(|(limit, cursor)| Op::Fetch { limit, cursor }),
        3 => (prop::collection::vec(any::<Index>(), 0..8), any::<bool>())
            .prop_map(|(picks, strays)| Op::Delete { picks, strays }),
        1 => prop::array::uniform3(prop::option::of(0..14i64)).prop_map(|cutoff| Op::Expire { cutoff }),
        1 => (prop::option::of(0..3usize), 0..14i64).prop_map(|(lane, before)| Op::Purge { lane, before }),
        1 => (0..MAX_BYTES.len()).prop_map(|max_bytes| Op::Reopen { max_bytes }),
        1 => (0..MAX_BYTES.len()).prop_map(|max_bytes| Op::SetMaxBytes { max_bytes }),
        1 => Just(Op::Crash),
    ]
}

/// What the outbox should hold: one FIFO per lane, the last id handed out, the bound.
#[derive(Debug, Default)]
struct Model {
    lanes: [VecDeque<Record>; 3],
    last_id: u64,
    max_bytes: u64,
    /// Whether anything was written since the file was opened: a crash then leaves a
    /// non-empty WAL, the sign of an unclean shutdown that makes ids jump.
    wrote: bool,
}

fn size(r: &Record) -> u64 {
    (r.topic.len() + r.payload.len()) as u64
}

impl Model {
    fn bytes(&self) -> u64 {
        self.lanes.iter().flatten().map(size).sum()
    }

    fn all(&self) -> Vec<Record> {
        self.lanes.iter().flatten().cloned().collect()
    }

    /// Returns (evicted per lane, evicted bytes, refused per lane, refused bytes).
    fn append(&mut self, records: &[NewRecord], make_room: bool) -> ([u64; 3], u64, [u64; 3], u64) {
        let (mut evicted, mut evicted_bytes, mut refused, mut refused_bytes) =
            ([0; 3], 0, [0; 3], 0);
        for r in records {
            if !make_room && self.bytes() + r.size() > self.max_bytes {
                refused[r.lane as usize] += 1;
                refused_bytes += r.size();
                continue;
            }
            self.last_id += 1;
            self.wrote = true;
            self.lanes[r.lane as usize].push_back(Record {
                id: self.last_id,
                lane: r.lane,
                topic: r.topic.to_string(),
                created_at: r.created_at,
                payload: r.payload.clone(),
            });
        }
        // Oldest first from the lowest-priority lane until the total fits.
        for lane in Lane::ALL.iter().rev() {
            while self.bytes() > self.max_bytes {
                let Some(gone) = self.lanes[*lane as usize].pop_front() else {
                    break;
                };
                evicted[*lane as usize] += 1;
                evicted_bytes += size(&gone);
                self.wrote = true;
            }
        }
        (evicted, evicted_bytes, refused, refused_bytes)
    }

    fn fetch(&self, limit: usize, after: LaneCursor) -> Vec<Record> {
        self.lanes
            .iter()
            .flatten()
            .filter(|r| r.id > after.after(r.lane))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Returns (deleted, freed bytes).
    fn delete(&mut self, ids: &[u64]) -> (u64, u64) {
        let (mut n, mut freed) = (0, 0);
        for lane in &mut self.lanes {
            lane.retain(|r| {
                let gone = ids.contains(&r.id);
                if gone {
                    n += 1;
                    freed += size(r);
                }
                !gone
            });
        }
        self.wrote |= n > 0;
        (n, freed)
    }

    /// Per lane, from the front while older than the cutoff. Returns (removed, bytes).
    fn expire(&mut self, cutoff: [Option<i64>; 3]) -> ([u64; 3], u64) {
        let (mut removed, mut bytes) = ([0; 3], 0);
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let Some(cutoff) = cutoff[i] else { continue };
            while lane.front().is_some_and(|r| r.created_at < cutoff) {
                if let Some(r) = lane.pop_front() {
                    removed[i] += 1;
                    bytes += size(&r);
                }
            }
        }
        self.wrote |= removed.iter().any(|&n| n > 0);
        (removed, bytes)
    }

    /// Every record of the lanes created before `before`, wherever it sits in its lane.
    fn purge(&mut self, lanes: &[usize], before: i64) -> u64 {
        let mut freed = 0;
        for &i in lanes {
            self.lanes[i].retain(|r| {
                let gone = r.created_at < before;
                if gone {
                    freed += size(r);
                }
                !gone
            });
        }
        freed
    }
}

/// The test's file, and the store and model that must agree on it.
struct Harness {
    path: PathBuf,
    store: Option<Store>,
    model: Model,
    /// Bumped by each record so payloads differ.
    n: u64,
}

fn cutoff_at(k: i64) -> i64 {
    T0 + k * TICK
}

impl Harness {
    fn open(path: &Path, max_bytes: u64) -> Harness {
        let store = Store::open(path, max_bytes, Synchronous::Normal).unwrap();
        Harness {
            path: path.to_owned(),
            store: Some(store),
            model: Model {
                max_bytes,
                // Creating the schema writes to the WAL.
                wrote: true,
                ..Model::default()
            },
            n: 0,
        }
    }

    fn store(&mut self) -> &mut Store {
        self.store
            .as_mut()
            .expect("the store is open between steps")
    }

    fn record(&mut self, g: &Gen) -> NewRecord {
        self.n += 1;
        let lane = Lane::ALL[g.lane];
        let topic = format!("w/{}", "t".repeat(g.topic_len));
        let body = format!(r#"{{"n":{},"p":"{}"}}"#, self.n, "x".repeat(g.pad));
        let mut payload = vec![PAYLOAD_V1];
        payload.extend_from_slice(body.as_bytes());
        NewRecord {
            lane,
            topic: topic.into(),
            created_at: cutoff_at(g.age),
            payload,
        }
    }

    /// What the writer does before appends and age checks: notice an outside purge.
    fn refresh(&mut self) -> Result<(), TestCaseError> {
        let freed = self.store().refresh_if_changed().unwrap();
        prop_assert_eq!(freed, 0, "a purge was already noticed right after it ran");
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append { records, make_room } => {
                let records: Vec<NewRecord> = records.iter().map(|g| self.record(g)).collect();
                self.refresh()?;
                let got = self.store().append(records.iter(), *make_room).unwrap();
                let want = self.model.append(&records, *make_room);
                prop_assert_eq!(
                    (
                        got.evicted,
                        got.evicted_bytes,
                        got.refused,
                        got.refused_bytes
                    ),
                    want
                );
                if *make_room {
                    prop_assert!(self.model.bytes() <= self.model.max_bytes);
                }
            }
            Op::Fetch { limit, cursor } => {
                let mut after = LaneCursor::START;
                for lane in Lane::ALL {
                    let id = self.model.last_id * u64::from(cursor[lane as usize]) / 255;
                    after.advance(&Record {
                        id,
                        lane,
                        topic: String::new(),
                        created_at: 0,
                        payload: Vec::new(),
                    });
                }
                let got = self.store().fetch(*limit, after).unwrap();
                prop_assert_eq!(got, self.model.fetch(*limit, after));
            }
            Op::Delete { picks, strays } => {
                let stored = self.model.all();
                let mut ids: Vec<u64> = if stored.is_empty() {
                    Vec::new()
                } else {
                    picks.iter().map(|i| i.get(&stored).id).collect()
                };
                if *strays {
                    ids.extend([0, self.model.last_id + 1, self.model.last_id + 7, u64::MAX]);
                }
                let got = self.store().delete(&ids).unwrap();
                prop_assert_eq!(got, self.model.delete(&ids));
            }
            Op::Expire { cutoff } => {
                let cutoff = cutoff.map(|k| k.map(cutoff_at));
                self.refresh()?;
                let got = self.store().expire(cutoff).unwrap();
                let (count, bytes) = self.model.expire(cutoff);
                prop_assert_eq!((got.count, got.bytes), (count, bytes));
            }
            Op::Purge { lane, before } => {
                let lanes: Vec<usize> = lane.map_or(vec![0, 1, 2], |l| vec![l]);
                let before = cutoff_at(*before);
                let mut conn = rusqlite::Connection::open(&self.path).unwrap();
                let tx = conn.transaction().unwrap();
                let mut n = 0;
                for &l in &lanes {
                    n += tx
                        .execute(
                            "DELETE FROM records WHERE lane = ?1 AND created_at < ?2",
                            rusqlite::params![l as i64, before],
                        )
                        .unwrap();
                }
                tx.commit().unwrap();
                drop(conn);
                let freed = self.model.purge(&lanes, before);
                self.model.wrote |= n > 0;
                let noticed = self.store().refresh_if_changed().unwrap();
                prop_assert_eq!(noticed, freed, "bytes the store saw vanish");
            }
            Op::Reopen { max_bytes } => {
                drop(self.store.take());
                let max_bytes = MAX_BYTES[*max_bytes];
                self.store = Some(Store::open(&self.path, max_bytes, Synchronous::Normal).unwrap());
                self.model.max_bytes = max_bytes;
                // A clean close removes the WAL, but the checkpoint thread's connection may
                // still hold frames at that instant: then the next open jumps, which is safe.
                self.adopt_jump(false)?;
                self.model.wrote = false;
            }
            Op::SetMaxBytes { max_bytes } => {
                let max_bytes = MAX_BYTES[*max_bytes];
                self.store().set_max_bytes(max_bytes);
                let got = self.store().shrink().unwrap();
                self.model.max_bytes = max_bytes;
                let (evicted, bytes, ..) = self.model.append(&[], true);
                prop_assert_eq!((got.count, got.bytes), (evicted, bytes));
                prop_assert!(self.store().stored_bytes() <= max_bytes);
            }
            Op::Crash => {
                // What is on disk at this instant: the database first, then the WAL (a
                // checkpoint copies WAL pages into the database, never the other way).
                let image = self.path.with_extension("crash");
                let wal = sidecar(&self.path, "-wal");
                std::fs::copy(&self.path, &image).unwrap();
                let wal_image = wal.exists().then(|| {
                    let to = sidecar(&image, "-wal");
                    std::fs::copy(&wal, &to).unwrap();
                    to
                });
                drop(self.store.take());
                for sidecar_file in [wal.clone(), sidecar(&self.path, "-shm")] {
                    let _ = std::fs::remove_file(sidecar_file);
                }
                std::fs::rename(&image, &self.path).unwrap();
                if let Some(w) = wal_image {
                    std::fs::rename(w, &wal).unwrap();
                }
                let unclean = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
                // A write since the last open always leaves a WAL at a crash; without one the
                // WAL may still hold frames the checkpoint thread has not reset.
                prop_assert!(unclean || !self.model.wrote, "a write left no WAL");
                self.store = Some(
                    Store::open(&self.path, self.model.max_bytes, Synchronous::Normal).unwrap(),
                );
                self.adopt_jump(self.model.wrote)?;
                // The WAL keeps its frames until the last connection closes cleanly.
                self.model.wrote = unclean;
            }
        }
        self.agree()
    }

    /// After an open: ids written before an unclean stop are never handed out again, so a
    /// write then a crash always makes them jump (`must`). Otherwise they may jump too: whether
    /// the WAL still holds frames then depends on the checkpoint thread's timing, and a jump is
    /// always safe. The model adopts what the store did.
    fn adopt_jump(&mut self, must: bool) -> Result<(), TestCaseError> {
        if self.model.last_id == 0 {
            return Ok(());
        }
        let gap = ID_GAP_AFTER_UNCLEAN_SHUTDOWN as u64;
        let store = self.store.as_mut().expect("just opened");
        let opened = store.last_id().unwrap() as u64;
        let want = self.model.last_id;
        if must {
            prop_assert_eq!(opened, want + gap, "a write, then a crash");
        } else {
            prop_assert!(
                opened == want || opened == want + gap,
                "{opened} after {want}"
            );
        }
        self.model.last_id = opened;
        Ok(())
    }

    /// The store and the model hold the same records, totals and last id.
    fn agree(&mut self) -> Result<(), TestCaseError> {
        let want = self.model.all();
        let store = self
            .store
            .as_mut()
            .expect("the store is open between steps");
        let got = store.fetch(usize::MAX, LaneCursor::START).unwrap();
        prop_assert_eq!(&got, &want);
        let last_id = store.last_id().unwrap();
        prop_assert_eq!(last_id as u64, self.model.last_id);
        let totals = store.totals();
        let stats = store.lane_stats().unwrap();
        for lane in Lane::ALL {
            let recs = &self.model.lanes[lane as usize];
            let (count, bytes) = (recs.len() as u64, recs.iter().map(size).sum::<u64>());
            prop_assert_eq!(
                (totals[lane as usize].count, totals[lane as usize].bytes),
                (count, bytes)
            );
            prop_assert_eq!(
                stats[lane as usize].oldest_created_at,
                recs.front().map(|r| r.created_at)
            );
        }
        Ok(())
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Every case opens SQLite files several times: fewer cases than the rules' 256,
        // longer sequences instead. PROPTEST_CASES still overrides it.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_agrees_with_a_per_lane_queue_model(
        max_bytes in 0..MAX_BYTES.len(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::open(&dir.path().join("outbox.db"), MAX_BYTES[max_bytes]);
        h.agree()?;
        for op in &ops {
            h.step(op)?;
        }
    }
}
