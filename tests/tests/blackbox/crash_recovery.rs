//! Guarantee 2: `kill -9` loses no committed record. The agent buffers with no uplink broker,
//! is killed while the outbox is not empty, and a restarted agent on the same outbox delivers
//! everything that was committed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir, distinct_records, free_port};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP, assert_envelope, publish_series};

const GW: &str = "gw-c";

const RULE: &str = "\
rules:
  - name: hot
    select: { device: \"pump-*\", metric: temperature }
    window: { tumbling: 1s }
    aggregates: [mean]
    alert:
      when: \"mean > 80\"
      severity: critical
";

/// `pending=N` from an outbox status line.
fn pending(line: &str) -> Option<u64> {
    if !line.contains("outbox") {
        return None;
    }
    let rest = &line[line.find("pending=")? + "pending=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
fn records_committed_before_kill_9_are_delivered_after_restart() -> Result<()> {
    let dir = TestDir::new("kill-9")?;
    let devices = Mosquitto::start()?;
    // Known to the agent from the start, but no broker listens there until after the crash.
    let cloud_port = free_port()?;
    dir.write("rules/hot.yaml", RULE)?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: GW,
        devices_port: devices.port(),
        cloud_port: Some(cloud_port),
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;

    // 3 s of 95 °C: one raised alert plus a window record per closed 1 s window.
    let mut publisher = Publisher::connect(devices.port())?;
    publish_series(
        &mut publisher,
        "plant/pump-1/temperature",
        Duration::from_millis(100),
        Duration::from_secs(3),
        |_| 95.0,
    )?;

    // The periodic status line (every 5 s) proves the records are committed, not just queued.
    let committed = agent.wait_for_latest_line(
        "an outbox status line with pending >= 3",
        Duration::from_secs(20),
        |line| pending(line).filter(|&n| n >= 3),
    )?;
    agent.kill9()?;

    let _cloud = Mosquitto::builder().port(cloud_port).start()?;
    let collector = Collector::start(cloud_port, "weir/#")?;
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("uplink connected", STARTUP)?;

    let messages = collector
        .wait_for(
            &format!("at least {committed} distinct records"),
            Duration::from_secs(20),
            |m| distinct_records(m).len() as u64 >= committed,
        )
        .map_err(|e| agent.explain(e))?;
    let records = distinct_records(&messages);
    let shown: Vec<String> = records.iter().map(|r| r.summary()).collect();

    let alerts: Vec<_> = records
        .iter()
        .filter(|r| r.str("kind") == Some("alert"))
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a.str("rule") == Some("hot") && a.str("state") == Some("raised")),
        "the raised alert was lost: {shown:#?}"
    );
    let mut by_lane: HashMap<String, Vec<u64>> = HashMap::new();
    for record in &records {
        let lane = match record.str("kind") {
            Some("alert") => "alerts",
            _ => "aggregates",
        };
        assert_envelope(record, GW, lane);
        if lane == "aggregates" {
            assert_eq!(record.str("kind"), Some("window"), "{}", record.summary());
        }
        by_lane
            .entry(lane.to_owned())
            .or_default()
            .extend(record.u64("seq"));
    }
    assert!(
        by_lane.contains_key("aggregates"),
        "no window records: {shown:#?}"
    );
    for (lane, seqs) in &by_lane {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{lane} out of order: {seqs:?}"
        );
    }
    // Nothing was ever acknowledged before the crash, so the seqs have no hole.
    let mut seqs: Vec<u64> = by_lane.into_values().flatten().collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs[seqs.len() - 1] - seqs[0] + 1,
        seqs.len() as u64,
        "missing seq: {seqs:?}"
    );
    Ok(())
}

#[test]
fn pending_is_read_from_a_tracing_status_line() {
    let line = "2026-01-01T00:00:05.000Z  INFO weir_agent::outbox: outbox pending=42 bytes=9001";
    assert_eq!(pending(line), Some(42));
    assert_eq!(pending("INFO weir: pipeline ready"), None);
    assert_eq!(pending("INFO outbox pending= bytes=0"), None);
}
