//! Run-hour counters survive a restart and a `kill -9`: the second run's alert needs the
//! first run's hours (kept in the outbox database with the engine's checkpoint; the old
//! `runtime.json` beside the outbox is imported once and no longer written).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP, start_with_cloud};

/// Maintenance due after 3.6 s of running.
const RULE: &str = "rules:\n  - name: pump-hours\n    select: { device: pump-1, metric: current }\n    detect: { runtime: { running_above: 1, hours: 0.001 } }\n    alert: { severity: info }\n";

/// Publishes three samples a second apart from now, or from just after `after` (ms) if that
/// is later (a device's clock does not run backwards; a restored engine takes a sample at or
/// before its newest for a redelivery). Returns the last timestamp.
fn run_for_two_seconds(publisher: &mut Publisher, after: u64) -> Result<u64> {
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let start = now_ms.max(after + 1000);
    for k in 0..=2 {
        publisher.publish(
            "plant/pump-1/current",
            format!("{{\"value\": 5, \"ts\": {}}}", start + k * 1000),
        )?;
    }
    Ok(start + 2000)
}

#[test]
fn run_hours_survive_a_restart_and_reach_the_maintenance_threshold() -> Result<()> {
    let mut run = start_with_cloud("runtime", "gw-rt", Mosquitto::start()?, "rt", RULE)?;
    let mut publisher = Publisher::connect(run.devices.port())?;
    let last = run_for_two_seconds(&mut publisher, 0)?;
    // Two seconds of running are below the threshold; the clean stop saves them.
    std::thread::sleep(Duration::from_secs(1));
    let status = run.agent.terminate(Duration::from_secs(15))?;
    assert!(status.success(), "exit {status}");
    assert!(
        !run.dir.path().join("runtime.json").exists(),
        "run hours are no longer written to a file"
    );
    assert!(
        !run.collector
            .messages()
            .iter()
            .any(|m| m.str("kind") == Some("alert")),
        "no alert before the threshold"
    );

    let config = std::fs::read_to_string(run.agent.config_path())?;
    let mut agent = Agent::start(&run.dir, &config)?;
    // The engine's checkpoint (written at the clean stop) holds the counters.
    agent.wait_for_log("engine state restored from its checkpoint", STARTUP)?;
    run.devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    run_for_two_seconds(&mut publisher, last)?;
    let messages = run
        .collector
        .wait_for("the maintenance alert", STARTUP, |m| {
            m.iter().any(|m| m.str("kind") == Some("alert"))
        })
        .map_err(|e| agent.explain(e))?;
    let alert = messages
        .iter()
        .find(|m| m.str("kind") == Some("alert"))
        .context("alert")?;
    assert_eq!(alert.str("state"), Some("raised"), "{}", alert.summary());
    // 4 s of running in all, in hours.
    let hours = alert.f64("score").context("score")?;
    assert!((hours - 4.0 / 3600.0).abs() < 1e-9, "{}", alert.summary());
    agent.terminate(Duration::from_secs(15))?;
    Ok(())
}

/// The maintenance rule, and a record per sample: its arrival at the cloud proves the
/// sample's input was committed (in the same transaction).
const RULES_WITH_RECORDS: &str = "rules:\n  - name: pump-hours\n    select: { device: pump-1, metric: current }\n    detect: { runtime: { running_above: 1, hours: 0.001 } }\n    alert: { severity: info }\n  - name: pump-last\n    select: { device: pump-1, metric: current }\n    window: { count: 1 }\n    aggregates: [last]\n";

fn records_of(m: &[weir_tests::Message], rule: &str) -> usize {
    m.iter().filter(|m| m.str("rule") == Some(rule)).count()
}

#[test]
fn an_old_run_hours_file_is_imported_once_and_the_hours_survive_a_kill_9_without_it() -> Result<()>
{
    let dir = TestDir::new("runtime-import")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    dir.write("rules/hours.yaml", RULES_WITH_RECORDS)?;
    // What an agent before issue 18 left: 1.5 s of running.
    dir.write(
        "runtime.json",
        r#"[{"rule": "pump-hours", "device": "pump-1", "metric": "current", "run_us": 1500000, "starts": 1}]"#,
    )?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: "gw-rt-import",
        devices_port: devices.port(),
        cloud_port: Some(cloud.port()),
        rules: &["rules/hours.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("old run-hours file imported", STARTUP)?;
    assert!(!dir.path().join("runtime.json").exists());
    assert!(dir.path().join("runtime.json.imported").exists());
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    // 1.5 s imported + 2 s: below the 3.6 s threshold.
    let last = run_for_two_seconds(&mut publisher, 0)?;
    collector
        .wait_for("the three samples committed", STARTUP, |m| {
            records_of(m, "pump-last") >= 3
        })
        .map_err(|e| agent.explain(e))?;
    agent.kill9()?;
    assert!(!dir.path().join("runtime.json").exists(), "no file written");
    assert_eq!(records_of(&collector.messages(), "pump-hours"), 0);

    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("engine state rebuilt", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    run_for_two_seconds(&mut publisher, last)?;
    let messages = collector
        .wait_for("the maintenance alert", STARTUP, |m| {
            records_of(m, "pump-hours") > 0
        })
        .map_err(|e| agent.explain(e))?;
    let alert = messages
        .iter()
        .find(|m| m.str("rule") == Some("pump-hours"))
        .context("alert")?;
    // Raised at the first sample over 3.6 s: 1.5 s imported once + 2 s before the kill + 1 s
    // after it (the first sample after a restart starts a run), in hours. Without the import
    // it would be 4 s, imported twice 5 s, and without the hours before the kill no alert.
    let hours = alert.f64("score").context("score")?;
    assert!((hours - 4.5 / 3600.0).abs() < 1e-9, "{}", alert.summary());
    assert!(
        !agent.log_contents().contains("old run-hours file imported"),
        "imported once"
    );
    assert!(!dir.path().join("runtime.json").exists());
    agent.terminate(Duration::from_secs(15))?;
    Ok(())
}
