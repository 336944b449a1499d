//! The window kinds other than tumbling, by example: hopping windows overlap, count windows
//! close on their nth sample, sliding windows emit per sample, sessions close on a gap.
//! (Tumbling windows, alerts and series selection: `tests.rs`, whose helpers these share.)

use super::tests::{S, engine, push, window};
use crate::event::Aggregate;

#[test]
fn hopping_windows_overlap_and_late_samples_are_counted_once() {
    let mut e = engine(
        r#"
rules:
  - name: hop
    window: { hopping: { size: 10s, hop: 5s } }
    aggregates: [count, sum]
"#,
    );
    let id = e.series("d", "m").unwrap();
    // 7 s is in [0, 10) and [5, 15).
    assert!(push(&mut e, id, 7 * S, 1.0).is_empty());
    let out = push(&mut e, id, 12 * S, 2.0);
    assert_eq!(
        out.iter().map(window).collect::<Vec<_>>(),
        [(
            0,
            10 * S,
            vec![(Aggregate::Count, 1.0), (Aggregate::Sum, 1.0)]
        )]
    );
    // 8 s: [0, 10) is closed but [5, 15) is open — accepted there, not late.
    assert!(push(&mut e, id, 8 * S, 8.0).is_empty());
    assert_eq!(e.stats().late_dropped, 0);
    let mut out = push(&mut e, id, 16 * S, 4.0);
    e.advance(25 * S, &mut out);
    let got: Vec<_> = out.iter().map(window).collect();
    assert_eq!(
        got,
        [
            (
                5 * S,
                15 * S,
                vec![(Aggregate::Count, 3.0), (Aggregate::Sum, 11.0)]
            ),
            (
                10 * S,
                20 * S,
                vec![(Aggregate::Count, 2.0), (Aggregate::Sum, 6.0)]
            ),
            (
                15 * S,
                25 * S,
                vec![(Aggregate::Count, 1.0), (Aggregate::Sum, 4.0)]
            ),
        ]
    );
    // Every window holding 3 s has closed: late, counted once.
    push(&mut e, id, 3 * S, 1.0);
    assert_eq!(e.stats().late_dropped, 1);
}

#[test]
fn count_windows_close_on_the_nth_sample_whatever_the_time() {
    let mut e = engine(
        r#"
rules:
  - name: three
    window: { count: 3 }
    aggregates: [count, first, last, rate]
"#,
    );
    let id = e.series("d", "m").unwrap();
    push(&mut e, id, 5 * S, 1.0);
    push(&mut e, id, S, 0.0);
    let mut out = Vec::new();
    e.advance(i64::MAX, &mut out);
    assert!(out.is_empty(), "count windows ignore event time");
    let out = push(&mut e, id, 3 * S, 2.0);
    assert_eq!(
        window(&out[0]),
        (
            S,
            5 * S,
            vec![
                (Aggregate::Count, 3.0),
                (Aggregate::First, 0.0),
                (Aggregate::Last, 1.0),
                (Aggregate::Rate, 0.25),
            ]
        )
    );
}

#[test]
fn sliding_windows_emit_per_sample_and_refuse_older_samples() {
    let mut e = engine(
        r#"
rules:
  - name: slide
    window: { sliding: 10s, max_samples: 2 }
    aggregates: [count, sum]
"#,
    );
    let id = e.series("d", "m").unwrap();
    push(&mut e, id, S, 1.0);
    push(&mut e, id, 2 * S, 2.0);
    // Three samples within 10 s but room for two: the oldest goes, counted.
    let out = push(&mut e, id, 3 * S, 4.0);
    assert_eq!(out[0].ts, 3 * S);
    let sums = vec![(Aggregate::Count, 2.0), (Aggregate::Sum, 6.0)];
    assert_eq!(window(&out[0]), (3 * S - 10 * S + 1, 3 * S + 1, sums));
    assert_eq!(e.stats().window_overflow, 1);
    assert!(push(&mut e, id, 2 * S, 9.0).is_empty());
    assert_eq!(e.stats().late_dropped, 1);
    let out = push(&mut e, id, 20 * S, 5.0);
    assert_eq!(window(&out[0]).2[0], (Aggregate::Count, 1.0));
}

#[test]
fn sessions_close_a_gap_after_their_last_sample() {
    let mut e = engine(
        r#"
rules:
  - name: run
    window: { session: 5s }
    aggregates: [count, rate]
"#,
    );
    let id = e.series("d", "m").unwrap();
    push(&mut e, id, 0, 0.0);
    push(&mut e, id, 4 * S, 8.0);
    let mut out = Vec::new();
    e.advance(9 * S - 1, &mut out);
    assert!(out.is_empty());
    e.advance(9 * S, &mut out);
    let rate = vec![(Aggregate::Count, 2.0), (Aggregate::Rate, 2.0)];
    assert_eq!(window(&out[0]), (0, 9 * S, rate));
    // Before the closed session's end: late.
    assert!(push(&mut e, id, 8 * S, 1.0).is_empty());
    assert_eq!(e.stats().late_dropped, 1);
}
