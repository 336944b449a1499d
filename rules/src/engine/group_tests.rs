//! Grouped rules (`group_by`): one window per device, label value or for all series.

use super::*;
use crate::event::{Aggregate, AlertState, Event, EventKind, Sample};

const S: i64 = 1_000_000;

fn engine(yaml: &str) -> Engine {
    Engine::new(RuleSet::parse_str(yaml, "test.yaml").unwrap())
}

fn push(e: &mut Engine, id: SeriesId, ts: i64, value: f64) -> Vec<Event> {
    let mut out = Vec::new();
    e.push(
        Sample {
            series: id,
            ts,
            value,
        },
        &mut out,
    );
    out
}

/// `(device, metric, start, values)` of a window event, as the agent would name them.
type Named = (String, String, i64, Vec<(Aggregate, f64)>);

fn windows(e: &Engine, out: &[Event]) -> Vec<Named> {
    out.iter()
        .filter_map(|ev| match &ev.kind {
            EventKind::Window { start, values, .. } => {
                let (d, m) = e.series_name(ev.series).unwrap();
                Some((d.to_owned(), m.to_owned(), *start, values.clone()))
            }
            _ => None,
        })
        .collect()
}

const BEARINGS: &str = r#"
rules:
  - name: bearing-max
    select: { device: "pump-*", metric: "bearing_temp_*" }
    group_by: device
    window: { tumbling: 60s }
    aggregates: [max, count]
"#;

#[test]
fn a_device_group_keeps_one_window_over_all_its_selected_series() {
    let mut e = engine(BEARINGS);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-1", "bearing_temp_nde").unwrap();
    let c = e.series("pump-2", "bearing_temp_de").unwrap();
    let other = e.series("pump-1", "flow").unwrap();
    assert_eq!(e.stats().series, 4);
    assert_eq!(e.stats().groups, 2);
    assert!(push(&mut e, a, S, 70.0).is_empty());
    assert!(push(&mut e, b, 2 * S, 75.0).is_empty());
    assert!(push(&mut e, c, 3 * S, 50.0).is_empty());
    assert!(push(&mut e, other, 4 * S, 999.0).is_empty());
    assert!(push(&mut e, a, 59 * S, 72.0).is_empty());
    // The next minute's sample on either bearing closes pump-1's window, not pump-2's.
    let out = push(&mut e, b, 61 * S, 60.0);
    let pattern = "bearing_temp_*".to_owned();
    let one = (Aggregate::Max, 75.0);
    assert_eq!(
        windows(&e, &out),
        [(
            "pump-1".into(),
            pattern.clone(),
            0,
            vec![one, (Aggregate::Count, 3.0)]
        )]
    );
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let w = windows(&e, &out);
    assert_eq!(w.len(), 2, "{w:?}");
    // By group id: pump-1's group was interned first.
    assert_eq!(w[0].0, "pump-1");
    assert_eq!(w[0].3, [(Aggregate::Max, 60.0), (Aggregate::Count, 1.0)]);
    assert_eq!(w[1].0, "pump-2");
    assert_eq!(w[1].3, [(Aggregate::Max, 50.0), (Aggregate::Count, 1.0)]);
}

#[test]
fn a_group_window_closes_on_the_newest_sample_of_any_of_its_series() {
    // The watermark is the group's newest event time: a slow series' sample older than the
    // open window is late even though it is the newest of its own series.
    let mut e = engine(BEARINGS);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-1", "bearing_temp_nde").unwrap();
    push(&mut e, a, 10 * S, 70.0);
    push(&mut e, a, 70 * S, 71.0);
    assert!(push(&mut e, b, 30 * S, 99.0).is_empty());
    assert_eq!(e.stats().late_dropped, 1);
}

const BY_SITE: &str = r#"
rules:
  - name: site-mean
    select: { metric: temp }
    group_by: label.site
    window: { tumbling: 10s, lateness: 5s }
    aggregates: [mean, count]
    alert: { when: "mean > 50", severity: warning }
"#;

fn labelled() -> Engine {
    let mut e = engine(BY_SITE);
    let pairs = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    let labels = DeviceLabels::new([
        ("north-*".to_owned(), pairs("site", "north")),
        ("south-*".to_owned(), pairs("site", "south")),
    ])
    .unwrap();
    e.set_labels(labels);
    e
}

#[test]
fn a_label_group_spans_devices_and_skips_devices_without_the_label() {
    let mut e = labelled();
    let n1 = e.series("north-1", "temp").unwrap();
    let n2 = e.series("north-2", "temp").unwrap();
    let s1 = e.series("south-1", "temp").unwrap();
    let loose = e.series("spare-1", "temp").unwrap();
    assert_eq!(e.stats().groups, 2);
    let mut out = Vec::new();
    for (id, ts, v) in [(n1, 1, 40.0), (n2, 2, 80.0), (s1, 3, 10.0), (loose, 4, 1e9)] {
        out.extend(push(&mut e, id, ts * S, v));
    }
    // Out of order within the lateness: still counted in north's first window.
    out.extend(push(&mut e, n1, 12 * S, 0.0));
    out.extend(push(&mut e, n2, 9 * S, 60.0));
    assert!(out.is_empty(), "{out:?}");
    e.advance(i64::MAX, &mut out);
    let w = windows(&e, &out);
    let names: Vec<&str> = w.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(names, ["site=north", "site=north", "site=south"]);
    assert_eq!(w[0].3, [(Aggregate::Mean, 60.0), (Aggregate::Count, 3.0)]);
    assert_eq!(w[0].1, "temp");
    let raised: Vec<&str> = super::tests::raises(&out)
        .map(|ev| e.series_name(ev.series).unwrap().0)
        .collect();
    assert_eq!(raised, ["site=north"]);
}

#[test]
fn late_events_of_a_group_name_the_series_the_sample_came_from() {
    let yaml = BEARINGS.replace("tumbling: 60s", "tumbling: 60s, late: emit");
    let mut e = engine(&yaml);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-1", "bearing_temp_nde").unwrap();
    push(&mut e, a, 70 * S, 71.0);
    let out = push(&mut e, b, 30 * S, 99.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].series, b);
    assert!(matches!(out[0].kind, EventKind::Late { value } if value == 99.0));
}

#[test]
fn group_all_keeps_one_window_for_every_selected_series() {
    let yaml = BEARINGS.replace("group_by: device", "group_by: all");
    let mut e = engine(&yaml);
    let ids: Vec<_> = (0..5)
        .map(|i| e.series(&format!("pump-{i}"), "bearing_temp_de").unwrap())
        .collect();
    for (k, id) in ids.iter().enumerate() {
        push(&mut e, *id, k as i64 * S, k as f64);
    }
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let w = windows(&e, &out);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, "*");
    assert_eq!(w[0].3, [(Aggregate::Max, 4.0), (Aggregate::Count, 5.0)]);
}

#[test]
fn a_device_group_reads_other_metrics_of_its_device() {
    let yaml = r#"
rules:
  - name: hot-bearing-while-running
    select: { device: "pump-*", metric: "bearing_temp_*" }
    group_by: device
    window: { tumbling: 10s }
    alert: { when: "max > 80 and metric.running > 0" }
"#;
    let mut e = engine(yaml);
    let run1 = e.series("pump-1", "running").unwrap();
    let run2 = e.series("pump-2", "running").unwrap();
    let t1 = e.series("pump-1", "bearing_temp_de").unwrap();
    let t2 = e.series("pump-2", "bearing_temp_de").unwrap();
    push(&mut e, run1, 0, 1.0);
    push(&mut e, run2, 0, 0.0);
    push(&mut e, t1, S, 90.0);
    push(&mut e, t2, S, 90.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let raised: Vec<&str> = out
        .iter()
        .map(|ev| e.series_name(ev.series).unwrap().0)
        .collect();
    assert_eq!(raised, ["pump-1"]);
}

#[test]
fn groups_count_against_max_series_and_refusals_are_counted() {
    let limited = || {
        let rules = RuleSet::parse_str(BEARINGS, "t.yaml").unwrap();
        Engine::with_limits(
            rules,
            Limits {
                max_series: 3,
                ..Limits::default()
            },
        )
    };
    // Two series and pump-1's group fill the table: a third series is refused.
    let mut e = limited();
    e.series("pump-1", "bearing_temp_de").unwrap();
    e.series("pump-1", "bearing_temp_nde").unwrap();
    assert!(e.series("pump-2", "bearing_temp_de").is_err());
    // Here pump-2's series fits but its group does not: the series is interned, the
    // refusal counted, and the series reaches no window.
    let mut e = limited();
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let c = e.series("pump-2", "bearing_temp_de").unwrap();
    assert_eq!(e.stats().groups_refused, 1);
    assert_eq!(e.stats().groups, 1);
    assert_eq!(e.stats().series, 2);
    assert!(push(&mut e, c, S, 1.0).is_empty());
    push(&mut e, a, S, 5.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let w = windows(&e, &out);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, "pump-1");
}

const STEADY: &str = r#"
rules:
  - name: plain
    select: { metric: flow }
    window: { tumbling: 60s }
    aggregates: [count]
"#;

fn count_of(e: &Engine, out: &[Event], device: &str) -> Option<f64> {
    windows(e, out)
        .into_iter()
        .find(|w| w.0 == device)
        .and_then(|w| w.3.into_iter().find(|(a, _)| *a == Aggregate::Count))
        .map(|(_, v)| v)
}

#[test]
fn an_unchanged_grouped_rule_keeps_its_group_windows_across_a_reload() {
    let mut e = engine(BEARINGS);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-1", "bearing_temp_nde").unwrap();
    push(&mut e, a, S, 70.0);
    push(&mut e, b, 2 * S, 71.0);
    let both = format!("{BEARINGS}{}", STEADY.trim_start_matches("\nrules:\n"));
    let report = e.reload(RuleSet::parse_str(&both, "t.yaml").unwrap());
    assert_eq!(report.kept, vec![std::sync::Arc::from("bearing-max")]);
    assert_eq!(e.stats().groups, 1);
    // A series interned after the reload joins the kept group.
    let c = e.series("pump-1", "bearing_temp_gear").unwrap();
    push(&mut e, c, 3 * S, 72.0);
    let out = push(&mut e, a, 61 * S, 1.0);
    assert_eq!(count_of(&e, &out, "pump-1"), Some(3.0));
}

#[test]
fn a_changed_grouped_rule_restarts_and_clears_its_raised_alert_once() {
    let hot = r#"
rules:
  - name: hot
    select: { metric: "bearing_temp_*" }
    group_by: device
    window: { tumbling: 10s }
    alert: { when: "max > 80" }
"#;
    let mut e = engine(hot);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    push(&mut e, a, S, 90.0);
    let out = push(&mut e, a, 11 * S, 10.0);
    assert!(matches!(
        out[0].kind,
        EventKind::Alert {
            state: AlertState::Raised,
            ..
        }
    ));
    e.reload(RuleSet::parse_str(&hot.replace("80", "85"), "t.yaml").unwrap());
    // The restarted window holds only what came after the reload.
    assert!(push(&mut e, a, 15 * S, 10.0).is_empty());
    let out = push(&mut e, a, 21 * S, 10.0);
    let states: Vec<_> = out
        .iter()
        .filter_map(|ev| match ev.kind {
            EventKind::Alert { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(states, [AlertState::Cleared]);
    assert_eq!(
        e.series_name(out[0].series),
        Some(("pump-1", "bearing_temp_*"))
    );
}

#[test]
fn a_reload_that_changes_the_grouping_starts_new_groups() {
    let mut e = engine(BEARINGS);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-2", "bearing_temp_de").unwrap();
    push(&mut e, a, S, 70.0);
    let all = BEARINGS.replace("group_by: device", "group_by: all");
    let report = e.reload(RuleSet::parse_str(&all, "t.yaml").unwrap());
    assert_eq!(report.restarted.len(), 1);
    assert_eq!(e.stats().groups, 1);
    // The two per-device groups are out of use; the series count does not include them.
    assert_eq!(e.stats().series, 2);
    push(&mut e, a, 2 * S, 71.0);
    push(&mut e, b, 3 * S, 72.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    // The old per-device window restarted: only the two samples after the reload count.
    let w = windows(&e, &out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, "*");
    assert_eq!(w[0].3, [(Aggregate::Max, 72.0), (Aggregate::Count, 2.0)]);
}

#[test]
fn a_rule_that_becomes_grouped_stops_its_per_series_windows() {
    let plain = BEARINGS.replace("    group_by: device\n", "");
    let mut e = engine(&plain);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    let b = e.series("pump-1", "bearing_temp_nde").unwrap();
    push(&mut e, a, S, 70.0);
    e.reload(RuleSet::parse_str(BEARINGS, "t.yaml").unwrap());
    push(&mut e, b, 2 * S, 71.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let w = windows(&e, &out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].1, "bearing_temp_*");
    assert_eq!(w[0].3, [(Aggregate::Max, 71.0), (Aggregate::Count, 1.0)]);
}

#[test]
fn the_pump_example_groups_bearings_by_pump() {
    let set = RuleSet::parse_str(
        include_str!("../../../examples/rules/pump.yaml"),
        "pump.yaml",
    );
    let mut e = Engine::new(set.unwrap());
    let de = e.series("pump-1", "bearing_temp_de").unwrap();
    let nde = e.series("pump-1", "bearing_temp_nde").unwrap();
    push(&mut e, de, S, 80.0);
    push(&mut e, nde, 2 * S, 90.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    let alert = out
        .iter()
        .find_map(|ev| match &ev.kind {
            EventKind::Alert { message, .. } if &*ev.rule == "pump-bearing-max" => message.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(&*alert, "pump-1: hottest bearing at 90.0 °C");
}

#[test]
fn a_windowed_detector_judges_each_group_window() {
    let yaml = r#"
rules:
  - name: hottest-bearing
    select: { metric: "bearing_temp_*" }
    group_by: device
    window: { tumbling: 10s }
    detect: { threshold: { raise: 80, clear: 75 }, value: max }
    alert: { severity: warning }
"#;
    let mut e = engine(yaml);
    let de = e.series("pump-1", "bearing_temp_de").unwrap();
    let nde = e.series("pump-1", "bearing_temp_nde").unwrap();
    let mut out = Vec::new();
    // Neither bearing alone decides: the detector sees the max of both, per window.
    for (k, (a, b)) in [(70.0, 85.0), (70.0, 78.0), (70.0, 74.0)]
        .into_iter()
        .enumerate()
    {
        let t = k as i64 * 10 * S;
        out.extend(push(&mut e, de, t + S, a));
        out.extend(push(&mut e, nde, t + 2 * S, b));
    }
    e.advance(i64::MAX, &mut out);
    let alerts: Vec<(AlertState, f64, i64)> = out
        .iter()
        .filter_map(|ev| match ev.kind {
            EventKind::Alert { state, value, .. } => Some((state, value, ev.ts)),
            _ => None,
        })
        .collect();
    assert_eq!(
        alerts,
        [
            (AlertState::Raised, 85.0, 10 * S),
            (AlertState::Cleared, 74.0, 30 * S)
        ]
    );
    assert!(
        out.iter()
            .all(|ev| e.series_name(ev.series) == Some(("pump-1", "bearing_temp_*")))
    );
}

/// Raises `hot` (grouped by device, as `yaml` has it) on pump-1's bearing group.
fn raised_hot(yaml: &str) -> (Engine, SeriesId) {
    let mut e = engine(yaml);
    let a = e.series("pump-1", "bearing_temp_de").unwrap();
    push(&mut e, a, S, 90.0);
    let out = push(&mut e, a, 11 * S, 10.0);
    assert!(
        out.iter().any(|ev| matches!(
            ev.kind,
            EventKind::Alert {
                state: AlertState::Raised,
                ..
            }
        )),
        "{out:?}"
    );
    (e, a)
}

const HOT: &str = r#"
rules:
  - name: hot
    select: { metric: "bearing_temp_*" }
    group_by: device
    window: { tumbling: 10s }
    alert: { when: "max > 80" }
"#;

#[test]
fn regrouping_a_rule_reports_an_alert_raised_on_an_old_group() {
    let changes = [
        HOT.replace("group_by: device", "group_by: all"),
        HOT.replace("bearing_temp_*", "bearing_temp_d*"),
        HOT.replace("    group_by: device\n", ""),
    ];
    for changed in changes {
        let (mut e, a) = raised_hot(HOT);
        let report = e.reload(RuleSet::parse_str(&changed, "t.yaml").unwrap());
        assert_eq!(report.restarted, [std::sync::Arc::from("hot")], "{changed}");
        assert_eq!(report.orphaned_while_raised, [std::sync::Arc::from("hot")]);
        assert!(report.removed_while_raised.is_empty());
        // The new window never raised, so it neither clears nor re-raises the old alert.
        push(&mut e, a, 21 * S, 10.0);
        let mut out = Vec::new();
        e.advance(i64::MAX, &mut out);
        assert!(
            out.iter()
                .all(|ev| !matches!(ev.kind, EventKind::Alert { .. })),
            "{changed}: {out:?}"
        );
    }
}

#[test]
fn a_rule_that_becomes_grouped_reports_an_alert_raised_on_a_series() {
    let plain = HOT.replace("    group_by: device\n", "");
    let (mut e, _) = raised_hot(&plain);
    let report = e.reload(RuleSet::parse_str(HOT, "t.yaml").unwrap());
    assert_eq!(report.orphaned_while_raised, [std::sync::Arc::from("hot")]);
}

#[test]
fn a_changed_rule_keeping_its_grouping_reports_nothing_orphaned() {
    let (mut e, _) = raised_hot(HOT);
    let report = e.reload(RuleSet::parse_str(&HOT.replace("80", "85"), "t.yaml").unwrap());
    assert!(report.orphaned_while_raised.is_empty());
    let report = e.reload(RuleSet::parse_str("rules: []\n", "t.yaml").unwrap());
    assert_eq!(report.removed_while_raised, [std::sync::Arc::from("hot")]);
    assert!(report.orphaned_while_raised.is_empty());
}
