//! Grouped rules (`group_by`) checked against brute-force models.
//!
//! The specification: a group's window behaves exactly like the window of one series fed
//! with the samples of every series in the group, in arrival order. So the models first
//! split the interleaved stream by group, then apply the one-series reference to each part:
//! by `(group, window)` in a `BTreeMap` for samples within the lateness, and the lateness
//! model of `lateness.rs` for any order with watermarks.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::lateness::model;
use super::{FFT, HOP, SIZE, Step, Window, aggregates, every_aggregate, same};
use crate::{DeviceLabels, Engine, EventKind, RuleSet, Sample};

const LATENESS: i64 = 5_000;

/// `(rule, group name)`.
type Group = (String, String);
const DEVICES: usize = 4;
const METRICS: usize = 3;

/// The grouped rules, all over every series: `(name, group_by, window, hop)`. `d3` has no
/// `site` label, so its samples reach only the rules by device and `all`.
const RULES: [(&str, &str, &str, i64); 4] = [
    (
        "by-device",
        "device",
        "{ tumbling: 7ms, lateness: 5ms }",
        SIZE,
    ),
    (
        "by-site",
        "label.site",
        "{ tumbling: 7ms, lateness: 5ms }",
        SIZE,
    ),
    (
        "hop-by-site",
        "label.site",
        "{ hopping: { size: 7ms, hop: 3ms }, lateness: 5ms }",
        HOP,
    ),
    (
        "hop-all",
        "all",
        "{ hopping: { size: 7ms, hop: 3ms }, lateness: 5ms }",
        HOP,
    ),
];

fn grouped_rules() -> RuleSet {
    let names: Vec<&str> = every_aggregate().iter().map(|a| a.as_str()).collect();
    let mut yaml = String::from("rules:\n");
    for (name, by, window, _) in RULES {
        yaml.push_str(&format!(
            "  - name: {name}\n    group_by: {by}\n    window: {window}\n    \
             ewma_alpha: {}\n    fft: {FFT}\n    aggregates: [{}]\n",
            super::ALPHA,
            names.join(", ")
        ));
    }
    RuleSet::parse_str(&yaml, "g.yaml").unwrap()
}

/// The group of device `d` under `group_by: by`, named as the engine names it.
fn group_of(by: &str, d: usize) -> Option<String> {
    match by {
        "device" => Some(format!("d{d}")),
        "all" => Some("*".to_owned()),
        _ => site(d).map(str::to_owned),
    }
}

fn site(device: usize) -> Option<&'static str> {
    match device {
        0 | 1 => Some("site=a"),
        2 => Some("site=b"),
        _ => None,
    }
}

/// One step of an interleaved run: a sample of series `(device, metric)`, or an advance.
#[derive(Debug, Clone)]
enum GStep {
    Push(usize, usize, i64, i32),
    Advance(i64),
}

/// The engine's windows by `(rule, group name)`, each group's in emission order, and the
/// late count. Before each step whose index is in `reloads`, the same rules are reloaded.
fn engine_run(steps: &[GStep], reloads: &[usize]) -> (BTreeMap<Group, Vec<Window>>, u64) {
    let mut engine = Engine::new(grouped_rules());
    let pairs = |v: &str| vec![("site".to_owned(), v.to_owned())];
    let labels = DeviceLabels::new([
        ("d0".to_owned(), pairs("a")),
        ("d1".to_owned(), pairs("a")),
        ("d2".to_owned(), pairs("b")),
    ])
    .unwrap();
    engine.set_labels(labels);
    let mut ids = Vec::new();
    for d in 0..DEVICES {
        for m in 0..METRICS {
            ids.push(engine.series(&format!("d{d}"), &format!("m{m}")).unwrap());
        }
    }
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if reloads.contains(&i) {
            engine.reload(grouped_rules());
        }
        match *step {
            GStep::Push(d, m, ts, v) => {
                let series = ids[d * METRICS + m];
                let value = f64::from(v);
                engine.push(Sample { series, ts, value }, &mut out);
            }
            GStep::Advance(w) => engine.advance(w, &mut out),
        }
    }
    engine.advance(i64::MAX, &mut out);
    let mut got: BTreeMap<Group, Vec<Window>> = BTreeMap::new();
    for e in &out {
        let EventKind::Window { start, end, values } = &e.kind else {
            panic!("unexpected event {e:?}");
        };
        let (device, _) = engine.series_name(e.series).unwrap();
        got.entry((e.rule.to_string(), device.to_owned()))
            .or_default()
            .push((*start, *end, values.clone()));
    }
    (got, engine.stats().late_dropped)
}

/// Each group's part of the stream (advances go to every group), in arrival order.
fn split(steps: &[GStep]) -> BTreeMap<Group, Vec<Step>> {
    let mut parts: BTreeMap<Group, Vec<Step>> = BTreeMap::new();
    for step in steps {
        for (rule, by, _, _) in RULES {
            let groups: Vec<String> = match *step {
                GStep::Push(d, ..) => group_of(by, d).into_iter().collect(),
                GStep::Advance(_) => (0..DEVICES).filter_map(|d| group_of(by, d)).collect(),
            };
            let step = match *step {
                GStep::Push(_, _, ts, v) => Step::Push(ts, v),
                GStep::Advance(w) => Step::Advance(w),
            };
            for g in groups {
                let part = parts.entry((rule.to_owned(), g)).or_default();
                // Several devices name the same group: one advance per group is enough.
                if let (Step::Advance(w), Some(Step::Advance(last))) = (&step, part.last())
                    && w == last
                {
                    continue;
                }
                part.push(step.clone());
            }
        }
    }
    parts
}

fn compare(
    got: &BTreeMap<Group, Vec<Window>>,
    want: &BTreeMap<Group, Vec<Window>>,
) -> Result<(), TestCaseError> {
    let got_keys: Vec<_> = got.keys().collect();
    let want_keys: Vec<_> = want.keys().collect();
    prop_assert_eq!(got_keys, want_keys);
    for (k, w) in want {
        same(&got[k], w)?;
    }
    Ok(())
}

fn series() -> impl Strategy<Value = (usize, usize)> {
    (0..DEVICES, 0..METRICS)
}

/// Interleaved series, each sample up to `LATENESS` behind the newest of the whole stream.
fn jittered() -> impl Strategy<Value = Vec<GStep>> {
    let step = (0i64..1_500, 0i64..=LATENESS, series(), -1_000i32..1_000);
    prop::collection::vec(step, 0..200).prop_map(|steps| {
        let mut ts = 0;
        let mut arrivals: Vec<(i64, GStep)> = steps
            .into_iter()
            .map(|(gap, delay, (d, m), v)| {
                ts += gap;
                (ts + delay, GStep::Push(d, m, ts, v))
            })
            .collect();
        arrivals.sort_by_key(|a| a.0);
        arrivals.into_iter().map(|(_, s)| s).collect()
    })
}

fn any_order() -> impl Strategy<Value = Vec<GStep>> {
    prop::collection::vec(
        prop_oneof![
            6 => (series(), 0i64..40_000, -1_000i32..1_000)
                .prop_map(|((d, m), t, v)| GStep::Push(d, m, t, v)),
            1 => (0i64..40_000).prop_map(GStep::Advance),
        ],
        0..200,
    )
}

/// The windows `[s, s + SIZE)`, `s` a multiple of `hop`, that contain `ts`.
fn starts(ts: i64, hop: i64) -> impl Iterator<Item = i64> {
    let first = (ts - SIZE).div_euclid(hop) * hop;
    (0..)
        .map(move |k| first + k * hop)
        .skip_while(move |s| s + SIZE <= ts)
        .take_while(move |s| *s <= ts)
}

/// Random points of a run at which to reload the same rules.
fn reloads() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..200, 0..4)
}

proptest! {
    /// Within the lateness nothing is lost, whichever series of the group is ahead: every
    /// group window holds exactly the group's samples whose timestamps fall in it.
    #[test]
    fn group_windows_hold_every_sample_of_their_group(steps in jittered()) {
        let (got, late) = engine_run(&steps, &[]);
        prop_assert_eq!(late, 0);
        let mut by_window: BTreeMap<(Group, i64), Vec<(i64, f64)>> = BTreeMap::new();
        for step in &steps {
            let GStep::Push(d, _, ts, v) = *step else { continue };
            let sample = (ts, f64::from(v));
            for (rule, by, _, hop) in RULES {
                let Some(g) = group_of(by, d) else { continue };
                for start in starts(ts, hop) {
                    let key = ((rule.to_owned(), g.clone()), start);
                    by_window.entry(key).or_default().push(sample);
                }
            }
        }
        let mut want: BTreeMap<Group, Vec<Window>> = BTreeMap::new();
        for ((group, start), vs) in by_window {
            let w = (start, start + SIZE, aggregates(&vs, SIZE as f64 / 1e6));
            want.entry(group).or_default().push(w);
        }
        compare(&got, &want)?;
    }

    /// Any order, with watermarks: each group agrees with the one-series lateness model fed
    /// the group's samples, and late samples are counted once per group that refused them.
    /// Reloading the unchanged rules anywhere in the run changes nothing.
    #[test]
    fn each_group_matches_the_one_series_model_under_any_order(
        steps in any_order(),
        reloads in reloads(),
    ) {
        let (got, late) = engine_run(&steps, &reloads);
        let mut want = BTreeMap::new();
        let mut want_late = 0;
        for (group, part) in split(&steps) {
            let hop = RULES.iter().find(|r| r.0 == group.0).map_or(SIZE, |r| r.3);
            let (windows, late) = model(&part, hop);
            want_late += late;
            if !windows.is_empty() {
                want.insert(group, windows);
            }
        }
        compare(&got, &want)?;
        prop_assert_eq!(late, want_late);
    }
}
