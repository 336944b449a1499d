//! Hopping windows built from panes (module `panes`: rules without a percentile, skewness,
//! kurtosis or FFT) against the same brute-force models as per-window accumulators: in
//! order with `advance` now and then, and in any order with allowed lateness, for lean and
//! full rules (a full rule reads the EWMA, kept per window in arrival order).

use proptest::prelude::*;

use super::lateness::model;
use super::{ALPHA, SIZE, Step, Window, hopping_reference, run, same, stream, windows};
use crate::{Aggregate, Engine, RuleSet, Sample};

/// Every aggregate panes keep.
fn kept(lean: bool) -> Vec<Aggregate> {
    Aggregate::ALL
        .into_iter()
        .filter(|a| !matches!(a, Aggregate::Skewness | Aggregate::Kurtosis))
        .filter(|a| !lean || a.is_lean())
        .collect()
}

fn rules(window: &str, lean: bool) -> RuleSet {
    let names: Vec<&str> = kept(lean).into_iter().map(|a| a.as_str()).collect();
    let yaml = format!(
        "rules:\n  - name: w\n    window: {window}\n    ewma_alpha: {ALPHA}\n    aggregates: [{}]\n",
        names.join(", ")
    );
    let rules = RuleSet::parse_str(&yaml, "p.yaml").unwrap();
    assert!(!rules.rules[0].acc.any(), "{yaml}");
    rules
}

/// The reference windows with only the aggregates `kept(lean)`, in the rule's order.
fn only(windows: Vec<Window>, lean: bool) -> Vec<Window> {
    let keep = kept(lean);
    windows
        .into_iter()
        .map(|(s, e, vs)| {
            (
                s,
                e,
                vs.into_iter().filter(|(a, _)| keep.contains(a)).collect(),
            )
        })
        .collect()
}

fn any_order() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0i64..40_000, -1_000i32..1_000).prop_map(|(t, v)| Step::Push(t, v)),
            1 => (0i64..40_000).prop_map(Step::Advance),
        ],
        0..200,
    )
}

fn engine_run(rules: RuleSet, steps: &[Step]) -> (Vec<Window>, u64) {
    let mut engine = Engine::new(rules);
    let id = engine.series("d", "m").unwrap();
    let mut out = Vec::new();
    for step in steps {
        match *step {
            Step::Push(ts, v) => {
                let value = f64::from(v);
                engine.push(
                    Sample {
                        series: id,
                        ts,
                        value,
                    },
                    &mut out,
                );
            }
            Step::Advance(w) => engine.advance(w, &mut out),
        }
    }
    engine.advance(i64::MAX, &mut out);
    (windows(&out), engine.stats().late_dropped)
}

proptest! {
    #[test]
    fn hopping_panes_match_the_reference_model((start, steps, every) in stream(), lean: bool) {
        let rules = rules("{ hopping: { size: 7ms, hop: 3ms } }", lean);
        let (engine, samples, out) = run(rules, start, &steps, every);
        same(&windows(&out), &only(hopping_reference(&samples), lean))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }

    #[test]
    fn hopping_panes_with_lateness_match_the_model_under_any_order(
        steps in any_order(),
        lean: bool,
    ) {
        let rules = rules("{ hopping: { size: 7ms, hop: 3ms }, lateness: 5ms }", lean);
        let (got, late) = engine_run(rules, &steps);
        let (want, want_late) = model(&steps, 3_000);
        same(&got, &only(want, lean))?;
        prop_assert_eq!(late, want_late);
    }

    /// Tumbling with lateness is hopping with `hop = size`: one pane per window.
    #[test]
    fn tumbling_panes_with_lateness_match_the_model_under_any_order(
        steps in any_order(),
        lean: bool,
    ) {
        let rules = rules("{ tumbling: 7ms, lateness: 5ms }", lean);
        let (got, late) = engine_run(rules, &steps);
        let (want, want_late) = model(&steps, SIZE);
        same(&got, &only(want, lean))?;
        prop_assert_eq!(late, want_late);
    }
}
