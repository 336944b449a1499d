//! The gateway's presence on the cloud broker: a retained `online` status while the agent
//! runs, and `offline` when it stops — published by the broker from the last will when the
//! agent is SIGKILLed, by the agent itself on SIGTERM.

use std::time::Duration;

use anyhow::Result;
use weir_tests::{Agent, Collector, Message, Mosquitto};

use crate::common::{Running, STARTUP, mean_above_rule, start_with_cloud};

const GW: &str = "gw-status";
const TOPIC: &str = "weir/gw-status/status";

/// The status messages among `messages`, in arrival order.
fn statuses(messages: &[Message]) -> Vec<&Message> {
    messages.iter().filter(|m| m.topic == TOPIC).collect()
}

/// Waits for the `n`-th status message (1-based) and returns it.
fn nth_status(collector: &Collector, agent: &Agent, n: usize) -> Result<Message> {
    let messages = collector
        .wait_for(
            &format!("status message #{n} on {TOPIC}"),
            Duration::from_secs(20),
            |m| statuses(m).len() >= n,
        )
        .map_err(|e| agent.explain(e))?;
    Ok(statuses(&messages)[n - 1].clone())
}

#[test]
fn status_is_online_while_running_and_offline_after_sigkill_and_sigterm() -> Result<()> {
    let Running {
        dir,
        devices: _devices,
        cloud,
        collector,
        mut agent,
    } = start_with_cloud(
        "uplink-status",
        GW,
        Mosquitto::start()?,
        "hot",
        &mean_above_rule("hot", "pump-1", "temperature", 50.0, "warning"),
    )?;
    let online = nth_status(&collector, &agent, 1)?;
    assert_eq!(online.str("status"), Some("online"), "{}", online.summary());
    assert_eq!(online.str("gateway"), Some(GW), "{}", online.summary());
    assert!(online.str("version").is_some(), "{}", online.summary());
    assert!(online.u64("ts").is_some(), "{}", online.summary());

    // SIGKILL: the agent says nothing; the broker publishes the will.
    agent.kill9()?;
    let will = nth_status(&collector, &agent, 2)?;
    assert_eq!(will.str("status"), Some("offline"), "{}", will.summary());
    assert_eq!(
        will.str("reason"),
        Some("connection lost"),
        "{}",
        will.summary()
    );

    let config = std::fs::read_to_string(agent.config_path())?;
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("uplink connected", STARTUP)?;
    let again = nth_status(&collector, &agent, 3)?;
    assert_eq!(again.str("status"), Some("online"), "{}", again.summary());

    // SIGTERM: the agent publishes `offline` itself before disconnecting.
    let status = agent.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    let bye = nth_status(&collector, &agent, 4)?;
    assert_eq!(bye.str("status"), Some("offline"), "{}", bye.summary());
    assert_eq!(bye.str("reason"), Some("shutdown"), "{}", bye.summary());

    // Retained: a consumer that subscribes now learns the gateway is offline.
    let late = Collector::start(cloud.port(), TOPIC)?;
    let last = nth_status(&late, &agent, 1)?;
    assert_eq!(last.str("reason"), Some("shutdown"), "{}", last.summary());
    let shown: Vec<String> = statuses(&collector.messages())
        .iter()
        .map(|m| m.summary())
        .collect();
    assert_eq!(
        shown.len(),
        4,
        "one status message per transition: {shown:#?}"
    );
    Ok(())
}
