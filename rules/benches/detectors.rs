//! Anomaly detectors: throughput, state size and false alarms, printed as figures.
//!
//! `cargo bench -p weir-rules --bench detectors`; `WEIR_BENCH_DECIMALS=<d>` rounds every value
//! to `d` decimals (module `telemetry`), `WEIR_BENCH_KIND=<index>` runs one kind alone.
//!
//! * Throughput: 10,000 series fed round-robin (one sample per series every 100 ms of event
//!   time), `advance` after every round as the agent does, 100 rules where rules `2j` and
//!   `2j + 1` select metric `m{j}` (two matches per sample), cycling through every detector
//!   kind, timed by the thread's CPU time (see `throughput`). The same stream through 100 windowed-mean rules runs in the same process first,
//!   so the ratio between the two is measured on the same machine state.
//! * State: bytes per series per rule for each detector kind (the engine's slot, the
//!   detector's box and what it owns), after 1,000 samples per series.
//! * False alarms: raises per 100,000 values of Gaussian noise (σ = 1) with each detector's
//!   defaults, and how many values after a 1σ level shift the shift detectors need
//!   (`changepoint`: onsets, its events, instead of raises).

use std::hint::black_box;
#[path = "common/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::CpuClock;
#[path = "common/telemetry.rs"]
mod telemetry;

use weir_rules::{Engine, EventKind, Limits, RuleSet, Sample, SeriesId};

const SERIES: usize = 10_000;

/// One detector per kind, as a rule body (everything after `select`).
const KINDS: [(&str, &str); 13] = [
    (
        "threshold + for",
        "detect: { threshold: { raise: 25, clear: 22, for: 2s } }",
    ),
    ("zscore", "detect: { zscore: {} }"),
    (
        "robust_zscore (window 64)",
        "detect: { robust_zscore: { window: 64 } }",
    ),
    ("ewma_chart", "detect: { ewma_chart: {} }"),
    ("cusum", "detect: { cusum: {} }"),
    ("rate", "detect: { rate: { max: 50 } }"),
    (
        "flatline",
        "detect: { flatline: { for: 30s, epsilon: 0.01 } }",
    ),
    (
        "range (NaN, bounds)",
        "detect: { range: { min: 0, max: 100 } }",
    ),
    ("missing", "detect: { missing: 30s }"),
    (
        "zscore of 10 s window means",
        "window: { tumbling: 10s }\n    detect: { zscore: {} }",
    ),
    (
        "trend of 10 s means (1 h, 256 pts)",
        "window: { tumbling: 10s }\n    detect: { trend: { above: 30, over: 1h, horizon: 1h } }",
    ),
    ("changepoint", "detect: { changepoint: {} }"),
    ("novelty (defaults)", "detect: { novelty: {} }"),
];

fn ruleset(bodies: &[&str], rules: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..rules {
        let metric = if rules == 1 {
            "*".to_owned()
        } else {
            format!("m{}", i / 2)
        };
        let body = bodies[i % bodies.len()];
        let alert = if body.contains("detect") {
            "alert: { severity: warning }"
        } else {
            "alert: { when: \"mean > 80\" }"
        };
        yaml.push_str(&format!(
            "  - name: r{i}\n    select: {{ metric: \"{metric}\" }}\n    {body}\n    {alert}\n"
        ));
    }
    match RuleSet::parse_str(&yaml, "bench.yaml") {
        Ok(set) => set,
        Err(e) => panic!("bench rules do not compile: {e}"),
    }
}

fn engine(bodies: &[&str], rules: usize) -> (Engine, Vec<SeriesId>) {
    engine_of(bodies, rules, SERIES)
}

fn engine_of(bodies: &[&str], rules: usize, series: usize) -> (Engine, Vec<SeriesId>) {
    let metrics = (rules / 2).max(1);
    let limits = Limits {
        max_series: series,
        max_state_bytes: usize::MAX,
    };
    let mut engine = Engine::with_limits(ruleset(bodies, rules), limits);
    let ids = (0..series)
        .map(
            |k| match engine.series(&format!("d{k}"), &format!("m{}", k % metrics)) {
                Ok(id) => id,
                Err(e) => panic!("{e}"),
            },
        )
        .collect();
    (engine, ids)
}

/// Deterministic noise in [-1, 1) (xorshift64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// Approximately standard normal: the sum of 12 uniforms on [-1, 1), halved.
    fn gauss(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() / 2.0
    }
}

fn throughput(bodies: &[&str], rounds: i64) -> (f64, u64) {
    let (mut engine, ids) = engine(bodies, 100);
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(4 * SERIES);
    let mut alerts = 0u64;
    let decimals = telemetry::decimals();
    let start = CpuClock::now();
    for round in 0..rounds {
        let ts = round * 100_000;
        for (k, &series) in ids.iter().enumerate() {
            // A noisy level with a +5 step for 10 s out of every 30 s, staggered by series.
            let step = if (round / 100 + k as i64) % 3 == 0 {
                5.0
            } else {
                0.0
            };
            let value = telemetry::as_sent(decimals, 20.0 + step + noise.next());
            engine.push(Sample { series, ts, value }, &mut out);
        }
        engine.advance(ts, &mut out);
        alerts += out
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Alert { .. }))
            .count() as u64;
        out.clear();
    }
    let secs = start.elapsed_secs();
    black_box(engine.stats());
    ((rounds as f64 * SERIES as f64) / secs, alerts)
}

/// Raises on `n` values of N(10, 1), and over 20 runs with a +1σ step after 1,000 values:
/// how many values each needed to raise (`None`: not within 500).
fn quality(body: &str, n: usize) -> (usize, Vec<Option<usize>>) {
    let run = |values: &[f64]| -> Vec<usize> {
        let (mut engine, ids) = engine(&[body], 1);
        let mut out = Vec::new();
        let mut raised = Vec::new();
        for (i, &value) in values.iter().enumerate() {
            let ts = i as i64 * 1_000_000;
            engine.push(
                Sample {
                    series: ids[0],
                    ts,
                    value,
                },
                &mut out,
            );
            for e in out.drain(..) {
                let raise = match e.kind {
                    EventKind::Alert { state, .. } => state == weir_rules::AlertState::Raised,
                    EventKind::Changepoint { change, .. } => {
                        change == weir_rules::ChangeKind::Onset
                    }
                    _ => false,
                };
                if raise {
                    raised.push(i);
                }
            }
        }
        raised
    };
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let clean: Vec<f64> = (0..n).map(|_| 10.0 + noise.gauss()).collect();
    let false_raises = run(&clean).len();
    let at = 1_000;
    let delays = (0..20)
        .map(|_| {
            let shifted: Vec<f64> = (0..at + 500)
                .map(|i| 10.0 + noise.gauss() + if i >= at { 1.0 } else { 0.0 })
                .collect();
            run(&shifted).into_iter().find(|&i| i >= at).map(|i| i - at)
        })
        .collect();
    (false_raises, delays)
}

/// Bytes of state per series for a one-rule set of `body`, after 1,000 samples per series,
/// over 128 series (a power of two: the engine's tables then have no spare capacity, which
/// `state_bytes` would count).
fn state(body: &str) -> usize {
    const STATE_SERIES: usize = 128;
    let (mut engine, ids) = engine_of(&[body], 1, STATE_SERIES);
    let mut out = Vec::new();
    let mut noise = Noise(7);
    let decimals = telemetry::decimals();
    for round in 0..1_000i64 {
        for &series in &ids {
            let value = telemetry::as_sent(decimals, 20.0 + noise.next());
            engine.push(
                Sample {
                    series,
                    ts: round * 100_000,
                    value,
                },
                &mut out,
            );
        }
        out.clear();
    }
    engine.state_bytes() / STATE_SERIES
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("detectors: skipped (run with `cargo bench -p weir-rules --bench detectors`)");
        return;
    }
    // `WEIR_BENCH_KIND=<index>`: only that kind's throughput, longer (for profiling).
    if let Some(k) = std::env::var("WEIR_BENCH_KIND")
        .ok()
        .and_then(|k| k.parse::<usize>().ok())
        .and_then(|k| KINDS.get(k))
    {
        let (rate, alerts) = throughput(&[k.1], 1_000);
        println!("  {}", telemetry::describe(telemetry::decimals()));
        println!(
            "  {:<30} {:>6.2} M samples/s/core  ({alerts} alerts)",
            k.0,
            rate / 1e6
        );
        return;
    }
    // `-- state`: only the state table.
    if std::env::args().skip(1).any(|a| a == "state") {
        state_table();
        return;
    }
    let bodies: Vec<&str> = KINDS.iter().map(|k| k.1).collect();
    let rounds = 300;
    // The windowed baseline first, then the mix, in one process: their ratio is the figure
    // to trust on a shared machine.
    let (base, _) = throughput(&["window: { tumbling: 10s }"], rounds);
    let (rate, alerts) = throughput(&bodies, rounds);
    println!(
        "detectors: {SERIES} series, 100 rules cycling through {} detector kinds, 2 match per sample",
        KINDS.len()
    );
    println!(
        "  mixed detectors:         {:>6.2} M samples/s/core  ({alerts} alerts)",
        rate / 1e6
    );
    println!(
        "  100 windowed-mean rules: {:>6.2} M samples/s/core  (same stream, same run; ratio {:.2})",
        base / 1e6,
        rate / base
    );
    println!("throughput per detector kind: 100 rules of that kind, same stream");
    for (name, body) in KINDS {
        let (rate, alerts) = throughput(&[body], 100);
        println!(
            "  {name:<30} {:>6.2} M samples/s/core  ({alerts} alerts)",
            rate / 1e6
        );
    }
    state_table();
    println!(
        "defaults on Gaussian noise: false raises per 100,000 values; values needed to raise \
         after a +1σ step (median of 20 runs; missed: not raised within 500)"
    );
    for (name, body) in KINDS[1..5].iter().chain(&KINDS[11..]) {
        let (false_raises, delays) = quality(body, 100_000);
        let mut hit: Vec<usize> = delays.iter().flatten().copied().collect();
        hit.sort_unstable();
        let median = hit
            .get(hit.len() / 2)
            .map_or("-".to_owned(), |d| d.to_string());
        let misses = delays.len() - hit.len();
        println!("  {name:<30} {false_raises:>4} false; step: median {median:>3}, {misses} missed");
    }
}

/// State per (rule, series) by detector kind.
fn state_table() {
    let plain = state("window: { tumbling: 10s }");
    println!(
        "state per series per rule (engine slot + window state + detector + heap, excluding \
         interning), and the difference from a plain tumbling-window rule ({plain} bytes; a \
         detector rule without a window has no window state; {}):",
        telemetry::describe(telemetry::decimals())
    );
    for (name, body) in KINDS {
        let bytes = state(body);
        let diff = bytes as i64 - plain as i64;
        println!("  {name:<34} {bytes:>6} bytes ({diff:>+5})");
    }
}
