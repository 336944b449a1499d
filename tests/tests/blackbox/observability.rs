//! What an operator sees of a running agent: the Prometheus endpoint (checked by Prometheus's
//! own `promtool`), `/healthz`, `weir status`, and log lines fit for journald.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use weir_tests::{Agent, TestDir, free_port, wait_until, weir_command};

pub(crate) fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    Ok((code, body.to_owned()))
}

pub(crate) fn promtool_check(metrics: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool not found: install Debian's `prometheus` package")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(metrics.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub(crate) fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn metrics_pass_promtool_healthz_answers_and_weir_status_summarises() -> Result<()> {
    let dir = TestDir::new("observability")?;
    let port = free_port()?;
    dir.write(
        "rules.yaml",
        "rules:\n  - name: r\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    let config = format!(
        "gateway_id: gw-obs\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 100ms}}}}]\noutbox: {{path: {:?}}}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n",
        dir.path().join("outbox.db").display().to_string()
    );
    // As under systemd: journald adds its own timestamps.
    let mut agent = Agent::start_with_env(&dir, &config, &[("JOURNAL_STREAM", "8:1234".as_ref())])?;
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(20))?;

    // Wait until windows have closed and events were committed, so counters are non-zero.
    let metrics = wait_until(
        "committed events in /metrics",
        Duration::from_secs(15),
        || {
            let (code, body) = get(port, "/metrics")?;
            Ok(
                (code == 200 && sample(&body, "weir_outbox_committed_total").unwrap_or(0.0) > 0.0)
                    .then_some(body),
            )
        },
    )
    .map_err(|e| agent.explain(e))?;
    promtool_check(&metrics)?;
    let readings = sample(&metrics, "weir_source_readings_total{source=\"simulator\"}")
        .context("readings of the simulator")?;
    assert!(readings >= 3.0, "{metrics}");
    let age = sample(
        &metrics,
        "weir_source_last_reading_age_seconds{source=\"simulator\"}",
    )
    .context("last reading age")?;
    assert!(
        (0.0..5.0).contains(&age),
        "a 100 ms simulator: {age} s\n{metrics}"
    );
    assert!(
        sample(&metrics, "weir_outbox_records{lane=\"aggregates\"}").unwrap_or(0.0) > 0.0,
        "no uplink, so aggregates wait in the outbox:\n{metrics}"
    );
    assert_eq!(get(port, "/healthz")?, (200, "ok\n".to_owned()));
    assert_eq!(get(port, "/other")?.0, 404);

    let out = weir_command()?
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": healthy"), "{text}");
    assert!(text.contains("readings from 1 source(s)"), "{text}");

    // Journald form: no timestamp of our own (journald adds one), no colour codes.
    let log = agent.log_contents();
    let ready = log
        .lines()
        .find(|l| l.contains("pipeline ready"))
        .context("pipeline ready line")?;
    assert!(ready.trim_start().starts_with("INFO"), "{ready}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in the log");
    Ok(())
}

#[test]
fn weir_status_fails_clearly_when_no_agent_runs() -> Result<()> {
    let port = free_port()?;
    let out = weir_command()?
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no agent answering"), "{err}");
    Ok(())
}

/// `log.level: weir=debug` and `RUST_LOG=debug` print DEBUG lines; `info` does not. (The
/// fmt subscriber capped events at INFO below the filter, so neither printed a DEBUG line.)
/// "running config recorded" is logged at DEBUG before "pipeline ready" at INFO, by the same
/// task, so its absence once "pipeline ready" is in the log is an answer, not a race.
#[test]
fn log_level_debug_prints_debug_lines_and_info_does_not() -> Result<()> {
    let dir = TestDir::new("log-level")?;
    dir.write(
        "rules.yaml",
        "rules:\n  - name: r\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    let outbox = dir.path().join("outbox.db").display().to_string();
    let config = |level: &str| {
        format!(
            "gateway_id: gw-log\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 100ms}}}}]\noutbox: {{path: {outbox:?}}}\nlog: {{level: {level:?}}}\n"
        )
    };
    let debug_line = "running config recorded";
    for (level, rust_log, printed) in [
        ("weir=debug,info", "", true),
        ("info", "debug", true),
        ("info", "", false),
    ] {
        let mut agent =
            Agent::start_with_env(&dir, &config(level), &[("RUST_LOG", rust_log.as_ref())])?;
        agent.wait_for_log("pipeline ready", Duration::from_secs(20))?;
        let log = agent.log_contents();
        assert_eq!(
            log.contains(debug_line) && log.contains("DEBUG"),
            printed,
            "log.level {level:?}, RUST_LOG {rust_log:?}:\n{}",
            agent.log_tail()
        );
    }
    Ok(())
}
