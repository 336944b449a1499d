//! A device with a dead clock: its timestamps must not drag its series' windows into the
//! year 2000 (which would close them at once and make every correct sample after them late).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use weir_tests::{Mosquitto, Publisher};

use crate::common::{STARTUP, start_with_cloud};

const RULE: &str = "rules:\n  - name: clk\n    select: { device: rtc, metric: temp }\n    window: { tumbling: 1s }\n    aggregates: [count]\n";

#[test]
fn timestamps_far_off_the_gateway_clock_are_restamped_and_counted() -> Result<()> {
    let mut run = start_with_cloud("clock", "gw-clock", Mosquitto::start()?, "clk", RULE)?;
    let mut publisher = Publisher::connect(run.devices.port())?;
    let y2k_ms = 946_684_800_000u64;
    for k in 0..3 {
        publisher.publish(
            "plant/rtc/temp",
            format!("{{\"value\": 1, \"ts\": {}}}", y2k_ms + k),
        )?;
    }
    let now_us = |offset: Duration| -> Result<u64> {
        Ok(u64::try_from(
            (SystemTime::now().duration_since(UNIX_EPOCH)? - offset).as_micros(),
        )?)
    };
    let before = now_us(Duration::from_secs(60))?;
    let messages = run
        .collector
        .wait_for("a window of the restamped samples", STARTUP, |m| {
            m.iter().any(|m| m.str("kind") == Some("window"))
        })
        .map_err(|e| run.agent.explain(e))?;
    for m in messages.iter().filter(|m| m.str("kind") == Some("window")) {
        let start = m.u64("start").unwrap_or(0);
        assert!(
            start >= before,
            "a window in the device's past: {}",
            m.summary()
        );
    }
    run.agent
        .wait_for_log("device clock far off the gateway's", STARTUP)
        .map_err(|e| run.agent.explain(e))?;
    run.agent.assert_running()?;
    Ok(())
}
