//! A broker that accepts the connection and closes it right after CONNACK must not get a
//! reconnect storm: the backoff grows until a connection proves itself, and the log says so
//! once, not per attempt.
//!
//! Regression for issue 15 item 3: a CONNACK used to reset the backoff, so such a broker saw a
//! connect every ~90 ms (353 in 45 s) and the whole backlog re-sent each time.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use weir_tests::{Agent, TestDir};

use crate::common::{AgentConfig, STARTUP, mean_above_rule};

/// Accepts connections on `listener`, answers each CONNECT with a CONNACK (accepted) and
/// closes it; sends the instant of every accept on `seen`.
fn closing_broker(listener: TcpListener, seen: mpsc::Sender<Instant>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            if seen.send(Instant::now()).is_err() {
                return;
            }
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 512];
            // The CONNECT packet; its content does not matter here.
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(&[0x20, 0x02, 0x00, 0x00]);
            let _ = stream.flush();
        }
    });
}

#[test]
fn a_broker_that_closes_after_connack_sees_a_growing_backoff() -> Result<()> {
    let dir = TestDir::new("reconnect_storm")?;
    let devices = weir_tests::Mosquitto::start()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let cloud_port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    closing_broker(listener, tx);
    dir.write(
        "rules/hot.yaml",
        &mean_above_rule("hot", "pump-*", "temp", 80.0, "warning"),
    )?;
    let outbox = dir.path().join("outbox.db");
    let config = AgentConfig {
        gateway: "gw-storm",
        devices_port: devices.port(),
        cloud_port: Some(cloud_port),
        rules: &["rules/hot.yaml"],
        outbox: &outbox,
        extra_topics: &[],
    }
    .yaml();
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("pipeline ready", STARTUP)?;
    // Watch 12 s of connects from the first one on.
    let first = rx.recv_timeout(STARTUP)?;
    let mut connects = vec![first];
    while let Some(left) = Duration::from_secs(12).checked_sub(first.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(t) => connects.push(t),
            Err(_) => break,
        }
    }
    agent.assert_running()?;
    let intervals: Vec<Duration> = connects.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "broker closing after CONNACK: {} connects in 12 s, intervals {intervals:?}",
        connects.len()
    );
    // 100 ms doubling to 10 s, each delay in [step/2, step]: about 8 connects in 12 s; with a
    // CONNACK resetting the backoff it was ~130.
    assert!(
        connects.len() <= 12,
        "{} connects in 12 s: {intervals:?}",
        connects.len()
    );
    assert!(connects.len() >= 4, "too few connects: {intervals:?}");
    // The step doubles (each delay is in [step/2, step]), so a delay three attempts later is
    // at least 4 times as long; "longer" leaves room for a loaded machine's connect times.
    for (i, w) in intervals.windows(4).enumerate() {
        assert!(w[3] > w[0], "interval {} not growing: {intervals:?}", i + 3);
    }
    assert!(
        intervals
            .last()
            .is_some_and(|d| *d >= Duration::from_secs(1)),
        "{intervals:?}"
    );
    // One WARN for the outage, not one line per attempt.
    let log = agent.log_contents();
    let connected = log.matches("uplink connected").count()
        - log.matches("uplink connected (on trial)").count();
    assert!(connected <= 1, "{connected} INFO connects:\n{log}");
    assert!(
        log.matches("WARN").count() <= 3,
        "log lines are not rate-limited:\n{log}"
    );
    Ok(())
}
