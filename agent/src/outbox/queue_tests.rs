//! The writer's queue bounded in bytes ([`super::QUEUE_BYTES`]): an append waits while the
//! bound is taken, and the group it waits for is committed at once rather than after
//! `batch_delay`.

use std::time::Duration;

use super::tests::{all, cfg, flush, n_of, rec};
use super::*;

/// One append may hold thousands of records: the queue's length alone does not bound what
/// waits for the writer. An append waits while `QUEUE_BYTES` wait, and goes on as soon as
/// the writer has committed what was ahead of it.
#[tokio::test]
async fn an_append_waits_while_the_writer_has_its_bytes_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    // The writer holds the first append (and its permits) until its hook is released.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let hook: AfterCommit = Box::new(move || {
        let _ = held.recv();
    });
    outbox
        .append_with(vec![rec(Lane::Alerts, 0)], vec![hook])
        .await
        .unwrap();
    let burst: Vec<NewRecord> = (1..20_000).map(|n| rec(Lane::Aggregates, n)).collect();
    assert_eq!(
        queued_bytes(&burst, &[]),
        QUEUE_BYTES,
        "larger than the bound"
    );
    let small = vec![rec(Lane::Aggregates, 50_000)];
    assert!(queued_bytes(&small, &[]) < 200);

    {
        let mut waiting = std::pin::pin!(outbox.append(burst, vec![]));
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(waiting.as_mut().poll(cx).is_pending())
        })
        .await;
        assert!(
            pending,
            "queued beside an append the writer has not committed"
        );
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("goes on once the writer has committed what was ahead")
            .unwrap();
    }
    // Once the burst is committed, a small append goes straight through.
    flush(&outbox).await;
    outbox.append(small, vec![]).await.unwrap();
    flush(&outbox).await;
    let stored = all(&outbox).await;
    assert_eq!(stored.len(), 20_001);
    assert_eq!(n_of(&stored[0]), 0, "the alert first");
    drop(outbox);
    thread.join().unwrap();
}

/// The writer waits up to `batch_delay` for more appends to group with one; an append that
/// waits for the writer's queued bytes cannot come before that group commits, so the group
/// commits at once rather than after the delay.
#[tokio::test]
async fn a_group_commits_at_once_when_an_append_waits_for_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.batch_delay = config::MAX_BATCH_DELAY;
    let (outbox, thread) = Outbox::open(&c).unwrap();
    let (committed, first) = tokio::sync::oneshot::channel();
    let hook: AfterCommit = Box::new(move || {
        let _ = committed.send(());
    });
    outbox
        .append_with(vec![rec(Lane::Alerts, 0)], vec![hook])
        .await
        .unwrap();
    let burst: Vec<NewRecord> = (1..20_000).map(|n| rec(Lane::Aggregates, n)).collect();
    let waiting = outbox.append(burst, vec![]);
    let (appended, first) = tokio::join!(
        waiting,
        tokio::time::timeout(config::MAX_BATCH_DELAY / 2, first)
    );
    appended.unwrap();
    first
        .expect("committed well before batch_delay ran out")
        .unwrap();
    drop(outbox);
    thread.join().unwrap();
}
