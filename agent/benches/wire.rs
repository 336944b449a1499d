//! Bytes on the wire per record for each uplink message form: one JSON message per record
//! (the default), JSON batches, binary batches, each with and without DEFLATE.
//!
//!     cargo bench -p weir-agent --bench wire
//!     WEIR_BENCH_BATCH=50 cargo bench -p weir-agent --bench wire     # uplink.batch.max_records
//!
//! The records are shaped like the pipeline's (window aggregates of 100 pumps, one alert in
//! 20) and grouped by the uplink's own code ([`uplink::Grouper::group`]). "On the wire" is the
//! MQTT 3.1.1 PUBLISH packet (fixed header, topic, packet id, payload) plus its 4-byte PUBACK;
//! TCP/IP and TLS framing come on top and favour batching further. Compression runs per batch,
//! so the ratio depends on the batch size: the figure is printed per form, and for DEFLATE per
//! level (`uplink.batch.level`). The encoding rate is records/s of the uplink's own encoding
//! code (splice, batch, binary form, compression), best of three rounds on one core.

use std::num::NonZeroUsize;
use std::time::Instant;

use outbox::{Lane, PAYLOAD_V1, Record};
use uplink::{BatchConfig, Compression, Format, UplinkConfig};
use weir_agent::{outbox, uplink};

const RECORDS: u64 = 20_000;
/// DEFLATE levels compared (`uplink.batch.level`; 1 is the default).
const LEVELS: [u8; 4] = [1, 3, 6, 9];
/// Encoding rounds per form; the fastest is reported.
const ROUNDS: usize = 3;

fn record(n: u64) -> Record {
    let ts = 1_732_530_000_000_000 + n as i64 * 50_000;
    let (lane, body) = if n.is_multiple_of(20) {
        (
            Lane::Alerts,
            format!(
                r#"{{"kind":"alert","rule":"pump-overheat","device":"pump-{d}","metric":"temperature","ts":{ts},"state":"raised","severity":"critical","value":{v:.3},"condition":"mean > 80"}}"#,
                d = n % 100,
                v = 80.0 + (n % 17) as f64 * 0.913,
            ),
        )
    } else {
        (
            Lane::Aggregates,
            format!(
                r#"{{"kind":"window","rule":"pump-overheat","device":"pump-{d}","metric":"temperature","ts":{ts},"start":{start},"end":{ts},"values":{{"count":10,"mean":{m},"max":{x}}}}}"#,
                d = n % 100,
                start = ts - 1_000_000,
                // Full-precision floats, as serde_json writes the engine's f64 results.
                m = 60.0 + (n % 37) as f64 * 0.731 + (n as f64).sin() * 1e-3,
                x = 70.0 + (n % 23) as f64 * 1.117 + (n as f64).cos() * 1e-3,
            ),
        )
    };
    let mut payload = vec![PAYLOAD_V1];
    payload.extend_from_slice(body.as_bytes());
    Record {
        id: n + 1,
        lane,
        topic: format!("weir/gw-17/{lane}"),
        created_at: ts,
        payload,
    }
}

/// An MQTT 3.1.1 QoS 1 PUBLISH of `topic`/`payload` plus its PUBACK, in bytes.
fn wire_bytes(topic: &str, payload: usize) -> usize {
    let remaining = 2 + topic.len() + 2 + payload;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining + 4
}

fn main() {
    let max_records = std::env::var("WEIR_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(NonZeroUsize::new)
        .unwrap_or(NonZeroUsize::new(100).expect("100 > 0"));
    // The uplink sends the backlog lane by lane: alerts first, then aggregates.
    let mut records: Vec<Record> = (0..RECORDS).map(record).collect();
    records.sort_by_key(|r| (r.lane, r.id));
    let stored: usize = records.iter().map(|r| r.payload.len() - 1).sum();
    println!(
        "{RECORDS} records, {:.1} bytes of stored JSON body each; batches of at most {max_records}",
        stored as f64 / RECORDS as f64
    );
    // (name, format, compression and DEFLATE level)
    let mut forms = vec![
        (
            "json, one record per message".to_string(),
            Format::Json,
            None,
        ),
        (
            "json batch".to_string(),
            Format::Json,
            Some((Compression::None, 1)),
        ),
    ];
    for level in LEVELS {
        forms.push((
            format!("json batch + deflate {level}"),
            Format::Json,
            Some((Compression::Deflate, level)),
        ));
    }
    forms.push((
        "binary batch".to_string(),
        Format::Binary,
        Some((Compression::None, 1)),
    ));
    for level in LEVELS {
        forms.push((
            format!("binary batch + deflate {level}"),
            Format::Binary,
            Some((Compression::Deflate, level)),
        ));
    }
    let mut baseline = None;
    for (name, format, compression) in forms {
        let cfg = UplinkConfig {
            format,
            batch: compression.map(|(compression, level)| BatchConfig {
                max_records,
                max_bytes: 1 << 20,
                compression,
                level,
            }),
            ..UplinkConfig::default()
        };
        // Best of a few rounds: the machine is shared, the fastest round is the code's.
        let mut elapsed = std::time::Duration::MAX;
        let grouper = uplink::Grouper::new(&cfg, "gw-17");
        let mut bytes = 0;
        let mut count = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let grouped = grouper.group(&records);
            elapsed = elapsed.min(t.elapsed());
            bytes = grouped
                .messages
                .iter()
                .map(|m| wire_bytes(m.topic, m.payload.len()))
                .sum();
            count = grouped.messages.len();
        }
        let per_record = bytes as f64 / RECORDS as f64;
        let base = *baseline.get_or_insert(per_record);
        println!(
            "  {name:<30} {per_record:>7.1} bytes/record on the wire ({:>5.1}% of one JSON message per record), {} messages, encoded at {:.0} records/s",
            100.0 * per_record / base,
            count,
            RECORDS as f64 / elapsed.as_secs_f64()
        );
    }
}
