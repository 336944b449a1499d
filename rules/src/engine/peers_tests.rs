//! `metric.<name>`: a rule on one metric reading the latest value of another metric of the
//! same device.

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
fn a_condition_reads_the_latest_value_of_another_metric_of_the_same_device() {
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
