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
use super::{FFT, SIZE, Step, Window, aggregates, every_aggregate, same};
use crate::{DeviceLabels, Engine, EventKind, RuleSet, Sample};

const LATENESS: i64 = 5_000;

/// `(rule, group name)`.
type Group = (String, String);
const DEVICES: usize = 4;
const METRICS: usize = 3;

/// Two grouped rules over every series: by device, and by the `site` label (which `d3`
/// lacks, so its samples reach only the first rule).
fn grouped_rules() -> RuleSet {
    let names: Vec<&str> = every_aggregate().iter().map(|a| a.as_str()).collect();
    let mut yaml = String::from("rules:\n");
    for (name, by) in [("by-device", "device"), ("by-site", "label.site")] {
        yaml.push_str(&format!(
            "  - name: {name}\n    group_by: {by}\n    window: {{ tumbling: 7ms, lateness: 5ms }}\n    \
             ewma_alpha: {}\n    fft: {FFT}\n    aggregates: [{}]\n",
            super::ALPHA,
            names.join(", ")
        ));
    }
    RuleSet::parse_str(&yaml, "g.yaml").unwrap()
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
/// late count.
fn engine_run(steps: &[GStep]) -> (BTreeMap<Group, Vec<Window>>, u64) {
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
    for step in steps {
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
    let keys: Vec<Group> = (0..DEVICES)
        .map(|d| ("by-device".to_owned(), format!("d{d}")))
        .chain(["site=a", "site=b"].map(|s| ("by-site".to_owned(), s.to_owned())))
        .collect();
    for step in steps {
        match *step {
            GStep::Push(d, _, ts, v) => {
                let by_device = ("by-device".to_owned(), format!("d{d}"));
                parts.entry(by_device).or_default().push(Step::Push(ts, v));
                if let Some(s) = site(d) {
                    let by_site = ("by-site".to_owned(), s.to_owned());
                    parts.entry(by_site).or_default().push(Step::Push(ts, v));
                }
            }
            GStep::Advance(w) => {
                for k in &keys {
                    parts.entry(k.clone()).or_default().push(Step::Advance(w));
                }
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

proptest! {
    /// Within the lateness nothing is lost, whichever series of the group is ahead: every
    /// group window holds exactly the group's samples whose timestamps fall in it.
    #[test]
    fn group_windows_hold_every_sample_of_their_group(steps in jittered()) {
        let (got, late) = engine_run(&steps);
        prop_assert_eq!(late, 0);
        let mut by_window: BTreeMap<(Group, i64), Vec<(i64, f64)>> = BTreeMap::new();
        for step in &steps {
            let GStep::Push(d, _, ts, v) = *step else { continue };
            let k = ts.div_euclid(SIZE);
            let sample = (ts, f64::from(v));
            let device = ("by-device".to_owned(), format!("d{d}"));
            by_window.entry((device, k)).or_default().push(sample);
            if let Some(s) = site(d) {
                let group = ("by-site".to_owned(), s.to_owned());
                by_window.entry((group, k)).or_default().push(sample);
            }
        }
        let mut want: BTreeMap<Group, Vec<Window>> = BTreeMap::new();
        for ((group, k), vs) in by_window {
            let w = (k * SIZE, (k + 1) * SIZE, aggregates(&vs, SIZE as f64 / 1e6));
            want.entry(group).or_default().push(w);
        }
        compare(&got, &want)?;
    }

    /// Any order, with watermarks: each group agrees with the one-series lateness model fed
    /// the group's samples, and late samples are counted once per group that refused them.
    #[test]
    fn each_group_matches_the_one_series_model_under_any_order(steps in any_order()) {
        let (got, late) = engine_run(&steps);
        let mut want = BTreeMap::new();
        let mut want_late = 0;
        for (group, part) in split(&steps) {
            let (windows, late) = model(&part, SIZE);
            want_late += late;
            if !windows.is_empty() {
                want.insert(group, windows);
            }
        }
        compare(&got, &want)?;
        prop_assert_eq!(late, want_late);
    }
}
