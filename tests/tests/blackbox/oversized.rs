//! Messages larger than a source reads: one over `max_payload` is counted bad, acknowledged
//! and skipped (the next message is processed); one over `max_message`, which the MQTT client
//! cannot read at all and the broker redelivers on every reconnect, makes the source report
//! itself stalled in `/healthz`, `weir status` and `weir_source_stalled`.
//!
//! Regression for issue 15 item 1: a 1.1 MB QoS 1 message used to drop the connection on every
//! delivery, so nothing after it was ever processed while `/healthz` said ok.

use anyhow::{Context, Result, bail};
use std::process::Command;
use weir_tests::{Agent, Mosquitto, Publisher, TestDir, free_port, wait_until, weir_command};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP, mean_above_rule};
use crate::observability::{get, sample};

/// Publishes `bytes` of `x` at `qos` with Debian's `mosquitto_pub`, as a device would.
fn publish_big(dir: &TestDir, port: u16, topic: &str, bytes: usize, qos: u8) -> Result<()> {
    let file = dir.write("big.bin", &"x".repeat(bytes))?;
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            &qos.to_string(),
            "-t",
            topic,
        ])
        .arg("-f")
        .arg(&file)
        .status()
        .context("running mosquitto_pub (Debian's mosquitto-clients)")?;
    if !status.success() {
        bail!("mosquitto_pub failed: {status}");
    }
    Ok(())
}

/// An agent with one MQTT source on a fresh broker and metrics on a free port.
fn start(test: &str, source_extra: &str) -> Result<(TestDir, Mosquitto, Agent, u16)> {
    let dir = TestDir::new(test)?;
    let devices = Mosquitto::start()?;
    dir.write(
        "rules/hot.yaml",
        &mean_above_rule("hot", "pump-*", "temp", 80.0, "warning"),
    )?;
    let outbox = dir.path().join("outbox.db");
    let port = free_port()?;
    let config = AgentConfig {
        gateway: "gw-big",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml()
    .replace(
        "metrics: { listen: ~ }",
        &format!("metrics: {{ listen: \"127.0.0.1:{port}\" }}"),
    )
    .replace(
        "      subscriptions:\n",
        &format!("{source_extra}      subscriptions:\n"),
    );
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("metrics endpoint listening", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    Ok((dir, devices, agent, port))
}

fn metric(port: u16, series: &str) -> Result<f64> {
    let (_, body) = get(port, "/metrics")?;
    Ok(sample(&body, series).unwrap_or(0.0))
}

#[test]
fn oversized_messages_are_counted_bad_and_the_next_message_is_processed() -> Result<()> {
    let (dir, devices, mut agent, port) = start("oversized", "")?;
    // 1.1 MB: above the default max_payload (64 KiB) and the old 1 MiB client limit.
    publish_big(&dir, devices.port(), "plant/pump-1/temp", 1_100_000, 1)?;
    // At QoS 0 too: counted, not lost silently.
    publish_big(&dir, devices.port(), "plant/pump-1/temp", 1_100_000, 0)?;
    let mut publisher = Publisher::connect(devices.port())?;
    publisher.publish("plant/pump-1/temp", "{\"value\": 20}")?;
    wait_until("the message after the big one", STARTUP, || {
        agent.assert_running()?;
        let readings = metric(port, "weir_source_readings_total{source=\"mqtt\"}")?;
        Ok((readings >= 1.0).then_some(()))
    })
    .map_err(|e| agent.explain(e))?;
    assert_eq!(
        metric(port, "weir_source_oversized_total{source=\"mqtt\"}")?,
        2.0
    );
    assert_eq!(
        metric(port, "weir_source_decode_errors_total{source=\"mqtt\"}")?,
        2.0
    );
    assert_eq!(
        metric(port, "weir_source_connects_total{source=\"mqtt\"}")?,
        1.0,
        "the big message must not cost a reconnect"
    );
    assert_eq!(metric(port, "weir_source_stalled{source=\"mqtt\"}")?, 0.0);
    let (code, body) = get(port, "/healthz")?;
    assert_eq!(code, 200, "{body}");
    assert!(agent.log_contents().contains("bad payload"));
    Ok(())
}

#[test]
fn a_message_the_client_cannot_read_makes_the_source_report_itself_stalled() -> Result<()> {
    // max_message 2MiB: a 3 MB message cannot be read, and the broker redelivers it forever.
    let (dir, devices, mut agent, port) = start("stalled", "      max_message: 2MiB\n")?;
    publish_big(&dir, devices.port(), "plant/pump-1/temp", 3_000_000, 1)?;
    let health = wait_until("/healthz to report the stalled source", STARTUP, || {
        agent.assert_running()?;
        let (code, body) = get(port, "/healthz")?;
        Ok((code == 503).then_some(body))
    })
    .map_err(|e| agent.explain(e))?;
    assert!(health.contains("stalled sources: mqtt"), "{health}");
    assert_eq!(metric(port, "weir_source_stalled{source=\"mqtt\"}")?, 1.0);
    assert!(metric(port, "weir_source_oversized_total{source=\"mqtt\"}")? >= 5.0);
    let out = weir_command()?
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("UNHEALTHY"), "{text}");
    assert!(text.contains("STALLED source(s): mqtt"), "{text}");
    let log = agent.log_contents();
    assert!(log.contains("larger than max_message"), "{log}");
    assert!(log.contains("mqtt source stalled"), "{log}");
    assert!(
        log.matches("larger than max_message").count() == 1,
        "the ERROR is logged once, not per redelivery"
    );
    // The backoff grows while connections fail on trial: no reconnect storm.
    let connects = metric(port, "weir_source_connects_total{source=\"mqtt\"}")?;
    assert!(connects < 30.0, "a reconnect storm: {connects} connects");
    Ok(())
}
