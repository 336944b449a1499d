//! Guarantee 4: bad input gets a clear error and the rest keeps running — malformed payloads
//! are logged with their topic, a bad rule file is rejected with `file:line:col` while the good
//! file runs, and `weir check` reports the same diagnostic with exit code 2.

use std::time::Duration;

use anyhow::Result;
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir, weir_command};

use crate::common::{
    AgentConfig, PLANT_FILTER, STARTUP, assert_envelope, distinct_alerts, mean_above_rule,
    publish_series,
};

const GW: &str = "gw-d";

/// Valid YAML, invalid rule: `severity` on line 7 is not a severity. If this rule were loaded
/// anyway, 95 °C would fire it, which the test would see at the cloud broker.
const BAD_RULE: &str = "\
rules:
  - name: broken
    select: { device: \"pump-*\", metric: temperature }
    window: { tumbling: 1s }
    alert:
      when: \"mean > 10\"
      severity: catastrophic
";
const BAD_LINE: u64 = 7;

/// Whether `text` has a `<file>:<line>:<column>` diagnostic for `file` at `line`.
fn has_diagnostic(text: &str, file: &str, line: u64) -> bool {
    let needle = format!("{file}:{line}:");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

fn write_rules(dir: &TestDir) -> Result<()> {
    dir.write(
        "rules/good.yaml",
        &mean_above_rule("hot", "pump-*", "temperature", 80.0, "critical"),
    )?;
    dir.write("rules/bad.yaml", BAD_RULE)?;
    Ok(())
}

#[test]
fn bad_payloads_and_a_bad_rule_file_are_reported_and_the_agent_keeps_running() -> Result<()> {
    let dir = TestDir::new("bad-input")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    write_rules(&dir)?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: GW,
        devices_port: devices.port(),
        cloud_port: Some(cloud.port()),
        rules: &["rules/good.yaml", "rules/bad.yaml"],
        outbox: &outbox,
        // Without `{metric}` the payload is an object whose numeric fields are the metrics.
        extra_topics: &["sensors/{device}"],
    };
    let mut agent = Agent::start(&dir, &config.yaml())?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    agent.wait_for_log("rule file rejected", STARTUP)?;
    let log = agent.log_contents();
    assert!(
        has_diagnostic(&log, "bad.yaml", BAD_LINE),
        "no bad.yaml:{BAD_LINE}:<col>\n{}",
        agent.log_tail()
    );
    agent.wait_for_log("uplink connected", STARTUP)?;
    for filter in [PLANT_FILTER, "sensors/+"] {
        devices
            .wait_for_subscription(filter, STARTUP)
            .map_err(|e| agent.explain(e))?;
    }

    let huge = format!(r#"{{"value": 1, "pad": "{}"}}"#, "x".repeat(100_000));
    let bad: [(&str, String); 3] = [
        ("plant/pump-9/temperature", "not json{".to_owned()),
        (
            "sensors/pump-8",
            r#"{"status": "ok", "note": "no numbers here"}"#.to_owned(),
        ),
        // Well-formed, but over the default 64 KiB max_payload.
        ("plant/pump-7/temperature", huge),
    ];
    let mut publisher = Publisher::connect(devices.port())?;
    for (topic, payload) in &bad {
        publisher.publish(topic, payload.as_bytes())?;
    }
    for (topic, _) in &bad {
        agent.wait_for_line(
            &format!("a \"bad payload\" line naming {topic}"),
            Duration::from_secs(10),
            |line| line.contains("bad payload") && line.contains(topic),
        )?;
    }
    agent.assert_running()?;

    publish_series(
        &mut publisher,
        "plant/pump-1/temperature",
        Duration::from_millis(100),
        Duration::from_millis(2500),
        |_| 95.0,
    )?;
    let messages = collector
        .wait_for(
            "a raised alert from the good rule file",
            Duration::from_secs(15),
            |m| {
                distinct_alerts(m)
                    .iter()
                    .any(|a| a.str("rule") == Some("hot"))
            },
        )
        .map_err(|e| agent.explain(e))?;
    let alerts = distinct_alerts(&messages);
    let shown: Vec<String> = alerts.iter().map(|a| a.summary()).collect();
    let hot = alerts
        .iter()
        .find(|a| a.str("rule") == Some("hot"))
        .expect("waited for it");
    assert_envelope(hot, GW, "alerts");
    assert_eq!(hot.str("device"), Some("pump-1"), "{shown:#?}");
    assert_eq!(hot.str("state"), Some("raised"), "{shown:#?}");
    assert!(
        alerts.iter().all(|a| a.str("rule") != Some("broken")),
        "the rejected rule ran: {shown:#?}"
    );
    // None of the bad payloads may have become a reading that fires a rule.
    assert!(
        alerts.iter().all(|a| a.str("device") == Some("pump-1")),
        "{shown:#?}"
    );
    agent.assert_running()
}

#[test]
fn weir_check_exits_2_with_file_line_col_for_a_bad_rule_file_and_0_when_valid() -> Result<()> {
    let dir = TestDir::new("check")?;
    write_rules(&dir)?;
    let outbox = dir.path().join("outbox.db");
    let config = |rules: &[&str]| {
        AgentConfig {
            gateway: GW,
            devices_port: 1883,
            cloud_port: Some(1883),
            rules,
            outbox: &outbox,
            extra_topics: &[],
        }
        .yaml()
    };
    let bad = dir.write(
        "bad-config.yaml",
        &config(&["rules/good.yaml", "rules/bad.yaml"]),
    )?;
    let good = dir.write("good-config.yaml", &config(&["rules/good.yaml"]))?;

    let out = weir_command()?
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "status {}; stderr:\n{stderr}",
        out.status
    );
    assert!(
        has_diagnostic(&stderr, "bad.yaml", BAD_LINE),
        "no bad.yaml:{BAD_LINE}:<col> in:\n{stderr}"
    );

    let out = weir_command()?
        .arg("check")
        .arg("--config")
        .arg(&good)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status {}; stderr:\n{stderr}",
        out.status
    );
    Ok(())
}

#[test]
fn has_diagnostic_needs_file_line_and_a_column() {
    assert!(has_diagnostic(
        "rules/bad.yaml:7:17: unknown variant",
        "bad.yaml",
        7
    ));
    assert!(!has_diagnostic(
        "rules/bad.yaml:7: unknown variant",
        "bad.yaml",
        7
    ));
    assert!(!has_diagnostic("rules/bad.yaml:17:3: x", "bad.yaml", 7));
    assert!(!has_diagnostic("rules/good.yaml:7:3: x", "bad.yaml", 7));
}
