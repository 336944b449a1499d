//! Engine checkpoints through the real outbox: written with the records, read back after a
//! reopen, incremental ones merged, and the restored engine carries on.

use weir_rules::{Engine, Event, RuleSet, Sample};

use super::tests::{cfg, flush, rec};
use super::*;

const RULES: &str = "rules:\n  - name: c\n    window: { tumbling: 10s }\n    aggregates: [count, mean]\n  - name: z\n    detect: { zscore: {} }\n    alert: {}\n";
const S: i64 = 1_000_000;

fn engine() -> Engine {
    Engine::new(RuleSet::parse_str(RULES, "r.yaml").unwrap())
}

fn feed(e: &mut Engine, from: i64, to: i64, out: &mut Vec<Event>) {
    for t in from..to {
        for d in ["a", "b", "c"] {
            let series = e.series(d, "m").unwrap();
            let value = (t % 7) as f64 + if d == "b" { 50.0 } else { 0.0 };
            e.push(
                Sample {
                    series,
                    ts: t * S,
                    value,
                },
                out,
            );
        }
    }
}

#[tokio::test]
async fn a_restored_engine_continues_from_the_checkpoints_committed_with_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut whole, mut expected) = (engine(), Vec::new());
    feed(&mut whole, 0, 40, &mut expected);

    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let (mut first, mut got) = (engine(), Vec::new());
    feed(&mut first, 0, 13, &mut got);
    outbox
        .append(vec![rec(Lane::Aggregates, 1)], vec![])
        .await
        .unwrap();
    let full = first.checkpoint();
    assert!(full.full);
    outbox.checkpoint(full, Vec::new()).await.unwrap();
    // Only series "a" moves on: the next checkpoint holds it alone.
    for t in 13..15 {
        let series = first.series("a", "m").unwrap();
        first.push(
            Sample {
                series,
                ts: t * S,
                value: (t % 7) as f64,
            },
            &mut got,
        );
    }
    let part = first.checkpoint();
    assert_eq!(part.series.len(), 1);
    outbox.checkpoint(part, Vec::new()).await.unwrap();
    flush(&outbox).await;
    let stats = outbox.stats().await.unwrap();
    let info = stats.checkpoint.expect("a checkpoint was written");
    assert_eq!(info.series, 3);
    assert!(info.bytes > 100, "{info:?}");
    drop(outbox);
    thread.join().unwrap();

    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let saved = outbox.engine_state().await.unwrap();
    assert!(saved.log.is_empty());
    let mut second = engine();
    let report = second.restore(&saved.checkpoint.expect("stored")).unwrap();
    assert_eq!(report.series, 3);
    // The rest of the input: "a" from 15, the others from 13 (where their state stopped).
    for t in 13..40 {
        for d in ["a", "b", "c"] {
            if d == "a" && t < 15 {
                continue;
            }
            let series = second.series(d, "m").unwrap();
            let value = (t % 7) as f64 + if d == "b" { 50.0 } else { 0.0 };
            second.push(
                Sample {
                    series,
                    ts: t * S,
                    value,
                },
                &mut got,
            );
        }
    }
    // Same events, in a different interleaving only where "a" ran ahead.
    let key = |e: &Event| format!("{e:?}");
    let mut a: Vec<String> = got.iter().map(key).collect();
    let mut b: Vec<String> = expected.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(all_records(&outbox).await, 1);
    drop(outbox);
    thread.join().unwrap();
}

async fn all_records(outbox: &Outbox) -> usize {
    outbox
        .fetch(usize::MAX, LaneCursor::START)
        .await
        .unwrap()
        .len()
}

/// The input logged with the records after a checkpoint is read back in order and replayed
/// on top of it; the next checkpoint empties the log in its own transaction.
#[tokio::test]
async fn input_logged_after_the_checkpoint_is_replayed_and_the_next_checkpoint_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut whole, mut expected) = (engine(), Vec::new());
    feed(&mut whole, 0, 30, &mut expected);

    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let (mut first, mut got) = (engine(), Vec::new());
    feed(&mut first, 0, 10, &mut got);
    outbox
        .checkpoint(first.checkpoint(), Vec::new())
        .await
        .unwrap();
    for (from, to) in [(10, 14), (14, 20)] {
        let mut log = weir_rules::InputLog::default();
        for t in from..to {
            for d in ["a", "b", "c"] {
                let series = first.series(d, "m").unwrap();
                let value = (t % 7) as f64 + if d == "b" { 50.0 } else { 0.0 };
                first.push(
                    Sample {
                        series,
                        ts: t * S,
                        value,
                    },
                    &mut got,
                );
                log.sample(&d.into(), &"m".into(), t * S, value);
            }
        }
        outbox
            .append_logged(vec![rec(Lane::Aggregates, from as u64)], vec![], log.take())
            .await
            .unwrap();
    }
    flush(&outbox).await;
    drop(outbox);
    thread.join().unwrap(); // the "crash": nothing more of `first` is written

    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let saved = outbox.engine_state().await.unwrap();
    assert_eq!(saved.log.len(), 2);
    let mut second = engine();
    second.restore(saved.checkpoint.as_ref().unwrap()).unwrap();
    for batch in &saved.log {
        second.replay(batch).unwrap();
    }
    feed(&mut second, 20, 30, &mut got);
    let key = |e: &Event| format!("{e:?}");
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        expected.iter().map(key).collect::<Vec<_>>()
    );
    outbox
        .checkpoint(second.checkpoint(), Vec::new())
        .await
        .unwrap();
    flush(&outbox).await;
    assert!(outbox.engine_state().await.unwrap().log.is_empty());
    drop(outbox);
    thread.join().unwrap();
}

/// A checkpoint streamed a chunk at a time is stored as the whole checkpoint would be, and
/// only once its transaction has committed; a stream dropped half way is not stored (the
/// checkpoint before it stays), and the records queued with it are.
#[tokio::test]
async fn a_streamed_checkpoint_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = Outbox::open(&cfg(dir.path())).unwrap();
    let (mut split, mut whole, mut out) = (engine(), engine(), Vec::new());
    feed(&mut split, 0, 20, &mut out);
    feed(&mut whole, 0, 20, &mut out);
    let expected = whole.checkpoint();

    // Chunks of one record: the writer takes them one by one.
    let mut chunks = split.checkpoint_chunks(1);
    let sink = outbox
        .checkpoint_stream(chunks.full(), chunks.global().to_vec(), Vec::new())
        .await
        .unwrap();
    let mut sent = 0;
    for chunk in chunks.by_ref() {
        assert_eq!(chunk.len(), 1);
        sink.send(chunk).await;
        sent += 1;
    }
    assert_eq!(sent, expected.series.len());
    let stored = sink.end().await;
    flush(&outbox).await;
    assert!(stored.get());
    let saved = outbox.engine_state().await.unwrap().checkpoint.unwrap();
    assert_eq!(saved.global, expected.global);
    assert_eq!(saved.series, expected.series);

    // Half a checkpoint, then the sink is dropped: a record queued before it commits.
    feed(&mut split, 20, 25, &mut out);
    outbox
        .append(vec![rec(Lane::Aggregates, 1)], vec![])
        .await
        .unwrap();
    let mut chunks = split.checkpoint_chunks(1);
    let sink = outbox
        .checkpoint_stream(chunks.full(), chunks.global().to_vec(), Vec::new())
        .await
        .unwrap();
    let first = chunks.next().unwrap();
    sink.send(first).await;
    let abandoned = CheckpointStored(std::sync::Arc::clone(&sink.status));
    drop(sink);
    flush(&outbox).await;
    assert!(!abandoned.get());
    let after = outbox.engine_state().await.unwrap().checkpoint.unwrap();
    assert_eq!(
        after.series, expected.series,
        "the earlier checkpoint stays"
    );
    assert_eq!(all_records(&outbox).await, 1);
    drop(outbox);
    thread.join().unwrap();
}
