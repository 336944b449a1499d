//! The main path: device samples in, the expected alert out at the cloud broker.

use std::time::Duration;

use anyhow::Result;
use weir_tests::{Mosquitto, Publisher};

use crate::common::{
    Running, assert_envelope, distinct_alerts, mean_above_rule, publish_series, start_with_cloud,
};

const GW: &str = "gw-a";

#[test]
fn samples_above_threshold_raise_an_alert_at_the_cloud_broker() -> Result<()> {
    // Every part is bound: dropping one would stop a broker or delete the agent's files.
    let Running {
        dir: _dir,
        devices,
        cloud: _cloud,
        collector,
        mut agent,
    } = start_with_cloud(
        "end-to-end",
        GW,
        Mosquitto::start()?,
        "hot",
        &mean_above_rule("hot", "pump-*", "temperature", 80.0, "critical"),
    )?;

    // 2.5 s of 95 °C: at least one whole 1 s window with mean 95, closed by a later sample or
    // by the agent's processing-time advance once publishing stops.
    let mut publisher = Publisher::connect(devices.port())?;
    let topic = "plant/pump-1/temperature";
    publish_series(
        &mut publisher,
        topic,
        Duration::from_millis(100),
        Duration::from_millis(2500),
        |_| 95.0,
    )?;

    let messages = collector
        .wait_for("a raised alert for pump-1", Duration::from_secs(15), |m| {
            !distinct_alerts(m).is_empty()
        })
        .map_err(|e| agent.explain(e))?;
    let alerts = distinct_alerts(&messages);
    let alert = &alerts[0];
    assert_envelope(alert, GW, "alerts");
    assert_eq!(alert.str("rule"), Some("hot"), "{}", alert.summary());
    assert_eq!(alert.str("device"), Some("pump-1"), "{}", alert.summary());
    assert_eq!(
        alert.str("metric"),
        Some("temperature"),
        "{}",
        alert.summary()
    );
    assert_eq!(alert.str("state"), Some("raised"), "{}", alert.summary());
    assert_eq!(
        alert.str("severity"),
        Some("critical"),
        "{}",
        alert.summary()
    );
    assert_eq!(
        alert.str("condition"),
        Some("mean > 80"),
        "{}",
        alert.summary()
    );
    let value = alert.f64("value").unwrap_or(f64::NAN);
    assert!(
        (value - 95.0).abs() < 1e-9,
        "value {value}: {}",
        alert.summary()
    );
    assert!(
        alert.u64("ts").is_some_and(|ts| ts > 0),
        "{}",
        alert.summary()
    );
    // The condition held in every window: raised once, never re-raised.
    assert_eq!(
        alerts.len(),
        1,
        "{:#?}",
        alerts.iter().map(|a| a.summary()).collect::<Vec<_>>()
    );

    // A daemon under systemd must stop cleanly on SIGTERM.
    let status = agent.terminate(Duration::from_secs(10))?;
    assert!(
        status.success(),
        "exit on SIGTERM: {status}\n{}",
        agent.log_tail()
    );
    Ok(())
}
