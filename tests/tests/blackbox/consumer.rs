//! The consumer example (`examples/consumer/uplink_consumer.py`, Python standard library only)
//! against a real gateway and broker: binary DEFLATE batches decoded, duplicates dropped by
//! `id`, and no gap in the sequence, through a broker restart in the middle of the stream.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::Value;
use weir_tests::{Mosquitto, TestDir};

use crate::common::STARTUP;
use crate::fleet::Gateway;

#[test]
fn the_consumer_example_dedups_and_finds_no_gap_through_a_broker_restart() -> Result<()> {
    let dir = TestDir::new("consumer")?;
    let mut cloud = Mosquitto::builder().persistent(true).start()?;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/consumer/uplink_consumer.py");
    let mut consumer = Command::new("python3")
        .arg(&script)
        .args([
            "--port",
            &cloud.port().to_string(),
            "--count",
            "40",
            "--seconds",
            "90",
            "--quiet",
        ])
        .args(["--client-id", &format!("consumer-{}", std::process::id())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running python3")?;
    let mut stderr = BufReader::new(consumer.stderr.take().context("stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    anyhow::ensure!(line.trim() == "subscribed", "the consumer said {line:?}");

    dir.write(
        "rules/ticks.yaml",
        "rules:\n  - name: ticks\n    window: { tumbling: 1s }\n    aggregates: [count, mean]\n",
    )?;
    std::fs::create_dir_all(dir.path().join("trusted"))?;
    let gateway = Gateway {
        id: "gw-consume",
        cloud: cloud.port(),
        devices: None,
        rules: &["rules/ticks.yaml"],
        labels: "",
        engine: "idle_close: 1s",
    };
    let yaml = gateway.yaml(&dir.path().join("trusted")).replace(
        &format!("uplink: {{ host: 127.0.0.1, port: {} }}", cloud.port()),
        &format!(
            "uplink: {{ host: 127.0.0.1, port: {}, format: binary, batch: {{ max_records: 16, compression: deflate }} }}",
            cloud.port()
        ),
    );
    let mut agent = weir_tests::Agent::start(&dir, &yaml)?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    // A broker restart mid-stream: unacknowledged batches are sent again (duplicates), and the
    // consumer reconnects to its persistent session.
    agent.wait_for_log("outbox pending", STARTUP)?;
    cloud.restart()?;
    let out = consumer.wait_with_output()?;
    let stdout = String::from_utf8(out.stdout)?;
    let summary: Value = serde_json::from_str(stdout.lines().last().context("no summary")?)?;
    let gw = &summary["summary"]["gw-consume"];
    assert!(
        out.status.success(),
        "gaps: {summary}\n{}",
        agent.log_tail()
    );
    assert!(gw["records"].as_u64() >= Some(40), "{summary}");
    assert_eq!(gw["missing"], serde_json::json!([]), "{summary}");
    assert_eq!(
        gw["first"], 1,
        "the consumer saw the stream from its start: {summary}"
    );
    eprintln!("consumer summary: {summary}");
    Ok(())
}

#[test]
fn the_consumer_example_tells_a_lost_record_from_a_restart_jump() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/consumer");
    let check = "import uplink_consumer as c\n\
                 assert c.gaps({1, 2, 4, 5}) == ([[3, 3]], []), c.gaps({1, 2, 4, 5})\n\
                 assert c.gaps({1, 2, 1000003}) == ([], [[3, 1000002]])\n\
                 assert c.decode(b'{\"id\":\"g:1\",\"seq\":1,\"gateway\":\"g\"}')[0]['seq'] == 1\n";
    let out = Command::new("python3")
        .args(["-c", check])
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&dir)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
