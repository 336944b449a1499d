//! Hardware sources through the real `weir` binary: a serial device on a pseudo-terminal
//! (socat) and a Modbus TCP slave (pymodbus), each driving a rule to an alert at the cloud
//! broker, with bad serial input counted and skipped on the way; a Modbus slave that answers
//! with exceptions and one that never answers raise a rule on their values' quality series.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weir_tests::{Agent, Collector, Mosquitto, TestDir, free_port, wait_until};

use crate::common::{STARTUP, distinct_alerts, mean_above_rule};

const GW: &str = "gw-dev";

/// Kills and reaps the child processes a test started.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn serial_and_modbus_devices_raise_alerts() -> Result<()> {
    let dir = TestDir::new("devices")?;
    let cloud = Mosquitto::start()?;
    let collector = Collector::start(cloud.port(), "weir/#")?;
    let mut children = Children(Vec::new());

    let tty = dir.path().join("ttyWEIR");
    let device_end = dir.path().join("ttyDEVICE");
    children.0.push(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", tty.display()))
            .arg(format!("pty,raw,echo=0,link={}", device_end.display()))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting socat")?,
    );
    let modbus_port = free_port()?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../drivers/tests/fixtures/modbus_server.py"
    );
    children.0.push(
        Command::new("python3")
            .args([script, "tcp", &modbus_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the pymodbus server")?,
    );
    wait_until("socat's links and pymodbus", STARTUP, || {
        if let Some(status) = children.0[1].try_wait()? {
            bail!("the Modbus server exited: {status} (is pymodbus installed?)");
        }
        let modbus = TcpStream::connect(("127.0.0.1", modbus_port)).is_ok();
        Ok((modbus && tty.exists() && device_end.exists()).then_some(()))
    })?;

    dir.write(
        "rules/tank.yaml",
        &mean_above_rule("tank-high", "tank-*", "level", 50.0, "critical"),
    )?;
    // Holding register 0 of the fixture's unit 1 is 65534.
    dir.write(
        "rules/plc.yaml",
        &mean_above_rule("plc-high", "plc-*", "raw", 1000.0, "warning"),
    )?;
    // Any bad poll of a value in a second: its `.quality` series is above 0.
    dir.write(
        "rules/quality.yaml",
        "rules:\n\
         \x20 - name: modbus-quality\n\
         \x20   select: { device: \"plc-*\", metric: \"*.quality\" }\n\
         \x20   window: { tumbling: 1s }\n\
         \x20   alert: { when: \"max > 0\", severity: warning }\n",
    )?;
    // A TCP peer that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_port = silent.local_addr()?.port();
    let config = format!(
        "gateway_id: {GW}\n\
         rules: [rules/tank.yaml, rules/plc.yaml, rules/quality.yaml]\n\
         sources:\n\
         \x20 - serial: {{ name: uart, path: {tty:?}, protocol: kv_lines }}\n\
         \x20 - modbus:\n\
         \x20     timeout: 300ms\n\
         \x20     slaves:\n\
         \x20       - device: plc-1\n\
         \x20         tcp: 127.0.0.1:{modbus_port}\n\
         \x20         groups:\n\
         \x20           - interval: 200ms\n\
         \x20             registers: [{{ name: raw, table: holding, address: 0 }}]\n\
         \x20       - device: plc-2\n\
         \x20         tcp: 127.0.0.1:{modbus_port}\n\
         \x20         unit: 2\n\
         \x20         groups:\n\
         \x20           - interval: 200ms\n\
         \x20             registers: [{{ name: raw, table: holding, address: 50 }}]\n\
         \x20       - device: plc-3\n\
         \x20         tcp: 127.0.0.1:{silent_port}\n\
         \x20         groups:\n\
         \x20           - interval: 200ms\n\
         \x20             registers: [{{ name: raw, table: holding, address: 0 }}]\n\
         outbox: {{ path: {outbox:?} }}\n\
         uplink: {{ host: 127.0.0.1, port: {cloud} }}\n\
         log: {{ level: info }}\n",
        tty = tty.display().to_string(),
        outbox = dir.path().join("outbox.db").display().to_string(),
        cloud = cloud.port(),
    );
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    agent.wait_for_log("serial port open", STARTUP)?;

    // 2.5 s of a high tank level, every 100 ms, with a garbage line now and then.
    let mut device = std::fs::OpenOptions::new().write(true).open(&device_end)?;
    let start = Instant::now();
    for i in 0u32..25 {
        if let Some(wait) = (Duration::from_millis(100) * i).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        device.write_all(b"device=tank-1 level=80.5\n")?;
        if i % 5 == 0 {
            device.write_all(b"\x07#!garbage\n")?;
        }
    }

    let messages = collector
        .wait_for(
            "alerts for tank-1, plc-1, plc-2 and plc-3",
            Duration::from_secs(15),
            |m| {
                let alerts = distinct_alerts(m);
                ["tank-1", "plc-1", "plc-2", "plc-3"]
                    .iter()
                    .all(|d| alerts.iter().any(|a| a.str("device") == Some(d)))
            },
        )
        .map_err(|e| agent.explain(e))?;
    for alert in distinct_alerts(&messages) {
        // plc-1 answers, so its quality stays 0; plc-2 answers exception 2 (illegal data
        // address), plc-3 never answers (256, timeout).
        let (rule, value) = match alert.str("device") {
            Some("tank-1") => ("tank-high", 80.5),
            Some("plc-1") => ("plc-high", 65534.0),
            Some("plc-2") => ("modbus-quality", 2.0),
            Some("plc-3") => ("modbus-quality", 256.0),
            _ => continue,
        };
        assert_eq!(alert.str("rule"), Some(rule), "{}", alert.summary());
        assert_eq!(alert.f64("value"), Some(value), "{}", alert.summary());
        if rule == "modbus-quality" {
            assert_eq!(
                alert.str("metric"),
                Some("raw.quality"),
                "{}",
                alert.summary()
            );
        }
    }
    assert!(
        agent.log_contents().contains("bad serial input"),
        "garbage lines are logged\n{}",
        agent.log_tail()
    );
    let status = agent.terminate(Duration::from_secs(10))?;
    assert!(
        status.success(),
        "exit on SIGTERM: {status}\n{}",
        agent.log_tail()
    );
    drop(silent);
    Ok(())
}
