use super::*;
use crate::event::{Aggregate, AlertState, Event, EventKind, Sample, Severity};

pub(super) const S: i64 = 1_000_000;

pub(super) fn engine(yaml: &str) -> Engine {
    Engine::new(RuleSet::parse_str(yaml, "test.yaml").unwrap())
}

const AGG: &str = r#"
rules:
  - name: agg
    select: { device: "pump-*", metric: temp }
    window: { tumbling: 10s }
    aggregates: [count, mean, min, max]
"#;

const HOT: &str = r#"
rules:
  - name: hot
    window: { tumbling: 10s }
    alert: { when: "max > 80", severity: critical }
"#;

/// The alert raises among `out`, in order.
pub(super) fn raises(out: &[Event]) -> impl Iterator<Item = &Event> {
    out.iter().filter(|ev| {
        matches!(
            ev.kind,
            EventKind::Alert {
                state: AlertState::Raised,
                ..
            }
        )
    })
}

pub(super) fn push(e: &mut Engine, id: SeriesId, ts: i64, value: f64) -> Vec<Event> {
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

pub(super) fn window(ev: &Event) -> (i64, i64, Vec<(Aggregate, f64)>) {
    match &ev.kind {
        EventKind::Window { start, end, values } => (*start, *end, values.clone()),
        other => panic!("expected a window event, got {other:?}"),
    }
}

fn alert(ev: &Event) -> (AlertState, f64) {
    match &ev.kind {
        EventKind::Alert { state, value, .. } => (*state, *value),
        other => panic!("expected an alert event, got {other:?}"),
    }
}

#[test]
fn sample_at_window_end_opens_the_next_window() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    assert!(push(&mut e, id, 3 * S, 1.0).is_empty());
    assert!(push(&mut e, id, 10 * S - 1, 3.0).is_empty());
    let out = push(&mut e, id, 10 * S, 100.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ts, 10 * S);
    assert_eq!(out[0].rule.as_ref(), "agg");
    assert_eq!(
        window(&out[0]),
        (
            0,
            10 * S,
            vec![
                (Aggregate::Count, 2.0),
                (Aggregate::Mean, 2.0),
                (Aggregate::Min, 1.0),
                (Aggregate::Max, 3.0)
            ]
        )
    );
    let mut out = Vec::new();
    e.advance(20 * S, &mut out);
    assert_eq!(window(&out[0]).0, 10 * S);
    assert_eq!(window(&out[0]).2[0], (Aggregate::Count, 1.0));
}

#[test]
fn windows_align_to_epoch_multiples_even_for_negative_times() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    push(&mut e, id, 123 * S + 7, 1.0);
    let out = push(&mut e, id, 1_000 * S, 1.0);
    assert_eq!(window(&out[0]).0, 120 * S);
    assert_eq!(window(&out[0]).1, 130 * S);

    let id2 = e.series("pump-2", "temp").unwrap();
    push(&mut e, id2, -1, 1.0);
    let out = push(&mut e, id2, 0, 1.0);
    assert_eq!((window(&out[0]).0, window(&out[0]).1), (-10 * S, 0));
}

#[test]
fn empty_windows_emit_nothing() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    push(&mut e, id, S, 1.0);
    // A gap of several windows: only the one that had samples is emitted.
    let out = push(&mut e, id, 55 * S, 2.0);
    assert_eq!(out.len(), 1);
    assert_eq!(window(&out[0]).0, 0);
    let mut out = Vec::new();
    e.advance(60 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(window(&out[0]).0, 50 * S);
    e.advance(1_000 * S, &mut out);
    assert_eq!(out.len(), 1, "no window is open, so nothing closes");
    assert_eq!(e.stats().windows_closed, 2);
}

#[test]
fn threshold_raises_once_then_clears() {
    let mut e = engine(HOT);
    let id = e.series("m", "t").unwrap();
    let mut out = Vec::new();
    for (w, v) in [
        (0, 50.0),
        (1, 90.0),
        (2, 95.0),
        (3, 70.0),
        (4, 60.0),
        (5, 81.0),
    ] {
        e.push(
            Sample {
                series: id,
                ts: w * 10 * S,
                value: v,
            },
            &mut out,
        );
    }
    e.advance(60 * S, &mut out);
    let got: Vec<(i64, AlertState, f64)> = out
        .iter()
        .map(|ev| {
            let (st, v) = alert(ev);
            (ev.ts, st, v)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (20 * S, AlertState::Raised, 90.0),
            (40 * S, AlertState::Cleared, 70.0),
            (60 * S, AlertState::Raised, 81.0),
        ]
    );
    match &out[0].kind {
        EventKind::Alert {
            severity,
            condition,
            ..
        } => {
            assert_eq!(*severity, Severity::Critical);
            assert_eq!(condition.as_ref(), "max > 80");
        }
        _ => unreachable!(),
    }
    let st = e.stats();
    assert_eq!((st.alerts_raised, st.alerts_cleared), (2, 1));
}

#[test]
fn alert_state_is_per_series() {
    let mut e = engine(HOT);
    let a = e.series("a", "t").unwrap();
    let b = e.series("b", "t").unwrap();
    let mut out = Vec::new();
    e.push(
        Sample {
            series: a,
            ts: 0,
            value: 99.0,
        },
        &mut out,
    );
    e.push(
        Sample {
            series: b,
            ts: 0,
            value: 1.0,
        },
        &mut out,
    );
    e.advance(10 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].series, a);
}

#[test]
fn late_sample_is_dropped_and_counted() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    push(&mut e, id, 12 * S, 1.0);
    // Before the open window's start: its window can no longer be emitted.
    assert!(push(&mut e, id, 9 * S, 500.0).is_empty());
    assert_eq!(e.stats().late_dropped, 1);
    let mut out = Vec::new();
    e.advance(20 * S, &mut out);
    assert_eq!(window(&out[0]).2[0], (Aggregate::Count, 1.0));
    // After the close, anything before the closed window's end is late too.
    assert!(push(&mut e, id, 19 * S, 1.0).is_empty());
    assert_eq!(e.stats().late_dropped, 2);
    // Within the open window but earlier than the previous sample is fine (not late).
    push(&mut e, id, 25 * S, 1.0);
    push(&mut e, id, 21 * S, 1.0);
    assert_eq!(e.stats().late_dropped, 2);
}

#[test]
fn nan_is_skipped_and_counted() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    push(&mut e, id, 0, 4.0);
    push(&mut e, id, S, f64::NAN);
    let out = push(&mut e, id, 10 * S, 0.0);
    assert_eq!(window(&out[0]).2[1], (Aggregate::Mean, 4.0));
    assert_eq!(e.stats().nan_dropped, 1);
}

#[test]
fn advance_closes_idle_windows_in_series_then_rule_order() {
    let mut e = engine(
        r#"
rules:
  - name: first
    window: { tumbling: 10s }
    aggregates: [count]
  - name: second
    window: { tumbling: 5s }
    aggregates: [max]
"#,
    );
    let ids: Vec<SeriesId> = (0..5)
        .map(|i| e.series(&format!("d{i}"), "m").unwrap())
        .collect();
    let mut out = Vec::new();
    for &id in ids.iter().rev() {
        e.push(
            Sample {
                series: id,
                ts: S,
                value: 1.0,
            },
            &mut out,
        );
    }
    e.advance(9 * S, &mut out);
    // Only the 5 s windows ended.
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|ev| ev.rule.as_ref() == "second"));
    assert_eq!(out.iter().map(|ev| ev.series).collect::<Vec<_>>(), ids);
    out.clear();
    e.advance(9 * S, &mut out);
    assert!(out.is_empty());
    e.advance(10 * S, &mut out);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|ev| ev.rule.as_ref() == "first"));
    assert_eq!(out.iter().map(|ev| ev.series).collect::<Vec<_>>(), ids);
}

#[test]
fn window_event_comes_before_the_alert_of_the_same_close() {
    let mut e = engine(
        r#"
rules:
  - name: both
    window: { tumbling: 1s }
    aggregates: [mean]
    alert: { when: "mean >= 1" }
"#,
    );
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    e.push(
        Sample {
            series: id,
            ts: 0,
            value: 1.0,
        },
        &mut out,
    );
    e.advance(S, &mut out);
    assert_eq!(out.len(), 2);
    window(&out[0]);
    assert_eq!(alert(&out[1]), (AlertState::Raised, 1.0));
    match &out[1].kind {
        EventKind::Alert { severity, .. } => assert_eq!(*severity, Severity::Warning),
        _ => unreachable!(),
    }
}

#[test]
fn globs_select_series() {
    let mut e = engine(AGG);
    let ok = e.series("pump-7", "temp").unwrap();
    let wrong_device = e.series("motor-1", "temp").unwrap();
    let wrong_metric = e.series("pump-7", "pressure").unwrap();
    let mut out = Vec::new();
    for id in [ok, wrong_device, wrong_metric] {
        e.push(
            Sample {
                series: id,
                ts: 0,
                value: 1.0,
            },
            &mut out,
        );
    }
    e.advance(10 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].series, ok);
}

#[test]
fn interning_is_stable_and_bounded() {
    let mut e = Engine::with_limits(
        RuleSet::default(),
        Limits {
            max_series: 2,
            ..Limits::default()
        },
    );
    let a = e.series("a", "x").unwrap();
    let b = e.series("a", "y").unwrap();
    assert_ne!(a, b);
    assert_eq!(e.series("a", "x").unwrap(), a);
    assert_eq!(
        e.series("b", "x"),
        Err(EngineError::TooManySeries { limit: 2 })
    );
    // Known series still resolve at the limit.
    assert_eq!(e.series("a", "y").unwrap(), b);
    assert_eq!(e.series_name(b), Some(("a", "y")));
    assert_eq!(e.series_name(SeriesId(7)), None);
    assert_eq!(e.stats().series, 2);
    assert_eq!(Limits::default().max_series, 10_000);
}

#[test]
fn unknown_series_id_is_ignored() {
    let mut e = engine(AGG);
    assert!(push(&mut e, SeriesId(42), 0, 1.0).is_empty());
}

#[test]
fn extreme_timestamps_do_not_panic() {
    let mut e = engine(AGG);
    let id = e.series("pump-1", "temp").unwrap();
    let mut out = Vec::new();
    for ts in [i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX, i64::MAX] {
        e.push(
            Sample {
                series: id,
                ts,
                value: 1.0,
            },
            &mut out,
        );
    }
    e.advance(i64::MAX, &mut out);
    assert!(!out.is_empty());
}

#[test]
fn expressions_see_every_aggregate_and_the_previous_window() {
    let mut e = engine(
        r#"
rules:
  - name: jump
    window: { tumbling: 10s }
    alert: { when: "abs(mean - prev(mean)) > 5 and stddev < 1" }
"#,
    );
    let id = e.series("d", "m").unwrap();
    push(&mut e, id, 0, 1.0);
    // No previous window yet: `prev(mean)` is NaN, so nothing is raised.
    assert!(push(&mut e, id, 10 * S, 10.0).is_empty());
    let out = push(&mut e, id, 20 * S, 10.5);
    assert_eq!(alert(&out[0]), (AlertState::Raised, 9.0));
    let out = push(&mut e, id, 30 * S, 0.0);
    assert_eq!(alert(&out[0]), (AlertState::Cleared, 0.5));
    assert!(e.state_bytes() > 0);
}

#[test]
fn let_values_feed_the_condition_and_the_reported_value() {
    let mut e = engine(
        r#"
rules:
  - name: spread
    window: { count: 2 }
    let:
      spread: "max - min"
      rel: "spread / abs(prev(mean))"
    alert: { when: "rel > 0.5" }
"#,
    );
    let id = e.series("d", "m").unwrap();
    push(&mut e, id, 0, 10.0);
    push(&mut e, id, 1, 10.0);
    push(&mut e, id, 2, 10.0);
    let out = push(&mut e, id, 3, 16.0);
    assert_eq!(alert(&out[0]), (AlertState::Raised, 0.6));
}

/// Issue 16: at the end of a replay, partial hopping windows were stamped up to `size`
/// after the last sample and fed to detectors. `finish` judges only the windows event time
/// reached; the rest are partial, dropped and counted.
#[test]
fn regression_finish_stamps_nothing_after_the_last_sample_and_drops_partial_windows() {
    let mut e = engine(
        r#"
rules:
  - name: hop
    select: { device: a }
    window: { hopping: { size: 60s, hop: 10s } }
    aggregates: [count]
    alert: { when: "count < 30" }
  - name: other-device-tumbling
    select: { device: b }
    window: { tumbling: 10s }
    aggregates: [count]
"#,
    );
    let a = e.series("a", "m").unwrap();
    let b = e.series("b", "m").unwrap();
    let mut out = Vec::new();
    for t in 0..95 {
        out.extend(push(&mut e, a, t * S, 1.0));
    }
    // b's window [0, 10 s) ends before the newest sample (a's, at 94 s): complete, judged.
    out.extend(push(&mut e, b, 5 * S, 1.0));
    e.finish(&mut out);
    assert!(out.iter().all(|ev| ev.ts <= 94 * S), "{out:?}");
    assert!(
        out.iter()
            .any(|ev| &*ev.rule == "other-device-tumbling" && ev.ts == 10 * S)
    );
    // The last judged window is the full [30 s, 90 s) (count 60, no alert); the partial
    // ones after it (counts 55 … 5) would have raised at 100 s … 150 s.
    let last = out.iter().rfind(|ev| &*ev.rule == "hop").map(window);
    assert_eq!(last, Some((30 * S, 90 * S, vec![(Aggregate::Count, 60.0)])));
    // Open at 94 s: the six hop windows starting 40 s … 90 s.
    assert_eq!(e.stats().partial_windows, 6);
    // `advance(i64::MAX)` after `finish` has nothing left to close.
    let mut more = Vec::new();
    e.advance(i64::MAX, &mut more);
    assert!(more.is_empty(), "{more:?}");
}

#[test]
fn finish_judges_a_window_the_data_filled_and_stamps_it_at_the_last_sample() {
    let mut e = engine(HOT);
    let id = e.series("p", "t").unwrap();
    let mut out = Vec::new();
    // 1 Hz from 0 to 9 s: [0, 10 s) holds every sample it ever would.
    for t in 0..10 {
        out.extend(push(&mut e, id, t * S, 90.0));
    }
    e.finish(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].ts, 9 * S);
    assert!(matches!(
        out[0].kind,
        EventKind::Alert {
            state: AlertState::Raised,
            ..
        }
    ));
    assert_eq!(e.stats().partial_windows, 0);
}
