use std::sync::Arc;

use weir_rules::{AlertState, Event, EventKind, SeriesId, Severity};

use super::*;

const T0: i64 = 1_700_000_000_000_000;

fn pump(_: SeriesId) -> String {
    "pump-1/temperature".to_owned()
}

fn alert(rule: &str, series: u32, ts: i64, state: AlertState) -> Event {
    Event {
        rule: Arc::from(rule),
        series: SeriesId(series),
        ts,
        kind: EventKind::Alert {
            state,
            severity: Severity::Critical,
            value: 90.0,
            condition: Arc::from("mean > 80"),
            score: f64::NAN,
            message: None,
            contributions: Vec::new(),
        },
    }
}

#[test]
fn a_series_keeps_only_its_last_buckets_and_its_extremes() {
    let mut board = Board::new(10);
    // An hour at 10 Hz, one spike in the last minute and one in the first (forgotten).
    for i in 0..36_000i64 {
        let v = if i == 35_500 || i == 10 {
            1e6
        } else {
            (i % 7) as f64
        };
        board.sample(SeriesId(0), T0 + i * 100_000, v, &pump);
    }
    let view = board.view(0, i64::MIN).expect("tracked");
    assert!(view.samples.len() <= BUCKETS, "{}", view.samples.len());
    assert!(view.samples.len() >= BUCKETS - 1);
    let max = view.samples.iter().map(|(_, b)| b.max).fold(0.0, f64::max);
    assert_eq!(max, 1e6);
    let n: u32 = view.samples.iter().map(|(_, b)| b.n).sum();
    assert!(n <= 50 * BUCKETS as u32, "{n} samples kept");
    let first = view.samples.first().expect("buckets").0;
    assert!(first >= T0 + 3_600_000_000 - (BUCKETS as i64 + 1) * BUCKET_US);
    assert_eq!(view.last_value, (35_999 % 7) as f64);
}

#[test]
fn series_beyond_the_cap_are_counted_not_tracked() {
    let mut board = Board::new(2);
    for s in 0..5u32 {
        board.sample(SeriesId(s), T0, 1.0, &|id| format!("d{}/m", id.0));
    }
    assert_eq!(board.series_count(), 2);
    assert_eq!(board.series_untracked, 3);
    let (total, page) = board.find("D1", 0, 10);
    assert_eq!((total, page), (1, vec![1]));
}

#[test]
fn a_reloaded_max_series_drops_tracks_above_a_lower_bound_and_tracks_more_under_a_higher() {
    let names = |id: SeriesId| format!("d{}/m", id.0);
    let mut board = Board::new(4);
    for s in 0..6u32 {
        board.sample(SeriesId(s), T0, 1.0, &names);
    }
    assert_eq!((board.series_count(), board.series_untracked), (4, 2));
    let bytes = board.series_bytes();
    board.set_max_series(2);
    assert_eq!(board.series_count(), 2);
    assert!(
        board.series_bytes() < bytes,
        "the dropped tracks' memory goes"
    );
    for s in 0..6u32 {
        board.sample(SeriesId(s), T0 + 1, 1.0, &names);
    }
    assert_eq!((board.series_count(), board.series_untracked), (2, 4));
    assert_eq!(board.view(1, i64::MIN).expect("kept").samples.len(), 1);
    board.set_max_series(10);
    board.sample(SeriesId(5), T0 + 2, 1.0, &names);
    assert_eq!((board.series_count(), board.series_untracked), (6, 0));
}

#[test]
fn series_the_engine_knew_before_the_page_are_tracked_too() {
    let mut board = Board::new(10);
    // Series 0..=2 were created before the page saw anything (restored engine state).
    board.sample(SeriesId(3), T0, 1.0, &|id| format!("d{}/m", id.0));
    assert_eq!(board.series_count(), 4);
    assert_eq!(board.view(3, i64::MIN).expect("tracked").name, "d3/m");
    assert_eq!(board.view(1, i64::MIN).expect("tracked").name, "d1/m");
}

#[test]
fn an_alert_goes_from_raised_to_cleared_with_its_condition() {
    let mut board = Board::new(10);
    board.sample(SeriesId(0), T0, 1.0, &pump);
    board.event(&alert("hot", 0, T0 + 5, AlertState::Raised), &pump);
    let active = board.active();
    assert_eq!(active.len(), 1);
    assert_eq!(&*active[0].condition, "mean > 80");
    assert_eq!(active[0].series, "pump-1/temperature");
    board.event(&alert("hot", 0, T0 + 9, AlertState::Cleared), &pump);
    assert!(board.active().is_empty());
    let cleared: Vec<_> = board.cleared().collect();
    assert_eq!(
        (cleared[0].raised_at, cleared[0].cleared_at),
        (T0 + 5, Some(T0 + 9))
    );
    let marks = board.view(0, i64::MIN).expect("tracked").marks;
    assert_eq!(marks.len(), 2);
    assert!(marks[0].raised && !marks[1].raised);
}

#[test]
fn a_full_series_holds_no_more_than_the_bytes_per_series_bound() {
    let mut board = Board::new(1);
    let name = "d".repeat(64);
    for i in 0..1_000i64 {
        let ts = T0 + i * 1_000_000;
        board.sample(SeriesId(0), ts, 1.0, &|_| format!("{name}/m"));
        let window = Event {
            rule: Arc::from("r"),
            series: SeriesId(0),
            ts,
            kind: EventKind::Window {
                start: ts - 1,
                end: ts,
                values: vec![(weir_rules::Aggregate::Mean, 1.0)],
            },
        };
        board.event(&window, &|_| format!("{name}/m"));
        let state = if i % 2 == 0 {
            AlertState::Raised
        } else {
            AlertState::Cleared
        };
        board.event(&alert("r", 0, ts, state), &|_| format!("{name}/m"));
    }
    // The name is 66 bytes: 2 over the bound's allowance.
    let held = board.series_bytes();
    assert!(held <= BYTES_PER_SERIES + 2, "{held} > {BYTES_PER_SERIES}");
    assert!(
        held > BYTES_PER_SERIES / 2,
        "{held}: the bound is far too loose"
    );
}

#[test]
fn a_prediction_becomes_an_absolute_time_and_never_when_flat() {
    let mut board = Board::new(10);
    let prediction = |rule: &str, s: f64| Event {
        rule: Arc::from(rule),
        series: SeriesId(0),
        ts: T0,
        kind: EventKind::Prediction {
            threshold: 95.0,
            seconds_to_threshold: s,
            slope: 1.0,
            r2: 0.9,
            points: 10,
            level: 80.0,
            early_seconds: s / 2.0,
            late_seconds: f64::INFINITY,
            model: "line",
        },
    };
    board.event(&prediction("soon", 15.0), &pump);
    board.event(&prediction("flat", f64::INFINITY), &pump);
    let p = board.predictions();
    assert_eq!(p.len(), 2);
    assert_eq!((&*p[0].rule, p[0].eta), ("soon", Some(T0 + 15_000_000)));
    assert_eq!((p[0].early, p[0].late), (Some(T0 + 7_500_000), None));
    assert_eq!((&*p[1].rule, p[1].eta), ("flat", None));
    // The latest forecast replaces the one before.
    board.event(&prediction("soon", 5.0), &pump);
    assert_eq!(board.predictions()[0].eta, Some(T0 + 5_000_000));
    assert_eq!(board.predictions().len(), 2);
}
