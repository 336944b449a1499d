//! The outbox as an operator meets it: `weir outbox stats | export | purge` beside a running
//! agent, and a corrupt database file on start (guarantee 2: quarantined, the agent runs on).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir, weir_command};

use crate::common::{AgentConfig, PLANT_FILTER, STARTUP, mean_above_rule, publish_series};

const T: Duration = Duration::from_secs(20);

/// `pending=N` (and `alerts=N`) from the agent's status line.
fn field(line: &str, name: &str) -> Option<u64> {
    if !line.contains("outbox") {
        return None;
    }
    let key = format!(" {name}=");
    let rest = &line[line.find(&key)? + key.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

fn weir_outbox(agent: &Agent, args: &[&str]) -> Result<String> {
    let out = weir_command()?
        .arg("outbox")
        .args(args)
        .arg("--config")
        .arg(agent.config_path())
        .output()
        .context("running weir outbox")?;
    if !out.status.success() {
        bail!(
            "weir outbox {args:?} failed ({}) [{:?}]: {}",
            out.status,
            weir_tests::weir_bin()?,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn outbox_commands_read_and_purge_beside_a_running_agent() -> Result<()> {
    let dir = TestDir::new("outbox-ops")?;
    let devices = Mosquitto::start()?;
    dir.write(
        "rules/hot.yaml",
        "rules:\n  - name: hot\n    select: { device: \"pump-*\", metric: temperature }\n    \
         window: { tumbling: 1s }\n    aggregates: [mean]\n    \
         alert: { when: \"mean > 80\", severity: critical }\n",
    )?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: "gw-ops",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml()
    .replace(
        "log: { level: info }",
        "log: { level: info, status_interval: 1s }",
    );
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    publish_series(
        &mut publisher,
        "plant/pump-1/temperature",
        Duration::from_millis(100),
        Duration::from_secs(3),
        |_| 95.0,
    )?;
    let (pending, alerts) = agent.wait_for_latest_line("pending >= 3", T, |l| {
        let p = field(l, "pending").filter(|&n| n >= 3)?;
        Some((p, field(l, "alerts")?))
    })?;
    assert!(alerts >= 1, "one raised alert expected");

    let stats = weir_outbox(&agent, &["stats"])?;
    let total: u64 = stats
        .lines()
        .find_map(|l| {
            l.strip_prefix("total")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no total in {stats}"))?;
    assert!(total >= pending, "{stats}");
    // Within the first minute (`engine.checkpoint_interval`) no checkpoint is written yet.
    assert!(stats.contains("engine checkpoint: none"), "{stats}");

    let export = weir_outbox(&agent, &["export"])?;
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("export is not JSON lines: {export}"))?;
    assert!(lines.len() as u64 >= pending);
    assert_eq!(lines[0]["lane"], "alerts", "delivery order: alerts first");
    assert_eq!(lines[0]["payload"]["kind"], "alert");
    assert!(lines.iter().any(|l| l["payload"]["kind"] == "window"));

    let purged = weir_outbox(&agent, &["purge", "--lane", "aggregates"])?;
    assert!(purged.contains("aggregates record(s)"), "{purged}");
    // The running agent re-reads its totals: pending drops to the alerts alone.
    agent.wait_for_latest_line("pending == alerts after the purge", T, |l| {
        (field(l, "pending")? == field(l, "alerts")?).then_some(())
    })?;
    agent.assert_running()?;
    let status = agent.terminate(T)?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    // A clean stop writes the engine's checkpoint: its age and size are shown.
    let stats = weir_outbox(&agent, &["stats"])?;
    assert!(
        stats.contains("engine checkpoint: age ") && stats.contains(", 1 series, "),
        "{stats}"
    );
    Ok(())
}

#[test]
fn a_corrupt_outbox_file_on_start_is_moved_aside_and_the_agent_delivers() -> Result<()> {
    let dir = TestDir::new("corrupt-db")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    dir.write(
        "rules/hot.yaml",
        &mean_above_rule("hot", "pump-*", "temperature", 80.0, "critical"),
    )?;
    let outbox = dir.write("data/outbox.db", &"this is not a database\n".repeat(500))?;
    let config = AgentConfig {
        gateway: "gw-corrupt",
        devices_port: devices.port(),
        cloud_port: Some(cloud.port()),
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("moved aside", STARTUP)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    let moved: Vec<_> = std::fs::read_dir(dir.path().join("data"))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("outbox.db.corrupt-")
        })
        .collect();
    assert_eq!(moved.len(), 1, "the bad file is kept for inspection");
    devices
        .wait_for_subscription(PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    publish_series(
        &mut publisher,
        "plant/pump-1/temperature",
        Duration::from_millis(100),
        Duration::from_secs(2),
        |_| 95.0,
    )?;
    collector
        .wait_for("the raised alert on the cloud broker", T, |m| {
            m.iter().any(|m| m.str("state") == Some("raised"))
        })
        .map_err(|e| agent.explain(e))?;
    agent.assert_running()
}
