//! Guarantee 1 across an uplink outage: every alert committed while the cloud broker is down
//! arrives after it comes back, none missing, in order within the lane.
//!
//! Race-freedom: the cloud broker is *persistent*, so the collector's session (subscription and
//! queue) survives the restart. Whether the agent or the collector reconnects first, whatever the
//! agent publishes is queued for the collector. Duplicates are legal (at-least-once) and removed
//! by id after the fact.

use std::time::Duration;

use anyhow::{Result, anyhow};
use weir_tests::{Mosquitto, Publisher};

use crate::common::{
    Running, assert_envelope, distinct_alerts, mean_above_rule, publish_series, start_with_cloud,
};

const GW: &str = "gw-b";
/// Each phase holds at least one whole 1 s window, so each phase flips the alert exactly once,
/// whatever the mixed window at a phase boundary averages to.
const PHASE: Duration = Duration::from_secs(2);
const PHASES: u32 = 8;
const OUTAGE: Duration = Duration::from_secs(10);

#[test]
fn alerts_raised_while_the_uplink_broker_is_down_all_arrive_in_order() -> Result<()> {
    // Every part is bound: dropping one would stop a broker or delete the agent's files.
    let Running {
        dir: _dir,
        devices,
        mut cloud,
        collector,
        agent,
    } = start_with_cloud(
        "uplink-outage",
        GW,
        Mosquitto::builder().persistent(true).start()?,
        "toggle",
        &mean_above_rule("toggle", "pump-1", "temperature", 50.0, "warning"),
    )?;

    // Alternating high (100) and low (0) phases: raised, cleared, raised, ... one per phase.
    let mut publisher = Publisher::connect(devices.port())?;
    let device = std::thread::spawn(move || {
        publish_series(
            &mut publisher,
            "plant/pump-1/temperature",
            Duration::from_millis(100),
            PHASE * PHASES,
            |t| {
                if (t.as_millis() / PHASE.as_millis()).is_multiple_of(2) {
                    100.0
                } else {
                    0.0
                }
            },
        )
    });

    collector
        .wait_for(
            "the first alert, before the outage",
            Duration::from_secs(10),
            |m| !distinct_alerts(m).is_empty(),
        )
        .map_err(|e| agent.explain(e))?;
    cloud.stop()?;
    // The fault itself lasts a fixed time; nothing here waits for readiness.
    std::thread::sleep(OUTAGE);
    cloud.start_again()?;
    device
        .join()
        .map_err(|_| anyhow!("the device thread panicked"))??;

    let expected = PHASES as usize;
    let messages = collector
        .wait_for(
            &format!("{expected} distinct alerts"),
            Duration::from_secs(30),
            |m| distinct_alerts(m).len() >= expected,
        )
        .map_err(|e| agent.explain(e))?;
    let alerts = distinct_alerts(&messages);
    let shown: Vec<String> = alerts.iter().map(|a| a.summary()).collect();
    assert_eq!(alerts.len(), expected, "{shown:#?}");
    for (i, alert) in alerts.iter().enumerate() {
        assert_envelope(alert, GW, "alerts");
        assert_eq!(alert.str("rule"), Some("toggle"), "{shown:#?}");
        let state = if i % 2 == 0 { "raised" } else { "cleared" };
        assert_eq!(alert.str("state"), Some(state), "alert #{i}: {shown:#?}");
    }
    // In order within the lane: first arrivals have increasing seq and window-end ts ...
    let seqs: Vec<u64> = alerts.iter().filter_map(|a| a.u64("seq")).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq out of order: {seqs:?}"
    );
    let ts: Vec<u64> = alerts.iter().filter_map(|a| a.u64("ts")).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "ts out of order: {ts:?}"
    );
    // ... and no hole: only this rule writes to the outbox, so its seqs are contiguous.
    assert_eq!(
        seqs[seqs.len() - 1] - seqs[0] + 1,
        seqs.len() as u64,
        "missing seq: {seqs:?}"
    );
    Ok(())
}

/// A long outage with a small bound: the outbox overflows while the cloud broker is down.
/// The bound holds at every scrape, `drop_oldest` evicts aggregates and keeps every alert,
/// committed = stored + evicted at every consistent scrape, each eviction is logged at
/// ERROR, and once the broker is back exactly what was stored arrives: alerts first, then
/// aggregates, each lane in seq order.
#[test]
fn an_overflowing_outage_keeps_the_bound_evicts_aggregates_first_and_drains_in_lane_order()
-> Result<()> {
    use std::collections::BTreeSet;
    use weir_tests::{Agent, Collector, TestDir, distinct_records, free_port, wait_until};

    use crate::observability::{get, sample};

    const GW: &str = "gw-overflow";
    const MAX_BYTES: f64 = 65536.0;
    let dir = TestDir::new("outage-overflow")?;
    let mut cloud = Mosquitto::builder().persistent(true).start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    cloud.stop()?;
    let devices = Mosquitto::start()?;
    // A flood of aggregates (count windows of 2 samples, 3 series, 10 ms ticks: ~150
    // records/s, ~35 KB/s) and a few alerts (pump-1's 200 ms windows, rising or not).
    dir.write(
        "rules.yaml",
        "rules:\n\
         \x20 - name: flood\n\
         \x20   window: { count: 2 }\n\
         \x20   aggregates: [mean, max]\n\
         \x20 - name: rising\n\
         \x20   select: { device: pump-1, metric: temperature }\n\
         \x20   window: { count: 20 }\n\
         \x20   alert: { when: \"last > first\", severity: info }\n",
    )?;
    let metrics_port = free_port()?;
    let outbox = dir.path().join("outbox.db");
    let yaml = |sources: &str, metrics: u16| {
        format!(
            "gateway_id: {GW}\nrules: [rules.yaml]\nsources: [{sources}]\n\
             outbox: {{path: {:?}, max_bytes: 64KiB, overflow: drop_oldest}}\n\
             uplink: {{host: 127.0.0.1, port: {}, keep_alive: 5s}}\n\
             metrics: {{listen: \"127.0.0.1:{metrics}\"}}\n",
            outbox.display().to_string(),
            cloud.port()
        )
    };
    let mut agent = Agent::start(&dir, &yaml("{simulator: {interval: 10ms}}", metrics_port))?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(20))?;

    // Overflowing: the bound holds at every scrape until well past it.
    let scrape = |port: u16| -> Result<String> {
        let (code, body) = get(port, "/metrics")?;
        anyhow::ensure!(code == 200, "/metrics answered {code}");
        Ok(body)
    };
    let lanes = ["alerts", "predictions", "aggregates"];
    let total = |m: &str, family: &str| -> f64 {
        lanes
            .iter()
            .filter_map(|l| sample(m, &format!("{family}{{lane=\"{l}\"}}")))
            .sum()
    };
    wait_until(
        "600 evicted records and stored alerts",
        Duration::from_secs(60),
        || {
            let m = scrape(metrics_port)?;
            let bytes = total(&m, "weir_outbox_bytes");
            anyhow::ensure!(
                bytes <= MAX_BYTES,
                "bound broken: {bytes} bytes stored\n{m}"
            );
            let evicted = sample(&m, "weir_outbox_evicted_full_total").unwrap_or(0.0);
            let alerts = sample(&m, "weir_outbox_records{lane=\"alerts\"}").unwrap_or(0.0);
            Ok((evicted >= 600.0 && alerts >= 3.0).then_some(()))
        },
    )
    .map_err(|e| agent.explain(e))?;
    // Conservation: nothing delivered yet, so committed = stored + evicted (retried until a
    // scrape falls between two commits).
    let m = wait_until("a consistent scrape", Duration::from_secs(20), || {
        let m = scrape(metrics_port)?;
        let committed = sample(&m, "weir_outbox_committed_total").unwrap_or(-1.0);
        let evicted = sample(&m, "weir_outbox_evicted_total").unwrap_or(-1.0);
        let stored = total(&m, "weir_outbox_records");
        Ok((committed == stored + evicted).then_some(m))
    })
    .map_err(|e| agent.explain(e))?;
    assert_eq!(
        sample(&m, "weir_outbox_evicted_full_total"),
        sample(&m, "weir_outbox_evicted_total"),
        "every eviction is by the overflow policy\n{m}"
    );
    assert_eq!(sample(&m, "weir_outbox_deleted_total"), Some(0.0), "{m}");
    agent.wait_for_line("an ERROR for the evictions", Duration::from_secs(5), |l| {
        l.contains("ERROR") && l.contains("evicted oldest") && l.contains("aggregates")
    })?;
    assert!(
        !agent
            .log_contents()
            .lines()
            .any(|l| l.contains("evicted oldest") && l.contains("alerts")),
        "no alert evicted while aggregates remain\n{}",
        agent.log_tail()
    );
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());

    // The same outbox under an agent that produces nothing (its source is a quiet broker):
    // what it holds now is exactly what must arrive.
    let quiet = format!(
        "{{mqtt: {{host: 127.0.0.1, port: {}, subscriptions: [{{topic: \"q/{{device}}/{{metric}}\"}}]}}}}",
        devices.port()
    );
    let metrics_port = free_port()?;
    let mut agent = Agent::start(&dir, &yaml(&quiet, metrics_port))?;
    agent.wait_for_log("pipeline ready", Duration::from_secs(20))?;
    let m = wait_until("metrics", Duration::from_secs(10), || {
        Ok(get(metrics_port, "/metrics").ok().map(|(_, b)| b))
    })?;
    let stored_alerts = sample(&m, "weir_outbox_records{lane=\"alerts\"}").unwrap_or(0.0) as usize;
    let stored = total(&m, "weir_outbox_records") as usize;
    assert!(total(&m, "weir_outbox_bytes") <= MAX_BYTES, "{m}");

    cloud.start_again()?;
    let messages = collector
        .wait_for(
            &format!("{stored} distinct records"),
            Duration::from_secs(60),
            |m| distinct_records(m).len() >= stored,
        )
        .map_err(|e| agent.explain(e))?;
    let records = distinct_records(&messages);
    assert_eq!(records.len(), stored, "exactly what was stored arrives");
    // Lane order: every alert before the first aggregate, seq increasing within each lane.
    let kinds: Vec<&str> = records.iter().filter_map(|r| r.str("kind")).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "alert").count(),
        stored_alerts,
        "every stored alert arrives"
    );
    assert!(
        kinds.iter().take(stored_alerts).all(|k| *k == "alert"),
        "alerts drain first: {kinds:?}"
    );
    for lane in ["alerts", "aggregates"] {
        let seqs: Vec<u64> = records
            .iter()
            .filter(|r| r.topic.ends_with(lane))
            .filter_map(|r| r.u64("seq"))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{lane} out of order: {seqs:?}"
        );
    }
    // Oldest aggregates went first: some alert is older than every aggregate that survived.
    let min_alert = records
        .iter()
        .filter(|r| r.topic.ends_with("alerts"))
        .filter_map(|r| r.u64("seq"))
        .min();
    let min_aggregate = records
        .iter()
        .filter(|r| r.topic.ends_with("aggregates"))
        .filter_map(|r| r.u64("seq"))
        .min();
    assert!(
        min_alert < min_aggregate,
        "alerts {min_alert:?}, aggregates {min_aggregate:?}"
    );
    let distinct: BTreeSet<&str> = records.iter().filter_map(|r| r.id()).collect();
    assert_eq!(distinct.len(), stored);
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    Ok(())
}
