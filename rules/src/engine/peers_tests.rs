//! `metric.<name>` and `agg(metric.<name>)`: a rule on one metric reading another metric of
//! the same device over the same window (module `peers`).

use super::*;
use crate::event::{AlertState, Event, EventKind, Sample};

const S: i64 = 1_000_000;

const RULES: &str = r#"
rules:
  - name: hot-while-running
    select: { device: "pump-*", metric: temp }
    window: { tumbling: 10s }
    alert: { when: "max > 80 and metric.running > 0.5" }
"#;

fn push(e: &mut Engine, device: &str, metric: &str, ts: i64, value: f64) -> Vec<Event> {
    let series = e.series(device, metric).unwrap();
    let mut out = Vec::new();
    e.push(Sample { series, ts, value }, &mut out);
    out
}

fn raised(out: &[Event]) -> bool {
    out.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::Alert {
                state: AlertState::Raised,
                ..
            }
        )
    })
}

#[test]
fn a_condition_reads_the_mean_of_another_metric_of_the_same_device_over_its_window() {
    let mut e = Engine::new(RuleSet::parse_str(RULES, "r.yaml").unwrap());
    // Hot but stopped: no alert. Before any `running` sample the reference is NaN: false.
    push(&mut e, "pump-1", "temp", 0, 90.0);
    assert!(!raised(&push(&mut e, "pump-1", "temp", 10 * S, 90.0)));
    push(&mut e, "pump-1", "running", 11 * S, 0.0);
    assert!(!raised(&push(&mut e, "pump-1", "temp", 20 * S, 90.0)));
    // Another pump running does not count: the reference stays on the same device.
    push(&mut e, "pump-2", "running", 21 * S, 1.0);
    assert!(!raised(&push(&mut e, "pump-1", "temp", 30 * S, 90.0)));
    push(&mut e, "pump-1", "running", 31 * S, 1.0);
    assert!(raised(&push(&mut e, "pump-1", "temp", 40 * S, 90.0)));
}

#[test]
fn the_rule_lists_the_metrics_it_reads_once() {
    let src = r#"
rules:
  - name: r
    window: { tumbling: 10s }
    let: { load: "metric.current / metric.rated" }
    alert: { when: "load > 1.1 and metric.current > 0" }
"#;
    let set = RuleSet::parse_str(src, "r.yaml").unwrap();
    let others: Vec<&str> = set.rules[0].others.iter().map(|m| &**m).collect();
    assert_eq!(others, ["current", "rated"]);
}

#[test]
fn rules_select_devices_by_their_labels() {
    let src = r#"
rules:
  - name: north-pumps
    select: { labels: { site: north, kind: "pump*" } }
    window: { tumbling: 10s }
    aggregates: [count]
"#;
    let mut e = Engine::new(RuleSet::parse_str(src, "r.yaml").unwrap());
    let to_pairs = |l: &[(&str, &str)]| -> Vec<(String, String)> {
        l.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    };
    e.set_labels(
        crate::DeviceLabels::new([
            ("*".to_owned(), to_pairs(&[("site", "north")])),
            ("p-*".to_owned(), to_pairs(&[("kind", "pump-centrifugal")])),
            ("p-9".to_owned(), to_pairs(&[("site", "south")])),
        ])
        .unwrap(),
    );
    let mut selected = Vec::new();
    for device in ["p-1", "p-9", "fan-1"] {
        push(&mut e, device, "temp", 0, 1.0);
        if !push(&mut e, device, "temp", 10 * S, 1.0).is_empty() {
            selected.push(device);
        }
    }
    assert_eq!(selected, ["p-1"]);
}

#[test]
fn a_bad_label_pattern_points_inside_it() {
    let src = "rules:\n  - name: r\n    select: { labels: { site: \"n[\" } }\n    window: { tumbling: 1s }\n    aggregates: [count]\n";
    let e = RuleSet::parse_str(src, "r.yaml").unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.column), (3, 33), "{d}");
}

/// The bug this replaced (issue 16): with `s21` sent after `s2` within a timestamp the rule
/// raised, with `s21` first it did not, because the window was judged against `s21`'s
/// latest value at the moment it closed — a value from the next timestamp.
#[test]
fn regression_the_order_of_rows_within_a_timestamp_does_not_change_the_events() {
    let rules = r#"
rules:
  - name: s2-above-s21
    select: { metric: s2 }
    window: { tumbling: 10s }
    alert: { when: "mean > metric.s21" }
"#;
    let run = |s21_first: bool| {
        let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
        let mut out = Vec::new();
        for (ts, s2, s21) in [(0, 5.0, 1.0), (5 * S, 5.0, 1.0), (10 * S, 5.0, 9.0)] {
            let mut rows = vec![("s2", s2), ("s21", s21)];
            if s21_first {
                rows.reverse();
            }
            for (m, v) in rows {
                out.extend(push(&mut e, "engine-1", m, ts, v));
            }
        }
        out
    };
    let (a, b) = (run(false), run(true));
    // By value, not series id (ids follow first arrival); NaN scores compare as text.
    let strip = |v: &[Event]| -> Vec<String> {
        v.iter().map(|e| format!("{} {:?}", e.ts, e.kind)).collect()
    };
    assert_eq!(strip(&a), strip(&b));
    // The window [0, 10s) holds s2 = 5 and s21 = 1: raised, whatever came at 10 s.
    assert!(raised(&a), "{a:?}");
}

#[test]
fn aggregates_of_another_metric_and_a_window_without_its_samples() {
    let rules = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    alert: { when: "max(metric.flow) > 100 and count(metric.flow) >= 2 and metric.flow > 0" }
"#;
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    push(&mut e, "p", "flow", 0, 50.0);
    push(&mut e, "p", "flow", S, 150.0);
    push(&mut e, "p", "temp", 2 * S, 20.0);
    // The flow sample at 10 s belongs to the next window: it does not enter [0, 10 s).
    push(&mut e, "p", "flow", 10 * S, 1000.0);
    let out = push(&mut e, "p", "temp", 10 * S, 20.0);
    let value = out.iter().find_map(|ev| match &ev.kind {
        EventKind::Alert { value, .. } => Some(*value),
        _ => None,
    });
    assert_eq!(value, Some(150.0));
    push(&mut e, "p", "flow", 11 * S, 1000.0);
    // [10 s, 20 s) has flow = 1000: still raised. [20 s, 30 s) has no flow sample: count 0,
    // max NaN, so `top > 100` is false and the alert clears.
    push(&mut e, "p", "temp", 25 * S, 20.0);
    let out = push(&mut e, "p", "temp", 30 * S, 20.0);
    assert!(
        out.iter().any(|ev| matches!(
            ev.kind,
            EventKind::Alert {
                state: AlertState::Cleared,
                ..
            }
        )),
        "{out:?}"
    );
}

/// A peer window keeps Welford's totals only when the rule reads an aggregate needing them
/// of that metric (`stddev` here): its value is the other metric's, and a rule reading only
/// lean aggregates of it keeps none (module `agg::inline`).
#[test]
fn a_peer_window_keeps_welford_totals_only_when_read() {
    let rules = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    alert: { when: "stddev(metric.flow) > 0 and max(metric.level) > 0" }
"#;
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    // flow 2, 4, 6, 8: population stddev √5; level lean.
    for (i, v) in [2.0, 4.0, 6.0, 8.0].into_iter().enumerate() {
        push(&mut e, "p", "flow", i as i64 * S, v);
        push(&mut e, "p", "level", i as i64 * S, 1.0);
    }
    push(&mut e, "p", "temp", 5 * S, 20.0);
    let out = push(&mut e, "p", "temp", 10 * S, 20.0);
    let value = out.iter().find_map(|ev| match &ev.kind {
        EventKind::Alert { value, .. } => Some(*value),
        _ => None,
    });
    assert_eq!(
        value.map(|v| (v - 5f64.sqrt()).abs() < 1e-12),
        Some(true),
        "{out:?}"
    );
    let heap: Vec<usize> = e.peers.iter().map(|p| p.win.heap_bytes()).collect();
    assert_eq!(heap.len(), 2);
    assert_eq!(heap.iter().filter(|&&b| b == 0).count(), 1, "{heap:?}");
}

#[test]
fn other_metrics_need_a_time_window_and_a_plain_aggregate() {
    let sliding = "rules:\n  - name: r\n    window: { sliding: 10s }\n    alert: { when: \"mean > metric.x\" }\n";
    let e = RuleSet::parse_str(sliding, "r.yaml").unwrap_err();
    assert!(
        e.diagnostics[0].message.contains("needs a time window"),
        "{e}"
    );
    let p95 = "rules:\n  - name: r\n    window: { tumbling: 10s }\n    alert: { when: \"mean > p95(metric.x)\" }\n";
    let e = RuleSet::parse_str(p95, "r.yaml").unwrap_err();
    assert!(
        e.diagnostics[0]
            .message
            .contains("aggregate over the same window"),
        "{e}"
    );
}

/// A reload keeps an unchanged rule's windows, so it keeps the peer windows it reads too:
/// the window open across the reload still sees the other metric's samples from before it.
#[test]
fn a_reload_keeps_the_peer_windows_of_unchanged_rules() {
    let rules = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    alert: { when: "count(metric.flow) >= 2" }
"#;
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    push(&mut e, "p", "flow", 0, 1.0);
    push(&mut e, "p", "temp", S, 20.0);
    let extra = "  - name: other\n    window: { tumbling: 10s }\n    aggregates: [count]\n";
    let report = e.reload(RuleSet::parse_str(&format!("{rules}{extra}"), "r.yaml").unwrap());
    assert_eq!(report.kept.len(), 1);
    push(&mut e, "p", "flow", 2 * S, 1.0);
    let out = push(&mut e, "p", "temp", 10 * S, 20.0);
    assert!(raised(&out), "both flow samples counted: {out:?}");
}
