//! Checkpoint cost at 10,000 series: what a checkpoint encodes, how long it takes, how long a
//! restore takes, and the ingest rate with checkpoints on against off in the same run.
//!
//! `cargo bench -p weir-rules --bench checkpoint`
//!
//! 10,000 series (1,000 devices × 10 metrics), each sampled once a second of event time, fed
//! round-robin with `advance` after every round as the agent does. Rules: a 1-minute
//! tumbling window with mean/max/p95 on every series, a CUSUM and a robust z-score (window
//! 64) on every sample: about what a gateway's rule file holds per metric.
//!
//! * **Steady cost**: checkpoints every 5 s of event time (the agent's default interval) for
//!   10 minutes of input; bytes encoded per second of input, time per checkpoint. Every series
//!   moves every second here, so every checkpoint holds all of them: the worst case.
//! * **Per batch**: a checkpoint after every 512 samples (the agent's batch with MQTT acks
//!   waiting for it): bytes per sample and the ingest rate.
//! * **Restore**: a full checkpoint into a fresh engine.
//!
//! SQLite's own cost (page writes, about 1.3–1.7 bytes per byte stored, see the outbox docs)
//! comes on top of the encoded bytes; the agent writes them on its writer thread, not on the
//! engine's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use weir_rules::{Checkpoint, Engine, RuleSet, Sample, SeriesId};

const DEVICES: usize = 1_000;
const METRICS: usize = 10;
const S: i64 = 1_000_000;

const RULES: &str = "rules:
  - name: minute
    window: { tumbling: 1m }
    aggregates: [mean, max, p95]
  - name: cusum
    detect: { cusum: {} }
    alert: {}
  - name: robust
    detect: { robust_zscore: { window: 64 } }
    alert: {}
";

fn engine() -> (Engine, Vec<SeriesId>) {
    let rules = RuleSet::parse_str(RULES, "bench.yaml").expect("bench rules parse");
    let mut e = Engine::new(rules);
    let mut ids = Vec::with_capacity(DEVICES * METRICS);
    for d in 0..DEVICES {
        for m in 0..METRICS {
            ids.push(
                e.series(&format!("dev-{d}"), &format!("m{m}"))
                    .expect("10,000 series fit the default limit"),
            );
        }
    }
    (e, ids)
}

fn value(i: usize, t: i64) -> f64 {
    20.0 + ((i as i64 * 7 + t) % 13) as f64 * 0.1
}

/// Feeds `seconds` of input from `from`; calls `every_sample` after each sample and
/// `every_second` after each round. Returns the time spent outside the callbacks.
fn feed(
    e: &mut Engine,
    ids: &[SeriesId],
    from: i64,
    seconds: i64,
    every_sample: &mut dyn FnMut(&mut Engine, u64),
    every_second: &mut dyn FnMut(&mut Engine, i64),
) {
    let mut out = Vec::new();
    let mut n = 0u64;
    for t in from..from + seconds {
        for (i, &series) in ids.iter().enumerate() {
            e.push(
                Sample {
                    series,
                    ts: t * S,
                    value: value(i, t),
                },
                &mut out,
            );
            n += 1;
            every_sample(e, n);
        }
        e.advance(t * S, &mut out);
        black_box(&out);
        out.clear();
        every_second(e, t);
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ids_len = DEVICES * METRICS;
    const SECONDS: i64 = 600;
    let samples = ids_len as f64 * SECONDS as f64;

    // Warm both engines up (windows open, detectors past their warm-up).
    let (mut off, ids) = engine();
    feed(&mut off, &ids, 0, 120, &mut |_, _| {}, &mut |_, _| {});
    let (mut on, _) = engine();
    feed(&mut on, &ids, 0, 120, &mut |_, _| {}, &mut |_, _| {});
    let (mut batch, _) = engine();
    feed(&mut batch, &ids, 0, 120, &mut |_, _| {}, &mut |_, _| {});
    for e in [&mut off, &mut on, &mut batch] {
        black_box(e.checkpoint()); // the first, full one
    }

    let start = Instant::now();
    feed(&mut off, &ids, 120, SECONDS, &mut |_, _| {}, &mut |_, _| {});
    let off_time = start.elapsed();

    let (mut bytes, mut count, mut spent) = (0usize, 0u32, Duration::ZERO);
    let start = Instant::now();
    feed(&mut on, &ids, 120, SECONDS, &mut |_, _| {}, &mut |e, t| {
        if t % 5 == 4 {
            let t0 = Instant::now();
            let c = e.checkpoint();
            spent += t0.elapsed();
            bytes += c.bytes();
            count += 1;
            black_box(c);
        }
    });
    let on_time = start.elapsed();

    let (mut b_bytes, mut b_count) = (0usize, 0u32);
    let start = Instant::now();
    feed(
        &mut batch,
        &ids,
        120,
        SECONDS,
        &mut |e, n| {
            if n % 512 == 0 {
                let c = e.checkpoint();
                b_bytes += c.bytes();
                b_count += 1;
                black_box(c);
            }
        },
        &mut |_, _| {},
    );
    let batch_time = start.elapsed();

    let rate = |d: Duration| samples / d.as_secs_f64() / 1e6;
    println!(
        "checkpoint cost: 10,000 series, 1 sample/s each, rules: 1m tumbling (mean, max, p95), cusum, robust_zscore(64)"
    );
    println!(
        "  ingest, checkpoints off:          {:>7.2} M samples/s",
        rate(off_time)
    );
    println!(
        "  ingest, checkpoint every 5 s:     {:>7.2} M samples/s ({:.2}x of off)",
        rate(on_time),
        off_time.as_secs_f64() / on_time.as_secs_f64()
    );
    println!(
        "  ingest, checkpoint per 512 samples: {:>5.2} M samples/s ({:.2}x of off)",
        rate(batch_time),
        off_time.as_secs_f64() / batch_time.as_secs_f64()
    );
    println!(
        "  every 5 s: {} checkpoints, {:.0} KiB each, {:.1} ms CPU each, {:.0} KiB/s of input encoded",
        count,
        bytes as f64 / f64::from(count.max(1)) / 1024.0,
        spent.as_secs_f64() * 1e3 / f64::from(count.max(1)),
        bytes as f64 / SECONDS as f64 / 1024.0
    );
    println!(
        "  per 512 samples: {} checkpoints, {:.0} bytes per sample encoded",
        b_count,
        b_bytes as f64 / samples
    );

    // Restore: a full checkpoint of the steady engine into a fresh one (a reload with the
    // same rules keeps every state and makes the next checkpoint full).
    on.reload(RuleSet::parse_str(RULES, "bench.yaml").expect("parses"));
    let all = on.checkpoint();
    let full = Checkpoint::from_store(all.global, all.series);
    let start = Instant::now();
    let rules = RuleSet::parse_str(RULES, "bench.yaml").expect("parses");
    let mut restored = Engine::new(rules);
    let report = restored.restore(&full).expect("restores");
    let took = start.elapsed();
    println!(
        "  restore: {} series, {:.1} MiB, {:.0} ms",
        report.series,
        full.bytes() as f64 / 1024.0 / 1024.0,
        took.as_secs_f64() * 1e3
    );
}
