//! Hopping, session and sliding windows under arbitrary arrival order and watermarks,
//! checked against models that state each kind's rule without the engine's data structures:
//!
//! * hopping: windows are opened in start order and never reopen. A window closes when a
//!   sample or watermark at or past its end comes after it opened. A sample goes into every
//!   open window that contains it, and opens the windows containing it that start after the
//!   newest opened so far (whatever earlier watermarks said: `advance` closes what is open).
//!   A sample that goes into none is late.
//! * session: a sample at or after `latest + gap` (latest: the open session's greatest
//!   timestamp) closes the open session and starts the next; so does a watermark at or past
//!   `latest + gap`. A sample before the end of the last closed session is late; any other
//!   joins the open session, in or out of order.
//! * count: every sample, in arrival order, whatever its timestamp.
//! * sliding: samples older than the newest accepted one are late; the others are windowed
//!   as in order.
//!
//! Each accepted window's aggregates — every fixed one, percentiles and FFT band energies —
//! come from the brute-force `aggregates` over its samples in arrival order.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{
    CAP, GAP, HOP, SIZE, Step, Window, aggregates, count_reference, rules, same, sliding_reference,
    windows, windows_at_sample,
};
use crate::{Engine, Sample};

/// Pushes and watermarks in any order, timestamps in a range a few windows wide.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0i64..40_000, -1_000i32..1_000).prop_map(|(t, v)| Step::Push(t, v)),
            1 => (0i64..40_000).prop_map(Step::Advance),
        ],
        0..200,
    )
}

/// Mostly in order with local disorder: timestamps rise by `gap`, then each sample is
/// delayed by up to `jitter` and the stream re-sorted by arrival.
fn jittered() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0i64..2_000, 0i64..6_000, -1_000i32..1_000), 0..200).prop_map(|v| {
        let mut ts = 0;
        let mut arrivals: Vec<(i64, i64, i32)> = v
            .into_iter()
            .map(|(gap, jitter, value)| {
                ts += gap;
                (ts + jitter, ts, value)
            })
            .collect();
        arrivals.sort_by_key(|a| a.0);
        arrivals
            .into_iter()
            .map(|(_, t, v)| Step::Push(t, v))
            .collect()
    })
}

/// Opened hopping windows: start → (closed, samples).
type Opened = BTreeMap<i64, (bool, Vec<(i64, f64)>)>;

fn hopping_model(steps: &[Step]) -> (Vec<Window>, u64) {
    let mut opened = Opened::new();
    let mut newest: Option<i64> = None;
    let mut late = 0;
    let close_upto = |opened: &mut Opened, w: i64| {
        for (start, (closed, _)) in opened.iter_mut() {
            *closed |= start + SIZE <= w;
        }
    };
    for step in steps {
        match *step {
            Step::Advance(w) => close_upto(&mut opened, w),
            Step::Push(ts, v) => {
                close_upto(&mut opened, ts);
                let value = f64::from(v);
                let mut took = false;
                for (&start, (closed, samples)) in opened.iter_mut() {
                    if !*closed && start <= ts && ts < start + SIZE {
                        samples.push((ts, value));
                        took = true;
                    }
                }
                let highest = ts.div_euclid(HOP) * HOP;
                let mut start = (ts - SIZE).div_euclid(HOP) * HOP + HOP;
                if let Some(n) = newest {
                    start = start.max(n + HOP);
                }
                while start <= highest {
                    opened.insert(start, (false, vec![(ts, value)]));
                    newest = Some(start);
                    took = true;
                    start += HOP;
                }
                late += u64::from(!took);
            }
        }
    }
    let out = opened
        .into_iter()
        .map(|(s, (_, vs))| (s, s + SIZE, aggregates(&vs, SIZE as f64 / 1e6)))
        .collect();
    (out, late)
}

fn session_model(steps: &[Step]) -> (Vec<Window>, u64) {
    let mut closed: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut open: Vec<(i64, f64)> = Vec::new();
    let mut floor = i64::MIN;
    let mut late = 0;
    let latest = |s: &[(i64, f64)]| s.iter().map(|x| x.0).max();
    for step in steps {
        match *step {
            Step::Advance(w) => {
                if latest(&open).is_some_and(|l| l + GAP <= w) {
                    floor = latest(&open).unwrap_or(floor) + GAP;
                    closed.push(std::mem::take(&mut open));
                }
            }
            Step::Push(ts, v) => {
                if ts < floor {
                    late += 1;
                    continue;
                }
                if latest(&open).is_some_and(|l| ts >= l + GAP) {
                    floor = latest(&open).unwrap_or(floor) + GAP;
                    closed.push(std::mem::take(&mut open));
                }
                open.push((ts, f64::from(v)));
            }
        }
    }
    if !open.is_empty() {
        closed.push(open);
    }
    let out = closed
        .iter()
        .map(|s| {
            let first = s.iter().map(|x| x.0).min().unwrap_or(0);
            let last = s.iter().map(|x| x.0).max().unwrap_or(0);
            (
                first,
                last + GAP,
                aggregates(s, (last - first) as f64 / 1e6),
            )
        })
        .collect();
    (out, late)
}

/// Runs `steps` through a one-rule engine, then flushes.
fn drive(window: &str, steps: &[Step]) -> (Engine, Vec<crate::Event>) {
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
    (engine, out)
}

proptest! {
    #[test]
    fn hopping_windows_match_the_model_under_any_order(steps in steps()) {
        let (engine, out) = drive("{ hopping: { size: 7ms, hop: 3ms } }", &steps);
        let (want, late) = hopping_model(&steps);
        same(&windows(&out), &want)?;
        prop_assert_eq!(engine.stats().late_dropped, late);
    }

    #[test]
    fn hopping_windows_take_local_disorder(steps in jittered()) {
        let (engine, out) = drive("{ hopping: { size: 7ms, hop: 3ms } }", &steps);
        let (want, late) = hopping_model(&steps);
        same(&windows(&out), &want)?;
        prop_assert_eq!(engine.stats().late_dropped, late);
    }

    #[test]
    fn session_windows_match_the_model_under_any_order(steps in steps()) {
        let (engine, out) = drive("{ session: 3ms }", &steps);
        let (want, late) = session_model(&steps);
        same(&windows(&out), &want)?;
        prop_assert_eq!(engine.stats().late_dropped, late);
    }

    #[test]
    fn session_windows_take_local_disorder(steps in jittered()) {
        let (engine, out) = drive("{ session: 3ms }", &steps);
        let (want, late) = session_model(&steps);
        same(&windows(&out), &want)?;
        prop_assert_eq!(engine.stats().late_dropped, late);
    }

    #[test]
    fn sliding_windows_drop_what_arrives_behind_the_newest(steps in jittered()) {
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|s| match s {
                Step::Push(t, v) => Step::Push(t / 4, v),
                other => other,
            })
            .collect();
        let (engine, out) = drive(&format!("{{ sliding: 7ms, max_samples: {CAP} }}"), &steps);
        let mut newest = i64::MIN;
        let mut accepted = Vec::new();
        for step in &steps {
            if let Step::Push(ts, v) = *step
                && ts >= newest
            {
                newest = ts;
                accepted.push((ts, f64::from(v)));
            }
        }
        let (want, overflow) = sliding_reference(&accepted);
        same(&windows_at_sample(&out, &accepted), &want)?;
        prop_assert_eq!(engine.stats().window_overflow, overflow);
        let pushes = steps.iter().filter(|s| matches!(s, Step::Push(..))).count();
        prop_assert_eq!(engine.stats().late_dropped as usize, pushes - accepted.len());
    }

    #[test]
    fn count_windows_follow_arrival_order(steps in jittered(), n in 1usize..20) {
        let (engine, out) = drive(&format!("{{ count: {n} }}"), &steps);
        let samples: Vec<(i64, f64)> = steps
            .iter()
            .filter_map(|s| match *s {
                Step::Push(t, v) => Some((t, f64::from(v))),
                Step::Advance(_) => None,
            })
            .collect();
        same(&windows(&out), &count_reference(&samples, n))?;
        prop_assert_eq!(engine.stats().late_dropped, 0);
    }
}
