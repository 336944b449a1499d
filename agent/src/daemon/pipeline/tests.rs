//! The synchronous core with plain calls, and the async shell under tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use weir_drivers::{Delivery, Reading};
use weir_rules::{Engine, Limits, RuleSet};

use super::*;
use crate::config::{Action, ClockGuard};
use crate::outbox::{Lane, LaneCursor, OutboxConfig, json_body};

const S: i64 = 1_000_000;
/// 2023-11-14T22:13:20Z, a gateway clock for the core's tests.
const NOW: i64 = 1_700_000_000 * S;

const RULES: &str = r#"rules:
  - name: hot
    select: { device: "*", metric: temp }
    window: { tumbling: 10s }
    aggregates: [count, max]
    alert: { when: "max > 50", severity: critical, local_topic: "plc/{device}/{rule}" }
"#;

fn engine(max_series: usize) -> Engine {
    Engine::with_limits(
        RuleSet::parse_str(RULES, "rules.yaml").unwrap(),
        Limits {
            max_series,
            ..Limits::default()
        },
    )
}

fn core_with(guard: ClockGuard, max_series: usize) -> (Core, Arc<PipelineCounters>) {
    let counters = Arc::new(PipelineCounters::default());
    let core = Core::new(
        engine(max_series),
        lane_topics("weir", "gw"),
        guard,
        Arc::clone(&counters),
    );
    (core, counters)
}

fn reading(device: &str, metric: &str, ts: i64, value: f64) -> Reading {
    Reading {
        device: device.into(),
        metric: metric.into(),
        ts,
        value,
    }
}

fn body(r: &crate::outbox::NewRecord) -> serde_json::Value {
    serde_json::from_slice(&json_body(&r.payload).unwrap()).unwrap()
}

#[test]
fn readings_become_events_become_records_when_event_time_moves_on() {
    let (mut core, counters) = core_with(ClockGuard::default(), 100);
    core.ingest(
        &[
            reading("pump-1", "temp", NOW, 40.0),
            reading("pump-1", "temp", NOW + S, 60.0),
        ],
        NOW + S,
    );
    assert!(!core.has_events(), "the window is still open");
    core.advance(NOW + 20 * S);
    assert!(core.has_events());
    let out = core.records(NOW + 21 * S);
    assert!(!core.has_events(), "records() takes the events");

    let lanes: Vec<Lane> = out.records.iter().map(|r| r.lane).collect();
    assert!(lanes.contains(&Lane::Alerts) && lanes.contains(&Lane::Aggregates));
    let alert = out.records.iter().find(|r| r.lane == Lane::Alerts).unwrap();
    assert_eq!(&*alert.topic, "weir/gw/alerts");
    assert_eq!(alert.created_at, NOW + 21 * S);
    let alert_body = body(alert);
    assert_eq!(alert_body["rule"], "hot");
    assert_eq!(alert_body["state"], "raised");
    let window = out
        .records
        .iter()
        .find(|r| r.lane == Lane::Aggregates)
        .unwrap();
    assert_eq!(body(window)["values"]["count"], 2.0);

    assert_eq!(
        out.actions.len(),
        1,
        "the alert goes to the local broker too"
    );
    assert_eq!(out.actions[0].0, "plc/pump-1/hot");
    let action: serde_json::Value = serde_json::from_slice(&out.actions[0].1).unwrap();
    assert_eq!(action, alert_body, "the same JSON, without the format byte");

    assert_eq!(counters.samples.load(Relaxed), 2);
    assert_eq!(counters.events.load(Relaxed), out.records.len() as u64);
    assert_eq!(counters.alerts.load(Relaxed), 1);
    core.publish_stats();
    assert!(counters.windows_closed.load(Relaxed) >= 1);
}

#[test]
fn a_device_clock_far_off_is_restamped_or_dropped_and_counted() {
    let (mut core, counters) = core_with(ClockGuard::default(), 100);
    // A year ahead: restamped with the arrival time, so it lands in the window of `NOW`.
    core.ingest(
        &[reading("pump-1", "temp", NOW + 365 * 86_400 * S, 1.0)],
        NOW,
    );
    assert_eq!(counters.clock_skewed.load(Relaxed), 1);
    assert_eq!(counters.samples.load(Relaxed), 1);
    core.advance(NOW + 20 * S);
    let out = core.records(NOW);
    let window = out
        .records
        .iter()
        .find(|r| r.lane == Lane::Aggregates)
        .unwrap();
    let ts = body(window)["ts"].as_i64().unwrap();
    assert!((NOW - 10 * S..=NOW + 10 * S).contains(&ts), "{ts}");

    let drop = ClockGuard {
        action: Action::Drop,
        ..ClockGuard::default()
    };
    let (mut core, counters) = core_with(drop, 100);
    core.ingest(
        &[reading("pump-1", "temp", NOW + 365 * 86_400 * S, 1.0)],
        NOW,
    );
    assert_eq!(counters.clock_skewed.load(Relaxed), 1);
    assert_eq!(counters.samples.load(Relaxed), 0, "dropped, not ingested");
}

#[test]
fn samples_beyond_max_series_are_counted_not_ingested() {
    let (mut core, counters) = core_with(ClockGuard::default(), 2);
    let readings: Vec<Reading> = (0..5)
        .map(|i| reading(&format!("pump-{i}"), "temp", NOW, 1.0))
        .collect();
    core.ingest(&readings, NOW);
    assert_eq!(counters.samples.load(Relaxed), 2);
    assert_eq!(counters.series_rejected.load(Relaxed), 3);
}

/// The async shell: a delivery goes in, the tick closes its window on wall time, the records
/// are committed, and the loop ends when the sources hang up. Paused tokio time makes the
/// 250 ms ticks instant.
#[tokio::test(start_paused = true)]
async fn the_loop_commits_what_a_delivery_causes_and_stops_when_the_sources_hang_up() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = Outbox::open(&OutboxConfig {
        path: dir.path().join("outbox.db"),
        ..OutboxConfig::default()
    })
    .unwrap();
    let counters = Arc::new(PipelineCounters::default());
    let pipeline = Pipeline {
        engine: engine(100),
        outbox: outbox.clone(),
        topics: lane_topics("weir", "gw"),
        idle_close: Duration::from_secs(2),
        checkpoint_interval: Duration::from_secs(5),
        clock_guard: ClockGuard::default(),
        actions: crate::daemon::actions::Actions::disabled(),
        counters: Arc::clone(&counters),
        watch: None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(pipeline.run(rx, reload_rx));

    // A minute old on the wall clock: the first tick after it closes its window.
    let ts = weir_drivers::now_us() - 60 * S;
    tx.send(Delivery {
        readings: vec![reading("pump-1", "temp", ts, 70.0)],
        ack: None,
    })
    .await
    .unwrap();
    // The outbox commits on its own thread, in real time: a paused-clock timeout would fire
    // while it works, so the bound here is a real 30 s.
    let mut changes = outbox.changes();
    let committed = async {
        while counters.events.load(Relaxed) == 0 {
            changes.changed().await.unwrap();
        }
    };
    // A plain thread, not `spawn_blocking`: a blocking task would stop the paused clock from
    // advancing, and with it the loop's ticks.
    let (timeout_tx, timeout) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        let _ = timeout_tx.send(());
    });
    tokio::select! {
        () = committed => {}
        _ = timeout => panic!("nothing committed within 30 s"),
    }
    drop(tx);
    task.await.unwrap().unwrap();

    let stored = outbox.fetch(100, LaneCursor::START).await.unwrap();
    assert!(stored.iter().any(|r| r.lane == Lane::Alerts));
    assert!(stored.iter().any(|r| r.lane == Lane::Aggregates));
    assert_eq!(counters.samples.load(Relaxed), 1);
    assert!(counters.turns.load(Relaxed) >= 1);
    drop(outbox);
    thread.join().unwrap();
}

/// The input log holds what the engine saw (restamped times, advances; not the samples the
/// clock guard dropped or the restore guard took for redeliveries): replayed into a fresh
/// engine it gives the same state, byte for byte.
#[test]
fn the_input_log_replays_to_the_same_state() {
    let drop_far = ClockGuard {
        action: Action::Drop,
        ..ClockGuard::default()
    };
    let (mut core, _) = core_with(ClockGuard::default(), 100);
    core.log_input();
    core.ingest(
        &[
            reading("pump-1", "temp", NOW, 40.0),
            reading("pump-2", "temp", NOW + S, 60.0),
            // A year ahead: restamped with the arrival time; the log holds the new stamp.
            reading("pump-1", "temp", NOW + 365 * 86_400 * S, 45.0),
        ],
        NOW + 2 * S,
    );
    core.advance(NOW + 11 * S);
    core.ingest(
        &[reading("pump-1", "temp", NOW + 12 * S, 70.0)],
        NOW + 12 * S,
    );
    assert!(core.has_logged_samples());
    let log = core.take_log().expect("input was logged");
    assert!(core.take_log().is_none(), "taken once");

    let mut replayed = engine(100);
    assert_eq!(replayed.replay(&log).unwrap(), 4);
    assert_eq!(replayed.checkpoint(), core.engine.checkpoint());

    // Samples the clock guard drops are not logged (the engine never saw them).
    let (mut core, _) = core_with(drop_far, 100);
    core.log_input();
    core.ingest(
        &[reading("pump-1", "temp", NOW + 365 * 86_400 * S, 1.0)],
        NOW,
    );
    assert!(!core.has_logged_samples());
}

/// Run-hour counters reach the outbox database's `run_hours` table at shutdown: with the
/// last checkpoint, or on their own when checkpoints are off (then also every minute).
#[tokio::test]
async fn run_hours_are_written_to_the_outbox_at_shutdown_with_or_without_checkpoints() {
    for interval in [Duration::ZERO, Duration::from_secs(60)] {
        run_hours_reach_the_outbox(interval).await;
    }
}

async fn run_hours_reach_the_outbox(checkpoint_interval: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, thread) = Outbox::open(&OutboxConfig {
        path: dir.path().join("outbox.db"),
        ..OutboxConfig::default()
    })
    .unwrap();
    let rules = "rules:\n  - name: hours\n    select: { metric: current }\n    detect: { runtime: { running_above: 1, hours: 100 } }\n    alert: {}\n";
    let pipeline = Pipeline {
        engine: Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap()),
        outbox: outbox.clone(),
        topics: lane_topics("weir", "gw"),
        idle_close: Duration::from_secs(2),
        checkpoint_interval,
        clock_guard: ClockGuard::default(),
        actions: crate::daemon::actions::Actions::disabled(),
        counters: Arc::new(PipelineCounters::default()),
        watch: None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(pipeline.run(rx, reload_rx));
    let t0 = weir_drivers::now_us() - 10 * S;
    let readings = (0..4)
        .map(|k| reading("pump-1", "current", t0 + k * S, 5.0))
        .collect();
    tx.send(Delivery {
        readings,
        ack: None,
    })
    .await
    .unwrap();
    drop(tx);
    task.await.unwrap().unwrap();
    let stored = outbox.run_hours().await.unwrap();
    assert_eq!(stored.len(), 1, "{checkpoint_interval:?}: {stored:?}");
    assert_eq!(
        (stored[0].rule.as_str(), stored[0].run_us),
        ("hours", 3 * S)
    );
    drop(outbox);
    thread.join().unwrap();
}
