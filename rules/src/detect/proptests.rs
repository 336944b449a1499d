//! Detectors checked against brute-force references on random signals.
//!
//! * `threshold` with `for:`: for each input, the run of consecutive inputs beyond `raise`
//!   ending at it is found by scanning backwards, and the alert state follows from that run's
//!   length in time and the `clear` level — no running state shared with the detector.
//! * `cusum` with a frozen baseline: μ and σ two-pass over the warm-up values; the first
//!   raise is where `max_j Σ_{i=j..t} (s_i − k)` (or its mirror) first exceeds `h` — Page's
//!   closed form, independent of the recursion — and every later transition follows the
//!   documented recursion with its cap and clear-at-zero rule.

use proptest::prelude::*;

use crate::{AlertState, Engine, EventKind, RuleSet, Sample};

const S: i64 = 1_000_000;

/// `(ts, raised)` of each alert transition the engine emits for `values` at `times`.
fn engine_transitions(detect: &str, times: &[i64], values: &[f64]) -> Vec<(i64, bool)> {
    let yaml = format!("rules:\n  - name: r\n    detect: {detect}\n    alert: {{}}\n");
    let mut e = Engine::new(RuleSet::parse_str(&yaml, "p.yaml").unwrap());
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    for (&ts, &value) in times.iter().zip(values) {
        e.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
    }
    out.iter()
        .filter_map(|ev| match ev.kind {
            EventKind::Alert { state, .. } => Some((ev.ts, state == AlertState::Raised)),
            _ => None,
        })
        .collect()
}

/// Turns per-input states into transitions.
fn transitions(times: &[i64], states: &[bool]) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    let mut cur = false;
    for (&t, &s) in times.iter().zip(states) {
        if s != cur {
            out.push((t, s));
            cur = s;
        }
    }
    out
}

fn threshold_reference(times: &[i64], xs: &[f64], raise: f64, clear: f64, hold: i64) -> Vec<bool> {
    let high = raise >= clear;
    let beyond = |x: f64| if high { x > raise } else { x < raise };
    let back = |x: f64| if high { x < clear } else { x > clear };
    let mut states = Vec::with_capacity(xs.len());
    let mut active = false;
    for i in 0..xs.len() {
        if beyond(xs[i]) {
            let mut start = i;
            while start > 0 && beyond(xs[start - 1]) {
                start -= 1;
            }
            if times[i] - times[start] >= hold {
                active = true;
            }
        } else if back(xs[i]) {
            active = false;
        }
        states.push(active);
    }
    states
}

/// Increasing timestamps: gaps of 0.1 s to 3 s, on a 100 ms grid so that a run lasting
/// exactly `for` happens often (the boundary an off-by-one would get wrong).
fn series() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    prop::collection::vec((1i64..30, 0.0f64..100.0), 1..200).prop_map(|v| {
        let mut t = 0;
        let times = v
            .iter()
            .map(|(gap, _)| {
                t += gap * 100_000;
                t
            })
            .collect();
        (times, v.into_iter().map(|(_, x)| x).collect())
    })
}

proptest! {
    #[test]
    fn threshold_matches_the_backward_scan(
        (times, xs) in series(),
        raise in 20.0f64..80.0,
        band in -15.0f64..15.0,
        hold_tenths in 0i64..80,
    ) {
        let clear = raise - band;
        let hold = hold_tenths * 100_000;
        let detect = if hold == 0 {
            format!("{{ threshold: {{ raise: {raise}, clear: {clear} }} }}")
        } else {
            format!("{{ threshold: {{ raise: {raise}, clear: {clear}, for: {}ms }} }}", hold / 1000)
        };
        let want = transitions(&times, &threshold_reference(&times, &xs, raise, clear, hold));
        prop_assert_eq!(engine_transitions(&detect, &times, &xs), want);
    }

    #[test]
    fn cusum_matches_pages_closed_form_and_the_recursion(
        xs in prop::collection::vec(-3.0f64..3.0, 10..300),
        shift in -3.0f64..3.0,
        at in 0usize..300,
        k in 0.0f64..1.5,
        h in 1.0f64..10.0,
    ) {
        let warmup = 10usize;
        // Add a level shift from `at` on, so alarms actually happen.
        let xs: Vec<f64> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| if i >= at { x + shift } else { *x })
            .collect();
        let times: Vec<i64> = (0..xs.len() as i64).map(|i| i * S).collect();
        let w = &xs[..warmup];
        let mu = w.iter().sum::<f64>() / warmup as f64;
        let var = w.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / warmup as f64;
        // The noise floor: the smallest step between consecutive warm-up values over √12
        // (a warm-up that never moved cannot happen with continuous random values).
        let step = w.windows(2).map(|p| (p[1] - p[0]).abs()).filter(|d| *d > 0.0).fold(f64::INFINITY, f64::min);
        let sigma = var.sqrt().max(step / 12f64.sqrt());
        let s: Vec<f64> = xs.iter().map(|x| (x - mu) / sigma).collect();

        // Page's closed form for the first raise.
        let mut first = None;
        for (t, &ts) in times.iter().enumerate().skip(warmup) {
            let (mut up, mut down) = (0.0f64, 0.0f64);
            let (mut best_up, mut best_down) = (0.0f64, 0.0f64);
            for j in (warmup..=t).rev() {
                up += s[j] - k;
                down += -s[j] - k;
                best_up = best_up.max(up);
                best_down = best_down.max(down);
            }
            if best_up > h || best_down > h {
                first = Some(ts);
                break;
            }
        }
        // The documented recursion, with the cap at 2h and clear at zero.
        let mut states = vec![false; warmup];
        let (mut hi, mut lo, mut alarm) = (0.0f64, 0.0f64, false);
        for &st in &s[warmup..] {
            hi = (hi + st - k).clamp(0.0, 2.0 * h);
            lo = (lo - st - k).clamp(0.0, 2.0 * h);
            if hi > h || lo > h {
                alarm = true;
            } else if hi == 0.0 && lo == 0.0 {
                alarm = false;
            }
            states.push(alarm);
        }
        let detect = format!("{{ cusum: {{ k: {k}, h: {h}, baseline: {warmup}, learn: frozen }} }}");
        let got = engine_transitions(&detect, &times, &xs);
        let got_first = got.iter().find(|t| t.1).map(|t| t.0);
        // Sums within rounding of `h` may fall either way between the two computations.
        let near = |t: i64| {
            let i = (t / S) as usize;
            let (mut hi, mut lo) = (0.0f64, 0.0f64);
            let mut m = f64::INFINITY;
            for &st in &s[warmup..=i] {
                hi = (hi + st - k).clamp(0.0, 2.0 * h);
                lo = (lo - st - k).clamp(0.0, 2.0 * h);
                m = m.min((hi - h).abs()).min((lo - h).abs());
            }
            m < 1e-6
        };
        if got_first != first && !got_first.or(first).is_some_and(near) {
            prop_assert_eq!(got_first, first);
        }
        let want = transitions(&times, &states);
        if got != want {
            prop_assert!(got.iter().chain(&want).any(|t| near(t.0)), "{:?} vs {:?}", got, want);
        }
    }
}

proptest! {
    /// `trend` against the textbook closed form (raw sums, no centring) over the same
    /// points: the last `points` inputs within `over`.
    #[test]
    fn trend_matches_the_closed_form_least_squares(
        steps in prop::collection::vec((1i64..5, -50.0f64..50.0), 5..80),
        cap in 5usize..40,
        over_s in 10i64..200,
        limit in -100.0f64..100.0,
        rising in any::<bool>(),
    ) {
        let mut t = 0;
        let mut samples = Vec::new();
        for (gap, x) in &steps {
            t += gap * S;
            samples.push((t, *x));
        }
        let key = if rising { "above" } else { "below" };
        let yaml = format!(
            "rules:\n  - name: r\n    detect: {{ trend: {{ {key}: {limit}, over: {over_s}s, horizon: 1d, points: {cap}, min_points: 5 }} }}\n    alert: {{}}\n"
        );
        let mut e = Engine::new(RuleSet::parse_str(&yaml, "p.yaml").unwrap());
        let id = e.series("d", "m").unwrap();
        let mut out = Vec::new();
        for &(ts, value) in &samples {
            e.push(Sample { series: id, ts, value }, &mut out);
        }
        let got: Vec<(i64, f64, f64, f64, u32)> = out
            .iter()
            .filter_map(|ev| match ev.kind {
                EventKind::Prediction { seconds_to_threshold, slope, r2, points, .. } => {
                    Some((ev.ts, seconds_to_threshold, slope, r2, points))
                }
                _ => None,
            })
            .collect();
        let mut want = Vec::new();
        for i in 0..samples.len() {
            let now = samples[i].0;
            let window: Vec<(f64, f64)> = samples[..=i]
                .iter()
                .filter(|(ts, _)| *ts > now - over_s * S)
                .rev()
                .take(cap)
                .map(|&(ts, x)| ((ts - now) as f64 / 1e6, x))
                .collect();
            if window.len() < 5 {
                continue;
            }
            let n = window.len() as f64;
            let st: f64 = window.iter().map(|p| p.0).sum();
            let sx: f64 = window.iter().map(|p| p.1).sum();
            let stt: f64 = window.iter().map(|p| p.0 * p.0).sum();
            let stx: f64 = window.iter().map(|p| p.0 * p.1).sum();
            let sxx: f64 = window.iter().map(|p| p.1 * p.1).sum();
            let slope = (n * stx - st * sx) / (n * stt - st * st);
            let at_now = (sx - slope * st) / n;
            let r = (n * stx - st * sx) / ((n * stt - st * st) * (n * sxx - sx * sx)).sqrt();
            let secs = if (rising && at_now >= limit) || (!rising && at_now <= limit) {
                0.0
            } else if (rising && slope > 0.0) || (!rising && slope < 0.0) {
                (limit - at_now) / slope
            } else {
                f64::INFINITY
            };
            want.push((now, secs, slope, r * r, window.len() as u32));
        }
        prop_assert_eq!(got.len(), want.len());
        let close = |a: f64, b: f64| {
            (a.is_infinite() && b.is_infinite()) || (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
        };
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g.0, w.0);
            prop_assert_eq!(g.4, w.4);
            prop_assert!(close(g.2, w.2), "slope {:?} vs {:?}", g, w);
            prop_assert!(close(g.3, w.3), "r2 {:?} vs {:?}", g, w);
            // Near a zero slope the time to threshold is ill-conditioned: compare it only
            // where the line clearly moves.
            if w.2.abs() > 1e-3 {
                prop_assert!(close(g.1, w.1) || (g.1 - w.1).abs() < 1e-3, "seconds {:?} vs {:?}", g, w);
            }
        }
    }
}

/// Every alert score of `detect` on `values` (one per second), NaN samples included.
fn scores(detect: &str, values: &[f64]) -> Vec<f64> {
    let yaml = format!("rules:\n  - name: r\n    detect: {detect}\n    alert: {{}}\n");
    let mut e = Engine::new(RuleSet::parse_str(&yaml, "p.yaml").unwrap());
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let ts = i as i64 * S;
        e.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
    }
    out.iter()
        .filter_map(|ev| match ev.kind {
            EventKind::Alert { score, .. } | EventKind::Changepoint { score, .. } => Some(score),
            _ => None,
        })
        .collect()
}

/// Adversarial signals: long constants, steps of exactly 1, NaN gaps and huge values, in
/// random runs.
fn adversarial() -> impl Strategy<Value = Vec<f64>> {
    let run = (0u8..5, -1e6f64..1e6, 1usize..40).prop_map(|(kind, x, n)| match kind {
        0 => vec![x.round(); n],
        1 => (0..n).map(|i| x.round() + (i % 2) as f64).collect(),
        2 => vec![f64::NAN; n],
        3 => vec![if x > 0.0 { 1e300 } else { -f64::MAX }; n.min(3)],
        _ => (0..n).map(|i| x + i as f64 * 1e-3).collect(),
    });
    prop::collection::vec(run, 1..20).prop_map(|runs| runs.concat())
}

proptest! {
    #[test]
    fn every_statistical_score_is_finite(values in adversarial()) {
        for detect in [
            "{ zscore: { baseline: 5 } }",
            "{ zscore: { baseline: 5, learn: all } }",
            "{ robust_zscore: { window: 5 } }",
            "{ ewma_chart: { baseline: 5 } }",
            "{ ewma_chart: { baseline: 5, learn: all } }",
            "{ cusum: { baseline: 5 } }",
            "{ cusum: { baseline: 5, learn: frozen } }",
            "{ changepoint: { baseline: 5 } }",
        ] {
            for s in scores(detect, &values) {
                prop_assert!(s.is_finite(), "{detect}: {s}");
            }
        }
    }
}
