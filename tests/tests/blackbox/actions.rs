//! `alert.local_topic`: an alert also reaches the gateway's own broker, for local actions.

use std::time::Duration;

use anyhow::{Context, Result};
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP, publish_series};

const RULE: &str = r#"rules:
  - name: hot
    select: { device: "pump-*", metric: temp }
    window: { tumbling: 1s }
    alert:
      when: "max > 80"
      severity: critical
      local_topic: "actions/{device}/{rule}"
"#;

#[test]
fn alerts_with_a_local_topic_are_published_on_the_local_broker() -> Result<()> {
    let dir = TestDir::new("actions")?;
    let devices = Mosquitto::start()?;
    let local = Collector::start(devices.port(), "actions/#")?;
    dir.write("rules/hot.yaml", RULE)?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: "gw-act",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml()
        + &format!("actions: {{ host: 127.0.0.1, port: {} }}\n", devices.port());
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("actions broker connected", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    publish_series(
        &mut publisher,
        "plant/pump-1/temp",
        Duration::from_millis(100),
        Duration::from_secs(3),
        |_| 95.0,
    )?;
    let got = local
        .wait_for("the alert on the local broker", STARTUP, |m| !m.is_empty())
        .map_err(|e| agent.explain(e))?;
    let alert = got.first().context("a message")?;
    assert_eq!(alert.topic, "actions/pump-1/hot", "{}", alert.summary());
    assert_eq!(alert.str("kind"), Some("alert"));
    assert_eq!(alert.str("state"), Some("raised"));
    assert_eq!(alert.str("severity"), Some("critical"));
    agent.assert_running()?;
    Ok(())
}

/// Regression for issue 15 item 4: a device-chosen metric name with `/` used to add topic
/// levels to the local action (`actions/dev1/a/b/../c/x`).
#[test]
fn a_device_chosen_name_never_adds_topic_levels_to_an_action() -> Result<()> {
    let dir = TestDir::new("actions_injection")?;
    let devices = Mosquitto::start()?;
    let local = Collector::start(devices.port(), "actions/#")?;
    dir.write(
        "rules/any.yaml",
        r#"rules:
  - name: high
    select: { device: "dev*", metric: "*" }
    window: { tumbling: 1s }
    alert:
      when: "max > 1000"
      severity: critical
      local_topic: "actions/{device}/{metric}/x"
"#,
    )?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: "gw-inj",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/any.yaml"],
        outbox: &outbox,
        extra_topics: &["devices/{device}/state"],
    }
    .yaml()
        + &format!("actions: {{ host: 127.0.0.1, port: {} }}\n", devices.port());
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("actions broker connected", STARTUP)?;
    devices
        .wait_for_subscription("devices/+/state", STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    // The injected name, then a well-behaved one on the same rule: proof that the rule fired
    // and actions still flow.
    for _ in 0..30 {
        publisher.publish("devices/dev1/state", r#"{"a/b/../c": 5000, "c#": 5000}"#)?;
        publisher.publish("devices/dev2/state", r#"{"temp": 5000}"#)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    local
        .wait_for("the clean alert on the local broker", STARTUP, |m| {
            m.iter().any(|m| m.topic == "actions/dev2/temp/x")
        })
        .map_err(|e| agent.explain(e))?;
    agent.wait_for_log("local alert action not published", STARTUP)?;
    for m in local.messages() {
        assert_eq!(
            m.topic.split('/').count(),
            4,
            "an action on a topic with extra levels: {}",
            m.summary()
        );
    }
    agent.assert_running()?;
    Ok(())
}

/// A rule with a local topic but no `actions:` broker in the config: `weir check` passes and
/// warns, naming the rule; with a broker configured it does not warn.
#[test]
fn check_warns_about_local_topics_without_an_actions_broker() -> Result<()> {
    let dir = weir_tests::TestDir::new("check-actions")?;
    dir.write(
        "rules.yaml",
        "rules:\n  - name: hot-local\n    window: { tumbling: 1s }\n    aggregates: [max]\n    alert: { when: \"max > 1\", local_topic: \"actions/{device}\" }\n",
    )?;
    let base =
        "gateway_id: gw-a\nrules: [rules.yaml]\nsources: [{simulator: {}}]\noutbox: {path: o.db}\n";
    for (name, extra, warns) in [
        ("without.yaml", "", true),
        (
            "with.yaml",
            "actions: {host: 127.0.0.1, port: 1883}\n",
            false,
        ),
    ] {
        let config = dir.write(name, &format!("{base}{extra}"))?;
        let out = weir_tests::weir_command()?
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        assert_eq!(
            stderr.contains("warning: rule(s) `hot-local` publish local actions"),
            warns,
            "{name}: {stderr}"
        );
    }
    Ok(())
}
