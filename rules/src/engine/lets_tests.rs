//! `let` values as series: published with the window, smoothed across windows, read by
//! `prev(...)` and by a detector (module `expr::lets`).

use super::*;
use crate::event::{Aggregate, Event, EventKind, Sample};

const S: i64 = 1_000_000;

fn push(e: &mut Engine, device: &str, metric: &str, ts: i64, value: f64) -> Vec<Event> {
    let series = e.series(device, metric).unwrap();
    let mut out = Vec::new();
    e.push(Sample { series, ts, value }, &mut out);
    out
}

/// The published values of each closed window, by name.
fn windows(out: &[Event]) -> Vec<Vec<(&'static str, f64)>> {
    out.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Window { values, .. } => {
                Some(values.iter().map(|(a, v)| (a.as_str(), *v)).collect())
            }
            _ => None,
        })
        .collect()
}

/// A pump whose temperature and vibration both climb: one sample of each per 10 s window.
fn run(rules: &str, windows: i64) -> Vec<Event> {
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    let mut out = Vec::new();
    for w in 0..=windows {
        let t = w * 10 * S;
        // The peer metric first, so it is in before the window of `temp` closes.
        out.extend(push(&mut e, "pump-1", "vibration", t + S, 1.0 + w as f64));
        out.extend(push(
            &mut e,
            "pump-1",
            "temp",
            t + 2 * S,
            50.0 + 2.0 * w as f64,
        ));
    }
    out
}

#[test]
fn a_let_value_is_published_beside_the_aggregates_and_smoothed_across_windows() {
    let rules = r#"
rules:
  - name: pump-health
    select: { metric: temp }
    window: { tumbling: 10s }
    let:
      hi: "(mean - 50) / 10 + mean(metric.vibration) / 5"
      hi_smooth: "ewma(hi, 0.5)"
      hi_step: "hi - prev(hi)"
    aggregates: [mean, hi, hi_smooth, hi_step]
"#;
    let out = run(rules, 3);
    let w = windows(&out);
    assert_eq!(w.len(), 3, "{w:?}");
    let names: Vec<&str> = w[0].iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["mean", "hi", "hi_smooth", "hi_step"]);
    // hi = 2w/10 + (1 + w)/5 = 0.2 + 0.4·w.
    let hi: Vec<f64> = w.iter().map(|v| v[1].1).collect();
    for (i, h) in hi.iter().enumerate() {
        assert!((h - (0.2 + 0.4 * i as f64)).abs() < 1e-12, "{hi:?}");
    }
    // Seeded with the first value, then halfway towards each new one.
    let smooth: Vec<f64> = w.iter().map(|v| v[2].1).collect();
    let want = [0.2, 0.4, 0.7];
    for (s, x) in smooth.iter().zip(want) {
        assert!((s - x).abs() < 1e-12, "{smooth:?}");
    }
    assert!(w[0][3].1.is_nan(), "no previous window: {w:?}");
    assert!((w[1][3].1 - 0.4).abs() < 1e-12);
}

#[test]
fn a_window_without_the_peer_metric_leaves_the_smoothed_value_where_it_was() {
    let rules = r#"
rules:
  - name: pump-health
    select: { metric: temp }
    window: { tumbling: 10s }
    let:
      hi: "mean(metric.vibration)"
      hi_smooth: "ewma(hi, 0.5)"
    aggregates: [hi, hi_smooth]
"#;
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    let mut out = Vec::new();
    out.extend(push(&mut e, "pump-1", "vibration", S, 4.0));
    out.extend(push(&mut e, "pump-1", "temp", 2 * S, 50.0));
    // Window [10 s, 20 s): no vibration sample.
    out.extend(push(&mut e, "pump-1", "temp", 12 * S, 50.0));
    out.extend(push(&mut e, "pump-1", "vibration", 21 * S, 8.0));
    out.extend(push(&mut e, "pump-1", "temp", 22 * S, 50.0));
    out.extend(push(&mut e, "pump-1", "temp", 32 * S, 50.0));
    let w = windows(&out);
    let smooth: Vec<f64> = w.iter().map(|v| v[1].1).collect();
    assert!(w[1][0].1.is_nan());
    assert_eq!(smooth, [4.0, 4.0, 6.0]);
}

/// A published `let` reading `stddev` makes the rule's windows keep what `stddev` needs,
/// though neither `aggregates` nor an alert names `stddev` itself.
#[test]
fn a_published_value_gets_the_aggregates_it_reads() {
    let rules = r#"
rules:
  - name: spread
    select: { metric: temp }
    window: { tumbling: 10s }
    let: { cv: "stddev / mean" }
    aggregates: [cv]
"#;
    let mut e = Engine::new(RuleSet::parse_str(rules, "r.yaml").unwrap());
    let mut out = Vec::new();
    for (t, v) in [(0, 1.0), (1, 3.0), (10, 0.0)] {
        out.extend(push(&mut e, "pump-1", "temp", t * S, v));
    }
    assert_eq!(windows(&out), [vec![("cv", 0.5)]]);
}

/// One rule: a health index of two sensors, smoothed, watched by `trend`.
#[test]
fn trend_watches_a_smoothed_health_index_of_two_sensors() {
    let rules = r#"
rules:
  - name: pump-health-trend
    select: { metric: temp }
    window: { tumbling: 10s }
    let:
      hi: "(mean - 50) / 10 + mean(metric.vibration) / 5"
      hi_smooth: "ewma(hi, 0.5)"
    aggregates: [hi_smooth]
    detect:
      trend: { above: 10, over: 1h, horizon: 1h, min_points: 5 }
      value: hi_smooth
    alert: { severity: warning }
"#;
    let out = run(rules, 12);
    let predictions: Vec<(f64, f64)> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Prediction {
                level,
                seconds_to_threshold,
                ..
            } => Some((*level, *seconds_to_threshold)),
            _ => None,
        })
        .collect();
    assert!(predictions.len() >= 6, "{predictions:?}");
    // The smoothed index climbs 0.4 per window once the EWMA has caught up: it reaches 10
    // about (10 − level) / 0.04 s later.
    let (level, secs) = *predictions.last().unwrap();
    let w = windows(&out);
    let last = w.last().unwrap()[0].1;
    assert!(
        (level - last).abs() < 0.1,
        "level {level}, published {last}"
    );
    let want = (10.0 - level) / 0.04;
    assert!(
        (secs - want).abs() < 0.1 * want,
        "{secs} s, want about {want}"
    );
    assert!(
        out.iter()
            .any(|e| matches!(e.kind, EventKind::Alert { .. }))
    );
}

#[test]
fn let_names_and_smoothing_are_checked_at_load() {
    let unused = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    let: { hi: "mean * 2" }
    aggregates: [mean]
"#;
    let e = RuleSet::parse_str(unused, "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r.yaml:6:10") && e.contains("publishes none"),
        "{e}"
    );
    let nested = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    let: { hi: "mean * 2", lo: "ewma(hi, 0.2) - 1" }
    aggregates: [lo]
"#;
    let e = RuleSet::parse_str(nested, "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r.yaml:6:33") && e.contains("whole value of a `let`"),
        "{e}"
    );
    let unknown = r#"
rules:
  - name: r
    select: { metric: temp }
    window: { tumbling: 10s }
    let: { hi: "mean * 2" }
    aggregates: [hj]
"#;
    let e = RuleSet::parse_str(unknown, "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r.yaml:7:18") && e.contains("or a `let` name"),
        "{e}"
    );
    assert!(Aggregate::from_name("hi").is_none());
}
