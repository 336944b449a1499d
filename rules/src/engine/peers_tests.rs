//! `metric.<name>`: a rule on one metric reading the latest value of another metric of the
//! same device.

use super::*;

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
