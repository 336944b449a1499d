//! The MQTT source against a real mosquitto: mapping, bad payloads, and the at-least-once
//! property (an unacknowledged QoS 1 message comes back after a restart with the same id).
//!
//! One broker per test on a free port (the black-box harness's `weir_tests::Mosquitto`);
//! readiness is waited for by condition (a TCP connect, a delivery, a counter), never by a
//! fixed sleep.

#![expect(
    clippy::unwrap_used,
    reason = "test harness helpers: a failed setup step should panic the test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_drivers::mqtt::{self, MqttSourceConfig, Subscription};
use weir_drivers::topic::TopicPattern;
use weir_drivers::{Delivery, SourceCounters, SourceError};
use weir_tests::{Mosquitto, Publisher, free_port};

const WAIT: Duration = Duration::from_secs(10);

/// Publishes one QoS 1 message to `broker` and waits for its PUBACK.
async fn publish(broker: &Mosquitto, topic: &str, payload: &str) {
    let (port, topic, payload) = (broker.port(), topic.to_owned(), payload.to_owned());
    tokio::task::spawn_blocking(move || Publisher::connect(port)?.publish(&topic, payload))
        .await
        .unwrap()
        .unwrap();
}

fn config(port: u16, client_id: &str) -> MqttSourceConfig {
    let sub = |topic: &str, metric: Option<&str>| Subscription {
        topic: TopicPattern::parse(topic).unwrap(),
        metric: metric.map(str::to_owned),
    };
    MqttSourceConfig {
        name: "test".into(),
        port,
        client_id: Some(client_id.into()),
        keep_alive: Duration::from_secs(5),
        max_payload: 1024,
        subscriptions: vec![
            sub("plant/{device}/{metric}", None),
            sub("devices/{device}/state", None),
            sub("fixed/{device}", Some("rpm")),
        ],
        ..MqttSourceConfig::default()
    }
}

/// A running source and its outputs.
struct Running {
    rx: mpsc::Receiver<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SourceError>>,
}

fn start(cfg: MqttSourceConfig) -> Running {
    let (tx, rx) = mpsc::channel(16);
    let counters = Arc::new(SourceCounters::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(mqtt::run(cfg, tx, Arc::clone(&counters), shutdown.clone()));
    Running {
        rx,
        counters,
        shutdown,
        task,
    }
}

impl Running {
    /// The next delivery that is not a readiness probe (probes are acked and skipped).
    async fn next(&mut self) -> Delivery {
        loop {
            let d = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .expect("no delivery in time")
                .expect("source ended");
            if &*d.readings[0].device == "probe" {
                d.ack.unwrap().ack();
                continue;
            }
            return d;
        }
    }

    /// Publishes probes until one arrives: the subscription is then active at the broker.
    async fn wait_subscribed(&mut self, broker: &Mosquitto) {
        let deadline = Instant::now() + WAIT;
        loop {
            publish(broker, "plant/probe/p", "1").await;
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(200), self.rx.recv()).await
            {
                assert_eq!(&*d.readings[0].device, "probe", "unexpected {d:?}");
                d.ack.unwrap().ack();
                return;
            }
            assert!(Instant::now() < deadline, "source never subscribed");
        }
    }

    async fn stop(self) -> Arc<SourceCounters> {
        self.shutdown.cancel();
        let r = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("source did not stop promptly")
            .unwrap();
        assert_eq!(r, Ok(()));
        self.counters
    }
}

/// Waits until the broker has logged `n` disconnects of `client_id`. A source restarted with
/// the same id before that races the old connection: mosquitto may take the session over
/// before reading the old socket's last PUBACKs, and redeliver messages that were acked.
async fn wait_disconnected(broker: &Mosquitto, client_id: &str, n: usize) {
    // "disconnected." after a DISCONNECT packet, "closed its connection." after a bare close.
    let gone = [
        format!("Client {client_id} disconnected"),
        format!("Client {client_id} closed its connection"),
    ];
    wait_for(&gone[0].clone(), || {
        let log = broker.log_contents();
        gone.iter()
            .map(|g| log.matches(g.as_str()).count())
            .sum::<usize>()
            >= n
    })
    .await;
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    SourceCounters::get(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_good_payloads_and_counts_and_acks_bad_ones() {
    let broker = Mosquitto::start().unwrap();
    let mut src = start(config(broker.port(), "weir-test-map"));
    src.wait_subscribed(&broker).await;
    assert_eq!(get(&src.counters.connects), 1);

    publish(&broker, "plant/pump-1/temperature", "21.5").await;
    publish(&broker, "plant/pump-1/temperature", "hot").await;
    publish(
        &broker,
        "devices/m1/state",
        r#"{"temp": 1, "hum": 2, "ts": 1732530000000}"#,
    )
    .await;
    publish(&broker, "devices/m1/state", "5").await;
    publish(&broker, "plant/big/x", &"1".repeat(2000)).await;
    publish(&broker, "fixed/fan-1", r#"{"value": true}"#).await;

    let d = src.next().await;
    assert_eq!(d.readings.len(), 1);
    let r = &d.readings[0];
    assert_eq!(
        (&*r.device, &*r.metric, r.value),
        ("pump-1", "temperature", 21.5)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    assert!(
        (now - r.ts).abs() < 60_000_000,
        "receive time used: {}",
        r.ts
    );
    d.ack.unwrap().ack();

    let d = src.next().await;
    let mut got: Vec<_> = d
        .readings
        .iter()
        .map(|r| (r.device.to_string(), r.metric.to_string(), r.value, r.ts))
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    let ts = 1_732_530_000_000_000;
    assert_eq!(
        got,
        [
            ("m1".into(), "hum".into(), 2.0, ts),
            ("m1".into(), "temp".into(), 1.0, ts)
        ]
    );
    d.ack.unwrap().ack();

    let d = src.next().await;
    let r = &d.readings[0];
    assert_eq!((&*r.device, &*r.metric, r.value), ("fan-1", "rpm", 1.0));
    d.ack.unwrap().ack();

    wait_for("3 decode errors", || get(&src.counters.decode_errors) == 3).await;
    let counters = src.stop().await;
    wait_disconnected(&broker, "weir-test-map", 1).await;
    let probes = get(&counters.received) - 6;
    assert!(probes >= 1);
    assert_eq!(get(&counters.readings), probes + 4);

    // Restart with the same id: nothing comes back (good ones were acked by us, bad ones by
    // the source), so the first delivery is the marker published now.
    let mut src = start(config(broker.port(), "weir-test-map"));
    publish(&broker, "plant/marker/m", "7").await;
    let d = src.next().await;
    assert_eq!(&*d.readings[0].device, "marker");
    d.ack.unwrap().ack();
    let counters = src.stop().await;
    assert_eq!(get(&counters.decode_errors), 0, "bad payloads were acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_message_is_redelivered_after_restart() {
    let broker = Mosquitto::start().unwrap();
    let cfg = config(broker.port(), "weir-test-redeliver");
    let mut src = start(cfg.clone());
    src.wait_subscribed(&broker).await;

    publish(&broker, "plant/pump-1/temperature", "42").await;
    let unacked = src.next().await;
    assert_eq!(unacked.readings[0].value, 42.0);
    // Stop without acking, as if the agent died before committing.
    src.stop().await;
    drop(unacked);
    wait_disconnected(&broker, &cfg.effective_client_id(), 1).await;

    let mut src = start(cfg.clone());
    let again = src.next().await;
    let r = &again.readings[0];
    assert_eq!(
        (&*r.device, &*r.metric, r.value),
        ("pump-1", "temperature", 42.0)
    );
    assert_eq!(get(&src.counters.connects), 1);
    again.ack.unwrap().ack();
    src.stop().await;
    wait_disconnected(&broker, &cfg.effective_client_id(), 2).await;

    // Acked this time: a third run sees only new messages.
    let mut src = start(cfg);
    publish(&broker, "plant/marker/m", "1").await;
    let d = src.next().await;
    assert_eq!(&*d.readings[0].device, "marker");
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_after_the_broker_restarts() {
    let mut broker = Mosquitto::start().unwrap();
    let mut src = start(config(broker.port(), "weir-test-reconnect"));
    src.wait_subscribed(&broker).await;

    // Persistence is off: the restarted broker has no session, so only a fresh SUBSCRIBE
    // after the new CONNACK makes messages flow again.
    broker.restart().unwrap();
    wait_for("reconnect", || get(&src.counters.connects) == 2).await;
    src.wait_subscribed(&broker).await;
    publish(&broker, "plant/pump-2/temperature", "3").await;
    let d = src.next().await;
    assert_eq!(&*d.readings[0].device, "pump-2");
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_promptly_while_the_broker_is_unreachable() {
    let port = free_port().unwrap();
    let src = start(config(port, "weir-test-down"));
    // Let it fail a few times (backoff 100, 200, 400 ms...).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&src.counters.connects), 0);
    let t = Instant::now();
    src.stop().await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test]
async fn invalid_config_is_an_error_not_a_panic() {
    let cfg = MqttSourceConfig {
        client_id: Some(String::new()),
        ..MqttSourceConfig::default()
    };
    let (tx, _rx) = mpsc::channel(1);
    let r = mqtt::run(
        cfg,
        tx,
        Arc::new(SourceCounters::default()),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(r, Err(SourceError::Config { field, .. }) if field == "client_id"));
}
