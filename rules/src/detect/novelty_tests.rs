use super::*;

/// A deterministic noise in [-1, 1] (no RNG crate in `rules`).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// A daily pattern of 288 values (5-minute data) with noise.
fn daily(i: u64) -> f64 {
    let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
    50.0 + 20.0 * phase.sin() + noise(i)
}

/// The defaults judge from the 200th value, which NAB's short files need; the first days of a
/// young detector then raise at what is merely new to it (a day's noise past a one-day
/// range). A gateway that can wait two days for its first verdict sets `warmup: 576`.
const GATEWAY: Spec = Spec {
    warmup: 576,
    ..DEFAULT
};

fn run(spec: &Spec, values: impl IntoIterator<Item = f64>) -> Vec<Verdict> {
    let mut state = State::new(spec);
    values
        .into_iter()
        .enumerate()
        .filter_map(|(i, x)| state.feed(spec, i as i64 * 300_000_000, x))
        .collect()
}

/// Indexes where an alert would be raised (anomalous after not anomalous).
fn raises(verdicts: &[Verdict]) -> Vec<usize> {
    let mut was = false;
    let mut out = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        if v.anomalous && !was {
            out.push(i);
        }
        was = v.anomalous;
    }
    out
}

#[test]
fn quiet_on_a_noisy_daily_pattern_and_raises_at_a_spike_past_the_range() {
    let spec = GATEWAY;
    let values: Vec<f64> = (0..6000u64)
        .map(|i| if i == 5000 { 90.0 } else { daily(i) })
        .collect();
    let v = run(&spec, values);
    // The spike and its return (the alert's `suppress` makes them one alarm on a gateway).
    assert_eq!(raises(&v), vec![5000, 5002], "raises at the spike only");
    assert!(v[5000].score > 1.0);
}

#[test]
fn raises_when_a_daily_pattern_flattens_inside_its_usual_range() {
    // Neither a new extreme nor a bigger error: the value stays at the pattern's middle
    // level for half a day, with the same noise. Only the contexts are new.
    let spec = GATEWAY;
    let values: Vec<f64> = (0..6000u64)
        .map(|i| {
            if (5000..5144).contains(&i) {
                50.0 + noise(i)
            } else {
                daily(i)
            }
        })
        .collect();
    let v = run(&spec, values);
    let r = raises(&v);
    assert!(
        r.iter().any(|&i| (5000..5144).contains(&i)),
        "raises: {r:?}"
    );
    assert!(r.iter().all(|&i| i >= 5000), "raises before it: {r:?}");
}

#[test]
fn raises_at_a_burst_of_noise() {
    let spec = GATEWAY;
    let values: Vec<f64> = (0..4000u64)
        .map(|i| {
            let amplitude = if (3000..3050).contains(&i) { 8.0 } else { 1.0 };
            10.0 + amplitude * noise(i)
        })
        .collect();
    let r = raises(&run(&spec, values));
    assert!(
        r.first().is_some_and(|&i| (3000..3050).contains(&i)),
        "raises: {r:?}"
    );
}

#[test]
fn raises_when_a_sensor_sticks_and_not_at_the_usual_repeats() {
    // A sensor read to one decimal: a slow daily pattern repeats its reading a few times in
    // a row, every day. Then the reading freezes (a stuck sensor, a dead process whose last
    // value is re-sent) for 40 values, inside the usual range, with no error to speak of.
    let spec = GATEWAY;
    let values: Vec<f64> = (0..6000u64)
        .map(|i| {
            let i = if (5000..5040).contains(&i) { 5000 } else { i };
            (daily(i) * 10.0).round() / 10.0
        })
        .collect();
    let v = run(&spec, values.clone());
    let r = raises(&v);
    assert!(
        r.first().is_some_and(|&i| (5010..5040).contains(&i)),
        "raises: {r:?}"
    );
    // The same series without the freeze: its own repeats are usual.
    let mut unstuck = values;
    for (i, x) in unstuck.iter_mut().enumerate().skip(5000).take(40) {
        *x = (daily(i as u64) * 10.0).round() / 10.0;
    }
    let r = raises(&run(&spec, unstuck));
    assert!(r.is_empty(), "raises without the freeze: {r:?}");
}

/// The stuck statistic against a brute force over the whole history: the run of repeats
/// ending at each value, against the longest run and the range of the values the ring of
/// blocks covers (the last `blocks` full blocks and the one being filled).
#[test]
fn stuck_matches_a_brute_force_over_the_history() {
    let spec = Spec {
        range: 512, // two blocks: the ring wraps many times
        ..DEFAULT
    };
    let blocks = spec.blocks();
    let b = BLOCK as usize;
    // Readings with many repeats, and stretches frozen for 5 to 300 values.
    let xs: Vec<f64> = (0..6000u64)
        .map(|i| {
            let frozen = match i % 1500 {
                100..105 => 100,
                600..640 => 600,
                1000..1300 => 1000,
                _ => i,
            };
            (noise(i - i % 1500 + frozen) * 3.0).round()
        })
        .collect();
    let mut state = State::new(&spec);
    let mut runs: Vec<u32> = Vec::new();
    for (i, &x) in xs.iter().enumerate() {
        let got = state.stuck(&spec, state.range(), x);
        state.extend_range(x);
        let run = match runs.last() {
            Some(&r) if xs[i - 1] == x => r + 1,
            _ => 0,
        };
        runs.push(run);
        let full = i / b;
        let want = if full == 0 {
            0.0
        } else {
            let from = (full - full.min(blocks)) * b;
            let span = from..i;
            let longest = span.clone().map(|j| runs[j].min(u32::from(u16::MAX))).max();
            let lo = span.clone().map(|j| xs[j]).fold(f64::INFINITY, f64::min);
            let hi = span.map(|j| xs[j]).fold(f64::NEG_INFINITY, f64::max);
            if hi > lo {
                let limit = f64::from(longest.unwrap_or(0))
                    .max(spec.recent - 1.0)
                    .max(0.5);
                f64::from(run) / limit
            } else {
                0.0
            }
        };
        assert_eq!(got, want, "value {i}");
    }
    assert!(
        runs.iter().any(|&r| r > 250),
        "the long freeze is in the history"
    );
}

#[test]
fn nothing_is_anomalous_during_warmup() {
    let spec = Spec {
        warmup: 50,
        ..DEFAULT
    };
    let values = (0..100u64).map(|i| if i % 7 == 0 { 1e6 } else { noise(i) });
    let v = run(&spec, values);
    assert!(v[..50].iter().all(|v| !v.anomalous));
}

#[test]
fn no_look_ahead_a_prefix_gets_the_same_verdicts() {
    // Each verdict depends only on the values before it: the verdicts on the first 3000
    // values are the same whether the series then goes on or not.
    let spec = DEFAULT;
    let long: Vec<f64> = (0..8000u64)
        .map(|i| daily(i) * (1.0 + i as f64 / 4000.0))
        .collect();
    let all = run(&spec, long.iter().copied());
    let prefix = run(&spec, long[..3000].iter().copied());
    assert_eq!(&all[..3000], &prefix[..]);
    // And deterministic: the same values again give the same verdicts, bit for bit.
    assert_eq!(all, run(&spec, long.iter().copied()));
}

#[test]
fn memory_is_bounded_and_scores_finite_on_flat_and_wild_series() {
    let spec = DEFAULT;
    let mut state = State::new(&spec);
    let before = State::BYTES + state.heap_bytes();
    for i in 0..50_000u64 {
        let x = match i {
            0..10_000 => 3.0,
            10_000..20_000 => 3.0 + 1e-12 * noise(i),
            20_000..30_000 => 1e300 * noise(i),
            _ => f64::MIN_POSITIVE * noise(i),
        };
        if let Some(v) = state.feed(&spec, i as i64, x) {
            assert!(v.score.is_finite(), "score at {i}: {}", v.score);
        }
    }
    assert!(state.feed(&spec, 0, f64::NAN).is_none());
    assert!(state.feed(&spec, 0, f64::INFINITY).is_none());
    assert_eq!(State::BYTES + state.heap_bytes(), before);
    // The module docs give the 64-bit figure; on 32-bit targets (armv7) pointers and
    // lengths are half as wide.
    let want = if cfg!(target_pointer_width = "64") {
        736
    } else {
        672
    };
    assert_eq!(
        before, want,
        "state per series with the defaults (the module docs say it)"
    );
}

#[test]
fn validation_names_each_bad_key() {
    let raw = RawSpec {
        range: Some(3),
        margin: Some(-1.0),
        recent: Some(0.5),
        z: Some(0.0),
        bins: Some(64),
        context: Some(3),
        ..RawSpec::default()
    };
    let mut keys = Vec::new();
    assert!(compile(&raw, &mut |key, _| keys.push(key.to_owned())).is_none());
    assert_eq!(keys, ["range", "margin", "recent", "z", "context"]);
    let (spec, _) = compile(&RawSpec::default(), &mut |k, m| panic!("{k}: {m}")).unwrap();
    assert_eq!(spec, DEFAULT);
}

#[test]
fn yaml_errors_point_at_the_bad_value_and_the_defaults_load() {
    let src = "\
rules:
  - name: r
    detect:
      novelty: { z: -2, bins: 16, context: 4, margin: 0.02 }
    alert: { severity: warning }
";
    let e = crate::RuleSet::parse_str(src, "d.yaml").unwrap_err();
    let at: Vec<(u64, u64)> = e.diagnostics.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(4, 21), (4, 44)], "{e}");
    assert!(e.diagnostics[1].message.contains("at most 4096"), "{e}");
    let ok = "\
rules:
  - name: r
    detect: { novelty: {} }
    alert: { severity: warning }
";
    assert!(crate::RuleSet::parse_str(ok, "d.yaml").is_ok());
    let shipped = include_str!("../../../examples/rules/nab-novelty.yaml");
    assert!(crate::RuleSet::parse_str(shipped, "nab-novelty.yaml").is_ok());
}
