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
//! * **Ingest**: 20 minutes of input without state, then with the agent's work for it in the
//!   same run: every sample added to the input log, the log encoded per 512 samples, and a
//!   checkpoint every second of wall time (60 times more often than the default interval).
//! * **Cost**: bytes of input log per sample; bytes and CPU of a checkpoint (every series
//!   moves every second here, so each holds all of them: the worst case); what that writes
//!   per second at a steady 10,000 samples/s with 60 s and 5 s intervals.
//! * **Restore**: a full checkpoint into a fresh engine, then a minute of input replayed.
//!
//! SQLite's own cost (page writes, about 1.3–1.7 bytes per byte stored, see the outbox docs)
//! comes on top of the encoded bytes; the agent writes them on its writer thread, not on the
//! engine's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use weir_rules::{Checkpoint, Engine, InputLog, RuleSet, Sample, SeriesId};

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
    const SECONDS: i64 = 1_200;
    let samples = (DEVICES * METRICS) as f64 * SECONDS as f64;

    // Both engines warmed up (windows open, detectors past their warm-up), and their first,
    // full checkpoint taken.
    let (mut off, ids) = engine();
    feed(&mut off, &ids, 0, 120, &mut |_, _| {}, &mut |_, _| {});
    let (mut on, _) = engine();
    feed(&mut on, &ids, 0, 120, &mut |_, _| {}, &mut |_, _| {});
    black_box(off.checkpoint());
    let full = on.checkpoint();
    let state_bytes = full.bytes();

    let start = Instant::now();
    feed(&mut off, &ids, 120, SECONDS, &mut |_, _| {}, &mut |_, _| {});
    let off_time = start.elapsed();

    // As the agent does: every sample logged, the log encoded per batch of 512 samples, a
    // checkpoint every second of wall time (the default interval is 60 s).
    let names: Vec<(std::sync::Arc<str>, std::sync::Arc<str>)> = (0..DEVICES)
        .flat_map(|d| {
            (0..METRICS).map(move |m| (format!("dev-{d}").into(), format!("m{m}").into()))
        })
        .collect();
    let log = std::cell::RefCell::new(InputLog::default());
    let (mut log_bytes, mut ck_bytes, mut ck_count, mut ck_time) =
        (0usize, 0usize, 0u32, Duration::ZERO);
    let mut last = Instant::now();
    let t_now = std::cell::Cell::new(120i64);
    let start = Instant::now();
    feed(
        &mut on,
        &ids,
        120,
        SECONDS,
        &mut |_, n| {
            let i = ((n - 1) % names.len() as u64) as usize;
            let (d, m) = &names[i];
            let t = t_now.get();
            log.borrow_mut().sample(d, m, t * S, value(i, t));
            if n % 512 == 0 {
                log_bytes += black_box(log.borrow_mut().take()).len();
            }
        },
        &mut |e, t| {
            log.borrow_mut().advance(t * S);
            t_now.set(t + 1);
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                let t0 = Instant::now();
                let c = e.checkpoint();
                ck_time += t0.elapsed();
                ck_bytes += c.bytes();
                ck_count += 1;
                black_box(c);
                log.borrow_mut().take();
            }
        },
    );
    let on_time = start.elapsed();

    let rate = |d: Duration| samples / d.as_secs_f64() / 1e6;
    let per_ck_ms = ck_time.as_secs_f64() * 1e3 / f64::from(ck_count.max(1));
    let log_per_sample = log_bytes as f64 / samples;
    println!(
        "engine state at 10,000 series (1 sample/s each; rules: 1m tumbling mean/max/p95, cusum, robust_zscore(64))"
    );
    println!(
        "  ingest, state off:              {:>6.2} M samples/s",
        rate(off_time)
    );
    println!(
        "  ingest, input log + checkpoints: {:>6.2} M samples/s ({:.2}x of off; {} checkpoints, one per second of wall time)",
        rate(on_time),
        off_time.as_secs_f64() / on_time.as_secs_f64(),
        ck_count
    );
    println!("  input log: {log_per_sample:.1} bytes per sample");
    println!(
        "  checkpoint of all 10,000 series: {:.1} MiB, {:.0} ms CPU (average {:.1} MiB, {:.0} ms over the run)",
        state_bytes as f64 / 1048576.0,
        per_ck_ms,
        ck_bytes as f64 / f64::from(ck_count.max(1)) / 1048576.0,
        per_ck_ms
    );
    for interval in [60.0, 5.0] {
        let per_s = 10_000.0 * log_per_sample + state_bytes as f64 / interval;
        println!(
            "  written at steady input (10,000 samples/s), interval {interval:>2} s: {:.0} KiB/s (log {:.0} + state {:.0}); CPU {:.2}% of a core",
            per_s / 1024.0,
            10_000.0 * log_per_sample / 1024.0,
            state_bytes as f64 / interval / 1024.0,
            per_ck_ms / 10.0 / interval
        );
    }

    // Restore: a full checkpoint into a fresh engine, then a minute of input replayed.
    let all = Checkpoint::from_store(full.global.clone(), full.series.clone());
    let start = Instant::now();
    let mut restored = Engine::new(RuleSet::parse_str(RULES, "bench.yaml").expect("parses"));
    let report = restored.restore(&all).expect("restores");
    let took = start.elapsed();
    let mut minute = InputLog::default();
    for t in 120..180 {
        for (i, (d, m)) in names.iter().enumerate() {
            minute.sample(d, m, t * S, value(i, t));
        }
        minute.advance(t * S);
    }
    let minute = minute.take();
    let start = Instant::now();
    let replayed = restored.replay(&minute).expect("replays");
    let replay = start.elapsed();
    println!(
        "  restore: {} series, {:.1} MiB in {:.0} ms; replay of 60 s of input ({} samples) in {:.0} ms",
        report.series,
        all.bytes() as f64 / 1048576.0,
        took.as_secs_f64() * 1e3,
        replayed,
        replay.as_secs_f64() * 1e3
    );
}
