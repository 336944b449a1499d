//! Device-level detection: throughput and state of the `multivariate` detector, and the
//! cost of `fuse:` and `incidents:` on top, printed as figures.
//!
//! `cargo bench -p weir-rules --bench device`
//!
//! 1,000 pumps, 6 metrics each (6,000 series), one sample per series every 10 s of event
//! time, fed round-robin for 24 h of event time (~52 M samples); rules: the multivariate rule
//! of `examples/rules/pump.yaml` (one-minute windows, six metrics), then the same plus
//! a `fuse:` rule and `incidents:`. A windowed-mean rule over the same stream runs first in
//! the same process, for a ratio measured on the same machine state. State: the engine's
//! `state_bytes()` per device after the run, and the detector's own fixed size.

use std::hint::black_box;
use std::time::Instant;

use weir_rules::{Engine, RuleSet, Sample, SeriesId};

const DEVICES: usize = 1_000;
const METRICS: [&str; 6] = [
    "flow",
    "discharge_pressure",
    "suction_pressure",
    "current",
    "bearing_temp",
    "vibration",
];
const HOURS: i64 = 24;

const MEAN: &str = r#"
rules:
  - name: mean
    select: { device: "pump-*" }
    group_by: device
    window: { tumbling: 1m }
    aggregates: [mean]
"#;

const MULTI: &str = r#"
rules:
  - name: pump-device
    select: { device: "pump-*" }
    group_by: device
    window: { tumbling: 1m }
    detect:
      multivariate:
        metrics: { flow: 1.0, discharge_pressure: 0.04, suction_pressure: 0.02, current: 0.3, bearing_temp: 0.3, vibration: 0.1 }
    alert: { severity: warning }
"#;

const FUSED: &str = r#"
fuse:
  - name: confirmed
    of: ["pump-*"]
    k: 2
    within: 10m
incidents:
  gap: 30m
"#;

/// A pump whose load steps every 20 minutes, with a little noise (xorshift).
fn run(yaml: &str) -> (f64, usize, usize, u64) {
    let mut engine = Engine::new(RuleSet::parse_str(yaml, "bench.yaml").expect("valid rules"));
    let ids: Vec<[SeriesId; 6]> = (0..DEVICES)
        .map(|d| {
            let device = format!("pump-{d}");
            METRICS.map(|m| engine.series(&device, m).expect("within max_series"))
        })
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut out = Vec::new();
    let mut events = 0usize;
    let mut samples = 0u64;
    let steps = HOURS * 360;
    let start = Instant::now();
    for step in 0..steps {
        let ts = step * 10_000_000;
        let load = if (step / 120) % 2 == 0 { 0.6 } else { 1.0 };
        for (d, series) in ids.iter().enumerate() {
            let fault = if d % 100 == 0 && step > steps / 2 {
                3.0
            } else {
                0.0
            };
            let values = [
                100.0 * load + noise(),
                1.4 + 4.0 * load + 0.04 * noise(),
                1.8 - 0.4 * load * load + 0.02 * noise(),
                12.0 + 40.0 * load + fault + 0.3 * noise(),
                40.0 + 10.0 * load + 0.3 * noise(),
                0.8 + 1.4 * load + 0.1 * noise(),
            ];
            for (s, v) in series.iter().zip(values) {
                engine.push(
                    Sample {
                        series: *s,
                        ts,
                        value: v,
                    },
                    &mut out,
                );
                samples += 1;
            }
        }
        engine.advance(ts, &mut out);
        events += out.len();
        black_box(&out);
        out.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    (
        samples as f64 / secs,
        engine.state_bytes() / DEVICES,
        events,
        samples,
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "device-level detection: {DEVICES} pumps × 6 metrics, 10 s poll, {HOURS} h of event time"
    );
    let (mean, mean_bytes, _, n) = run(MEAN);
    println!(
        "  windowed mean (group_by device, 1m):  {:>12.0} samples/s   {:>6} B/device   ({n} samples)",
        mean, mean_bytes
    );
    let (multi, multi_bytes, ev, _) = run(MULTI);
    println!(
        "  multivariate (6 metrics, 1m):          {:>12.0} samples/s   {:>6} B/device   {:.2}× the mean rule's time, {ev} events",
        multi,
        multi_bytes,
        mean / multi
    );
    let fused = format!("{MULTI}{FUSED}");
    let (f, f_bytes, ev, _) = run(&fused);
    println!(
        "  multivariate + fuse + incidents:       {:>12.0} samples/s   {:>6} B/device   {ev} events",
        f, f_bytes
    );
}
