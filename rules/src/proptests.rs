//! The engine's window output checked against a brute-force model: group the samples by
//! `floor(ts / size)` and compute each aggregate directly.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{Aggregate, Engine, Event, EventKind, RuleSet, Sample};

/// `(start, end, values)` of one closed window.
type Window = (i64, i64, Vec<(Aggregate, f64)>);

const SIZE: i64 = 7_000; // 7 ms, in µs: odd so windows do not line up with round numbers.

fn reference(samples: &[(i64, f64)]) -> Vec<Window> {
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(ts, v) in samples {
        groups.entry(ts.div_euclid(SIZE)).or_default().push(v);
    }
    groups
        .into_iter()
        .map(|(k, vs)| {
            let n = vs.len() as f64;
            let sum: f64 = vs.iter().sum();
            let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let values = vec![
                (Aggregate::Count, n),
                (Aggregate::Mean, sum / n),
                (Aggregate::Min, min),
                (Aggregate::Max, max),
            ];
            (k * SIZE, (k + 1) * SIZE, values)
        })
        .collect()
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

proptest! {
    #[test]
    fn windows_match_the_reference_model(
        start in -50_000i64..50_000,
        steps in prop::collection::vec((0i64..5_000, -1_000i32..1_000), 0..200),
        advance_every in 1usize..50,
    ) {
        let rules = RuleSet::parse_str(r#"
rules:
  - name: w
    window: { tumbling: 7ms }
    aggregates: [count, mean, min, max]
"#, "p.yaml").unwrap();
        let mut engine = Engine::new(rules);
        let id = engine.series("d", "m").unwrap();
        let mut out = Vec::new();
        let mut ts = start;
        let mut samples = Vec::new();
        for (i, (gap, v)) in steps.iter().enumerate() {
            ts += gap;
            // Integers keep sums exact, so the comparison can be exact too.
            let value = f64::from(*v);
            samples.push((ts, value));
            engine.push(Sample { series: id, ts, value }, &mut out);
            // Advancing to the latest timestamp never closes a window a later in-order sample
            // could still belong to.
            if i % advance_every == 0 {
                engine.advance(ts, &mut out);
            }
        }
        engine.advance(i64::MAX, &mut out);
        prop_assert_eq!(windows(&out), reference(&samples));
        prop_assert_eq!(engine.stats().late_dropped, 0);
        prop_assert_eq!(engine.stats().windows_closed as usize, out.len());
    }
}
