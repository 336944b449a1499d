//! Self-tests of the harness: the parts that do not need a working agent, checked for real, so
//! a failing agent test points at the agent and not at the scaffolding.

use std::time::{Duration, Instant};

use anyhow::Result;
use weir_tests::{Agent, Collector, Mosquitto, Publisher, TestDir, free_port};

const T: Duration = Duration::from_secs(10);

fn payloads(messages: &[weir_tests::Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

#[test]
fn harness_mosquitto_restart_and_collect() -> Result<()> {
    let mut broker = Mosquitto::start()?;
    let collector = Collector::start(broker.port(), "weir/#")?;
    broker.wait_for_subscription("weir/#", T)?;

    Publisher::connect(broker.port())?.publish("weir/gw/alerts", r#"{"n":1}"#)?;
    let got = collector.wait_for("message 1", T, |m| m.len() == 1)?;
    assert_eq!(got[0].topic, "weir/gw/alerts");
    assert_eq!(got[0].json, Some(serde_json::json!({"n": 1})));

    // A non-persistent broker forgets the session: the collector must subscribe again.
    let port = broker.port();
    let subacks = collector.subacks();
    broker.restart()?;
    assert_eq!(broker.port(), port);
    collector.wait_subscribed_after(subacks, T)?;

    Publisher::connect(broker.port())?.publish("weir/gw/alerts", r#"{"n":2}"#)?;
    let got = collector.wait_for("message 2", T, |m| m.len() == 2)?;
    assert_eq!(payloads(&got), [r#"{"n":1}"#, r#"{"n":2}"#]);
    Ok(())
}

/// The property the uplink-outage test rests on: messages published to a persistent broker
/// right after its restart reach the collector even if it has not reconnected yet.
#[test]
fn harness_persistent_broker_queues_for_collector_across_restart() -> Result<()> {
    let mut broker = Mosquitto::builder().persistent(true).start()?;
    let collector = Collector::start(broker.port(), "weir/#")?;

    broker.stop()?;
    broker.start_again()?;
    // Publish at once, racing the collector's reconnect: the restored session must queue it.
    let mut publisher = Publisher::connect(broker.port())?;
    for n in 0..20 {
        publisher.publish("weir/gw/alerts", format!("{n}"))?;
    }
    let got = collector.wait_for("20 messages", T, |m| m.len() >= 20)?;
    let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
    assert_eq!(payloads(&got), expected);
    Ok(())
}

#[test]
fn harness_mosquitto_starts_on_a_chosen_port() -> Result<()> {
    let port = free_port()?;
    let broker = Mosquitto::builder().port(port).start()?;
    assert_eq!(broker.port(), port);
    Publisher::connect(port)?.publish("x", "y")?;
    Ok(())
}

/// A wait on an agent that died must fail at once and say so, not sit out its timeout.
#[test]
fn harness_agent_wait_fails_fast_when_the_agent_exits() -> Result<()> {
    let dir = TestDir::new("harness-exit")?;
    // Invalid on purpose (no gateway_id, no sources): any agent must refuse to run it.
    let mut agent = Agent::start(&dir, "not_a_weir_key: true\n")?;
    let started = Instant::now();
    let err = agent
        .wait_for_log("pipeline ready", Duration::from_secs(30))
        .expect_err("an agent with an invalid config cannot become ready");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    let text = format!("{err:#}");
    assert!(text.contains("exited"), "{text}");
    assert!(text.contains("agent log tail"), "{text}");
    Ok(())
}
