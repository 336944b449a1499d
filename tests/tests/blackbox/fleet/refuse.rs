//! Unsigned, wrongly signed and replayed bundles are refused, counted in the status, and
//! never change what runs.

use anyhow::Result;
use weir_tests::{Mosquitto, Publisher, TestDir, weir_command};

use super::{
    Gateway, bundle_dir, operator_key, outcome, push, refused, statuses, text, wait_status,
};

const RULE: &str = "rules:
  - name: ticks
    window: { tumbling: 1s }
    aggregates: [count]
";

#[test]
fn fleet_refuses_and_counts_unsigned_wrongly_signed_and_replayed_bundles() -> Result<()> {
    let dir = TestDir::new("fleet-refuse")?;
    let key = operator_key(&dir)?;
    let cloud = Mosquitto::start()?;
    let status = statuses(cloud.port())?;
    dir.write("rules/ticks.yaml", RULE)?;
    let gateway = Gateway {
        id: "gw-refuse",
        cloud: cloud.port(),
        devices: None,
        rules: &["rules/ticks.yaml"],
        labels: "",
        engine: "idle_close: 1s",
    };
    let metrics = weir_tests::free_port()?;
    let yaml = gateway.yaml(&dir.path().join("trusted")).replace(
        "metrics: { listen: ~ }",
        &format!("metrics: {{ listen: \"127.0.0.1:{metrics}\" }}"),
    );
    let mut agent = weir_tests::Agent::start(&dir, &yaml)?;
    agent.wait_for_log("uplink connected", crate::common::STARTUP)?;
    let from = bundle_dir(&dir, "b", &[("ticks.yaml", RULE)])?;
    // Version 1 written to a file (not published), for the replay below.
    let old = dir.path().join("v1.json");
    let out = weir_command()?
        .arg("push")
        .arg(&from)
        .arg("--key")
        .arg(&key)
        .args(["--gateway", "gw-refuse", "--version", "1", "--out"])
        .arg(&old)
        .output()?;
    assert!(out.status.success(), "{}", text(&out));
    let out = push(&from, &key, cloud.port(), 2, &["--gateway", "gw-refuse"])?;
    assert!(out.status.success(), "{}\n{}", text(&out), agent.log_tail());
    wait_status(&status, "gw-refuse", "version 2 applied", |m| {
        outcome(m) == Some("applied")
    })?;

    let topic = "weir/fleet/gateway/gw-refuse";
    let mut publisher = Publisher::connect(cloud.port())?;
    // Replayed: a genuine, correctly signed older version.
    publisher.publish(topic, std::fs::read(&old)?)?;
    wait_status(&status, "gw-refuse", "the replay counted", |m| {
        refused(m, "replayed") == 1
    })?;

    let mut bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&old)?)?;
    bundle["version"] = 3.into();
    // Unsigned.
    let mut unsigned = bundle.clone();
    unsigned["signature"] = serde_json::Value::Null;
    publisher.publish(topic, serde_json::to_vec(&unsigned)?)?;
    wait_status(&status, "gw-refuse", "the unsigned bundle counted", |m| {
        refused(m, "unsigned") == 1
    })?;
    // Wrongly signed: version 3 carrying version 1's signature.
    publisher.publish(topic, serde_json::to_vec(&bundle)?)?;
    wait_status(&status, "gw-refuse", "the bad signature counted", |m| {
        refused(m, "bad_signature") == 1
    })?;
    // Signed by a key of the same name that the gateway does not trust.
    let other = dir.path().join("intruder");
    let out = weir_command()?
        .args(["keygen", "--name", "ops", "--dir"])
        .arg(&other)
        .output()?;
    assert!(out.status.success(), "{}", text(&out));
    let out = push(
        &from,
        &other.join("ops.key"),
        cloud.port(),
        4,
        &["--gateway", "gw-refuse"],
    )?;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("gw-refuse: refused version 4"), "{said}");
    let last = wait_status(&status, "gw-refuse", "two bad signatures", |m| {
        refused(m, "bad_signature") == 2
    })?;
    assert_eq!(
        last.u64("version"),
        Some(2),
        "a refused bundle changed the version: {}",
        last.summary()
    );
    assert_eq!(
        (refused(&last, "unsigned"), refused(&last, "replayed")),
        (1, 1),
        "{}",
        last.summary()
    );
    let log = agent.log_contents();
    assert!(
        log.contains("fleet: bundle refused: unsigned bundle"),
        "{log}"
    );
    // The same counts on /metrics, in a valid exposition.
    let (_, body) = crate::observability::get(metrics, "/metrics")?;
    crate::observability::promtool_check(&body)?;
    for (series, want) in [
        ("weir_fleet_refused_total{reason=\"unsigned\"}", 1.0),
        ("weir_fleet_refused_total{reason=\"bad_signature\"}", 2.0),
        ("weir_fleet_refused_total{reason=\"replayed\"}", 1.0),
        ("weir_fleet_applied_total", 1.0),
        ("weir_fleet_version", 2.0),
    ] {
        assert_eq!(
            crate::observability::sample(&body, series),
            Some(want),
            "{series}\n{body}"
        );
    }
    agent.assert_running()?;
    Ok(())
}

#[test]
fn fleet_task_that_panics_stops_the_agent_loudly() -> Result<()> {
    let dir = TestDir::new("fleet-panic")?;
    operator_key(&dir)?;
    let cloud = Mosquitto::start()?;
    dir.write("rules/ticks.yaml", RULE)?;
    let gateway = Gateway {
        id: "gw-panic",
        cloud: cloud.port(),
        devices: None,
        rules: &["rules/ticks.yaml"],
        labels: "",
        engine: "idle_close: 1s",
    };
    let yaml = gateway.yaml(&dir.path().join("trusted"));
    let mut agent =
        weir_tests::Agent::start_with_env(&dir, &yaml, &[("WEIR_FAULT", "fleet".as_ref())])?;
    agent.wait_for_log("uplink connected", crate::common::STARTUP)?;
    let mut publisher = Publisher::connect(cloud.port())?;
    publisher.publish("weir/fleet/gateway/gw-panic", "{}")?;
    let status = weir_tests::wait_until("the agent's exit", crate::common::STARTUP, || {
        agent.exit_status()
    })?;
    assert!(!status.success(), "{status}");
    let log = agent.log_contents();
    assert!(
        log.lines()
            .any(|l| l.contains("vital task ended unexpectedly") && l.contains("fleet task")),
        "{log}"
    );
    Ok(())
}
