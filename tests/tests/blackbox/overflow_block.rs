//! `overflow: block` with the uplink's broker down: the outbox fills, the engine waits for
//! room, and that is a reported state, not a wedge. The systemd watchdog keeps being pinged
//! (no restart loop: a restart would not make room), STATUS= says BLOCKED, `/healthz` gives
//! the reason, the metrics show it, one ERROR line marks the episode; once the broker is back
//! the uplink drains and the engine goes on.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use anyhow::Result;
use weir_tests::{Agent, Mosquitto, TestDir, free_port, wait_until};

use crate::observability::{get, sample};
use crate::systemd::receive_until;

const EPISODE_START: &str = "outbox full under overflow: block";

#[test]
fn a_blocked_engine_is_reported_and_keeps_the_watchdog_fed() -> Result<()> {
    let dir = TestDir::new("overflow-block")?;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    let (metrics_port, broker_port) = (free_port()?, free_port()?);
    // Many small windows: the 64 KiB outbox fills within seconds while the broker is down.
    dir.write(
        "rules.yaml",
        "rules:\n  - name: r\n    window: { tumbling: 20ms }\n    aggregates: [count, mean, min, max]\n",
    )?;
    let config = format!(
        "gateway_id: gw-block\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 2ms}}}}]\n\
         outbox: {{path: {:?}, max_bytes: 64KiB, overflow: block}}\n\
         uplink: {{host: 127.0.0.1, port: {broker_port}, keep_alive: 5s}}\n\
         metrics: {{listen: \"127.0.0.1:{metrics_port}\"}}\n\
         log: {{status_interval: 200ms}}\n",
        dir.path().join("outbox.db").display().to_string()
    );
    let mut agent = Agent::start_with_env(
        &dir,
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", "1000000".as_ref()),
        ],
    )?;
    // Read the notify socket throughout, as systemd does: a full one would hold the agent up.
    let mut seen = Vec::new();
    receive_until(&socket, &mut seen, Duration::from_secs(60), |s| {
        s.iter().any(|l| l.starts_with("STATUS=BLOCKED"))
    })
    .map_err(|e| agent.explain(e))?;
    // Pinged while blocked.
    let blocked_at = seen.len();
    receive_until(&socket, &mut seen, Duration::from_secs(10), |s| {
        s[blocked_at..]
            .iter()
            .filter(|l| *l == "WATCHDOG=1")
            .count()
            >= 4
    })
    .map_err(|e| agent.explain(e))?;
    assert!(
        agent.log_contents().contains(EPISODE_START),
        "still blocked while pinged"
    );
    let (code, body) = get(metrics_port, "/healthz")?;
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("blocked:"), "{body}");
    let (_, metrics) = get(metrics_port, "/metrics")?;
    assert!(
        sample(&metrics, "weir_outbox_blocked_seconds").is_some_and(|s| s > 0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_outbox_block_episodes_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        agent.log_contents().matches(EPISODE_START).count(),
        1,
        "one ERROR line per episode"
    );
    agent.assert_running()?;

    // The broker comes up: the uplink drains, the engine goes on, health comes back.
    let _broker = Mosquitto::builder().port(broker_port).start()?;
    let drained_at = seen.len();
    receive_until(&socket, &mut seen, Duration::from_secs(30), |s| {
        s[drained_at..]
            .iter()
            .any(|l| l.starts_with("STATUS=") && !l.starts_with("STATUS=BLOCKED"))
    })
    .map_err(|e| agent.explain(e))?;
    agent
        .wait_for_log("outbox has room again", Duration::from_secs(30))
        .map_err(|e| agent.explain(e))?;
    wait_until(
        "healthz 200 after the block",
        Duration::from_secs(15),
        || Ok((get(metrics_port, "/healthz")?.0 == 200).then_some(())),
    )?;
    agent.assert_running()
}
