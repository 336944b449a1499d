//! The JSON Schemas in `docs/schemas/` hold for what the uplink really sends: a gateway with
//! rules that raise an alert, close windows, emit a late sample, predict a trend, report a
//! level shift as changepoints and fuse the device's alerts into an incident, over a real
//! broker, with its presence and fleet status messages: every record kind, live.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;
use weir_tests::schema::violations;
use weir_tests::{Collector, Mosquitto, Publisher, TestDir};

use crate::common::STARTUP;
use crate::fleet::{Gateway, wait_devices};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn schema(name: &str) -> Result<Value> {
    let path = repo(&format!("docs/schemas/{name}.schema.json"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Checks `instance` against the schema its topic or kind calls for; returns that schema's name.
fn conform(topic: &str, instance: &Value) -> Result<String> {
    let name = if topic.contains("/fleet/status/") {
        "fleet-status".to_owned()
    } else if topic.ends_with("/status") {
        "presence".to_owned()
    } else {
        let kind = instance["kind"].as_str().context("a record without kind")?;
        format!("record-{kind}")
    };
    let problems = violations(&schema(&name)?, instance);
    anyhow::ensure!(
        problems.is_empty(),
        "{topic}: {instance}\nbreaks {name}: {problems:#?}"
    );
    Ok(name)
}

const RULES: &str = "rules:
  - name: win
    select: { device: pump-1, metric: temp }
    window: { tumbling: 1s, late: emit }
    aggregates: [count, mean]
  - name: hot
    select: { device: pump-1, metric: temp }
    window: { tumbling: 1s }
    alert: { when: \"mean > 50\", severity: critical, message: \"{device} at {mean}\" }
  - name: trend
    select: { device: pump-1, metric: temp }
    window: { tumbling: 1s }
    detect: { trend: { above: 90, over: 1m, horizon: 30m, min_points: 5 } }
    alert: { severity: warning }
  - name: flow-level
    select: { device: pump-1, metric: flow }
    detect: { changepoint: { baseline: 100 } }
    alert: { severity: info }
incidents:
  select: { device: \"pump-*\" }
  gap: 30m
";

#[test]
fn uplink_records_presence_and_fleet_status_conform_to_their_schemas() -> Result<()> {
    let dir = TestDir::new("schemas")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    dir.write("rules/r.yaml", RULES)?;
    std::fs::create_dir_all(dir.path().join("trusted"))?;
    let gateway = Gateway {
        id: "gw-schema",
        cloud: cloud.port(),
        devices: Some(devices.port()),
        rules: &["rules/r.yaml"],
        labels: "site: north",
        engine: "idle_close: 5s",
    };
    let agent = gateway.start(&dir, &dir.path().join("trusted"))?;
    wait_devices(&devices, &agent)?;
    let mut publisher = Publisher::connect(devices.port())?;
    // Stamped ahead of the clock so only these samples close windows; rising by 1 a second.
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let base = (now_ms + 120_000) / 1000 * 1000;
    for i in 0..10u64 {
        let value = 60 + i;
        publisher.publish(
            "plant/pump-1/temp",
            format!("{{\"value\": {value}, \"ts\": {}}}", base + i * 1000 + 500),
        )?;
    }
    // Flow 50 → 53 → 50 with a ripple, ten samples a second: a changepoint onset and return.
    for i in 0..900u64 {
        let level = if (300..600).contains(&i) { 53.0 } else { 50.0 };
        let ripple = [0.0, 0.5, -0.5, 0.25, -0.25][(i % 5) as usize];
        publisher.publish(
            "plant/pump-1/flow",
            format!(
                "{{\"value\": {}, \"ts\": {}}}",
                level + ripple,
                base + i * 100
            ),
        )?;
    }
    // A sample for a window that has closed: a `late` record.
    publisher.publish(
        "plant/pump-1/temp",
        format!("{{\"value\": 1, \"ts\": {}}}", base + 500),
    )?;
    let wanted = [
        "record-alert",
        "record-window",
        "record-late",
        "record-prediction",
        "record-changepoint",
        "record-incident",
        "presence",
        "fleet-status",
    ];
    let messages = collector.wait_for("every live kind", STARTUP, |m| {
        let names: Vec<String> = m
            .iter()
            .filter_map(|m| conform(&m.topic, m.json.as_ref()?).ok())
            .collect();
        wanted.iter().all(|w| names.iter().any(|n| n == w))
    });
    let messages = messages.map_err(|e| agent.explain(e))?;
    for m in &messages {
        let json = m
            .json
            .as_ref()
            .with_context(|| format!("not JSON on {}", m.topic))?;
        conform(&m.topic, json)?;
    }

    Ok(())
}
