use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rumqttc::{Event, MqttOptions, Packet};
use tokio::sync::mpsc;
use weir_tests::Mosquitto;

use super::*;
use std::sync::atomic::Ordering;

use crate::outbox::{NewRecord, Outbox, OutboxConfig, OutboxCounters, PAYLOAD_V1, Record};

fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .finish()
        .with(tracing_subscriber::filter::Targets::new().with_target("weir", tracing::Level::DEBUG))
        .try_init();
}

// ---------- pure parts ----------

fn record(id: u64, payload: &[u8]) -> Record {
    Record {
        id,
        lane: Lane::Alerts,
        topic: "weir/gw-1/alerts".into(),
        created_at: 0,
        payload: payload.to_vec(),
    }
}

#[test]
fn wire_splices_id_seq_and_gateway_in_front_of_the_body() {
    let enc = wire::Encoder::new("gw-1");
    let out = enc
        .encode(&record(42, b"\x01{\"kind\":\"alert\",\"value\":85.2}"))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"id":"gw-1:42","seq":42,"gateway":"gw-1","kind":"alert","value":85.2}"#
    );
    let out = enc.encode(&record(7, b"\x01 { } ")).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"id":"gw-1:7","seq":7,"gateway":"gw-1"}"#
    );
    // Odd gateway ids stay valid JSON.
    let out = wire::Encoder::new("a\"b")
        .encode(&record(1, b"\x01{}"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], "a\"b:1");
    assert_eq!(v["gateway"], "a\"b");

    assert!(enc.encode(&record(1, b"")).is_err());
    assert!(enc.encode(&record(1, b"\x03{}")).is_err());
    // Format 2 (tokens for the keys every record repeats) publishes the same bytes.
    let json = br#"{"kind":"window","rule":"r","device":"d","metric":"m","ts":1,"values":{}}"#;
    let mut v1 = vec![PAYLOAD_V1];
    v1.extend_from_slice(json);
    let v2 = crate::outbox::compact(v1.clone());
    assert_eq!(v2[0], 2);
    assert!(v2.len() < v1.len());
    assert_eq!(
        enc.encode(&record(9, &v2)).unwrap(),
        enc.encode(&record(9, &v1)).unwrap()
    );
    assert!(enc.encode(&record(1, b"\x01[1]")).is_err());
    for topic in ["weir/gw-1/#", "weir/+/alerts", "", "a\0b"] {
        let r = Record {
            topic: topic.into(),
            ..record(1, b"\x01{}")
        };
        assert!(enc.encode(&r).is_err(), "{topic:?}");
    }
}

/// Regression for issue 15: a record whose topic was hand-edited to contain `#` wedged the
/// uplink for good (the publish was refused when queued and retried forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_a_wildcard_topic_is_dropped_and_counted_and_the_rest_delivered() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let broker = persistent_broker();
    let mut rx = subscribe(broker.port()).await;
    let (outbox, thread) = open_outbox(dir.path()).await;
    outbox
        .append((0..3).map(|n| rec(Lane::Alerts, n)).collect(), vec![])
        .await
        .unwrap();
    // A stats round trip goes through the writer after the append: the records are committed.
    assert_eq!(outbox.stats().await.unwrap().count, 3);
    // Edited by hand, as an operator with sqlite3 could (append refuses such a topic).
    rusqlite::Connection::open(dir.path().join("outbox.db"))
        .unwrap()
        .execute("UPDATE records SET topic = 'weir/gw-1/#' WHERE id = 2", [])
        .map(|changed| assert_eq!(changed, 1))
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        uplink_cfg(broker.port(), 8),
        "gw-1".into(),
        outbox.clone(),
        Arc::default(),
        shutdown.clone(),
    ));
    let (_, first) = recv(&mut rx).await;
    let (_, second) = recv(&mut rx).await;
    assert_eq!(
        (first["n"].as_u64(), second["n"].as_u64()),
        (Some(0), Some(2))
    );
    wait_empty(&outbox).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().discarded), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("uplink stops promptly")
        .unwrap()
        .unwrap();
    drop(outbox);
    thread.join().unwrap();
}

/// Reads one MQTT packet: (type nibble, body).
async fn read_packet(sock: &mut tokio::net::TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let kind = sock.read_u8().await? >> 4;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = sock.read_u8().await?;
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    sock.read_exact(&mut body).await?;
    Ok((kind, body))
}

/// rumqttc does its I/O only inside `EventLoop::poll`. Publishes queued before a poll all
/// reach the socket in that one poll with the uplink's options (the patched rumqttc's
/// `max_request_batch`, see the workspace Cargo.toml); upstream writes one per poll.
#[tokio::test]
async fn publishes_queued_together_leave_in_one_poll() {
    use tokio::io::AsyncWriteExt;
    const N: usize = 10;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = UplinkConfig {
        port: listener.local_addr().unwrap().port(),
        ..UplinkConfig::default()
    };
    let (client, mut eventloop) = AsyncClient::new(mqtt_options(&cfg, "gw").unwrap(), N + 4);
    for i in 0..N {
        client
            .try_publish(
                "weir/gw/alerts",
                QoS::AtLeastOnce,
                false,
                vec![b'x'; 100 + i],
            )
            .unwrap();
    }
    let (counted, mut count) = tokio::sync::watch::channel(0);
    let broker = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        assert_eq!(read_packet(&mut sock).await.unwrap().0, 1, "CONNECT");
        sock.write_all(&[0x20, 2, 0, 0]).await.unwrap(); // CONNACK, accepted
        while let Ok((kind, _)) = read_packet(&mut sock).await {
            if kind == 3 {
                counted.send_modify(|n| *n += 1);
            }
        }
    });
    assert!(matches!(
        eventloop.poll().await.unwrap(),
        Event::Incoming(Packet::ConnAck(_))
    ));
    assert!(matches!(
        eventloop.poll().await.unwrap(),
        Event::Outgoing(rumqttc::Outgoing::Publish(_))
    ));
    // No more polls: whatever reaches the broker now was written by that one.
    let all = tokio::time::timeout(Duration::from_secs(2), count.wait_for(|&n| n == N))
        .await
        .is_ok();
    assert!(all, "{} of {N} publishes in one poll", *count.borrow());
    drop(eventloop);
    broker.await.unwrap();
}

#[test]
fn topics_and_config() {
    assert_eq!(
        topic_for("weir", "gw-1", Lane::Predictions),
        "weir/gw-1/predictions"
    );
    let cfg: UplinkConfig = serde_saphyr::from_str("port: 1884\nkeep_alive: 5s\n").unwrap();
    assert_eq!(cfg.port, 1884);
    assert_eq!(cfg.keep_alive, Duration::from_secs(5));
    assert_eq!(cfg.inflight, 128);
    assert_eq!(cfg.topic_prefix, "weir");
    assert_eq!(cfg.host, "127.0.0.1");
    assert!(serde_saphyr::from_str::<UplinkConfig>("prot: 1\n").is_err());
    assert!(mqtt_options(&UplinkConfig::default(), "gw").is_ok());
    let short = UplinkConfig {
        keep_alive: Duration::from_millis(500),
        ..UplinkConfig::default()
    };
    assert!(matches!(
        mqtt_options(&short, "gw"),
        Err(UplinkError::Config {
            field: "keep_alive",
            ..
        })
    ));
    let zero = UplinkConfig {
        inflight: 0,
        ..UplinkConfig::default()
    };
    assert!(mqtt_options(&zero, "gw").is_err());
}

// ---------- against a real broker ----------

/// One mosquitto per test, with persistence so a persistent test subscriber keeps its queue
/// across a broker restart.
fn persistent_broker() -> Mosquitto {
    Mosquitto::builder().persistent(true).start().unwrap()
}

/// A persistent-session subscriber to `weir/#`; returns once the subscription is acknowledged.
async fn subscribe(port: u16) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let mut opts = MqttOptions::new("weir-test-sub", "127.0.0.1", port);
    opts.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subbed_tx, mut subbed) = mpsc::unbounded_channel();
    let keep = client.clone();
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            match eventloop.poll().await {
                // Status messages are checked by their own test.
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/status") => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap();
                    if tx.send((p.topic, v)).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => drop(subbed_tx.send(())),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    client.subscribe("weir/#", QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), subbed.recv())
        .await
        .expect("SUBACK in time");
    rx
}

fn rec(lane: Lane, n: u64) -> NewRecord {
    NewRecord::json(
        lane,
        &topic_for("weir", "gw-1", lane),
        n as i64,
        format!(r#"{{"kind":"test","n":{n}}}"#).as_bytes(),
    )
}

async fn open_outbox(dir: &Path) -> (Outbox, crate::outbox::OutboxThread) {
    let cfg = OutboxConfig {
        path: dir.join("outbox.db"),
        batch_delay: Duration::ZERO,
        ..OutboxConfig::default()
    };
    Outbox::open(&cfg).unwrap()
}

async fn wait_empty(outbox: &Outbox) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if outbox.stats().await.unwrap().count == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn recv(
    rx: &mut mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) -> (String, serde_json::Value) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("records keep arriving")
        .expect("subscriber alive")
}

fn uplink_cfg(port: u16, inflight: usize) -> UplinkConfig {
    UplinkConfig {
        port,
        inflight,
        keep_alive: Duration::from_secs(5),
        ..UplinkConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_record_in_lane_order_with_ids_then_empties_the_outbox() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let broker = persistent_broker();
    let mut rx = subscribe(broker.port()).await;
    let (outbox, thread) = open_outbox(dir.path()).await;
    const N: u64 = 300;
    let recs = (0..N)
        .map(|n| rec(Lane::ALL[(n % 3) as usize], n))
        .collect();
    outbox.append(recs, vec![]).await.unwrap();

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        uplink_cfg(broker.port(), 8),
        "gw-1".into(),
        outbox.clone(),
        Arc::default(),
        shutdown.clone(),
    ));
    let mut got = Vec::new();
    while got.len() < N as usize {
        let msg = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("all records arrive in time")
            .unwrap();
        got.push(msg);
    }
    // The backlog comes out alerts first, then predictions, then aggregates, FIFO in each.
    let mut expected: Vec<(Lane, u64)> = (0..N).map(|n| (Lane::ALL[(n % 3) as usize], n)).collect();
    expected.sort();
    for ((topic, v), (lane, n)) in got.iter().zip(&expected) {
        let seq = n + 1; // ids start at 1 in a fresh outbox
        assert_eq!(topic, &format!("weir/gw-1/{lane}"));
        assert_eq!(v["id"], format!("gw-1:{seq}"));
        assert_eq!(v["seq"], seq);
        assert_eq!(v["gateway"], "gw-1");
        assert_eq!(v["kind"], "test");
        assert_eq!(v["n"], *n);
    }
    wait_empty(&outbox).await;

    // Records committed while connected are picked up without polling.
    outbox
        .append(vec![rec(Lane::Alerts, 1000)], vec![])
        .await
        .unwrap();
    let (_, v) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["n"], 1000);
    assert_eq!(v["seq"], N + 1);
    wait_empty(&outbox).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().deleted), N + 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("uplink stops promptly")
        .unwrap()
        .unwrap();
    drop(outbox);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = persistent_broker();
    let mut rx = subscribe(broker.port()).await;
    let (outbox, _thread) = open_outbox(dir.path()).await;
    const N: u64 = 5000;
    let recs = (0..N)
        .map(|n| rec(Lane::ALL[(n % 3) as usize], n))
        .collect();
    outbox.append(recs, vec![]).await.unwrap();

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        uplink_cfg(broker.port(), 4),
        "gw-1".into(),
        outbox.clone(),
        Arc::default(),
        shutdown.clone(),
    ));
    let mut seen = BTreeSet::new();
    let mut received = 0u64;
    while received < 100 {
        let (_, v) = recv(&mut rx).await;
        seen.insert(v["seq"].as_u64().unwrap());
        received += 1;
    }
    broker.restart().unwrap();
    let pending = outbox.stats().await.unwrap().count;
    assert!(pending > 0, "the restart should happen mid-stream");

    while seen.len() < N as usize {
        let (_, v) = recv(&mut rx).await;
        seen.insert(v["seq"].as_u64().unwrap());
        received += 1;
    }
    assert_eq!(seen, (1..=N).collect::<BTreeSet<u64>>(), "none missing");
    wait_empty(&outbox).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    eprintln!("received {received} messages for {N} records (duplicates allowed)");
}

#[test]
fn status_messages_name_the_gateway_and_the_will_is_retained() {
    let status = presence::Presence::new("weir", "gw-1");
    assert_eq!(status.topic, "weir/gw-1/status");
    let online: serde_json::Value = serde_json::from_slice(&status.online()).unwrap();
    assert_eq!(online["status"], "online");
    assert_eq!(online["gateway"], "gw-1");
    assert_eq!(online["version"], env!("CARGO_PKG_VERSION"));
    assert!(online["ts"].as_i64().unwrap() > 1_600_000_000_000_000);
    let down: serde_json::Value = serde_json::from_slice(&status.shutdown()).unwrap();
    assert_eq!(down["status"], "offline");
    assert_eq!(down["reason"], "shutdown");
    let will = status.will();
    assert_eq!(will.topic, "weir/gw-1/status");
    assert!(will.retain);
    assert_eq!(will.qos, QoS::AtLeastOnce);
    let will: serde_json::Value = serde_json::from_slice(&will.message).unwrap();
    assert_eq!(will["status"], "offline");
    assert_eq!(will["reason"], "connection lost");
    assert!(
        will.get("ts").is_none(),
        "the will is written at connect time"
    );
}

/// A subscriber to `weir/+/status` that collects (payload, retain flag) pairs.
async fn subscribe_status(
    port: u16,
    client_id: &str,
) -> mpsc::UnboundedReceiver<(serde_json::Value, bool)> {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subbed_tx, mut subbed) = mpsc::unbounded_channel();
    let keep = client.clone();
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap();
                    if tx.send((v, p.retain)).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => drop(subbed_tx.send(())),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    client
        .subscribe("weir/+/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), subbed.recv())
        .await
        .expect("SUBACK in time");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_online_before_records_and_says_offline_on_a_clean_stop() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let broker = persistent_broker();
    let mut status_rx = subscribe_status(broker.port(), "weir-test-status").await;
    let mut rx = subscribe(broker.port()).await;
    let (outbox, thread) = open_outbox(dir.path()).await;
    // A window of 1: the birth's PUBACK must not be taken for a record's.
    let recs = (0..20).map(|n| rec(Lane::Alerts, n)).collect();
    outbox.append(recs, vec![]).await.unwrap();
    let shutdown = CancellationToken::new();
    let counters = Arc::new(UplinkCounters::default());
    let task = tokio::spawn(run(
        uplink_cfg(broker.port(), 1),
        "gw-1".into(),
        outbox.clone(),
        Arc::clone(&counters),
        shutdown.clone(),
    ));
    let (online, _) = tokio::time::timeout(Duration::from_secs(10), status_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(online["status"], "online");
    for n in 0..20u64 {
        let (_, v) = recv(&mut rx).await;
        assert_eq!(v["n"], n);
    }
    wait_empty(&outbox).await;
    assert_eq!(OutboxCounters::get(&outbox.counters().deleted), 20);
    // Records only: the status message is not counted as a record.
    assert_eq!(counters.acked.load(Ordering::Relaxed), 20);
    assert_eq!(counters.published.load(Ordering::Relaxed), 20);
    assert_eq!(counters.connects.load(Ordering::Relaxed), 1);
    assert!(counters.connected.load(Ordering::Relaxed));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (offline, _) = tokio::time::timeout(Duration::from_secs(10), status_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offline["status"], "offline");
    assert_eq!(offline["reason"], "shutdown");
    // Retained: a subscriber that comes later still sees it.
    let mut late = subscribe_status(broker.port(), "weir-test-late").await;
    let (last, retained) = tokio::time::timeout(Duration::from_secs(10), late.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(retained);
    assert_eq!(last["reason"], "shutdown");
    drop(outbox);
    thread.join().unwrap();
}
