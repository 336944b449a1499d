//! Allowed lateness checked against a brute-force model of event time.
//!
//! The specification, stated without the engine's data structures: the series' watermark is
//! the highest pushed `ts - lateness`; a window `[s, s + size)` closes (and is emitted, if it
//! holds samples) once the watermark or an `advance` reaches its end, and never reopens; a
//! window ending at or before the watermark never opens; a sample joins every window that
//! contains it and may still take samples, and is late if there is none.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{SIZE, Step, Window, aggregates, rules, same, windows};
use crate::{Engine, Sample};

const HOP: i64 = 3_000;
const LATENESS: i64 = 5_000;

/// The windows the model emits, in order, and how many samples were late.
pub(super) fn model(steps: &[Step], hop: i64) -> (Vec<Window>, u64) {
    let mut watermark = i64::MIN;
    // The end of the newest window an `advance` closed.
    let mut advanced = i64::MIN;
    let mut open: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut late = 0;
    let close = |open: &mut BTreeMap<i64, Vec<(i64, f64)>>, w: i64, out: &mut Vec<Window>| {
        let mut last = i64::MIN;
        while let Some((&s, _)) = open.first_key_value() {
            if s + SIZE > w {
                break;
            }
            if let Some(vs) = open.remove(&s) {
                out.push((s, s + SIZE, aggregates(&vs, SIZE as f64 / 1e6)));
                last = s + SIZE;
            }
        }
        last
    };
    for step in steps {
        match *step {
            Step::Push(ts, v) => {
                watermark = watermark.max(ts - LATENESS);
                close(&mut open, watermark, &mut out);
                let mut joined = false;
                let mut s = (ts - SIZE).div_euclid(hop) * hop;
                while s <= ts {
                    let open_ok = s + SIZE > watermark && s + SIZE > advanced;
                    if s <= ts && ts < s + SIZE && open_ok {
                        open.entry(s).or_default().push((ts, f64::from(v)));
                        joined = true;
                    }
                    s += hop;
                }
                if !joined {
                    late += 1;
                }
            }
            Step::Advance(w) => {
                advanced = advanced.max(close(&mut open, w, &mut out));
            }
        }
    }
    close(&mut open, i64::MAX, &mut out);
    (out, late)
}

fn engine_run(window: &str, steps: &[Step]) -> (Vec<Window>, u64) {
    let mut engine = Engine::new(rules(window));
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

fn any_order() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0i64..40_000, -1_000i32..1_000).prop_map(|(t, v)| Step::Push(t, v)),
            1 => (0i64..40_000).prop_map(Step::Advance),
        ],
        0..200,
    )
}

/// An in-order stream whose samples each arrive up to `LATENESS` late.
fn jittered() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0i64..2_000, 0i64..=LATENESS, -1_000i32..1_000), 0..200).prop_map(
        |steps| {
            let mut ts = 0;
            let mut arrivals: Vec<(i64, i64, i32)> = steps
                .into_iter()
                .map(|(gap, delay, v)| {
                    ts += gap;
                    (ts + delay, ts, v)
                })
                .collect();
            arrivals.sort_by_key(|a| a.0);
            arrivals
                .into_iter()
                .map(|(_, ts, v)| Step::Push(ts, v))
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn tumbling_with_lateness_matches_the_model_under_any_order(steps in any_order()) {
        let (got, late) = engine_run("{ tumbling: 7ms, lateness: 5ms }", &steps);
        let (want, want_late) = model(&steps, SIZE);
        same(&got, &want)?;
        prop_assert_eq!(late, want_late);
    }

    #[test]
    fn hopping_with_lateness_matches_the_model_under_any_order(steps in any_order()) {
        let (got, late) = engine_run("{ hopping: { size: 7ms, hop: 3ms }, lateness: 5ms }", &steps);
        let (want, want_late) = model(&steps, HOP);
        same(&got, &want)?;
        prop_assert_eq!(late, want_late);
    }

    /// Nothing that arrives within the allowed lateness is lost, and every window holds
    /// exactly the samples whose timestamps fall in it.
    #[test]
    fn samples_delayed_within_the_lateness_all_count(steps in jittered()) {
        let (got, late) = engine_run("{ tumbling: 7ms, lateness: 5ms }", &steps);
        prop_assert_eq!(late, 0);
        let mut by_window: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for step in &steps {
            if let Step::Push(ts, v) = *step {
                by_window.entry(ts.div_euclid(SIZE)).or_default().push((ts, f64::from(v)));
            }
        }
        let want: Vec<Window> = by_window
            .into_iter()
            .map(|(k, vs)| (k * SIZE, (k + 1) * SIZE, aggregates(&vs, SIZE as f64 / 1e6)))
            .collect();
        same(&got, &want)?;
    }
}
