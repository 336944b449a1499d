//! Each detector on signals where the right answer is known: step, ramp, spike, stuck, gap,
//! and noise without anomaly (no alert). Driven through the real [`Engine`] and YAML rules,
//! so the wiring (windows, alert transitions, NaN and `advance`) is tested too.

use crate::{AlertState, Engine, Event, EventKind, RuleSet, Sample, SeriesId};

const S: i64 = 1_000_000;

/// One alert transition: (event time, raised?, value, score).
pub(super) type Tr = (i64, bool, f64, f64);

pub(super) struct Rig {
    engine: Engine,
    id: SeriesId,
    out: Vec<Event>,
}

impl Rig {
    pub(super) fn new(detect_and_window: &str) -> Rig {
        let yaml = format!(
            "rules:\n  - name: r\n    select: {{ metric: m }}\n    {detect_and_window}\n    alert: {{ severity: critical }}\n"
        );
        let mut engine = Engine::new(RuleSet::parse_str(&yaml, "t.yaml").unwrap());
        let id = engine.series("d", "m").unwrap();
        Rig {
            engine,
            id,
            out: Vec::new(),
        }
    }

    /// Feeds `values` one per second from t = 0.
    pub(super) fn run(&mut self, values: &[f64]) -> Vec<Tr> {
        for (i, &v) in values.iter().enumerate() {
            self.push(i as i64 * S, v);
        }
        self.take()
    }

    fn push(&mut self, ts: i64, value: f64) {
        let s = Sample {
            series: self.id,
            ts,
            value,
        };
        self.engine.push(s, &mut self.out);
    }

    fn take(&mut self) -> Vec<Tr> {
        self.out
            .drain(..)
            .filter_map(|e| match e.kind {
                EventKind::Alert {
                    state,
                    value,
                    score,
                    ..
                } => Some((e.ts, state == AlertState::Raised, value, score)),
                _ => None,
            })
            .collect()
    }
}

/// Deterministic bounded noise in [-1, 1] (xorshift): realistic sensor ripple whose tails
/// cannot produce a 3σ value by chance, so "no alert" is the right answer, not a likely one.
pub(super) fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

pub(super) fn level(base: f64, n: usize, seed: u64) -> Vec<f64> {
    noise(n, seed).into_iter().map(|e| base + e).collect()
}

pub(super) fn raised_at(trs: &[Tr]) -> Vec<i64> {
    trs.iter().filter(|t| t.1).map(|t| t.0 / S).collect()
}

// ---- threshold ----

#[test]
fn threshold_ramp_raises_after_for_and_clears_below_clear() {
    let mut r = Rig::new("detect: { threshold: { raise: 80, clear: 75, for: 5s } }");
    // Ramp 70 → 90 over 20 s, hold 10 s, ramp back down.
    let mut v: Vec<f64> = (0..=20).map(|i| 70.0 + i as f64).collect();
    v.extend([90.0; 10]);
    v.extend((0..=20).map(|i| 90.0 - i as f64));
    let trs = r.run(&v);
    // 81 at t = 11 starts the run; raised 5 s later at t = 16 (value 86).
    assert_eq!(trs.len(), 2, "{trs:?}");
    assert_eq!((trs[0].0, trs[0].1, trs[0].2), (16 * S, true, 86.0));
    // Back down: 90 - i at t = 31 + i; the first value below 75 is 74 at t = 47.
    assert_eq!((trs[1].0, trs[1].1, trs[1].2), (47 * S, false, 74.0));
}

#[test]
fn threshold_hysteresis_does_not_flap_and_short_spikes_are_debounced() {
    let mut r = Rig::new("detect: { threshold: { raise: 80, clear: 75, for: 3s } }");
    // Spikes above 80 lasting 2 s (< for) never raise.
    let mut v = Vec::new();
    for _ in 0..10 {
        v.extend([70.0, 85.0, 85.0, 85.0, 70.0]);
    }
    assert!(r.run(&v).is_empty());
    // Hovering between clear and raise after a raise keeps it raised: one transition.
    let mut r = Rig::new("detect: { threshold: { raise: 80, clear: 75 } }");
    let trs = r.run(&[70.0, 81.0, 79.0, 81.0, 76.0, 79.5, 81.0, 77.0]);
    assert_eq!(raised_at(&trs), [1]);
    assert_eq!(trs.len(), 1);
}

#[test]
fn threshold_low_side_when_raise_is_below_clear() {
    let mut r = Rig::new("detect: { threshold: { raise: 10, clear: 12 } }");
    let trs = r.run(&[15.0, 11.0, 9.0, 11.0, 12.5, 9.5]);
    let got: Vec<(i64, bool)> = trs.iter().map(|t| (t.0 / S, t.1)).collect();
    assert_eq!(got, [(2, true), (4, false), (5, true)]);
}

// ---- z-scores ----

#[test]
fn zscore_flags_a_spike_not_the_noise() {
    let mut r = Rig::new("detect: { zscore: { z: 4, baseline: 50 } }");
    assert!(r.run(&level(20.0, 2_000, 7)).is_empty());
    let mut v = level(20.0, 300, 8);
    v[200] = 30.0;
    let mut r = Rig::new("detect: { zscore: { z: 4, baseline: 50 } }");
    let trs = r.run(&v);
    assert_eq!(raised_at(&trs), [200]);
    assert_eq!(
        trs.len(),
        2,
        "raised at the spike, cleared at the next value: {trs:?}"
    );
    assert!(
        trs[0].3 > 10.0,
        "z-score of a 10-unit spike on σ≈0.58: {}",
        trs[0].3
    );
    assert_eq!(trs[1].0, 201 * S);
}

#[test]
fn zscore_learning_all_accepts_a_new_level_exclude_keeps_alerting() {
    let mut v = level(20.0, 200, 9);
    v.extend(level(26.0, 400, 10));
    let mut all = Rig::new("detect: { zscore: { z: 4, baseline: 30, learn: all } }");
    let trs = all.run(&v);
    assert_eq!(raised_at(&trs), [200]);
    assert!(
        !trs.last().unwrap().1,
        "cleared once the baseline learned the new level"
    );
    let mut excl = Rig::new("detect: { zscore: { z: 4, baseline: 30 } }");
    let trs = excl.run(&v);
    assert_eq!(trs.len(), 1, "never learns the anomalous level: {trs:?}");
    assert!(trs[0].1);
}

#[test]
fn robust_zscore_finds_each_spike_even_close_together() {
    let mut v = level(50.0, 400, 11);
    for i in [150, 152, 154, 300] {
        v[i] = 58.0;
    }
    let mut r = Rig::new("detect: { robust_zscore: { z: 5, window: 64 } }");
    let trs = r.run(&v);
    assert_eq!(raised_at(&trs), [150, 152, 154, 300]);
    let mut r = Rig::new("detect: { robust_zscore: { z: 5, window: 64 } }");
    assert!(r.run(&level(50.0, 2_000, 12)).is_empty());
}

#[test]
fn robust_zscore_on_a_constant_signal_flags_a_change_with_a_finite_score() {
    let mut r = Rig::new("detect: { robust_zscore: { window: 5 } }");
    let trs = r.run(&[3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.1, 3.0]);
    assert_eq!(raised_at(&trs), [6]);
    // Never moved, no resolution given: σ floors at 0.1 % of the level, 0.003.
    assert!((trs[0].3 - 0.1 / 0.003).abs() < 1e-9, "{trs:?}");
    // With the sensor's resolution the same step is one step: 0.1 / (0.1 / √12) ≈ 3.5.
    let mut r = Rig::new("detect: { robust_zscore: { window: 5, resolution: 0.1 } }");
    assert!(r.run(&[3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.1, 3.0]).is_empty());
}

// ---- control charts ----

#[test]
fn cusum_detects_a_one_sigma_step_that_zscore_misses() {
    // σ of uniform [-1, 1] noise is 0.577: a step of 0.6 is about 1σ.
    let mut v = level(10.0, 300, 13);
    v.extend(level(10.6, 200, 14));
    let mut c = Rig::new("detect: { cusum: { baseline: 100 } }");
    let trs = c.run(&v);
    let at = raised_at(&trs);
    assert_eq!(at.len(), 1, "{trs:?}");
    assert!(
        (300..340).contains(&at[0]),
        "detected within 40 values: {at:?}"
    );
    assert!(trs[0].3 > 8.0);
    let mut z = Rig::new("detect: { zscore: { z: 4, baseline: 100 } }");
    assert!(z.run(&v).is_empty());
}

#[test]
fn cusum_detects_a_downward_step_with_a_negative_score_and_clears_after_return() {
    let mut v = level(10.0, 300, 15);
    v.extend(level(9.0, 60, 16));
    v.extend(level(10.0, 200, 17));
    let mut c = Rig::new("detect: { cusum: { baseline: 100 } }");
    let trs = c.run(&v);
    assert_eq!(trs.len(), 2, "{trs:?}");
    assert!(trs[0].1 && trs[0].3 < -8.0);
    assert!((300..320).contains(&(trs[0].0 / S)));
    // Capped at 2h = 16: back to zero within about 2h / k = 32 values of the return; the
    // return's clear scores 0 (both sums at zero).
    assert!(!trs[1].1 && (360..400).contains(&(trs[1].0 / S)), "{trs:?}");
    assert_eq!(trs[1].3, 0.0);
}

#[test]
fn cusum_and_ewma_chart_stay_quiet_on_noise() {
    let v = level(10.0, 3_000, 18);
    assert!(
        Rig::new("detect: { cusum: { baseline: 100 } }")
            .run(&v)
            .is_empty()
    );
    let v = level(10.0, 3_000, 19);
    assert!(
        Rig::new("detect: { ewma_chart: { baseline: 100 } }")
            .run(&v)
            .is_empty()
    );
}

#[test]
fn ewma_chart_detects_a_small_sustained_shift() {
    let mut v = level(10.0, 300, 20);
    v.extend(level(10.5, 200, 21));
    let mut c = Rig::new("detect: { ewma_chart: { lambda: 0.1, limit: 3, baseline: 100 } }");
    let trs = c.run(&v);
    let at = raised_at(&trs);
    assert_eq!(at.len(), 1, "{trs:?}");
    assert!((300..340).contains(&at[0]), "{at:?}");
}

// ---- signal checks ----

#[test]
fn rate_flags_a_jump_but_not_a_ramp() {
    let ramp: Vec<f64> = (0..100).map(|i| i as f64 * 0.5).collect();
    assert!(
        Rig::new("detect: { rate: { max: 1 } }")
            .run(&ramp)
            .is_empty()
    );
    let mut v = ramp;
    v[50] = 60.0; // +35 in 1 s, then -35.5 back
    let trs = Rig::new("detect: { rate: { max: 1 } }").run(&v);
    let got: Vec<(i64, bool)> = trs.iter().map(|t| (t.0 / S, t.1)).collect();
    assert_eq!(got, [(50, true), (52, false)]);
    assert_eq!(trs[0].3, 35.5);
}

#[test]
fn flatline_flags_a_stuck_sensor_after_for() {
    let mut v = level(20.0, 100, 22);
    v.extend([20.3; 60]);
    v.extend(level(20.0, 20, 23));
    let mut r = Rig::new("detect: { flatline: { for: 30s, epsilon: 0.001 } }");
    let trs = r.run(&v);
    let got: Vec<(i64, bool)> = trs.iter().map(|t| (t.0 / S, t.1)).collect();
    // Stuck from t = 100 (or one value earlier, if the last noisy value was within ε).
    assert_eq!(got[0], (130, true), "{trs:?}");
    assert_eq!(got[1], (160, false));
    assert_eq!(trs[0].3, 30.0);
    assert!(
        Rig::new("detect: { flatline: { for: 5s, epsilon: 0.001 } }")
            .run(&level(20.0, 1_000, 24))
            .is_empty()
    );
}

#[test]
fn range_flags_nan_infinity_and_out_of_range_values() {
    let mut r = Rig::new("detect: { range: { min: 0, max: 100 } }");
    let v = [50.0, f64::NAN, 50.0, 120.0, 99.0, f64::INFINITY, -1.0, 0.0];
    let trs = r.run(&v);
    let got: Vec<(i64, bool)> = trs.iter().map(|t| (t.0 / S, t.1)).collect();
    assert_eq!(
        got,
        [
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, true),
            (7, false)
        ]
    );
    assert!(trs[0].2.is_nan());
    // NaN is still counted as dropped: it reached the detector, not any window.
    assert_eq!(r.engine.stats().nan_dropped, 1);
}

// ---- missing data ----

#[test]
fn missing_fires_on_advance_and_clears_on_the_next_sample() {
    let mut r = Rig::new("detect: { missing: 10s }");
    for t in 0..5 {
        r.push(t * S, 1.0);
    }
    let mut out = Vec::new();
    r.engine.advance(13 * S, &mut out); // 9 s after the last sample: not yet
    assert!(out.is_empty());
    r.engine.advance(14 * S, &mut out);
    r.out.append(&mut out);
    let trs = r.take();
    assert_eq!(trs.len(), 1);
    assert_eq!((trs[0].0, trs[0].1, trs[0].3), (14 * S, true, 10.0));
    assert!(trs[0].2.is_nan());
    r.engine.advance(100 * S, &mut out); // already raised: nothing more
    assert!(out.is_empty());
    r.engine.advance(i64::MAX, &mut out);
    assert!(out.is_empty());
    r.push(120 * S, 2.0);
    let trs = r.take();
    assert_eq!(trs.len(), 1);
    assert_eq!((trs[0].0, trs[0].1, trs[0].3), (120 * S, false, 116.0));
}

#[test]
fn missing_gap_without_advance_is_a_raise_clear_pair_and_regular_data_is_quiet() {
    let mut r = Rig::new("detect: { missing: 10s }");
    let mut trs = r.run(&[1.0; 50]);
    assert!(trs.is_empty());
    // The end of the input (`weir replay` closing its last windows) is not silence.
    let mut end = Vec::new();
    r.engine.advance(i64::MAX, &mut end);
    assert!(end.is_empty());
    r.push(49 * S + 25 * S, 1.0);
    trs = r.take();
    let got: Vec<(i64, bool)> = trs.iter().map(|t| (t.0 / S, t.1)).collect();
    assert_eq!(got, [(59, true), (74, false)]);
    // NaN is a sign of life, not silence.
    let mut r = Rig::new("detect: { missing: 10s }");
    for t in 0..30 {
        r.push(t * 5 * S, f64::NAN);
    }
    let mut out = Vec::new();
    r.engine.advance(29 * 5 * S + 9 * S, &mut out);
    assert!(out.is_empty() && r.take().is_empty());
}

#[test]
fn missing_works_beside_windowed_rules_through_the_engine_deadline() {
    let yaml = "rules:
  - name: avg
    window: { tumbling: 1h }
    aggregates: [mean]
  - name: silent
    detect: { missing: 30s }
    alert: { severity: warning }
";
    let mut e = Engine::new(RuleSet::parse_str(yaml, "t.yaml").unwrap());
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    e.push(
        Sample {
            series: id,
            ts: 0,
            value: 1.0,
        },
        &mut out,
    );
    e.advance(29 * S, &mut out);
    assert!(out.is_empty());
    e.advance(31 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].rule, "silent");
    assert_eq!(out[0].ts, 30 * S);
}

// ---- windowed input ----

#[test]
fn windowed_detector_judges_each_closed_window_value() {
    // 10 s windows of 1 Hz data; the detector sees each window's max.
    let mut r = Rig::new(
        "window: { tumbling: 10s }\n    detect: { threshold: { raise: 50 }, value: \"max\" }",
    );
    let mut v = vec![10.0; 100];
    v[35] = 60.0; // in window [30, 40)
    let trs = r.run(&v);
    let got: Vec<(i64, bool, f64)> = trs.iter().map(|t| (t.0 / S, t.1, t.2)).collect();
    assert_eq!(got, [(40, true, 60.0), (50, false, 10.0)]);
    match &r.engine.rules().rules[0].alert {
        Some(a) => assert_eq!(&*a.text, "threshold(> 50, clear at 50) of max"),
        None => panic!("alert expected"),
    }
}

#[test]
fn detector_state_bytes_are_bounded() {
    for detect in [
        "detect: { robust_zscore: { window: 64 } }",
        "detect: { trend: { above: 5, over: 1d, horizon: 1h, points: 64 } }",
    ] {
        let mut r = Rig::new(detect);
        r.run(&level(1.0, 1_000, 25));
        let warm = r.engine.state_bytes();
        for t in 1_000..10_000 {
            r.push(t * S, 1.0 + (t % 5) as f64);
        }
        // Never more; `robust_zscore`'s window of noise narrows to 2-byte integers once the
        // values are whole numbers (module `zscore::window`).
        assert!(
            r.engine.state_bytes() <= warm,
            "{detect}: grows with the data: {} > {warm}",
            r.engine.state_bytes()
        );
        // Two 64-value buffers of 16 bytes at most, on top of the engine's own vectors.
        assert!(warm < 4_000, "{detect}: {warm}");
    }
}

#[test]
fn shipped_detector_examples_compile() {
    let src = include_str!("../../../examples/rules/detectors.yaml");
    let set = RuleSet::parse_str(src, "detectors.yaml").unwrap();
    assert_eq!(set.len(), 11);
    assert!(set.rules.iter().all(|r| r.detect.is_some()));
    let mut e = Engine::new(set);
    let id = e.series("pump-1", "pressure").unwrap();
    let mut out = Vec::new();
    for t in 0..40 {
        e.push(
            Sample {
                series: id,
                ts: t * S,
                value: 7.04,
            },
            &mut out,
        );
    }
    let msg: Vec<String> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Alert { message, .. } => message.as_deref().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(msg, ["pump-1: pressure 7.0 bar above 6.5 bar for 30 s"]);
}

// ---- trend (predictive) ----

/// `(second, seconds_to_threshold, r2)` of each prediction event.
fn predictions(events: &[Event]) -> Vec<(i64, f64, f64)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Prediction {
                seconds_to_threshold,
                r2,
                ..
            } => Some((e.ts / S, seconds_to_threshold, r2)),
            _ => None,
        })
        .collect()
}

#[test]
fn trend_predicts_time_to_threshold_on_a_ramp_and_alerts_under_the_horizon() {
    let mut r =
        Rig::new("detect: { trend: { above: 90, over: 10m, horizon: 30m, min_points: 5 } }");
    // 60 °C rising 0.01 °C/s: reaches 90 at t = 3000 s.
    for t in 0..1300 {
        r.push(t * S, 60.0 + 0.01 * t as f64);
    }
    let events: Vec<Event> = r.out.drain(..).collect();
    let p = predictions(&events);
    assert_eq!(
        p.len(),
        1300 - 4,
        "one prediction per input from the 5th on"
    );
    for &(t, secs, r2) in &p {
        assert!((secs - (3000 - t) as f64).abs() < 1e-6, "t={t}: {secs}");
        assert!(r2 > 0.999_999);
    }
    let raised: Vec<i64> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Alert { .. }))
        .map(|e| e.ts / S)
        .collect();
    assert_eq!(raised.len(), 1);
    assert!((1199..=1201).contains(&raised[0]), "{raised:?}");
}

#[test]
fn trend_on_noise_predicts_with_a_poor_fit_and_does_not_alert() {
    let mut r = Rig::new("detect: { trend: { above: 21, over: 5m, horizon: 1d } }");
    assert!(r.run(&level(20.0, 3_000, 31)).is_empty());
    // `run` kept only the alerts: none.
    assert!(r.out.is_empty());
}

#[test]
fn trend_below_a_limit_on_window_means() {
    // Pressure falling 0.1 bar/min, judged on 1-minute means: 6 bar reaches 2 bar in 40 min.
    let mut r = Rig::new(
        "window: { tumbling: 1m }\n    detect: { trend: { below: 2, over: 30m, horizon: 20m, min_r2: 0.9, min_points: 5 } }",
    );
    for t in 0..(30 * 60) {
        r.push(t * S, 6.0 - 0.1 * t as f64 / 60.0);
    }
    let events: Vec<Event> = r.out.drain(..).collect();
    let p = predictions(&events);
    // Windows close at 60, 120, ...; the 5th window (ending at 300 s) gives the first.
    assert_eq!(p[0].0, 300);
    let last = p.last().unwrap();
    // A window mean (samples at 0..59 s of it) lags its end by 30.5 s.
    let expect = (6.0 - 0.1 * (last.0 as f64 - 30.5) / 60.0 - 2.0) / (0.1 / 60.0);
    assert!((last.1 - expect).abs() < 1e-6, "{last:?} vs {expect}");
    let raised: Vec<i64> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Alert { .. }))
        .map(|e| e.ts / S)
        .collect();
    // Under 20 min (1200 s) to go once the fitted value is below 4 bar: after t ≈ 1230 s.
    assert_eq!(raised, [1260]);
}
