//! Sliding windows of rules without moments or an FFT, whose aggregates (percentiles
//! included) are kept incrementally (module `sliding`), against the brute-force model
//! that recomputes every window from its samples: caps from 1 to 300, long streams so that
//! the periodic exact recomputation runs many times, gaps that empty the window, and level
//! jumps of 1e9 that would leave rounding residue in the running totals if it were not
//! cleaned up.

use proptest::prelude::*;

use super::{ALPHA, SIZE, Window, aggregates, same, windows_at_sample};
use crate::{Aggregate, Engine, RuleSet, Sample};

/// Every aggregate the incremental path keeps, percentiles included (exact, from the
/// window's sorted values).
fn kept() -> Vec<Aggregate> {
    let mut all: Vec<Aggregate> = Aggregate::ALL
        .into_iter()
        .filter(|a| !matches!(a, Aggregate::Skewness | Aggregate::Kurtosis))
        .collect();
    all.extend([
        Aggregate::Median,
        Aggregate::Percentile(1),
        Aggregate::Percentile(25),
        Aggregate::Percentile(95),
        Aggregate::Percentile(99),
    ]);
    all
}

fn rules(cap: usize, lean: bool) -> RuleSet {
    let names: Vec<&str> = kept()
        .into_iter()
        .filter(|a| !lean || a.is_lean())
        .map(|a| a.as_str())
        .collect();
    let yaml = format!(
        "rules:\n  - name: w\n    window: {{ sliding: 7ms, max_samples: {cap} }}\n    ewma_alpha: {ALPHA}\n    aggregates: [{}]\n",
        names.join(", ")
    );
    let rules = RuleSet::parse_str(&yaml, "p.yaml").unwrap();
    assert_eq!(rules.rules[0].acc.lean, lean, "{yaml}");
    rules
}

/// The window at each sample, recomputed from the samples, with the aggregates `rules` reads.
fn reference(samples: &[(i64, f64)], cap: usize, lean: bool) -> (Vec<Window>, u64) {
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
            if inside.len() >= cap {
                overflow += 1;
            }
            let keep = inside.len().min(cap - 1);
            let mut window = inside[inside.len() - keep..].to_vec();
            window.push(samples[i]);
            let values = aggregates(&window, SIZE as f64 / 1e6)
                .into_iter()
                .filter(|(a, _)| kept().contains(a) && (!lean || a.is_lean()))
                .collect();
            (ts - SIZE + 1, ts + 1, values)
        })
        .collect();
    (out, overflow)
}

/// Gaps (µs) and values; a value's `jump` flag adds 1e9 to it (a far level, kept integer).
fn stream() -> impl Strategy<Value = (Vec<(i64, i32, bool)>, usize, bool)> {
    (
        prop::collection::vec(
            (
                // Runs of dense samples fill windows past 256 values.
                prop_oneof![8 => 0i64..600, 4 => 0i64..20, 1 => 0i64..10_000],
                -1_000i32..1_000,
                prop::bool::weighted(0.05),
            ),
            0..700,
        ),
        // Up to 300: beyond the sketch's 256 exact values, percentiles stay exact here.
        prop_oneof![1usize..4, 4usize..65, 250usize..300],
        any::<bool>(),
    )
}

fn check(steps: &[(i64, i32, bool)], cap: usize, lean: bool) -> Result<(), TestCaseError> {
    let mut engine = Engine::new(rules(cap, lean));
    let id = engine.series("d", "m").unwrap();
    let mut out = Vec::new();
    let mut samples = Vec::new();
    let mut ts = 0;
    for &(gap, v, jump) in steps {
        ts += gap;
        let value = f64::from(v) + if jump { 1e9 } else { 0.0 };
        samples.push((ts, value));
        engine.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
    }
    let (want, overflow) = reference(&samples, cap, lean);
    same(&windows_at_sample(&out, &samples), &want)?;
    prop_assert_eq!(engine.stats().window_overflow, overflow);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn incremental_sliding_windows_match_the_reference_model((steps, cap, lean) in stream()) {
        check(&steps, cap, lean)?;
    }
}

/// An infinite value cannot be subtracted from the totals: while it is in the window the
/// aggregates are recomputed, and after it leaves they are finite again.
#[test]
fn an_infinite_value_leaves_no_trace_once_it_has_left() {
    let mut engine = Engine::new(rules(4, false));
    let id = engine.series("d", "m").unwrap();
    let mut out = Vec::new();
    for (i, value) in [1.0, f64::INFINITY, 2.0, 3.0, 4.0, 5.0, 6.0]
        .into_iter()
        .enumerate()
    {
        engine.push(
            Sample {
                series: id,
                ts: i as i64,
                value,
            },
            &mut out,
        );
    }
    let values = |e: &crate::Event| match &e.kind {
        crate::EventKind::Window { values, .. } => values.clone(),
        other => panic!("{other:?}"),
    };
    let get = |e: &crate::Event, a: Aggregate| {
        values(e)
            .into_iter()
            .find(|(b, _)| *b == a)
            .map(|(_, v)| v)
            .unwrap()
    };
    assert_eq!(get(&out[2], Aggregate::Max), f64::INFINITY);
    assert_eq!(get(&out[2], Aggregate::Sum), f64::INFINITY);
    let last = &out[6];
    assert_eq!(get(last, Aggregate::Sum), 18.0);
    assert_eq!(get(last, Aggregate::Max), 6.0);
    assert!((get(last, Aggregate::Variance) - 1.25).abs() < 1e-12);
}
