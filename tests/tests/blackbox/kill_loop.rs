//! Guarantees 1–3 under repeated `kill -9`: while a publisher feeds the agent (QoS 1, manual
//! acks) and the cloud broker acknowledges its records, the agent is SIGKILLed at random
//! moments and restarted on the same outbox, `WEIR_KILLS` times (default 30).
//!
//! The input makes the expected events known: message `k` carries event time `base + k s` and
//! value `level(k)`, so with 1 s tumbling windows every message closes the window of the one
//! before it and one `window` record per `k` is expected. The engine's state is checkpointed
//! in the outbox and its input logged with the records, before the message is acknowledged
//! (guarantee 6), so the state check is exact:
//! - no window lost, and every 1 s window counts exactly its one sample (none counted twice);
//! - every 10-sample `count` window (state that spans many messages, so many kills) has the
//!   count and sum of exactly its ten samples;
//! - the CUSUM detector's alert transitions are exactly those of an uninterrupted replay of
//!   the same input through `weir_rules` (its sums and baseline survive every kill);
//! - no committed record lost: ids only ever jump forward (by 1,000,000 after an unclean stop)
//!   and within each run of ids there is no hole, i.e. every id the outbox handed out
//!   reached the cloud broker;
//! - duplicates (the same window delivered twice: events emitted after the last checkpoint
//!   and emitted again from the redelivered messages, or a record published but not yet
//!   deleted at the kill) are counted and reported, not failed.
//!
//! `scripts/kill-loop` runs it with `WEIR_KILLS=1000`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir, distinct_records};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP};

const GW: &str = "gw-kill";
const TOPIC: &str = "plant/dev-1/temperature";
const RULE: &str = "\
rules:
  - name: per-second
    select: { device: dev-1, metric: temperature }
    window: { tumbling: 1s }
    aggregates: [count]
  - name: tens
    select: { device: dev-1, metric: temperature }
    window: { count: 10 }
    aggregates: [count, sum]
  - name: drift
    select: { device: dev-1, metric: temperature }
    detect: { cusum: { baseline: 20 } }
    alert: {}
";

/// Message `k`'s value: a level that moves every 80 messages, with a little ripple.
fn level(k: u64) -> u64 {
    if (k / 80).is_multiple_of(2) {
        10 + k % 3
    } else {
        40 + k % 3
    }
}

/// `(ts µs, raised)` of each alert transition of `drift` in an uninterrupted replay of
/// messages `0..n`.
fn replay_alerts(base_ms: u64, n: u64) -> Result<BTreeSet<(u64, bool)>> {
    use weir_rules::{AlertState, Engine, EventKind, RuleSet, Sample};
    let mut engine = Engine::new(RuleSet::parse_str(RULE, "w.yaml")?);
    let series = engine.series("dev-1", "temperature")?;
    let mut out = Vec::new();
    for k in 0..n {
        let ts = i64::try_from((base_ms + k * 1000) * 1000)?;
        engine.push(
            Sample {
                series,
                ts,
                value: level(k) as f64,
            },
            &mut out,
        );
    }
    Ok(out
        .iter()
        .filter(|e| &*e.rule == "drift")
        .filter_map(|e| match e.kind {
            EventKind::Alert { state, .. } => {
                Some((u64::try_from(e.ts).ok()?, state == AlertState::Raised))
            }
            _ => None,
        })
        .collect())
}

/// A random number from a freshly keyed hasher: enough for kill timing, no dependency.
fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % n.max(1)
}

fn kills() -> u64 {
    std::env::var("WEIR_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

#[test]
fn kill_9_loop_loses_no_acknowledged_event_and_no_engine_state() -> Result<()> {
    let kills = kills();
    let dir = TestDir::new("kill-loop")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    dir.write("rules/w.yaml", RULE)?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: GW,
        devices_port: devices.port(),
        cloud_port: Some(cloud.port()),
        rules: &["rules/w.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml()
    // The feeder stamps one second per message, running hours ahead of the wall clock: a
    // synthetic timeline, so the clock guard must not restamp it. Checkpoints every 300 ms, so
    // kills land both between checkpoints (state = checkpoint + replayed input) and soon
    // after a start (state = input replayed across several runs).
    .replace(
        "engine: { idle_close: 5s }",
        "engine: { idle_close: 5s, checkpoint_interval: 300ms, clock_guard: { max_ahead: 3650d } }",
    );
    // Event time: whole seconds from now on, one second per message.
    let base_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64 / 1000 * 1000;

    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;

    // The publisher feeds the device broker throughout; the broker holds what the agent has
    // not acknowledged and redelivers it to the next agent (persistent session).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut publisher = Publisher::connect(devices.port())?;
    let feeder = std::thread::spawn({
        let (stop, sent) = (stop.clone(), sent.clone());
        move || -> Result<Publisher> {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ts = base_ms + k * 1000;
                let v = level(k);
                publisher.publish(TOPIC, format!(r#"{{"value": {v}, "ts": {ts}}}"#))?;
                k += 1;
                sent.store(k, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(publisher)
        }
    });

    let loop_start = Instant::now();
    let budget = Duration::from_secs(2 * kills.max(30));
    for i in 0..kills {
        if loop_start.elapsed() > budget {
            bail!("kill loop over its time budget after {i} kills");
        }
        // Sometimes during start-up, mostly while running.
        if random_below(5) > 0 {
            agent.wait_for_log("pipeline ready", STARTUP)?;
        }
        std::thread::sleep(Duration::from_millis(random_below(600)));
        agent.kill9()?;
        agent = Agent::start(&dir, &config)?;
    }
    stop.store(true, Ordering::Relaxed);
    let mut publisher = match feeder.join() {
        Ok(publisher) => publisher?,
        Err(_) => bail!("the publisher thread panicked"),
    };
    agent.wait_for_log("pipeline ready", STARTUP)?;
    // Two messages the final agent surely sees together: window `last` must arrive, and
    // since the broker delivers in order and the lane is FIFO, everything before it has.
    let mut last = sent.load(Ordering::Relaxed);
    for _ in 0..2 {
        publisher.publish(
            TOPIC,
            format!(
                r#"{{"value": {}, "ts": {}}}"#,
                level(last),
                base_ms + last * 1000
            ),
        )?;
        last += 1;
    }
    let final_window = last - 2;
    let window_of = |m: &weir_tests::Message| -> Option<u64> {
        let start_ms = m.u64("start")? / 1000;
        Some(start_ms.checked_sub(base_ms)? / 1000)
    };
    // The last whole count window closes on the same message or before, but its record may
    // follow window `final_window`'s in the lane: it is waited for too.
    let final_tens = (last / 10 - 1) * 10;
    let messages = collector
        .wait_for(
            &format!("window {final_window} and count window {final_tens}"),
            Duration::from_secs(60),
            |msgs| {
                let seen = |name: &str, start: u64| {
                    msgs.iter()
                        .any(|m| m.str("rule") == Some(name) && window_of(m) == Some(start))
                };
                seen("per-second", final_window) && seen("tens", final_tens)
            },
        )
        .map_err(|e| agent.explain(e))?;
    agent.assert_running()?;

    let records = distinct_records(&messages);
    let rule = |r: &weir_tests::Message, name: &str| r.str("rule") == Some(name);
    let value = |r: &weir_tests::Message, agg: &str| {
        r.field("values")
            .and_then(|v| v.get(agg))
            .and_then(serde_json::Value::as_f64)
    };
    let mut per_window: BTreeMap<u64, u64> = BTreeMap::new();
    let mut double_counted = Vec::new();
    for r in records.iter().filter(|r| rule(r, "per-second")) {
        let k = window_of(r).with_context(|| format!("not a window record: {}", r.summary()))?;
        *per_window.entry(k).or_default() += 1;
        if value(r, "count") != Some(1.0) {
            double_counted.push(r.summary());
        }
    }
    // Count windows: window `j` holds messages 10j .. 10j+9 and starts at the first one.
    let mut tens_wrong = Vec::new();
    let mut tens = BTreeSet::new();
    for r in records.iter().filter(|r| rule(r, "tens")) {
        let first = window_of(r).with_context(|| format!("no start: {}", r.summary()))?;
        let want: u64 = (first..first + 10).map(level).sum();
        if first % 10 != 0
            || value(r, "count") != Some(10.0)
            || value(r, "sum") != Some(want as f64)
        {
            tens_wrong.push(r.summary());
        }
        tens.insert(first / 10);
    }
    let tens_missing: Vec<u64> = (0..last / 10).filter(|j| !tens.contains(j)).collect();
    // Detector output against an uninterrupted replay of every message sent.
    let expected_alerts = replay_alerts(base_ms, last)?;
    let alerts: BTreeSet<(u64, bool)> = records
        .iter()
        .filter(|r| rule(r, "drift"))
        .filter_map(|r| Some((r.u64("ts")?, r.str("state")? == "raised")))
        .collect();
    let expected: BTreeSet<u64> = (0..=final_window).collect();
    let missing: Vec<u64> = expected
        .iter()
        .filter(|k| !per_window.contains_key(k))
        .copied()
        .collect();
    let duplicates: u64 = per_window.values().map(|n| n - 1).sum();
    let redelivered = messages.len() - records.len();
    eprintln!(
        "kill loop: {kills} kills in {:?}, {} messages, {} windows delivered, {} lost, \
         {} double-counted, {} count windows ({} wrong, {} missing), {} detector transitions \
         ({} expected), {duplicates} duplicate windows, {redelivered} duplicate record \
         deliveries",
        loop_start.elapsed(),
        last,
        per_window.len(),
        missing.len(),
        double_counted.len(),
        tens.len(),
        tens_wrong.len(),
        tens_missing.len(),
        alerts.len(),
        expected_alerts.len(),
    );
    assert!(missing.is_empty(), "windows lost: {missing:?}");
    assert!(
        double_counted.is_empty(),
        "samples counted twice: {double_counted:?}"
    );
    assert!(tens_wrong.is_empty(), "count windows wrong: {tens_wrong:?}");
    assert!(
        tens_missing.is_empty(),
        "count windows lost: {tens_missing:?}"
    );
    assert!(
        !expected_alerts.is_empty(),
        "the input should make the detector fire"
    );
    assert_eq!(
        alerts, expected_alerts,
        "detector transitions differ from an uninterrupted replay"
    );

    // Every id the outbox handed out reached the broker: no hole inside a run of ids.
    let seqs: BTreeSet<u64> = records.iter().filter_map(|r| r.u64("seq")).collect();
    let seqs: Vec<u64> = seqs.into_iter().collect();
    for pair in seqs.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap == 1 || gap > 500_000,
            "committed records lost: ids {} .. {} missing",
            pair[0] + 1,
            pair[1] - 1
        );
    }
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    Ok(())
}
