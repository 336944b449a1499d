//! The aggregates beyond the fixed-size totals, through the whole engine: percentiles (a
//! sketch allocated only for the rules naming one) and their validation.

use crate::{Aggregate, AlertState, Engine, Event, EventKind, RuleSet, Sample, SeriesId};

fn engine(yaml: &str) -> (Engine, SeriesId) {
    let mut e = Engine::new(RuleSet::parse_str(yaml, "t.yaml").unwrap());
    let id = e.series("m-1", "vib").unwrap();
    (e, id)
}

/// Pushes `values` 1 ms apart from `t0`, then closes everything.
fn run(e: &mut Engine, id: SeriesId, t0: i64, values: &[f64]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let ts = t0 + i as i64 * 1_000;
        e.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
    }
    e.advance(i64::MAX, &mut out);
    out
}

fn values(ev: &Event) -> Vec<(Aggregate, f64)> {
    match &ev.kind {
        EventKind::Window { values, .. } => values.clone(),
        other => panic!("expected a window, got {other:?}"),
    }
}

/// Where `x` sits in the sorted sample: the 1-based ranks it covers.
fn ranks(sorted: &[f64], x: f64) -> (usize, usize) {
    (
        sorted.partition_point(|&v| v < x) + 1,
        sorted.partition_point(|&v| v <= x),
    )
}

#[test]
fn percentiles_of_a_large_window_are_within_the_documented_rank_error() {
    let (mut e, id) = engine(
        "rules:\n  - name: p\n    window: { tumbling: 1m }\n    aggregates: [median, p5, p95, p99]\n",
    );
    // 10,000 samples in one window, a scrambled ramp: the sketch compacts 6 levels.
    let n = 10_000usize;
    let xs: Vec<f64> = (0..n)
        .map(|i| ((i * 7_919) % n) as f64 + 0.25 * ((i * 31) % 7) as f64)
        .collect();
    let out = run(&mut e, id, 0, &xs);
    assert_eq!(out.len(), 1);
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    // H·n / k with H = ⌊log2(10000 / 256)⌋ + 1 = 6, k = 256.
    let bound = 6 * n / 256;
    for (a, got) in values(&out[0]) {
        let q = match a {
            Aggregate::Median => 0.5,
            Aggregate::Percentile(p) => f64::from(p) / 100.0,
            other => panic!("{other:?}"),
        };
        let want = (q * n as f64).ceil() as usize;
        let (lo, hi) = ranks(&sorted, got);
        let off = if want < lo {
            lo - want
        } else {
            want.saturating_sub(hi)
        };
        assert!(off <= bound, "{a:?}: rank off by {off} > {bound}");
    }
}

#[test]
fn a_percentile_in_when_alone_keeps_a_sketch() {
    let (mut e, id) = engine(
        r#"
rules:
  - name: spiky
    window: { tumbling: 10s }
    let: { tail: "p95 - median" }
    alert: { when: "tail > 50" }
"#,
    );
    // 10 % of the samples are spikes of 100: p95 = 100, median = 0.
    let xs: Vec<f64> = (0..1_000)
        .map(|i| if i % 10 == 3 { 100.0 } else { 0.0 })
        .collect();
    let out = run(&mut e, id, 0, &xs);
    assert!(
        matches!(out.as_slice(), [Event { kind: EventKind::Alert { state: AlertState::Raised, value, .. }, .. }] if *value == 100.0),
        "{out:?}"
    );
}

#[test]
fn only_rules_naming_a_percentile_pay_for_the_sketch() {
    let plain =
        "rules:\n  - name: p\n    window: { tumbling: 1m }\n    aggregates: [mean, kurtosis]\n";
    let with = "rules:\n  - name: p\n    window: { tumbling: 1m }\n    aggregates: [mean, p99]\n";
    let xs = vec![1.0; 1_000];
    let (mut a, id) = engine(plain);
    let before = a.state_bytes();
    run(&mut a, id, 0, &xs[..10]);
    assert_eq!(a.state_bytes(), before, "no heap for the fixed-size totals");
    let (mut b, id) = engine(with);
    let mut sizes = Vec::new();
    for (minute, n) in [1, 100, 255].into_iter().enumerate() {
        let mut out = Vec::new();
        for (i, &value) in xs[..n].iter().enumerate() {
            let ts = minute as i64 * 60_000_000 + i as i64;
            b.push(
                Sample {
                    series: id,
                    ts,
                    value,
                },
                &mut out,
            );
        }
        sizes.push(b.state_bytes() - before);
        b.advance(i64::MAX, &mut out);
    }
    // The sketch's first level grows by doubling: 8 values, then 128, then the full 256.
    assert!(sizes[0] >= 8 * 8 && sizes[0] < 128 * 8, "{sizes:?}");
    assert!(sizes[1] >= 128 * 8 && sizes[1] < 256 * 8, "{sizes:?}");
    assert!(sizes[2] >= 256 * 8 && sizes[2] < 300 * 8, "{sizes:?}");
}

#[test]
fn percentile_names_are_validated() {
    for (name, ok) in [
        ("median", true),
        ("p1", true),
        ("p50", true),
        ("p99", true),
        ("p0", false),
        ("p100", false),
        ("p05", false),
        ("p9x", false),
        ("p", false),
    ] {
        let yaml =
            format!("rules:\n  - name: r\n    window: {{ count: 5 }}\n    aggregates: [{name}]\n");
        let got = RuleSet::parse_str(&yaml, "t.yaml");
        assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        if let Err(e) = got {
            let text = e.to_string();
            assert!(
                text.contains("t.yaml:4:") && text.contains("p1 … p99"),
                "{text}"
            );
        }
        let when = format!(
            "rules:\n  - name: r\n    window: {{ count: 5 }}\n    alert: {{ when: \"{name} > 1\" }}\n"
        );
        assert_eq!(
            RuleSet::parse_str(&when, "t.yaml").is_ok(),
            ok,
            "{name} in when"
        );
    }
}

const VIBRATION: &str = r#"
rules:
  - name: vib
    window: { tumbling: 2s }
    fft: { size: 256, sample_rate: 1000, bands: { imbalance: [20, 30], bearing: [80, 120] } }
    aggregates: [band_energy.bearing, band_energy.imbalance, rms]
    alert: { when: "band_energy.bearing > 1 and prev(band_energy.bearing) < 1" }
"#;

/// `amp · sin(2π f t)` summed, sampled at 1 kHz.
fn sines(parts: &[(f64, f64)], n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 1_000.0;
            parts
                .iter()
                .map(|&(amp, f)| amp * (std::f64::consts::TAU * f * t).sin())
                .sum()
        })
        .collect()
}

#[test]
fn band_energy_lands_in_the_band_of_each_sine() {
    let (mut e, id) = engine(VIBRATION);
    // Window 1: only the 25 Hz imbalance tone (power 0.5). Window 2: a 100 Hz bearing tone
    // of amplitude 2 (power 2) joins it. 2,000 samples = 7 complete frames per window.
    let mut xs = sines(&[(1.0, 25.0)], 2_000);
    xs.extend(sines(&[(1.0, 25.0), (2.0, 100.0)], 2_000));
    let out = run(&mut e, id, 0, &xs);
    let wins: Vec<Vec<(Aggregate, f64)>> = out
        .iter()
        .filter(|ev| matches!(ev.kind, EventKind::Window { .. }))
        .map(values)
        .collect();
    assert_eq!(wins.len(), 2);
    let near = |got: f64, want: f64, tol: f64| (got - want).abs() <= tol;
    let (b1, i1) = (wins[0][0].1, wins[0][1].1);
    let (b2, i2) = (wins[1][0].1, wins[1][1].1);
    assert!(b1 < 1e-3, "no bearing tone yet: {b1}");
    assert!(near(i1, 0.5, 0.03) && near(i2, 0.5, 0.03), "{i1} {i2}");
    assert!(near(b2, 2.0, 0.1), "{b2}");
    assert_eq!(wins[1][0].0.as_str(), "band_energy.bearing");
    let alerts: Vec<&Event> = out
        .iter()
        .filter(|ev| matches!(ev.kind, EventKind::Alert { .. }))
        .collect();
    assert_eq!(alerts.len(), 1, "{out:?}");
    assert_eq!(alerts[0].ts, 4 * 1_000_000);
}

#[test]
fn fft_sections_are_validated() {
    for (fft, want) in [
        (
            "{ size: 100, sample_rate: 1000, bands: { a: [1, 2] } }",
            "power of two",
        ),
        (
            "{ size: 256, sample_rate: 0, bands: { a: [1, 2] } }",
            "positive",
        ),
        (
            "{ size: 256, sample_rate: 1000, bands: { a: [10, 600] } }",
            "Nyquist",
        ),
        (
            "{ size: 256, sample_rate: 1000, bands: { a: [100.1, 101] } }",
            "no FFT bin",
        ),
        (
            "{ size: 256, sample_rate: 1000, bands: { a: [9, 2] } }",
            "low ≤ high",
        ),
        (
            "{ size: 256, sample_rate: 1000, bands: { 9a: [1, 20] } }",
            "band name",
        ),
        (
            "{ size: 256, sample_rate: 1000, bands: {} }",
            "1 to 16 bands",
        ),
    ] {
        let yaml = format!(
            "rules:\n  - name: r\n    window: {{ count: 5 }}\n    fft: {fft}\n    aggregates: [rms]\n"
        );
        let e = RuleSet::parse_str(&yaml, "t.yaml").unwrap_err().to_string();
        assert!(e.contains("t.yaml:4:") && e.contains(want), "{fft}: {e}");
    }
    // A band the rule does not define, in `when`: the column of the name.
    let yaml = "rules:\n  - name: r\n    window: { count: 5 }\n    fft: { size: 8, sample_rate: 8, bands: { a: [1, 2] } }\n    alert: { when: \"band_energy.b > 1\" }\n";
    let e = RuleSet::parse_str(yaml, "t.yaml").unwrap_err().to_string();
    assert!(
        e.contains("t.yaml:5:21:") && e.contains("`band_energy.b`"),
        "{e}"
    );
    // Without an `fft` section there are no bands.
    let yaml = "rules:\n  - name: r\n    window: { count: 5 }\n    aggregates: [band_energy.a]\n";
    assert!(RuleSet::parse_str(yaml, "t.yaml").is_err());
}

/// Kurtosis read only through a `let` value in `when` still turns the moment update on.
#[test]
fn kurtosis_in_when_alone_keeps_the_moments() {
    let (mut e, id) = engine(
        r#"
rules:
  - name: knock
    window: { tumbling: 10s }
    let: { peaky: "kurtosis * crest_factor" }
    alert: { when: "peaky > 20" }
"#,
    );
    // A sine (kurtosis 1.5, crest √2) with one big impact every 100 samples.
    let xs: Vec<f64> = (0..1_000)
        .map(|i| {
            let v = (i as f64 * std::f64::consts::TAU / 40.0).sin();
            if i % 100 == 0 { v + 10.0 } else { v }
        })
        .collect();
    let out = run(&mut e, id, 0, &xs);
    assert!(
        matches!(
            out.as_slice(),
            [Event {
                kind: EventKind::Alert {
                    state: AlertState::Raised,
                    ..
                },
                ..
            }]
        ),
        "{out:?}"
    );
}
