//! `agg(metric.<name>)`: other metrics of a device over the same window, checked two ways.
//!
//! * Permutation: rows in timestamp order with the rows of each timestamp in any order give
//!   the same events, byte for byte (the bug this replaced: a rule read the other metric's
//!   latest value when its window closed, so the order within a timestamp decided).
//! * Model: each alert's `value` (the left side of its condition, here the peer aggregate)
//!   equals that aggregate computed by brute force over the other metric's samples with
//!   `start ≤ ts < end` — nothing after the window, NaN (or a count of 0) when there is none.

use proptest::prelude::*;

use crate::{Engine, Event, EventKind, RuleSet, Sample};

const RULES: &str = r#"
rules:
  - name: tumbling-mean
    select: { metric: a }
    window: { tumbling: 10ms }
    aggregates: [count, mean]
    alert: { when: "mean(metric.b) > 0 or count(metric.b) == 0" }
  - name: hopping-max
    select: { metric: a }
    window: { hopping: { size: 20ms, hop: 5ms } }
    alert: { when: "max(metric.b) >= mean" }
  - name: bare-is-mean
    select: { metric: b }
    window: { tumbling: 7ms }
    let: { other: "metric.a" }
    alert: { when: "other - mean(metric.c) > 1" }
  - name: grouped
    select: { metric: "?" }
    group_by: device
    window: { tumbling: 10ms }
    alert: { when: "count > count(metric.c)" }
"#;

const METRICS: [&str; 3] = ["a", "b", "c"];

/// Rows `(ts µs, device, metric, value)` in timestamp order; the order within a timestamp is
/// the generated one. At most one row per (device, metric, ts): a series' own order within
/// one timestamp is not what this is about.
fn rows() -> impl Strategy<Value = Vec<(i64, usize, usize, i32)>> {
    prop::collection::btree_map((0i64..60, 0usize..2, 0usize..3), -5i32..5, 0..120).prop_map(|m| {
        m.into_iter()
            .map(|((t, d, k), v)| (t * 1_000, d, k, v))
            .collect()
    })
}

fn run(rows: &[(i64, usize, usize, i32)]) -> Vec<String> {
    let mut e = Engine::new(RuleSet::parse_str(RULES, "p.yaml").unwrap());
    let mut out: Vec<Event> = Vec::new();
    for &(ts, d, k, v) in rows {
        let id = e.series(&format!("dev{d}"), METRICS[k]).unwrap();
        e.push(
            Sample {
                series: id,
                ts,
                value: f64::from(v),
            },
            &mut out,
        );
    }
    e.advance(i64::MAX, &mut out);
    // Events of one engine step come out in series-id order, and ids follow first arrival:
    // compare them by name, in time order.
    let mut named: Vec<String> = out
        .iter()
        .map(|ev| {
            let (d, m) = e.series_name(ev.series).unwrap();
            format!("{} {} {d}/{m} {:?}", ev.ts, ev.rule, ev.kind)
        })
        .collect();
    named.sort();
    named
}

/// Shuffles the rows within each timestamp by `keys`.
fn permute(rows: &[(i64, usize, usize, i32)], keys: &[u32]) -> Vec<(i64, usize, usize, i32)> {
    let mut keyed: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0, keys.get(i).copied().unwrap_or(0), *r))
        .collect();
    keyed.sort_by_key(|k| (k.0, k.1));
    keyed.into_iter().map(|k| k.2).collect()
}

proptest! {
    #[test]
    fn any_order_within_a_timestamp_gives_the_same_events(
        rows in rows(),
        keys in prop::collection::vec(any::<u32>(), 120),
    ) {
        let want = run(&rows);
        prop_assert_eq!(run(&permute(&rows, &keys)), want);
    }

    #[test]
    fn peer_aggregates_are_those_of_the_same_window(rows in rows(), keys in prop::collection::vec(any::<u32>(), 120)) {
        let rows = permute(&rows, &keys);
        let mut e = Engine::new(RuleSet::parse_str(
            "rules:\n  - name: r\n    select: { metric: a }\n    window: { tumbling: 10ms }\n    alert: { when: \"max(metric.b) > -100\" }\n",
            "p.yaml",
        ).unwrap());
        let mut out = Vec::new();
        for &(ts, d, k, v) in &rows {
            let id = e.series(&format!("dev{d}"), METRICS[k]).unwrap();
            e.push(Sample { series: id, ts, value: f64::from(v) }, &mut out);
        }
        e.advance(i64::MAX, &mut out);
        for ev in &out {
            let EventKind::Alert { value, .. } = ev.kind else { continue };
            let (device, _) = e.series_name(ev.series).unwrap();
            let end = ev.ts;
            let want = rows
                .iter()
                .filter(|r| format!("dev{}", r.1) == device && r.2 == 1 && r.0 >= end - 10_000 && r.0 < end)
                .map(|r| f64::from(r.3))
                .fold(f64::NAN, f64::max);
            prop_assert!(value == want || (value.is_nan() && want.is_nan()), "{ev:?}: want {want}");
        }
    }
}
