//! The bounds besides `drop_oldest` (tested in `tests.rs`): `drop_newest`, `block`, `max_age`,
//! and totals kept right when another process deletes rows.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::config::{MaxAge, Overflow};
use super::*;

fn cfg(dir: &Path, max_bytes: u64, overflow: Overflow) -> OutboxConfig {
    OutboxConfig {
        path: dir.join("outbox.db"),
        max_bytes,
        batch_delay: Duration::ZERO,
        overflow,
        ..OutboxConfig::default()
    }
}

fn rec(lane: Lane, n: u64, created_at: i64) -> NewRecord {
    NewRecord::json(
        lane,
        &format!("weir/gw-1/{lane}"),
        created_at,
        format!(r#"{{"n":{n}}}"#).as_bytes(),
    )
}

fn n_of(r: &Record) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&r.payload[1..]).unwrap();
    v["n"].as_u64().unwrap()
}

async fn flush(outbox: &Outbox) {
    let (tx, rx) = oneshot::channel();
    let hook: AfterCommit = Box::new(move || {
        let _ = tx.send(());
    });
    outbox.append_with(vec![], vec![hook]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
}

async fn stored(outbox: &Outbox) -> Vec<u64> {
    let all = outbox.fetch(usize::MAX, LaneCursor::START).await.unwrap();
    all.iter().map(n_of).collect()
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    OutboxCounters::get(c)
}

#[tokio::test]
async fn drop_newest_keeps_what_is_stored_refuses_the_rest_counts_and_still_acks() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 3 * one, Overflow::DropNewest)).unwrap();
    let acked = Arc::new(AtomicBool::new(false));
    let hook: AfterCommit = Box::new({
        let acked = acked.clone();
        move || acked.store(true, Ordering::SeqCst)
    });
    let recs = (0..3).map(|n| rec(Lane::Aggregates, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    // Full now: an alert does not push out an aggregate under drop_newest.
    let recs = vec![rec(Lane::Alerts, 3, 0), rec(Lane::Aggregates, 4, 0)];
    outbox.append_with(recs, vec![hook]).await.unwrap();
    flush(&outbox).await;
    assert!(
        acked.load(Ordering::SeqCst),
        "the policy decided: the source is acked"
    );
    assert_eq!(stored(&outbox).await, [0, 1, 2]);
    let c = outbox.counters();
    assert_eq!(get(&c.refused_full), 2);
    assert_eq!(get(&c.evicted), 2);
    assert_eq!(get(&c.evicted_full), 0);
    assert_eq!(get(&c.appended), 3);

    // Room again after a delivery: the next record fits.
    let first = outbox.fetch(1, LaneCursor::START).await.unwrap();
    outbox.delete(vec![first[0].id]).await.unwrap();
    outbox
        .append(vec![rec(Lane::Aggregates, 5, 0)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [1, 2, 5]);
    assert!(outbox.stats().await.unwrap().bytes <= 3 * one);
}

#[tokio::test]
async fn block_makes_append_wait_until_a_delivery_frees_room_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 2 * one, Overflow::Block)).unwrap();
    let recs = (0..2).map(|n| rec(Lane::Aggregates, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;

    let blocked = tokio::spawn({
        let outbox = outbox.clone();
        async move {
            outbox
                .append(vec![rec(Lane::Aggregates, 2, 0)], vec![])
                .await
        }
    });
    // Bounded negative check: the append must still be waiting after the writer went idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !blocked.is_finished(),
        "append must wait while the outbox is full"
    );
    assert_eq!(stored(&outbox).await, [0, 1]);

    let first = outbox.fetch(1, LaneCursor::START).await.unwrap();
    outbox.delete(vec![first[0].id]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("append resumes once room is freed")
        .unwrap()
        .unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [1, 2]);
    assert_eq!(get(&outbox.counters().evicted), 0);
}

#[tokio::test]
async fn max_age_evicts_old_records_of_the_bounded_lanes_only_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 1 << 20, Overflow::DropOldest);
    c.max_age = MaxAge([None, None, Some(Duration::from_secs(60))]);
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    let now = weir_drivers::now_us();
    let old = now - 120_000_000;
    let recs = vec![
        rec(Lane::Aggregates, 0, old),
        rec(Lane::Alerts, 1, old),
        rec(Lane::Aggregates, 2, old),
        rec(Lane::Aggregates, 3, now),
    ];
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    let counters = outbox.counters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&counters.expired) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no age eviction");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored(&outbox).await,
        [1, 3],
        "old alert kept: no bound on alerts"
    );
    assert_eq!(get(&counters.expired), 2);
    assert_eq!(get(&counters.evicted), 2);
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count, 2);
    assert_eq!(
        stats.bytes,
        rec(Lane::Alerts, 1, 0).size() + rec(Lane::Aggregates, 3, 0).size()
    );
}

#[tokio::test]
async fn rows_deleted_by_another_connection_are_seen_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let c = cfg(dir.path(), 3 * one, Overflow::DropOldest);
    let (outbox, _thread) = Outbox::open(&c).unwrap();
    let recs = (0..3).map(|n| rec(Lane::Aggregates, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;

    let other = rusqlite::Connection::open(&c.path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other
        .execute(
            "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id LIMIT 2)",
            [],
        )
        .unwrap();
    drop(other);

    // With stale totals this append would evict record 2.
    let recs = (3..5).map(|n| rec(Lane::Aggregates, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [2, 3, 4]);
    assert_eq!(get(&outbox.counters().evicted), 0);
    assert_eq!(outbox.stats().await.unwrap().bytes, 3 * one);
}

/// Regression for issue 15: a sequence near `i64::MAX` wrapped to negative ids that were never
/// sent. Now the last id is `i64::MAX` and the rest are dropped and counted.
#[tokio::test]
async fn an_exhausted_sequence_drops_new_records_counted_and_never_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), 1 << 20, Overflow::DropOldest);
    {
        let (outbox, thread) = Outbox::open(&c).unwrap();
        outbox
            .append(vec![rec(Lane::Alerts, 0, 0)], vec![])
            .await
            .unwrap();
        flush(&outbox).await;
        drop(outbox);
        thread.join().unwrap();
    }
    rusqlite::Connection::open(&c.path)
        .unwrap()
        .execute("UPDATE sequence SET last_id = ?1", [i64::MAX - 1])
        .unwrap();
    let (outbox, thread) = Outbox::open(&c).unwrap();
    let recs = (1..4).map(|n| rec(Lane::Alerts, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    let got = outbox.fetch(10, LaneCursor::START).await.unwrap();
    let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
    assert_eq!(ids, [1, i64::MAX as u64]);
    assert_eq!(n_of(&got[1]), 1);
    assert_eq!(OutboxCounters::get(&outbox.counters().discarded), 2);
    drop(outbox);
    thread.join().unwrap();
}

fn live(max_bytes: u64, overflow: Overflow) -> LiveSettings {
    LiveSettings {
        max_bytes,
        max_age: MaxAge::default(),
        overflow,
        batch_max: 100,
        batch_delay: Duration::ZERO,
    }
}

/// Under `block`, once nothing is queued: the free permits and the stored bytes add up to
/// the bound (neither a permit lost, which would block early, nor one too many, which would
/// let the fallback evict).
async fn assert_room_adds_up(outbox: &Outbox, max_bytes: u64) {
    let stored = outbox.stats().await.unwrap().bytes;
    let room = outbox.shared.room().expect("block has a semaphore");
    assert_eq!(room.available_permits() as u64 + stored, max_bytes);
}

async fn append_n(outbox: &Outbox, ns: std::ops::Range<u64>) {
    let recs = ns.map(|n| rec(Lane::Aggregates, n, 0)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    flush(outbox).await;
}

#[tokio::test]
async fn a_lowered_max_bytes_evicts_down_to_it_at_once_counted_and_a_raised_one_takes_more() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 5 * one, Overflow::DropOldest)).unwrap();
    append_n(&outbox, 0..5).await;
    outbox
        .append(vec![rec(Lane::Alerts, 9, 0)], vec![])
        .await
        .unwrap();
    flush(&outbox).await;
    assert_eq!(get(&outbox.counters().evicted), 1);

    let applied = outbox
        .set(live(2 * one, Overflow::DropOldest))
        .await
        .unwrap();
    assert_eq!((applied.evicted, applied.evicted_bytes), (3, 3 * one));
    // Aggregates go first; the alert stays.
    assert_eq!(stored(&outbox).await, [9, 4]);
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.max_bytes, 2 * one);
    assert!(stats.bytes <= 2 * one);
    let c = outbox.counters();
    assert_eq!((get(&c.evicted), get(&c.evicted_full)), (4, 4));

    outbox
        .set(live(4 * one, Overflow::DropOldest))
        .await
        .unwrap();
    append_n(&outbox, 5..7).await;
    assert_eq!(stored(&outbox).await, [9, 4, 5, 6]);
    assert_eq!(
        get(&c.evicted),
        4,
        "a raised bound takes more without evicting"
    );
    // A record above the new bound is refused as with any bound.
    let big = NewRecord::json(
        Lane::Aggregates,
        "weir/gw-1/aggregates",
        0,
        format!(r#"{{"p":"{}"}}"#, "x".repeat(5 * one as usize)).as_bytes(),
    );
    assert!(matches!(
        outbox.append(vec![big], vec![]).await,
        Err(OutboxError::InvalidRecord { .. })
    ));
}

#[tokio::test]
async fn under_block_a_changed_bound_resizes_the_free_bytes_and_wakes_or_holds_appends() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 4 * one, Overflow::Block)).unwrap();
    append_n(&outbox, 0..4).await;
    assert_room_adds_up(&outbox, 4 * one).await;
    let waiting = |n: u64| {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            outbox
                .append(vec![rec(Lane::Aggregates, n, 0)], vec![])
                .await
        })
    };
    let blocked = waiting(4);
    // Bounded negative check: still waiting once the writer is idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished(), "full: the append waits");

    // Raised: the waiting append goes on.
    outbox.set(live(6 * one, Overflow::Block)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("a raised bound wakes the waiting append")
        .unwrap()
        .unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [0, 1, 2, 3, 4]);
    assert_room_adds_up(&outbox, 6 * one).await;

    // Lowered: evicted at once down to it, and no free byte is left over.
    let applied = outbox.set(live(3 * one, Overflow::Block)).await.unwrap();
    assert_eq!(applied.evicted, 2);
    assert_eq!(stored(&outbox).await, [2, 3, 4]);
    assert_room_adds_up(&outbox, 3 * one).await;
    let blocked = waiting(5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !blocked.is_finished(),
        "at the lowered bound the append waits"
    );

    // A delivery makes room as before.
    let first = outbox.fetch(1, LaneCursor::START).await.unwrap();
    outbox.delete(vec![first[0].id]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("a delivery frees room")
        .unwrap()
        .unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [3, 4, 5]);
    assert_room_adds_up(&outbox, 3 * one).await;
    assert_eq!(
        get(&outbox.counters().evicted),
        2,
        "only the lowering evicted"
    );
}

#[tokio::test]
async fn the_overflow_policy_changes_live_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let one = rec(Lane::Aggregates, 0, 0).size();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 2 * one, Overflow::DropOldest)).unwrap();
    append_n(&outbox, 0..2).await;

    // To block: the next append waits instead of evicting.
    outbox.set(live(2 * one, Overflow::Block)).await.unwrap();
    assert_room_adds_up(&outbox, 2 * one).await;
    let blocked = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            outbox
                .append(vec![rec(Lane::Aggregates, 2, 0)], vec![])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished(), "block waits when full");
    assert!(outbox.blocked_since().is_some());

    // Back to drop_oldest: the waiting append goes on, and the policy evicts for it.
    outbox
        .set(live(2 * one, Overflow::DropOldest))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("leaving block wakes the waiting append")
        .unwrap()
        .unwrap();
    flush(&outbox).await;
    assert_eq!(stored(&outbox).await, [1, 2]);
    assert_eq!(get(&outbox.counters().evicted_full), 1);
    assert!(outbox.shared.room().is_none());
    assert_eq!(outbox.blocked_since(), None);
}

#[tokio::test]
async fn a_new_max_age_is_applied_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, _thread) = Outbox::open(&cfg(dir.path(), 1 << 20, Overflow::DropOldest)).unwrap();
    let now = weir_drivers::now_us();
    let recs = vec![
        rec(Lane::Aggregates, 0, now - 120_000_000),
        rec(Lane::Aggregates, 1, now),
    ];
    outbox.append(recs, vec![]).await.unwrap();
    flush(&outbox).await;
    let mut settings = live(1 << 20, Overflow::DropOldest);
    settings.max_age = MaxAge([None, None, Some(Duration::from_secs(60))]);
    outbox.set(settings).await.unwrap();
    let counters = outbox.counters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&counters.expired) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no age eviction");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored(&outbox).await, [1]);
}
