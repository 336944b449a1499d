//! Batch messages: exact bytes of the binary form, a reference decoder (the one docs/wire-format.md
//! describes), and batches through a real broker, acknowledged and deleted as units.

use std::num::NonZeroUsize;
use std::time::Duration;

use rumqttc::{Event, Packet};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use weir_tests::Mosquitto;

use super::batch::{BINARY_BATCH, Batcher, Compression, Format, JSON_BATCH, write_value};
use super::*;
use std::sync::atomic::Ordering;

use crate::outbox::{NewRecord, Outbox, OutboxConfig, OutboxCounters};

/// Reads the binary form back (what a cloud consumer would write).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().expect("truncated");
        self.0 = rest;
        *b
    }
    fn varint(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn string(&mut self) -> String {
        let n = self.varint() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    fn value(&mut self) -> Value {
        match self.byte() {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => {
                let z = self.varint();
                json!(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            4 => json!(f64::from_le_bytes(self.take(8).try_into().unwrap())),
            5 => Value::String(self.string()),
            6 => Value::Array((0..self.varint()).map(|_| self.value()).collect()),
            7 => {
                let n = self.varint();
                Value::Object((0..n).map(|_| (self.string(), self.value())).collect())
            }
            tag => panic!("unknown tag {tag}"),
        }
    }
}

/// Every record in a message (single or batch), with `id`, `seq` and `gateway`.
pub(super) fn decode(message: &[u8]) -> Vec<Value> {
    if message.first() == Some(&b'{') {
        return vec![serde_json::from_slice(message).unwrap()];
    }
    let body = match message[1] {
        0 => message[2..].to_vec(),
        1 => miniz_oxide::inflate::decompress_to_vec(&message[2..]).unwrap(),
        c => panic!("unknown compression {c}"),
    };
    match message[0] {
        JSON_BATCH => serde_json::from_slice(&body).unwrap(),
        BINARY_BATCH => {
            let mut r = Reader(&body);
            let gateway = r.string();
            let n = r.varint();
            let records = (0..n)
                .map(|_| {
                    let seq = r.varint();
                    let mut v = r.value();
                    v["id"] = json!(format!("{gateway}:{seq}"));
                    v["seq"] = json!(seq);
                    v["gateway"] = json!(gateway);
                    v
                })
                .collect();
            assert!(r.0.is_empty(), "trailing bytes");
            records
        }
        v => panic!("unknown format version {v}"),
    }
}

fn record(id: u64, lane: Lane, body: &str) -> Record {
    let mut payload = vec![crate::outbox::PAYLOAD_V1];
    payload.extend_from_slice(body.as_bytes());
    Record {
        id,
        lane,
        topic: topic_for("weir", "gw-1", lane),
        created_at: 0,
        payload,
    }
}

#[test]
fn binary_values_have_pinned_bytes() {
    let mut out = Vec::new();
    write_value(
        &mut out,
        &json!({"a": -2, "b": 1.5, "c": "hi", "d": [true, null], "e": 300}),
    );
    #[rustfmt::skip]
    let expected = [
        7, 5,                                       // object, 5 pairs (keys sorted)
        1, b'a', 3, 3,                              // "a": int, zigzag(-2) = 3
        1, b'b', 4, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f,   // "b": f64 1.5 little-endian
        1, b'c', 5, 2, b'h', b'i',                  // "c": string "hi"
        1, b'd', 6, 2, 2, 0,                        // "d": array [true, null]
        1, b'e', 3, 0xd8, 0x04,                     // "e": int, zigzag(300) = 600 = LEB128 d8 04
    ];
    assert_eq!(out, expected);
}

#[test]
fn batches_decode_to_the_single_messages_in_every_form() {
    let json = wire::Encoder::new("gw-1");
    let records: Vec<Record> = (1..=5)
        .map(|n| {
            record(
                n,
                Lane::Aggregates,
                &format!(r#"{{"kind":"window","n":{n},"mean":{}.25,"ok":true}}"#, n),
            )
        })
        .collect();
    let singles: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_slice(&json.encode(r).unwrap()).unwrap())
        .collect();
    for format in [Format::Json, Format::Binary] {
        // Every level, each batch twice: the reused compressor must start clean each time.
        let forms = [(Compression::None, 1)]
            .into_iter()
            .chain([1, 3, 6, 9].map(|level| (Compression::Deflate, level)));
        for (compression, level) in forms {
            let cfg = BatchConfig {
                compression,
                level,
                ..BatchConfig::default()
            };
            let b = Batcher::new(format, Some(cfg), "gw-1").unwrap();
            let fragments: Vec<Vec<u8>> = records
                .iter()
                .map(|r| b.fragment(r, json.encode(r).unwrap()).unwrap())
                .collect();
            let message = b.finish(&fragments);
            assert_eq!(message[1], compression as u8, "{format:?}");
            assert_eq!(
                decode(&message),
                singles,
                "{format:?} {compression:?} {level}"
            );
            assert_eq!(b.finish(&fragments), message, "same input, same message");
            assert_eq!(decode(&b.finish(&fragments[..1])), singles[..1]);
        }
    }
    assert!(
        Batcher::new(Format::Json, None, "gw").is_none(),
        "plain JSON by default"
    );
    let b = Batcher::new(Format::Binary, None, "gw").unwrap();
    assert_eq!(
        b.cfg.max_records.get(),
        1,
        "binary alone: one record per message"
    );
    // Bounds: records and bytes; a first record always fits.
    let cfg = BatchConfig {
        max_records: NonZeroUsize::new(3).unwrap(),
        max_bytes: 100,
        compression: Compression::None,
        level: 1,
    };
    let b = Batcher::new(Format::Json, Some(cfg), "gw").unwrap();
    assert!(b.fits(0, 0, 1000));
    assert!(b.fits(2, 50, 50));
    assert!(!b.fits(2, 51, 50));
    assert!(!b.fits(3, 10, 10));
    // A body that is not JSON cannot take the binary form.
    let b = Batcher::new(Format::Binary, None, "gw").unwrap();
    assert!(
        b.fragment(&record(1, Lane::Alerts, "{oops}"), vec![])
            .is_err()
    );
}

#[test]
fn batch_config_parses() {
    let cfg: UplinkConfig = serde_saphyr::from_str(
        "format: binary\nbatch: {max_records: 50, max_bytes: 16KiB, compression: deflate}\n",
    )
    .unwrap();
    assert_eq!(cfg.format, Format::Binary);
    let batch = cfg.batch.unwrap();
    assert_eq!(batch.max_records.get(), 50);
    assert_eq!(batch.max_bytes, 16 * 1024);
    assert_eq!(batch.compression, Compression::Deflate);
    assert!(serde_saphyr::from_str::<UplinkConfig>("format: xml\n").is_err());
    assert!(serde_saphyr::from_str::<UplinkConfig>("batch: {max_records: 0}\n").is_err());
    assert!(serde_saphyr::from_str::<UplinkConfig>("batch: {compression: zstd}\n").is_err());
    let cfg: UplinkConfig = serde_saphyr::from_str("batch: {compression: deflate}\n").unwrap();
    assert_eq!(cfg.batch.unwrap().level, 1, "the fast level by default");
    let cfg: UplinkConfig = serde_saphyr::from_str("batch: {level: 9}\n").unwrap();
    assert_eq!(cfg.batch.unwrap().level, 9);
    for bad in ["0", "10"] {
        let err = serde_saphyr::from_str::<UplinkConfig>(&format!("batch: {{level: {bad}}}\n"))
            .unwrap_err();
        assert!(err.to_string().contains("between 1"), "{err}");
    }
}

/// Every non-status message on `weir/#`, raw.
async fn subscribe_raw(port: u16) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let mut opts = rumqttc::MqttOptions::new("weir-test-raw", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subbed_tx, mut subbed) = mpsc::unbounded_channel();
    let keep = client.clone();
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/status") => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic, p.payload.to_vec())).is_err() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_through_the_broker_in_lane_order_and_are_deleted_as_units() {
    for (format, compression) in [
        (Format::Binary, Compression::Deflate),
        (Format::Json, Compression::Deflate),
        (Format::Binary, Compression::None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let broker = Mosquitto::start().unwrap();
        let mut rx = subscribe_raw(broker.port()).await;
        let (outbox, thread) = Outbox::open(&OutboxConfig {
            path: dir.path().join("outbox.db"),
            batch_delay: Duration::ZERO,
            ..OutboxConfig::default()
        })
        .unwrap();
        const N: u64 = 250;
        let recs = (0..N)
            .map(|n| {
                let lane = Lane::ALL[(n % 3) as usize];
                NewRecord::json(
                    lane,
                    &topic_for("weir", "gw-1", lane),
                    n as i64,
                    format!(r#"{{"kind":"test","n":{n},"v":{}.5}}"#, n).as_bytes(),
                )
            })
            .collect();
        outbox.append(recs, vec![]).await.unwrap();
        let cfg = UplinkConfig {
            port: broker.port(),
            inflight: 2,
            format,
            batch: Some(BatchConfig {
                max_records: NonZeroUsize::new(40).unwrap(),
                max_bytes: 64 * 1024,
                compression,
                level: 1,
            }),
            ..UplinkConfig::default()
        };
        let counters = Arc::new(UplinkCounters::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            cfg,
            "gw-1".into(),
            outbox.clone(),
            Arc::clone(&counters),
            shutdown.clone(),
        ));
        let mut got = Vec::new();
        let mut messages = 0;
        while got.len() < N as usize {
            let (topic, payload) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("batches arrive")
                .unwrap();
            messages += 1;
            let records = decode(&payload);
            assert!(records.len() <= 40, "max_records holds");
            for r in records {
                got.push((topic.clone(), r));
            }
        }
        // 84 alerts, 83 predictions, 83 aggregates: 3 batches each at most 40.
        assert_eq!(messages, 9, "{format:?} {compression:?}");
        let mut expected: Vec<(Lane, u64)> =
            (0..N).map(|n| (Lane::ALL[(n % 3) as usize], n)).collect();
        expected.sort();
        for ((topic, v), (lane, n)) in got.iter().zip(&expected) {
            assert_eq!(topic, &format!("weir/gw-1/{lane}"));
            assert_eq!(v["n"], *n);
            assert_eq!(v["v"], *n as f64 + 0.5);
            assert_eq!(v["id"], format!("gw-1:{}", n + 1));
            assert_eq!(v["gateway"], "gw-1");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while outbox.stats().await.unwrap().count > 0 {
            assert!(tokio::time::Instant::now() < deadline, "outbox drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(OutboxCounters::get(&outbox.counters().deleted), N);
        assert_eq!(counters.acked.load(Ordering::Relaxed), N);
        shutdown.cancel();
        task.await.unwrap().unwrap();
        drop(outbox);
        thread.join().unwrap();
    }
}

/// The decoder printed in docs/wire-format.md, run by Python on messages of every form: the
/// documentation a cloud consumer copies is checked against what the agent sends.
#[test]
fn the_readme_python_decoder_reads_every_form() {
    let readme = include_str!("../../../docs/wire-format.md");
    let start = readme
        .find("```python\nimport json, struct, zlib")
        .expect("the decoder in docs/wire-format.md");
    let code = &readme[start + "```python\n".len()..];
    let code = &code[..code.find("```").expect("end of the code block")];
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: python3 not found, the documented decoder is not checked");
        return;
    }
    let json = wire::Encoder::new("gw-7");
    let records: Vec<Record> = (1..=4)
        .map(|n| {
            record(
                n,
                Lane::Alerts,
                &format!(
                    r#"{{"kind":"alert","n":{n},"neg":-{n},"v":{n}.125,"s":"é","a":[null,true,false],"o":{{}}}}"#
                ),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for format in [Format::Json, Format::Binary] {
        for compression in [Compression::None, Compression::Deflate] {
            let cfg = UplinkConfig {
                format,
                batch: Some(BatchConfig {
                    compression,
                    ..BatchConfig::default()
                }),
                ..UplinkConfig::default()
            };
            for (_, message) in messages_of(&cfg, &records) {
                let path = dir.path().join(format!("m{}", files.len()));
                std::fs::write(&path, &message).unwrap();
                files.push(path);
                expected.push(decode(&message));
            }
        }
    }
    let single = json.encode(&records[0]).unwrap();
    let path = dir.path().join("single");
    std::fs::write(&path, &single).unwrap();
    files.push(path);
    expected.push(decode(&single));

    let script = format!(
        "{code}\nimport sys\nfor p in sys.argv[1:]:\n    print(json.dumps(decode(open(p, 'rb').read())))\n"
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<Value>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, expected);
}

fn messages_of(cfg: &UplinkConfig, records: &[Record]) -> Vec<(String, Vec<u8>)> {
    Grouper::new(cfg, "gw-7")
        .group(records)
        .messages
        .into_iter()
        .map(|m| (m.topic.to_owned(), m.payload))
        .collect()
}
