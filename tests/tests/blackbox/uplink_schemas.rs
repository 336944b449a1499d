//! The uplink's records against their JSON Schemas (`docs/schemas/`), read by the consumer
//! example (`examples/consumer/weir_consumer.py`) from a real broker: every record kind the
//! agent sends must validate, the consumer must drop duplicates by `id`, and a run that ends
//! with the outbox drained must leave no gap in the sequence.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use weir_tests::{Mosquitto, Publisher, wait_until};

use crate::common::{Running, start_with_cloud};

const GW: &str = "gw-schema";
const KINDS: [&str; 6] = [
    "alert",
    "window",
    "prediction",
    "changepoint",
    "incident",
    "late",
];

/// One rule per record kind; `incidents:` turns pump-1's alerts into an incident.
const RULES: &str = "rules:
  - name: hot
    select: { metric: temperature }
    window: { tumbling: 10s, late: emit }
    aggregates: [mean, max]
    alert: { when: \"mean > 80\", severity: critical }
  - name: temperature-trend
    select: { metric: temperature }
    window: { tumbling: 10s }
    detect: { trend: { above: 100, over: 1h, horizon: 2h, min_points: 5 } }
    alert: { severity: warning }
  - name: flow-level
    select: { metric: flow }
    detect: { changepoint: { baseline: 100 } }
    alert: { severity: info }
incidents:
  select: { device: \"pump-*\" }
  gap: 30m
";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The consumer, its stdin (closing it stops the consumer) and its stderr lines.
struct Consumer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Consumer {
    fn start(port: u16) -> Result<Consumer> {
        let mut child = Command::new("python3")
            .arg(repo().join("examples/consumer/weir_consumer.py"))
            .args(["--port", &port.to_string(), "--stop-on-eof", "--print"])
            .arg("--schemas")
            .arg(repo().join("docs/schemas"))
            .args(["--client-id", "schema-test", "--timeout", "120"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting examples/consumer/weir_consumer.py (needs paho-mqtt, jsonschema)")?;
        let stderr = child.stderr.take().context("consumer stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Consumer {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits for a stderr line matching `pred` (lines already seen count).
    fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Result<()> {
        self.wait_count(what, 1, pred)
    }

    /// Waits until `n` stderr lines match `pred`.
    fn wait_count(&mut self, what: &str, n: usize, pred: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.seen.iter().filter(|l| pred(l)).count() >= n {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => bail!("consumer: no {what} within 60 s; stderr: {:?}", self.seen),
            }
        }
    }

    /// Closes stdin and returns the summary (the last stdout line) and the printed records.
    fn finish(mut self) -> Result<(Value, Vec<Value>)> {
        drop(self.stdin.take());
        let out = self.child.wait_with_output()?;
        let stdout = String::from_utf8(out.stdout)?;
        let mut lines: Vec<Value> = stdout
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .with_context(|| format!("consumer stdout: {stdout}"))?;
        let summary = lines.pop().context("no summary line")?;
        Ok((summary, lines))
    }
}

fn now_ms() -> Result<u64> {
    Ok(u64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

#[test]
fn every_uplink_record_kind_matches_its_schema_and_the_consumer_dedups_without_gaps() -> Result<()>
{
    let cloud = Mosquitto::start()?;
    let cloud_port = cloud.port();
    let mut consumer = Consumer::start(cloud_port)?;
    consumer.wait_line("\"subscribed\"", |l| l == "subscribed")?;
    let Running {
        dir,
        devices,
        cloud: _cloud,
        collector,
        mut agent,
    } = start_with_cloud("uplink-schemas", GW, cloud, "schema", RULES)?;

    // Event time 20 minutes ago, one sample a second: temperature rising 60 → 90 over 600 s
    // (windows, a `mean > 80` alert, trend predictions, an incident), flow 50 → 53 → 50
    // (changepoint onset and return), then one temperature sample for a window long closed.
    let base = now_ms()? - 20 * 60 * 1000;
    let mut publisher = Publisher::connect(devices.port())?;
    for t in 0..900u64 {
        let ts = base + t * 1000;
        if t < 600 {
            let v = 60.0 + 0.05 * t as f64;
            publisher.publish(
                "plant/pump-1/temperature",
                format!("{{\"value\":{v},\"ts\":{ts}}}"),
            )?;
        }
        let level = if (300..600).contains(&t) { 53.0 } else { 50.0 };
        let ripple = [0.0, 0.5, -0.5, 0.25, -0.25][(t % 5) as usize];
        publisher.publish(
            "plant/pump-1/flow",
            format!("{{\"value\":{},\"ts\":{ts}}}", level + ripple),
        )?;
    }
    publisher.publish(
        "plant/pump-1/temperature",
        format!("{{\"value\":70,\"ts\":{}}}", base + 5_000),
    )?;

    let kind = |m: &weir_tests::Message| m.str("kind").map(str::to_owned);
    let messages = collector
        .wait_for("every record kind", Duration::from_secs(60), |ms| {
            KINDS
                .iter()
                .all(|k| ms.iter().any(|m| kind(m).as_deref() == Some(*k)))
        })
        .map_err(|e| agent.explain(e))?;

    // Two records sent again, byte for byte, as a resend after a lost PUBACK would be.
    let mut cloud_pub = Publisher::connect(cloud_port)?;
    for m in messages.iter().filter(|m| kind(m).is_some()).take(2) {
        cloud_pub.publish(&m.topic, m.payload.clone())?;
    }
    consumer.wait_count("two duplicates", 2, |l| l.starts_with("duplicate "))?;

    // Drain, then stop cleanly: the offline status is published after every record on the
    // same connection, so once the consumer has it, it has everything the agent sent.
    let config = agent.config_path().to_owned();
    wait_until("the outbox to drain", Duration::from_secs(60), || {
        let out = weir_tests::weir_command()?
            .args(["outbox", "stats", "--config"])
            .arg(&config)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(text
            .lines()
            .any(|l| l.starts_with("total") && l.split_whitespace().nth(1) == Some("0"))
            .then_some(()))
    })
    .map_err(|e| agent.explain(e))?;
    agent.terminate(Duration::from_secs(20))?;
    consumer.wait_line("the offline status", |l| {
        l.starts_with(&format!("status {GW} offline"))
    })?;
    let (summary, records) = consumer.finish()?;
    drop(dir);

    assert_eq!(summary["invalid"], serde_json::json!([]), "{summary:#}");
    for k in KINDS.iter().chain(["status"].iter()) {
        assert!(
            summary["kinds"][k].as_u64().unwrap_or(0) >= 1,
            "kind {k} not seen: {summary:#}"
        );
    }
    assert_eq!(summary["duplicates"], 2, "{summary:#}");
    assert_eq!(summary["gaps"][GW], serde_json::json!([]), "{summary:#}");
    // Ids are "<gateway>:<seq>" and unique after deduplication.
    let mut ids: Vec<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate ids printed");
    assert_eq!(n as u64, summary["records"].as_u64().unwrap_or(0));
    Ok(())
}

/// A record that breaks its schema is reported, not passed on: the schemas are not vacuous.
#[test]
fn a_record_breaking_its_schema_is_reported_by_the_consumer() -> Result<()> {
    let cloud = Mosquitto::start()?;
    let mut consumer = Consumer::start(cloud.port())?;
    consumer.wait_line("\"subscribed\"", |l| l == "subscribed")?;
    let mut publisher = Publisher::connect(cloud.port())?;
    // An alert whose state is neither raised nor cleared, and one without a `ts`.
    publisher.publish(
        "weir/gw-x/alerts",
        r#"{"id":"gw-x:1","seq":1,"gateway":"gw-x","kind":"alert","rule":"r","device":"d","metric":"m","ts":1,"state":"open","severity":"critical","value":1.0,"condition":"c"}"#,
    )?;
    publisher.publish(
        "weir/gw-x/aggregates",
        r#"{"id":"gw-x:2","seq":2,"gateway":"gw-x","kind":"window","rule":"r","device":"d","metric":"m","start":0,"end":1,"values":{"mean":1.0}}"#,
    )?;
    publisher.publish(
        "weir/gw-x/status",
        r#"{"status":"online","gateway":"gw-x","version":"0.1.0","ts":1}"#,
    )?;
    consumer.wait_line("the status line", |l| l.starts_with("status gw-x online"))?;
    let (summary, records) = consumer.finish()?;
    let invalid = summary["invalid"].as_array().cloned().unwrap_or_default();
    assert_eq!(invalid.len(), 2, "{summary:#}");
    let text = serde_json::to_string(&invalid)?;
    assert!(text.contains("'open' is not one of"), "{text}");
    assert!(text.contains("'ts' is a required property"), "{text}");
    assert!(records.is_empty(), "{records:?}");
    Ok(())
}
