use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::ID_GAP_AFTER_UNCLEAN_SHUTDOWN;
use super::*;

pub(super) fn cfg(dir: &Path) -> OutboxConfig {
    OutboxConfig {
        path: dir.join("data").join("outbox.db"),
        max_bytes: 1 << 30,
        batch_max: 1024,
        batch_delay: Duration::ZERO,
        synchronous: config::Synchronous::Normal,
        ..OutboxConfig::default()
    }
}

pub(super) fn rec(lane: Lane, n: u64) -> NewRecord {
    NewRecord::json(
        lane,
        &format!("weir/gw-1/{lane}"),
        1_700_000_000_000_000 + n as i64,
        format!(r#"{{"n":{n}}}"#).as_bytes(),
    )
}

pub(super) fn n_of(r: &Record) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&r.payload[1..]).unwrap();
    v["n"].as_u64().unwrap()
}

/// Resolves once everything queued before it has been committed.
pub(super) async fn flush(outbox: &Outbox) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    outbox
        .append_with(
            vec![],
            vec![Box::new(move || {
                let _ = tx.send(());
            })],
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
}

pub(super) async fn all(outbox: &Outbox) -> Vec<Record> {
    outbox.fetch(usize::MAX, LaneCursor::START).await.unwrap()
}

#[tokio::test]
async fn fetch_is_lane_priority_then_fifo_and_delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let order = [
        (Lane::Aggregates, 0),
        (Lane::Alerts, 1),
        (Lane::Predictions, 2),
        (Lane::Aggregates, 3),
        (Lane::Alerts, 4),
        (Lane::Predictions, 5),
    ];
    for (lane, n) in order {
        outbox.append(vec![rec(lane, n)], vec![]).await.unwrap();
    }
    flush(&outbox).await;

    let got = all(&outbox).await;
    let seen: Vec<(Lane, u64)> = got.iter().map(|r| (r.lane, n_of(r))).collect();
    assert_eq!(
        seen,
        [
            (Lane::Alerts, 1),
            (Lane::Alerts, 4),
            (Lane::Predictions, 2),
            (Lane::Predictions, 5),
            (Lane::Aggregates, 0),
            (Lane::Aggregates, 3),
        ]
    );
    // ids follow insertion order
    let mut ids: Vec<u64> = got.iter().map(|r| r.id).collect();
    assert_eq!(got.iter().find(|r| n_of(r) == 0).unwrap().id, 1);
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert_eq!(got[0].topic, "weir/gw-1/alerts");
    assert_eq!(got[0].created_at, 1_700_000_000_000_001);

    let limited = outbox.fetch(3, LaneCursor::START).await.unwrap();
    assert_eq!(limited.iter().map(n_of).collect::<Vec<_>>(), [1, 4, 2]);

    outbox.delete(vec![2, 6, 999]).await.unwrap();
    let left: Vec<u64> = all(&outbox).await.iter().map(n_of).collect();
    assert_eq!(left, [4, 2, 0, 3]);
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count, 4);
    assert_eq!(stats.lanes[Lane::Alerts as usize].count, 1);
    assert_eq!(
        stats.lanes[Lane::Aggregates as usize].oldest_created_at,
        Some(1_700_000_000_000_000)
    );
    let left_bytes: u64 = all(&outbox)
        .await
        .iter()
        .map(|r| (r.topic.len() + r.payload.len()) as u64)
        .sum();
    assert_eq!(stats.bytes, left_bytes);
    let c = outbox.counters();
    assert_eq!(OutboxCounters::get(&c.appended), 6);
    assert_eq!(OutboxCounters::get(&c.deleted), 2);
    drop(outbox);
    thread.join().unwrap();
}

/// An outbox in `dir` holding ids 1..=12 committed, lanes alerts, predictions, aggregates in
/// turn (id 1 alerts, 2 predictions, 3 aggregates, 4 alerts…).
async fn open_with_twelve_in_turn(dir: &Path) -> (Outbox, OutboxThread) {
    let (outbox, thread) = Outbox::open(&cfg(dir)).unwrap();
    let recs = (0..12)
        .map(|n| rec(Lane::ALL[(n % 3) as usize], n))
        .collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    (outbox, thread)
}

/// Asserts that exactly the ids `left` are stored and that the stats' count and bytes are
/// theirs; returns the stats.
async fn assert_left(outbox: &Outbox, left: &[u64]) -> OutboxStats {
    let stored = all(outbox).await;
    let mut ids: Vec<u64> = stored.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, left);
    let bytes: u64 = stored
        .iter()
        .map(|r| (r.topic.len() + r.payload.len()) as u64)
        .sum();
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.count, stats.bytes), (left.len() as u64, bytes));
    stats
}

#[tokio::test]
async fn delete_removes_exactly_the_given_ids_runs_and_strays_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = open_with_twelve_in_turn(dir.path()).await;
    // Runs (3..=5, 7..=8) are deleted by range; 6 sits between them and must stay. Unsorted,
    // duplicated and unknown ids are fine.
    outbox
        .delete(vec![8, 3, 4, 5, 7, 1, 4, 12, 99, u64::MAX])
        .await
        .unwrap();
    assert_left(&outbox, &[2, 6, 9, 10, 11]).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().deleted), 7);
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test]
async fn delete_ranges_removes_only_its_lane_between_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = open_with_twelve_in_turn(dir.path()).await;
    let range = |lane, after, last| LaneRange { lane, after, last };
    outbox
        .delete_ranges(vec![
            // Aggregates 6 and 9: the exclusive start spares 3, the end spares 12, and the
            // other lanes' ids in between (4, 5, 7, 8) stay.
            range(Lane::Aggregates, 3, 9),
            // Alerts 1 (from the start of the lane); an empty and an inverted range do nothing.
            range(Lane::Alerts, 0, 1),
            range(Lane::Predictions, 5, 5),
            range(Lane::Predictions, 11, 2),
            // Aggregates 3 and 6 again (counted once), and a range past the last id.
            range(Lane::Aggregates, 0, 6),
            range(Lane::Predictions, 8, u64::MAX),
        ])
        .await
        .unwrap();
    let stats = assert_left(&outbox, &[2, 4, 5, 7, 8, 10, 12]).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().deleted), 5);
    let per_lane: Vec<u64> = stats.lanes.iter().map(|l| l.count).collect();
    assert_eq!(per_lane, [3, 3, 1]);
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test]
async fn cursor_skips_in_flight_but_new_alerts_jump_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let mut recs: Vec<NewRecord> = (0..3).map(|n| rec(Lane::Aggregates, n)).collect();
    recs.push(rec(Lane::Alerts, 3));
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;

    let mut cursor = LaneCursor::START;
    let first = outbox.fetch(2, cursor).await.unwrap();
    assert_eq!(first.iter().map(n_of).collect::<Vec<_>>(), [3, 0]);
    first.iter().for_each(|r| cursor.advance(r));

    outbox
        .append(vec![rec(Lane::Alerts, 4)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let next = outbox.fetch(10, cursor).await.unwrap();
    assert_eq!(next.iter().map(n_of).collect::<Vec<_>>(), [4, 1, 2]);
}

#[tokio::test]
async fn ids_never_reused_across_reopen_even_after_deleting_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    {
        let (outbox, thread) = Outbox::open(&c).unwrap();
        let recs = (0..3).map(|n| rec(Lane::Alerts, n)).collect();
        outbox.append(recs, vec![]).await.unwrap();
        flush(&outbox).await;
        outbox.delete(vec![3]).await.unwrap();
        drop(outbox);
        thread.join().unwrap();
    }
    let (outbox, thread) = Outbox::open(&c).unwrap();
    assert_eq!(all(&outbox).await.len(), 2, "committed records survive");
    outbox
        .append(vec![rec(Lane::Alerts, 9)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let ids: Vec<u64> = all(&outbox).await.iter().map(|r| r.id).collect();
    // A clean shutdown leaves no WAL, so no gap: exactly the next id.
    assert_eq!(ids, [1, 2, 4]);
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test]
async fn eviction_takes_oldest_of_lowest_priority_lane_first_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Alerts, 0).size(); // "weir/gw-1/alerts" + 8 bytes
    let mut c = cfg(dir.path());
    // Room for all 6 initial records, none more.
    let sizes =
        |lanes: &[(Lane, u64)]| -> u64 { lanes.iter().map(|(l, n)| rec(*l, *n).size()).sum() };
    let initial = [
        (Lane::Alerts, 0),
        (Lane::Predictions, 1),
        (Lane::Aggregates, 2),
        (Lane::Alerts, 3),
        (Lane::Predictions, 4),
        (Lane::Aggregates, 5),
    ];
    c.max_bytes = sizes(&initial);
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    let recs = initial.iter().map(|(l, n)| rec(*l, *n)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().evicted), 0);

    // One alert more: the oldest aggregate goes.
    outbox
        .append(vec![rec(Lane::Alerts, 6)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let left: Vec<u64> = all(&outbox).await.iter().map(n_of).collect();
    assert_eq!(left, [0, 3, 6, 1, 4, 5]);
    assert_eq!(OutboxCounters::get(&outbox.counters().evicted), 1);

    // Three more alerts: the last aggregate, then both predictions, oldest first.
    let recs = (7..10).map(|n| rec(Lane::Alerts, n)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    let left: Vec<u64> = all(&outbox).await.iter().map(n_of).collect();
    assert_eq!(left, [0, 3, 6, 7, 8, 9]);
    assert_eq!(OutboxCounters::get(&outbox.counters().evicted), 4);

    // Only alerts are left: the oldest alerts go.
    outbox
        .append(vec![rec(Lane::Alerts, 10)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let left: Vec<u64> = all(&outbox).await.iter().map(n_of).collect();
    assert_eq!(left, [3, 6, 7, 8, 9, 10]);
    let stats = outbox.stats().await.unwrap();
    assert!(stats.bytes <= c.max_bytes);
    assert_eq!(stats.bytes, 6 * one + 1); // "10" is one digit longer than the rest
    assert_eq!(stats.evicted, 5);
}

#[tokio::test]
async fn byte_totals_are_recomputed_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let (outbox, thread) = Outbox::open(&c).unwrap();
    let recs: Vec<NewRecord> = (0..5).map(|n| rec(Lane::Predictions, n)).collect();
    let bytes: u64 = recs.iter().map(NewRecord::size).sum();
    outbox.append(recs, vec![]).await.unwrap();
    drop(outbox);
    thread.join().unwrap(); // commits what was pending
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.count, stats.bytes), (5, bytes));
    assert_eq!(stats.lanes[Lane::Predictions as usize].bytes, bytes);
}

#[tokio::test]
async fn acks_fire_only_after_commit_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.batch_delay = Duration::from_millis(30);
    let (outbox, thread) = Outbox::open(&c).unwrap();
    let path = c.path.clone();
    // Each hook counts rows through a second connection: only committed rows are visible.
    let seen = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10u64 {
        let seen = Arc::clone(&seen);
        let path = path.clone();
        let hook: AfterCommit = Box::new(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let rows: i64 = conn
                .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
                .unwrap();
            seen.lock().unwrap().push((i, rows));
        });
        outbox
            .append_with(vec![rec(Lane::Alerts, i)], vec![hook])
            .await
            .unwrap();
    }
    flush(&outbox).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    for (k, (i, rows)) in seen.iter().enumerate() {
        assert_eq!(*i, k as u64, "hooks fire in append order");
        assert!(
            *rows > *i as i64,
            "hook {i} fired before its record was committed"
        );
    }
    // Queued appends were grouped into few transactions.
    let batches = OutboxCounters::get(&outbox.counters().committed_batches);
    assert!(
        batches < 10,
        "expected grouping, got {batches} transactions"
    );
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test]
async fn invalid_records_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_bytes = 100;
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    let good = rec(Lane::Alerts, 1);
    let mut bad_version = good.clone();
    bad_version.payload[0] = 3;
    let mut unknown_token = NewRecord::json(Lane::Alerts, "t", 0, b"{}");
    unknown_token.payload = vec![2, b'{', 0x00, b'}'];
    unknown_token.payload.swap(2, 3);
    let not_object = NewRecord::json(Lane::Alerts, "t", 0, b"[1,2]");
    let trailing = NewRecord::json(Lane::Alerts, "t", 0, b"{} x");
    let wildcard = NewRecord::json(Lane::Alerts, "weir/+/x", 0, b"{}");
    let huge = NewRecord::json(Lane::Alerts, "t", 0, &[b' '; 200]);
    for bad in [
        bad_version,
        unknown_token,
        not_object,
        trailing,
        wildcard,
        huge,
    ] {
        let err = outbox.append(vec![good.clone(), bad], vec![]).await;
        assert!(
            matches!(err, Err(OutboxError::InvalidRecord { index: 1, .. })),
            "{err:?}"
        );
    }
    flush(&outbox).await;
    assert!(
        all(&outbox).await.is_empty(),
        "nothing of a rejected call is stored"
    );
    let empty = NewRecord::json(Lane::Alerts, "t", 0, b" { } ");
    // Packed already (the pipeline packs its records as it encodes them).
    let mut packed = NewRecord::json(Lane::Alerts, "t", 0, br#"{"kind":"late","rule":"r"}"#);
    packed.payload = crate::outbox::compact(packed.payload);
    assert_eq!(packed.payload[0], 2);
    outbox.append(vec![empty, packed], vec![]).await.unwrap();
    assert_eq!(all(&outbox).await.len(), 2);
}

fn quarantined(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_quarantined_and_a_fresh_outbox_opens() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    std::fs::create_dir_all(c.path.parent().unwrap()).unwrap();
    let garbage = vec![0xA5u8; 8192];
    std::fs::write(&c.path, &garbage).unwrap();

    let (outbox, thread) = Outbox::open(&c).unwrap();
    let q = quarantined(dir.path());
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        std::fs::read(&q[0]).unwrap(),
        garbage,
        "the bad file is kept"
    );
    assert!(all(&outbox).await.is_empty());
    outbox
        .append(vec![rec(Lane::Alerts, 1)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let got = all(&outbox).await;
    assert_eq!(got.len(), 1);
    // Ids restart above the clock (µs), past anything the lost file could have handed out.
    assert!(got[0].id > 1_600_000_000_000_000, "id {}", got[0].id);
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    std::fs::create_dir_all(c.path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    conn.execute_batch("CREATE TABLE other (x); PRAGMA user_version = 7;")
        .unwrap();
    drop(conn);
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    assert_eq!(quarantined(dir.path()).len(), 1);
    outbox
        .append(vec![rec(Lane::Alerts, 1)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    assert_eq!(all(&outbox).await.len(), 1);
}

#[tokio::test]
async fn a_version_1_outbox_is_migrated_with_its_records_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    std::fs::create_dir_all(c.path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    // Schema 1 as weir wrote it: a rowid table in id order, ids from AUTOINCREMENT. The
    // newest ids (6, 7) were delivered and deleted: they must not be handed out again.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE records (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             lane INTEGER NOT NULL CHECK (lane IN (0, 1, 2)),
             topic TEXT NOT NULL, created_at INTEGER NOT NULL, payload BLOB NOT NULL);
         CREATE INDEX records_lane_id ON records (lane, id);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    for n in 0..7u64 {
        let r = rec(Lane::ALL[(n % 3) as usize], n);
        conn.execute(
            "INSERT INTO records (lane, topic, created_at, payload) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![r.lane as i64, r.topic, r.created_at, r.payload],
        )
        .unwrap();
    }
    conn.execute("DELETE FROM records WHERE id >= 6", [])
        .unwrap();
    drop(conn);

    let (outbox, thread) = Outbox::open(&c).unwrap();
    assert!(quarantined(dir.path()).is_empty());
    let got: Vec<(u64, u64)> = all(&outbox).await.iter().map(|r| (r.id, n_of(r))).collect();
    // Lane order, oldest first: alerts 0 and 3, predictions 1 and 4, aggregates 2.
    assert_eq!(got, [(1, 0), (4, 3), (2, 1), (5, 4), (3, 2)]);
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count, 5);
    outbox
        .append(vec![rec(Lane::Alerts, 9)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    let newest = all(&outbox)
        .await
        .into_iter()
        .find(|r| n_of(r) == 9)
        .unwrap();
    assert_eq!(newest.id, 8, "ids continue past the deleted 6 and 7");
    drop(outbox);
    thread.join().unwrap();
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, store::SCHEMA_VERSION);
}

#[tokio::test]
async fn dropping_without_join_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let (outbox, thread) = Outbox::open(&c).unwrap();
    let recs = (0..20).map(|n| rec(Lane::Aggregates, n)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    // The old writer may still hold its connection: a second one must cope.
    std::mem::forget(thread);
    let (again, _thread) = Outbox::open(&c).unwrap();
    let got = all(&again).await;
    assert_eq!(
        got.iter().map(n_of).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    drop(outbox);
}

const CRASH_ENV: &str = "WEIR_OUTBOX_CRASH_CHILD";

/// Child side of the kill -9 test: appends forever, printing each record's number once its
/// commit has fired the hook. Does nothing unless the parent set `WEIR_OUTBOX_CRASH_CHILD`.
#[tokio::test]
async fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let mut c = cfg(Path::new("/nonexistent"));
    c.path = PathBuf::from(path);
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    for n in 0.. {
        let lane = Lane::ALL[(n % 3) as usize];
        let hook: AfterCommit = Box::new(move || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "acked {n}");
            let _ = out.flush();
        });
        outbox
            .append_with(vec![rec(lane, n)], vec![hook])
            .await
            .unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_committed_and_ids_do_not_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["outbox::tests::crash_child", "--exact", "--nocapture"])
        .env(CRASH_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.parse::<u64>().unwrap());
            if acked.len() == 300 {
                break;
            }
        }
    }
    assert_eq!(acked.len(), 300, "child stopped early");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = cfg(dir.path());
        c.path = path;
        let (outbox, thread) = Outbox::open(&c).unwrap();
        let got = all(&outbox).await;
        let stored: std::collections::HashSet<u64> = got.iter().map(n_of).collect();
        for n in &acked {
            assert!(stored.contains(n), "record {n} was acked but is gone");
        }
        let max_id = got.iter().map(|r| r.id).max().unwrap();
        outbox
            .append(vec![rec(Lane::Alerts, 0)], vec![])
            .await
            .unwrap();
        flush(&outbox).await;
        let newest = all(&outbox).await.iter().map(|r| r.id).max().unwrap();
        assert!(
            newest > max_id + ID_GAP_AFTER_UNCLEAN_SHUTDOWN as u64 - 1,
            "after an unclean shutdown ids skip ahead: {newest} vs {max_id}"
        );
        assert_eq!(OutboxCounters::get(&outbox.counters().write_errors), 0);
        drop(outbox);
        thread.join().unwrap();
    });
}
