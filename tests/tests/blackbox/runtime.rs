//! Run-hour counters survive a restart: the second run's alert needs the first run's hours
//! (kept in the engine's checkpoint, and in `runtime.json` beside the outbox).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use weir_tests::{Agent, Mosquitto, Publisher};

use crate::common::{PLANT_FILTER, STARTUP, start_with_cloud};

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
    let saved = std::fs::read_to_string(run.dir.path().join("runtime.json"))
        .context("runtime.json after a clean stop")?;
    assert!(saved.contains("\"run_us\": 2000000"), "{saved}");
    assert!(
        !run.collector
            .messages()
            .iter()
            .any(|m| m.str("kind") == Some("alert")),
        "no alert before the threshold"
    );

    let config = std::fs::read_to_string(run.agent.config_path())?;
    let mut agent = Agent::start(&run.dir, &config)?;
    // The engine's checkpoint (written at the clean stop) holds the counters; the
    // run-hours file is read only for series the checkpoint lacks.
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
