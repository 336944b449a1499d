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
