//! Reload of more than rules: SIGHUP restarts a source whose settings changed while the
//! unchanged one keeps every sample, gives the engine new device labels, and names what
//! waits for a restart; `weir check --diff` says the same before the reload.
//!
//! Samples carry timestamps minutes ahead (within the clock guard), so windows close only on
//! the test's own later samples and counts are exact whatever the machine's load.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use weir_tests::{Collector, Message, Mosquitto, Publisher, TestDir, weir_command};

use crate::common::STARTUP;

const RULES: &str = r#"
rules:
  - name: plant-count
    select: { device: pump-1, metric: temp }
    window: { tumbling: 1m }
    aggregates: [count]
  - name: flow
    select: { device: "dev-*", metric: flow }
    window: { count: 1 }
    aggregates: [last]
  - name: site-last
    select: { metric: load }
    group_by: label.site
    window: { count: 1 }
    aggregates: [last]
"#;

/// Two MQTT sources on the devices' broker: `plant` (never changed) and `line` (its
/// subscription is what the test changes), and `more` sources.
fn config(
    devices: u16,
    cloud: u16,
    line_topic: &str,
    labels: &str,
    max_bytes: &str,
    more: &str,
    clock_guard: &str,
) -> String {
    format!(
        "gateway_id: gw-reload-settings\n\
         rules: [rules.yaml]\n\
         labels:\n{labels}\
         sources:\n\
         \x20 - mqtt:\n      name: plant\n      port: {devices}\n      subscriptions: [{{ topic: \"plant/{{device}}/{{metric}}\" }}]\n\
         \x20 - mqtt:\n      name: line\n      port: {devices}\n      subscriptions: [{{ topic: \"{line_topic}\" }}]\n\
         {more}\
         outbox: {{ path: outbox.db, max_bytes: {max_bytes} }}\n\
         uplink: {{ host: 127.0.0.1, port: {cloud} }}\n\
         engine: {{ idle_close: 5s, clock_guard: {{ action: {clock_guard} }} }}\n\
         metrics: {{ listen: ~ }}\n"
    )
}

const NORTH: &str = "  - { devices: \"pump-*\", set: { site: north } }\n";
const PUMP_2_SOUTH: &str = "  - { devices: \"pump-*\", set: { site: north } }\n  - { devices: pump-2, set: { site: south } }\n";

fn sighup(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .context("running `kill -HUP`")?;
    anyhow::ensure!(status.success(), "kill -HUP {pid}: {status}");
    Ok(())
}

/// `weir check --config weir.yaml --diff [--against OLD]`: exit code and stdout.
fn check_diff(dir: &TestDir, against: Option<&str>) -> Result<(i32, String)> {
    let mut cmd = weir_command()?;
    cmd.arg("check")
        .arg("--config")
        .arg(dir.path().join("weir.yaml"))
        .arg("--diff");
    if let Some(old) = against {
        cmd.arg("--against").arg(dir.path().join(old));
    }
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), format!("{stdout}{stderr}")))
}

fn last_of(messages: &[Message], rule: &str, device: &str, value: f64) -> bool {
    messages.iter().any(|m| {
        m.str("rule") == Some(rule)
            && m.str("device") == Some(device)
            && m.field("values")
                .and_then(|v| v.get("last"))
                .and_then(|v| v.as_f64())
                == Some(value)
    })
}

#[test]
fn sighup_restarts_a_changed_source_keeps_the_other_and_applies_new_labels() -> Result<()> {
    let dir = TestDir::new("reload-settings")?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    dir.write("rules.yaml", RULES)?;
    let (dp, cp) = (devices.port(), cloud.port());
    let mut agent = weir_tests::Agent::start(
        &dir,
        &config(
            dp,
            cp,
            "line/{device}/{metric}",
            NORTH,
            "64MiB",
            "",
            "restamp",
        ),
    )?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    devices
        .wait_for_subscription("line/+/+", STARTUP)
        .map_err(|e| agent.explain(e))?;
    devices
        .wait_for_subscription("plant/+/+", STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(dp)?;
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // Two to three minutes ahead, on a minute boundary.
    let base = (now_ms + 180_000) / 60_000 * 60_000;
    let at = |offset_ms: u64, value: f64| {
        format!("{{\"value\": {value}, \"ts\": {}}}", base + offset_ms)
    };

    // Before: the old subscription and the old labels work.
    for k in 0..10 {
        publisher.publish("plant/pump-1/temp", at(k * 1000, 20.0))?;
    }
    publisher.publish("line/dev-a/flow", at(1, 1.0))?;
    publisher.publish("plant/pump-2/load", at(1, 1.0))?;
    collector
        .wait_for(
            "flow and pump-2's north group before the reload",
            STARTUP,
            |m| last_of(m, "flow", "dev-a", 1.0) && last_of(m, "site-last", "site=north", 1.0),
        )
        .map_err(|e| agent.explain(e))?;

    // Nothing changed yet: `--diff` against the running copy finds nothing.
    let (code, out) = check_diff(&dir, None)?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 change(s)"), "{out}");

    // Change the line source's topic, move pump-2 to the south site, and raise a bound
    // that needs a restart. Keep the old file for `--against`.
    std::fs::copy(dir.path().join("weir.yaml"), dir.path().join("old.yaml"))?;
    dir.write(
        "weir.yaml",
        &config(
            dp,
            cp,
            "line2/{device}/{metric}",
            PUMP_2_SOUTH,
            "32MiB, synchronous: full",
            &format!("  - mqtt: {{ name: extra, port: {dp}, subscriptions: [{{ topic: \"extra/{{device}}/{{metric}}\" }}] }}\n"),
            "drop",
        ),
    )?;
    for against in [None, Some("old.yaml")] {
        let (code, out) = check_diff(&dir, against)?;
        assert_eq!(code, 3, "a restart-only change exits 3: {out}");
        for line in [
            "labels changed: applied live by a reload",
            "outbox.max_bytes changed: applied live by a reload",
            "outbox.synchronous changed: needs a restart",
            "sources.line changed: applied live by a reload",
            "sources.extra added: applied live by a reload",
            "engine.clock_guard changed: applied live by a reload",
        ] {
            assert!(out.contains(line), "{line:?} missing from:\n{out}");
        }
        assert!(!out.contains("sources.plant"), "{out}");
    }

    sighup(agent.pid())?;
    // The unchanged source keeps publishing into the reload.
    for k in 10..20 {
        publisher.publish("plant/pump-1/temp", at(k * 1000, 20.0))?;
    }
    agent.wait_for_log("source restarted", STARTUP)?;
    for filter in ["line2/+/+", "extra/+/+"] {
        devices
            .wait_for_subscription(filter, STARTUP)
            .map_err(|e| agent.explain(e))?;
    }
    for k in 20..30 {
        publisher.publish("plant/pump-1/temp", at(k * 1000, 20.0))?;
    }
    publisher.publish("line2/dev-a/flow", at(2, 2.0))?;
    // A year ahead: the old clock guard would restamp it (a new series, so not late), the
    // new one drops it; the sample after it on the same source proves it was judged.
    publisher.publish(
        "line2/dev-b/flow",
        format!("{{\"value\": 9, \"ts\": {}}}", base + 365 * 86_400_000),
    )?;
    publisher.publish("line2/dev-b/flow", at(4, 4.0))?;
    publisher.publish("extra/dev-a/flow", at(3, 3.0))?;
    publisher.publish("plant/pump-2/load", at(2, 2.0))?;
    // Closes the first minute of `plant-count`.
    publisher.publish("plant/pump-1/temp", at(60_000, 20.0))?;
    let messages = collector
        .wait_for(
            "the new topic, the new label and the closed minute",
            STARTUP,
            |m| {
                last_of(m, "flow", "dev-a", 2.0)
                    && last_of(m, "site-last", "site=south", 2.0)
                    && m.iter().any(|m| m.str("rule") == Some("plant-count"))
            },
        )
        .map_err(|e| agent.explain(e))?;
    let count = messages
        .iter()
        .find(|m| m.str("rule") == Some("plant-count"))
        .and_then(|m| m.field("values")?.get("count")?.as_f64());
    assert_eq!(count, Some(30.0), "the unchanged source lost samples");
    // Judged by the new guard (the sample after it on the same source was processed).
    let judged = agent.wait_for_line("the clock guard's verdict", STARTUP, |l| {
        l.contains("device clock far off") && l.contains("dev-b")
    })?;
    assert!(judged.contains("sample dropped"), "{judged}");
    assert!(!last_of(&messages, "flow", "dev-b", 9.0), "{judged}");

    let log = agent.log_contents();
    let restarted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("source restarted"))
        .collect();
    assert_eq!(restarted.len(), 1, "{}", agent.log_tail());
    assert!(restarted[0].contains("source=line"), "{}", restarted[0]);
    assert!(
        log.contains("device labels reloaded"),
        "{}",
        agent.log_tail()
    );
    let named = log
        .lines()
        .find(|l| l.contains("not applied by a reload"))
        .unwrap_or_default();
    assert!(named.contains("outbox.synchronous"), "{}", agent.log_tail());
    assert!(
        log.contains("outbox bounds reloaded"),
        "{}",
        agent.log_tail()
    );
    agent.assert_running()?;
    Ok(())
}

#[test]
fn sighup_moves_local_actions_to_the_new_broker() -> Result<()> {
    let dir = TestDir::new("reload-actions")?;
    let devices = Mosquitto::start()?;
    let other = Mosquitto::start()?;
    let on_other = Collector::start(other.port(), "actions/#")?;
    dir.write(
        "rules/hot.yaml",
        "rules:\n  - name: hot\n    select: { device: pump-1, metric: temp }\n    window: { count: 1 }\n    aggregates: [last]\n    alert: { when: \"last > 80\", local_topic: \"actions/{device}/{rule}\" }\n",
    )?;
    let outbox = dir.path().join("outbox.db");
    let base = crate::common::AgentConfig {
        gateway: "gw-reload-actions",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let actions_on = |port: u16| format!("{base}actions: {{ host: 127.0.0.1, port: {port} }}\n");
    let mut agent = weir_tests::Agent::start(&dir, &actions_on(devices.port()))?;
    agent.wait_for_log("actions broker connected", STARTUP)?;
    devices
        .wait_for_subscription(crate::common::PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;

    dir.write("weir.yaml", &actions_on(other.port()))?;
    let (code, out) = check_diff(&dir, None)?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("actions changed: applied live by a reload"),
        "{out}"
    );
    sighup(agent.pid())?;
    agent.wait_for_log("local actions broker reloaded", STARTUP)?;
    // Connected to the new broker: the agent says so a second time.
    weir_tests::wait_until("the new actions broker's connection", STARTUP, || {
        let log = agent.log_contents();
        Ok((log.matches("actions broker connected").count() >= 2).then_some(()))
    })
    .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    publisher.publish("plant/pump-1/temp", "95")?;
    let got = on_other
        .wait_for("the alert on the new actions broker", STARTUP, |m| {
            !m.is_empty()
        })
        .map_err(|e| agent.explain(e))?;
    assert_eq!(got[0].topic, "actions/pump-1/hot", "{}", got[0].summary());
    agent.assert_running()?;
    Ok(())
}

#[test]
fn sighup_moves_the_uplink_to_the_new_broker_and_delivers_there() -> Result<()> {
    let dir = TestDir::new("reload-uplink")?;
    let devices = Mosquitto::start()?;
    let first = Mosquitto::start()?;
    let second = Mosquitto::start()?;
    let on_second = Collector::start(second.port(), "weir/#")?;
    dir.write(
        "rules/r.yaml",
        "rules:\n  - name: flow\n    select: { device: dev-a, metric: flow }\n    window: { count: 1 }\n    aggregates: [last]\n",
    )?;
    let outbox = dir.path().join("outbox.db");
    let yaml = |cloud: u16| {
        crate::common::AgentConfig {
            gateway: "gw-reload-uplink",
            devices_port: devices.port(),
            cloud_port: Some(cloud),
            rules: &["rules/r.yaml"],
            outbox: &outbox,
            extra_topics: &[],
        }
        .yaml()
    };
    let mut agent = weir_tests::Agent::start(&dir, &yaml(first.port()))?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    devices
        .wait_for_subscription(crate::common::PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;

    dir.write("weir.yaml", &yaml(second.port()))?;
    let (code, out) = check_diff(&dir, None)?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("uplink.port changed: applied live by a reload"),
        "{out}"
    );
    sighup(agent.pid())?;
    agent.wait_for_log("uplink restarted with its new settings", STARTUP)?;
    let mut publisher = Publisher::connect(devices.port())?;
    publisher.publish("plant/dev-a/flow", "7")?;
    on_second
        .wait_for("the window on the new uplink broker", STARTUP, |m| {
            last_of(m, "flow", "dev-a", 7.0)
        })
        .map_err(|e| agent.explain(e))?;
    agent.assert_running()?;
    Ok(())
}

/// The sum of every sample of metric `name` (all label sets) in a Prometheus text scrape.
fn metric(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name).then(|| value.parse().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn scrape(port: u16) -> Result<String> {
    let (code, body) = crate::observability::get(port, "/metrics")?;
    anyhow::ensure!(code == 200, "/metrics answered {code}: {body}");
    Ok(body)
}

/// Waits until metric `name` on `port` reaches at least `want`.
fn wait_for_metric(agent: &mut weir_tests::Agent, port: u16, name: &str, want: f64) -> Result<f64> {
    weir_tests::wait_until(&format!("{name} >= {want}"), STARTUP, || {
        let got = metric(&scrape(port)?, name).unwrap_or(0.0);
        Ok((got >= want).then_some(got))
    })
    .map_err(|e| agent.explain(e))
}

#[test]
fn sighup_moves_the_metrics_listener_and_its_counters_keep_counting() -> Result<()> {
    let dir = TestDir::new("reload-metrics")?;
    let devices = Mosquitto::start()?;
    dir.write(
        "rules/r.yaml",
        "rules:\n  - name: flow\n    select: { device: dev-a, metric: flow }\n    window: { count: 1 }\n    aggregates: [last]\n",
    )?;
    let outbox = dir.path().join("outbox.db");
    let base = crate::common::AgentConfig {
        gateway: "gw-reload-metrics",
        devices_port: devices.port(),
        cloud_port: None,
        rules: &["rules/r.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let on = |port: u16| {
        base.replace(
            "metrics: { listen: ~ }",
            &format!("metrics: {{ listen: \"127.0.0.1:{port}\" }}"),
        )
    };
    let (old_port, new_port) = (weir_tests::free_port()?, weir_tests::free_port()?);
    let mut agent = weir_tests::Agent::start(&dir, &on(old_port))?;
    devices
        .wait_for_subscription(crate::common::PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    for k in 0..5 {
        publisher.publish("plant/dev-a/flow", format!("{k}"))?;
    }
    wait_for_metric(&mut agent, old_port, "weir_engine_samples_total", 5.0)?;

    dir.write("weir.yaml", &on(new_port))?;
    let (code, out) = check_diff(&dir, None)?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("metrics.listen changed: applied live by a reload"),
        "{out}"
    );
    sighup(agent.pid())?;
    agent.wait_for_line("the listener on the new port", STARTUP, |l| {
        l.contains("metrics endpoint listening") && l.contains(&format!(":{new_port}"))
    })?;
    // The same counters: the five samples from before are still counted, and new ones add.
    let before = metric(&scrape(new_port)?, "weir_engine_samples_total");
    assert_eq!(before, Some(5.0), "{}", agent.log_tail());
    for k in 5..8 {
        publisher.publish("plant/dev-a/flow", format!("{k}"))?;
    }
    wait_for_metric(&mut agent, new_port, "weir_engine_samples_total", 8.0)?;
    // The old port is closed.
    let refused = std::net::TcpStream::connect(("127.0.0.1", old_port));
    assert!(refused.is_err(), "the old port still answers");
    assert!(agent.log_contents().contains("metrics settings reloaded"));
    agent.assert_running()?;
    Ok(())
}

#[test]
fn sighup_lowering_outbox_max_bytes_evicts_down_to_it_at_once() -> Result<()> {
    let dir = TestDir::new("reload-outbox")?;
    let devices = Mosquitto::start()?;
    dir.write(
        "rules/r.yaml",
        "rules:\n  - name: flow\n    select: { metric: flow }\n    window: { count: 1 }\n    aggregates: [last]\n",
    )?;
    let outbox = dir.path().join("outbox.db");
    let port = weir_tests::free_port()?;
    // No uplink: every record stays in the outbox.
    let yaml = |max_bytes: &str| {
        crate::common::AgentConfig {
            gateway: "gw-reload-outbox",
            devices_port: devices.port(),
            cloud_port: None,
            rules: &["rules/r.yaml"],
            outbox: &outbox,
            extra_topics: &[],
        }
        .yaml()
        .replace(
            "metrics: { listen: ~ }",
            &format!("metrics: {{ listen: \"127.0.0.1:{port}\" }}"),
        )
        .replace("outbox:\n", &format!("outbox:\n  max_bytes: {max_bytes}\n"))
    };
    let mut agent = weir_tests::Agent::start(&dir, &yaml("1MiB"))?;
    devices
        .wait_for_subscription(crate::common::PLANT_FILTER, STARTUP)
        .map_err(|e| agent.explain(e))?;
    let mut publisher = Publisher::connect(devices.port())?;
    // About 150 bytes a record: well above 64 KiB in all.
    let n = 800;
    for k in 0..n {
        publisher.publish(&format!("plant/dev-{}/flow", k % 50), format!("{k}"))?;
    }
    wait_for_metric(
        &mut agent,
        port,
        "weir_outbox_committed_total",
        f64::from(n),
    )?;
    let stored = metric(&scrape(port)?, "weir_outbox_bytes").unwrap_or(0.0);
    assert!(
        stored > 65_536.0,
        "{stored} bytes stored: too few for the test"
    );
    assert_eq!(
        metric(&scrape(port)?, "weir_outbox_evicted_total"),
        Some(0.0)
    );

    dir.write("weir.yaml", &yaml("64KiB"))?;
    let (code, out) = check_diff(&dir, None)?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("outbox.max_bytes changed: applied live by a reload"),
        "{out}"
    );
    sighup(agent.pid())?;
    agent.wait_for_log("outbox bounds reloaded", STARTUP)?;
    let text = scrape(port)?;
    let stored = metric(&text, "weir_outbox_bytes").unwrap_or(f64::MAX);
    assert!(
        stored <= 65_536.0,
        "{stored} bytes stored over the new bound"
    );
    let evicted = metric(&text, "weir_outbox_evicted_full_total").unwrap_or(0.0);
    assert!(evicted > 0.0, "{text}");
    let log = agent.log_contents();
    assert!(log.contains("max_bytes lowered"), "{}", agent.log_tail());
    agent.assert_running()?;
    Ok(())
}
