//! Supervised tasks: none ends silently while the agent claims health. A source, the uplink
//! or the metrics endpoint that ends is logged with its cause and restarted; if the pipeline
//! or the outbox writer ends, the agent exits 1 so that systemd restarts it.
//!
//! The metrics endpoint is made to end for real (its port is taken). Nothing real makes the
//! others end (they retry or count every failure they know), so their end is a bug: the
//! debug binary's `WEIR_FAULT=<task>` makes that task panic once (see `support::fault`).

use std::time::Duration;

use anyhow::Result;
use weir_tests::{Agent, Mosquitto, TestDir, free_port, wait_until};

use crate::observability::{get, sample};

const RULES: &str =
    "rules:\n  - name: r\n    window: { tumbling: 500ms }\n    aggregates: [count]\n";

fn config(dir: &TestDir, extra: &str) -> Result<String> {
    dir.write("rules.yaml", RULES)?;
    Ok(format!(
        "gateway_id: gw-sup\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 50ms}}}}]\n\
         outbox: {{path: {:?}}}\n{extra}",
        dir.path().join("outbox.db").display().to_string()
    ))
}

fn start_with_fault(dir: &TestDir, config: &str, fault: &str) -> Result<Agent> {
    Agent::start_with_env(dir, config, &[("WEIR_FAULT", fault.as_ref())])
}

#[test]
fn a_metrics_endpoint_whose_port_is_taken_is_retried_until_it_listens() -> Result<()> {
    let dir = TestDir::new("sup-metrics")?;
    let port = free_port()?;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let cfg = config(
        &dir,
        &format!("metrics: {{listen: \"127.0.0.1:{port}\"}}\n"),
    )?;
    let mut agent = Agent::start(&dir, &cfg)?;
    agent.wait_for_log("task=metrics endpoint", Duration::from_secs(20))?;
    let log = agent.log_contents();
    assert!(
        log.contains("Address already in use"),
        "the cause is logged:\n{log}"
    );
    assert!(
        log.contains("pipeline ready"),
        "the agent runs on meanwhile"
    );
    drop(squatter);
    agent.wait_for_log("metrics endpoint listening", Duration::from_secs(30))?;
    wait_until("/healthz answers", Duration::from_secs(10), || {
        Ok(get(port, "/healthz").ok().filter(|(code, _)| *code == 200))
    })?;
    agent.assert_running()
}

#[test]
fn a_source_that_ends_is_logged_and_restarted() -> Result<()> {
    let dir = TestDir::new("sup-source")?;
    let port = free_port()?;
    let cfg = config(
        &dir,
        &format!("metrics: {{listen: \"127.0.0.1:{port}\"}}\n"),
    )?;
    let mut agent = start_with_fault(&dir, &cfg, "source")?;
    agent.wait_for_log(
        "task restarted task=source simulator",
        Duration::from_secs(20),
    )?;
    let log = agent.log_contents();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("task=source simulator")
            && l.contains("injected fault")),
        "the end is logged at ERROR with its cause:\n{log}"
    );
    // The restarted simulator delivers readings again.
    wait_until(
        "readings after the restart",
        Duration::from_secs(20),
        || {
            let (_, metrics) = get(port, "/metrics")?;
            Ok(
                sample(&metrics, "weir_source_readings_total{source=\"simulator\"}")
                    .filter(|n| *n > 20.0),
            )
        },
    )?;
    agent.assert_running()
}

#[test]
fn an_uplink_that_ends_is_logged_and_restarted_and_delivers() -> Result<()> {
    let dir = TestDir::new("sup-uplink")?;
    let broker = Mosquitto::start()?;
    let port = free_port()?;
    let cfg = config(
        &dir,
        &format!(
            "uplink: {{host: 127.0.0.1, port: {}, keep_alive: 5s}}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n",
            broker.port()
        ),
    )?;
    let mut agent = start_with_fault(&dir, &cfg, "uplink")?;
    agent.wait_for_log("task restarted task=uplink", Duration::from_secs(20))?;
    assert!(
        agent
            .log_contents()
            .contains("injected fault (WEIR_FAULT=uplink)")
    );
    wait_until(
        "acked records after the restart",
        Duration::from_secs(30),
        || {
            let (_, metrics) = get(port, "/metrics")?;
            Ok(sample(&metrics, "weir_uplink_acked_total").filter(|n| *n > 0.0))
        },
    )?;
    agent.assert_running()
}

/// A vital task's end stops the agent with exit 1 and the cause in the log.
fn exits_1_naming(fault: &str, names: &[&str]) -> Result<()> {
    let dir = TestDir::new(&format!("sup-{fault}"))?;
    let cfg = config(&dir, "metrics: {listen: ~}\n")?;
    let mut agent = start_with_fault(&dir, &cfg, fault)?;
    let status = wait_until("the agent to exit", Duration::from_secs(30), || {
        agent.exit_status()
    })?;
    let log = agent.log_contents();
    assert_eq!(status.code(), Some(1), "exit status {status}\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("vital task ended unexpectedly"))
        .unwrap_or_else(|| panic!("no ERROR line for the end:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(names.iter().any(|n| line.contains(n)), "{line}");
    assert!(
        log.contains("weir: error: the "),
        "the exit says why:\n{log}"
    );
    Ok(())
}

#[test]
fn a_pipeline_that_ends_stops_the_agent_with_exit_1() -> Result<()> {
    exits_1_naming(
        "pipeline",
        &["task=\"pipeline\" cause=it panicked: injected fault"],
    )
}

#[test]
fn an_outbox_writer_that_ends_stops_the_agent_with_exit_1() -> Result<()> {
    // The writer's end reaches the main loop directly, or first through the pipeline, whose
    // next commit finds the writer gone: either names the outbox writer.
    exits_1_naming(
        "writer",
        &[
            "outbox writer thread panicked",
            "outbox writer thread has stopped",
        ],
    )
}
