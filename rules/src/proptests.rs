//! The engine's window output checked against brute-force models: collect each window's
//! samples directly (by `floor(ts / size)`, by every hop-aligned start, or by chunks of N),
//! then compute every aggregate from the raw list, two-pass where it matters.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{Aggregate, Engine, Event, EventKind, RuleSet, Sample};

mod group;
mod lateness;
mod lean;

/// `(start, end, values)` of one closed window.
type Window = (i64, i64, Vec<(Aggregate, f64)>);

const ALPHA: f64 = 0.3;

/// Every fixed aggregate, and percentiles across the range (the sketch is exact below 256
/// samples, and these windows hold at most 200).
fn every_aggregate() -> Vec<Aggregate> {
    let mut all = Aggregate::ALL.to_vec();
    all.extend([
        Aggregate::Median,
        Aggregate::Percentile(1),
        Aggregate::Percentile(25),
        Aggregate::Percentile(95),
        Aggregate::Percentile(99),
    ]);
    for (index, name) in BANDS.iter().enumerate() {
        let name = crate::spectrum::band_name(name).unwrap();
        all.push(Aggregate::BandEnergy {
            index: index as u8,
            name,
        });
    }
    all
}

/// Every rule here also runs an 8-point FFT at a notional 8 Hz, with bins 1 Hz apart.
const FFT: &str = "{ size: 8, sample_rate: 8, bands: { low: [0, 1.5], mid: [2, 3], top: [4, 4] } }";
const BANDS: [&str; 3] = ["low", "mid", "top"];
const BAND_BINS: [(usize, usize); 3] = [(0, 1), (2, 3), (4, 4)];

/// Band powers by the textbook DFT: frames of 8 values in arrival order, Hann window,
/// one-sided `|X_k|²` normalised by `8·Σw²`, averaged over complete frames.
fn band_energy(vs: &[f64], band: usize) -> f64 {
    const N: usize = 8;
    let tau = std::f64::consts::TAU;
    let w: Vec<f64> = (0..N)
        .map(|i| 0.5 - 0.5 * (tau * i as f64 / N as f64).cos())
        .collect();
    let sum_w2: f64 = w.iter().map(|w| w * w).sum();
    let frames: Vec<&[f64]> = vs.chunks_exact(N).collect();
    if frames.is_empty() {
        return f64::NAN;
    }
    let (first, last) = BAND_BINS[band];
    let total: f64 = frames
        .iter()
        .map(|frame| {
            (first..=last)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (i, x) in frame.iter().enumerate() {
                        let a = -tau * (k * i) as f64 / N as f64;
                        re += x * w[i] * a.cos();
                        im += x * w[i] * a.sin();
                    }
                    let c = if k == 0 || k == N / 2 { 1.0 } else { 2.0 };
                    c * (re * re + im * im) / (N as f64 * sum_w2)
                })
                .sum::<f64>()
        })
        .sum();
    total / frames.len() as f64
}

/// Every aggregate of `samples` (in arrival order) computed the slow, obvious way.
fn aggregates(samples: &[(i64, f64)], secs: f64) -> Vec<(Aggregate, f64)> {
    let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let n = vs.len() as f64;
    let sum: f64 = vs.iter().sum();
    let mean = sum / n;
    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // First / last by timestamp; ties: earliest / latest arrival.
    let first = samples.iter().min_by_key(|s| s.0).map_or(f64::NAN, |s| s.1);
    let last = samples.iter().max_by_key(|s| s.0).map_or(f64::NAN, |s| s.1);
    let variance = vs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let rms = (vs.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
    let moment = |k: i32| vs.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / n;
    let (skewness, kurtosis) = if variance > 0.0 {
        (
            moment(3) / variance.powf(1.5),
            moment(4) / (variance * variance),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    let crest = vs.iter().map(|v| v.abs()).fold(0.0, f64::max) / rms;
    let mut sorted = vs.clone();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least ⌈q·n⌉ samples at or below it.
    let quantile = |q: f64| {
        let rank = ((q * n).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    let base = samples[0].0;
    let ts: Vec<f64> = samples.iter().map(|s| (s.0 - base) as f64).collect();
    let mean_t = ts.iter().sum::<f64>() / n;
    let m2t: f64 = ts.iter().map(|t| (t - mean_t) * (t - mean_t)).sum();
    let cxy: f64 = ts
        .iter()
        .zip(&vs)
        .map(|(t, v)| (t - mean_t) * (v - mean))
        .sum();
    let slope = if m2t > 0.0 { cxy / m2t * 1e6 } else { f64::NAN };
    let mut ewma = vs[0];
    for v in &vs[1..] {
        ewma = ALPHA * v + (1.0 - ALPHA) * ewma;
    }
    every_aggregate()
        .into_iter()
        .map(|a| {
            let v = match a {
                Aggregate::Count => n,
                Aggregate::Mean => mean,
                Aggregate::Min => min,
                Aggregate::Max => max,
                Aggregate::Sum => sum,
                Aggregate::First => first,
                Aggregate::Last => last,
                Aggregate::Delta => last - first,
                Aggregate::Rate if secs > 0.0 => (last - first) / secs,
                Aggregate::Rate => f64::NAN,
                Aggregate::Variance => variance,
                Aggregate::Stddev => variance.sqrt(),
                Aggregate::Rms => rms,
                Aggregate::PeakToPeak => max - min,
                Aggregate::Ewma => ewma,
                Aggregate::Slope => slope,
                Aggregate::Skewness => skewness,
                Aggregate::Kurtosis => kurtosis,
                Aggregate::CrestFactor => crest,
                Aggregate::Median => quantile(0.5),
                Aggregate::Percentile(p) => quantile(f64::from(p) / 100.0),
                Aggregate::BandEnergy { index, .. } => band_energy(&vs, usize::from(index)),
                Aggregate::Let { .. } => f64::NAN,
            };
            (a, v)
        })
        .collect()
}

/// Integer inputs keep sums exact, so most aggregates compare exactly; those computed
/// differently online (Welford, square roots, division by the window length, the EWMA's
/// recurrence) are allowed a relative error of 1e-9.
fn same(got: &[Window], want: &[Window]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        got.len(),
        want.len(),
        "window count: {:?} vs {:?}",
        got,
        want
    );
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!((g.0, g.1), (w.0, w.1));
        prop_assert_eq!(g.2.len(), w.2.len());
        for (&(ga, gv), &(wa, wv)) in g.2.iter().zip(&w.2) {
            prop_assert_eq!(ga, wa);
            let exact = !matches!(
                ga,
                Aggregate::Variance
                    | Aggregate::Stddev
                    | Aggregate::Rms
                    | Aggregate::Rate
                    | Aggregate::Ewma
                    | Aggregate::Slope
                    | Aggregate::Skewness
                    | Aggregate::Kurtosis
                    | Aggregate::CrestFactor
                    | Aggregate::BandEnergy { .. }
            );
            // The slope divides two co-moments that may nearly cancel.
            let tolerance = if ga == Aggregate::Slope { 1e-6 } else { 1e-9 };
            let ok = if gv.is_nan() || wv.is_nan() {
                gv.is_nan() && wv.is_nan()
            } else if exact || gv == wv {
                gv == wv
            } else {
                (gv - wv).abs() <= tolerance * wv.abs().max(1.0)
            };
            prop_assert!(ok, "{:?}: engine {} vs reference {} in {:?}", ga, gv, wv, w);
        }
    }
    Ok(())
}

fn rules(window: &str) -> RuleSet {
    let names: Vec<&str> = every_aggregate().iter().map(|a| a.as_str()).collect();
    let yaml = format!(
        "rules:\n  - name: w\n    window: {window}\n    ewma_alpha: {ALPHA}\n    fft: {FFT}\n    aggregates: [{}]\n",
        names.join(", ")
    );
    RuleSet::parse_str(&yaml, "p.yaml").unwrap()
}

fn windows(events: &[Event]) -> Vec<Window> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Window { start, end, values } => {
                assert_eq!(e.ts, *end);
                (*start, *end, values.clone())
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// Feeds an in-order stream, advancing to the latest timestamp now and then (which never
/// closes a window a later in-order sample could still belong to), then flushes.
fn run(
    rules: RuleSet,
    start: i64,
    steps: &[(i64, i32)],
    advance_every: usize,
) -> (Engine, Vec<(i64, f64)>, Vec<Event>) {
    let mut engine = Engine::new(rules);
    let id = engine.series("d", "m").unwrap();
    let mut out = Vec::new();
    let mut ts = start;
    let mut samples = Vec::new();
    for (i, (gap, v)) in steps.iter().enumerate() {
        ts += gap;
        let value = f64::from(*v);
        samples.push((ts, value));
        engine.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
        if i % advance_every == 0 {
            engine.advance(ts, &mut out);
        }
    }
    engine.advance(i64::MAX, &mut out);
    (engine, samples, out)
}

const SIZE: i64 = 7_000; // 7 ms, in µs: odd so windows do not line up with round numbers.
const HOP: i64 = 3_000;

fn tumbling_reference(samples: &[(i64, f64)]) -> Vec<Window> {
    let mut groups: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for &s in samples {
        groups.entry(s.0.div_euclid(SIZE)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(k, vs)| (k * SIZE, (k + 1) * SIZE, aggregates(&vs, SIZE as f64 / 1e6)))
        .collect()
}

fn hopping_reference(samples: &[(i64, f64)]) -> Vec<Window> {
    let (Some(lo), Some(hi)) = (samples.first(), samples.last()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut start = (lo.0 - SIZE).div_euclid(HOP) * HOP;
    while start <= hi.0 {
        let end = start + SIZE;
        let vs: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|s| start <= s.0 && s.0 < end)
            .collect();
        if !vs.is_empty() {
            out.push((start, end, aggregates(&vs, SIZE as f64 / 1e6)));
        }
        start += HOP;
    }
    out
}

fn count_reference(samples: &[(i64, f64)], n: usize) -> Vec<Window> {
    samples
        .chunks_exact(n)
        .map(|c| {
            let start = c.iter().map(|s| s.0).min().unwrap_or(0);
            let end = c.iter().map(|s| s.0).max().unwrap_or(0);
            (start, end, aggregates(c, (end - start) as f64 / 1e6))
        })
        .collect()
}

fn stream() -> impl Strategy<Value = (i64, Vec<(i64, i32)>, usize)> {
    (
        -50_000i64..50_000,
        prop::collection::vec((0i64..5_000, -1_000i32..1_000), 0..200),
        1usize..50,
    )
}

proptest! {
    #[test]
    fn tumbling_windows_match_the_reference_model((start, steps, every) in stream()) {
        let (engine, samples, out) = run(rules("{ tumbling: 7ms }"), start, &steps, every);
        same(&windows(&out), &tumbling_reference(&samples))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
        prop_assert_eq!(engine.stats().windows_closed as usize, out.len());
    }

    #[test]
    fn hopping_windows_match_the_reference_model((start, steps, every) in stream()) {
        let rules = rules("{ hopping: { size: 7ms, hop: 3ms } }");
        let (engine, samples, out) = run(rules, start, &steps, every);
        same(&windows(&out), &hopping_reference(&samples))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }

    #[test]
    fn count_windows_match_the_reference_model(
        (start, steps, every) in stream(),
        n in 1usize..20,
    ) {
        let (_, samples, out) = run(rules(&format!("{{ count: {n} }}")), start, &steps, every);
        same(&windows(&out), &count_reference(&samples, n))?;
    }
}

proptest! {
    /// Samples shuffled within their tumbling window are all accepted, and `first`/`last`
    /// follow timestamps while `ewma` follows arrival order.
    #[test]
    fn tumbling_windows_are_order_independent_within_a_window(
        (start, steps, _) in stream(),
        keys in prop::collection::vec(any::<u32>(), 200),
    ) {
        let mut ts = start;
        let mut samples: Vec<(i64, f64)> = steps
            .iter()
            .map(|(gap, v)| {
                ts += gap;
                (ts, f64::from(*v))
            })
            .collect();
        let mut keyed: Vec<(i64, u32, (i64, f64))> = samples
            .iter()
            .zip(&keys)
            .map(|(s, k)| (s.0.div_euclid(SIZE), *k, *s))
            .collect();
        keyed.sort_by_key(|k| (k.0, k.1));
        samples = keyed.iter().map(|k| k.2).collect();
        let mut engine = Engine::new(rules("{ tumbling: 7ms }"));
        let id = engine.series("d", "m").unwrap();
        let mut out = Vec::new();
        for &(ts, value) in &samples {
            engine.push(Sample { series: id, ts, value }, &mut out);
            // The current window's start: safe to advance to whatever the order inside.
            engine.advance(ts - ts.rem_euclid(SIZE), &mut out);
        }
        engine.advance(i64::MAX, &mut out);
        same(&windows(&out), &tumbling_reference(&samples))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }
}

const CAP: usize = 8;

fn sliding_reference(samples: &[(i64, f64)]) -> (Vec<Window>, u64) {
    let mut overflow = 0;
    let out = samples
        .iter()
        .enumerate()
        .map(|(i, &(ts, _))| {
            let inside: Vec<(i64, f64)> = samples[..i]
                .iter()
                .copied()
                .filter(|s| s.0 > ts - SIZE)
                .collect();
            if inside.len() >= CAP {
                overflow += 1;
            }
            let keep = inside.len().min(CAP - 1);
            let mut window = inside[inside.len() - keep..].to_vec();
            window.push(samples[i]);
            (
                ts - SIZE + 1,
                ts + 1,
                aggregates(&window, SIZE as f64 / 1e6),
            )
        })
        .collect();
    (out, overflow)
}

const GAP: i64 = 3_000;

fn session_reference(samples: &[(i64, f64)]) -> Vec<Window> {
    let mut sessions: Vec<Vec<(i64, f64)>> = Vec::new();
    for &s in samples {
        match sessions.last_mut() {
            Some(cur) if cur.last().is_some_and(|l| s.0 - l.0 < GAP) => cur.push(s),
            _ => sessions.push(vec![s]),
        }
    }
    sessions
        .iter()
        .map(|c| {
            let (first, last) = (c[0].0, c[c.len() - 1].0);
            (
                first,
                last + GAP,
                aggregates(c, (last - first) as f64 / 1e6),
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn sliding_windows_match_the_reference_model((start, steps, every) in stream()) {
        // Short gaps so the 8-sample bound is hit often.
        let steps: Vec<(i64, i32)> = steps.iter().map(|&(g, v)| (g / 4, v)).collect();
        let rules = rules(&format!("{{ sliding: 7ms, max_samples: {CAP} }}"));
        let (engine, samples, out) = run(rules, start, &steps, every);
        let (want, overflow) = sliding_reference(&samples);
        same(&windows_at_sample(&out, &samples), &want)?;
        prop_assert_eq!(engine.stats().window_overflow, overflow);
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }

    #[test]
    fn session_windows_match_the_reference_model((start, steps, every) in stream()) {
        let (engine, samples, out) = run(rules("{ session: 3ms }"), start, &steps, every);
        same(&windows(&out), &session_reference(&samples))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }
}

/// Sliding windows' events carry the sample's time, not the window's end.
fn windows_at_sample(events: &[Event], samples: &[(i64, f64)]) -> Vec<Window> {
    assert_eq!(events.len(), samples.len());
    events
        .iter()
        .zip(samples)
        .map(|(e, s)| match &e.kind {
            EventKind::Window { start, end, values } => {
                assert_eq!(e.ts, s.0);
                (*start, *end, values.clone())
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// One step of an out-of-order run: a sample, or `advance` to a watermark.
#[derive(Debug, Clone)]
enum Step {
    Push(i64, i32),
    Advance(i64),
}

proptest! {
    /// Arbitrary order with arbitrary watermarks. The specification, stated without the
    /// engine's data structures: windows never reopen — a sample is accepted iff its window
    /// is the newest window accepted so far (and has not been closed by a watermark at or
    /// past its end) or a newer one; everything else is late and counted.
    #[test]
    fn tumbling_windows_never_reopen_under_any_order(
        steps in prop::collection::vec(
            prop_oneof![
                4 => (0i64..40_000, -1_000i32..1_000).prop_map(|(t, v)| Step::Push(t, v)),
                1 => (0i64..40_000).prop_map(Step::Advance),
            ],
            0..200,
        ),
    ) {
        let mut engine = Engine::new(rules("{ tumbling: 7ms }"));
        let id = engine.series("d", "m").unwrap();
        let mut out = Vec::new();
        let mut newest: Option<(i64, bool)> = None; // (window index, closed)
        let mut accepted: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        let mut late = 0;
        for step in &steps {
            match *step {
                Step::Push(ts, v) => {
                    let value = f64::from(v);
                    engine.push(Sample { series: id, ts, value }, &mut out);
                    let k = ts.div_euclid(SIZE);
                    let ok = match newest {
                        None => true,
                        Some((n, closed)) => k > n || (k == n && !closed),
                    };
                    if ok {
                        if newest.is_none_or(|(n, _)| k > n) {
                            newest = Some((k, false));
                        }
                        accepted.entry(k).or_default().push((ts, value));
                    } else {
                        late += 1;
                    }
                }
                Step::Advance(w) => {
                    engine.advance(w, &mut out);
                    if let Some((n, closed)) = &mut newest {
                        *closed |= (*n + 1) * SIZE <= w;
                    }
                }
            }
        }
        engine.advance(i64::MAX, &mut out);
        let want: Vec<Window> = accepted
            .into_iter()
            .map(|(k, vs)| (k * SIZE, (k + 1) * SIZE, aggregates(&vs, SIZE as f64 / 1e6)))
            .collect();
        same(&windows(&out), &want)?;
        prop_assert_eq!(engine.stats().late_dropped, late);
    }
}

mod order;
mod panes;
mod peers;
mod sliding;
