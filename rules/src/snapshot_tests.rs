//! Checkpoint → restore → continue gives the events of an engine that never stopped, for
//! every window kind, every detector, peer windows, `prev`, storm control, groups, fused
//! alerts and incidents; and what a restore refuses or reports.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{Checkpoint, Engine, Event, InputLog, RuleSet, Sample, SnapshotError};

const S: i64 = 1_000_000;

/// One rule per window kind and per detector, all on the same two metrics of a few devices.
const RULES: &str = r#"
rules:
  - name: tumble
    select: { metric: temp }
    window: { tumbling: 10s }
    fft: { size: 8, sample_rate: 8, bands: { low: [0, 1.5], top: [2, 4] } }
    aggregates: [count, mean, min, max, p95, stddev, skewness, ewma, band_energy.low]
    alert: { when: "mean > prev(mean) + 20", cooldown: 20s }
  - name: health
    select: { metric: temp }
    window: { tumbling: 10s }
    let:
      hi: "mean / 10"
      hi_smooth: "ewma(hi, 0.3)"
      hi_step: "hi - prev(hi)"
    aggregates: [hi, hi_smooth, hi_step]
    detect: { cusum: { k: 0.5, h: 4, baseline: 3 }, value: hi_smooth }
    alert: { severity: info }
  - name: hop
    select: { metric: temp }
    window: { hopping: { size: 20s, hop: 5s }, lateness: 3s }
    aggregates: [count, mean, median]
  - name: hop-panes
    select: { metric: temp }
    window: { hopping: { size: 20s, hop: 5s }, lateness: 3s }
    aggregates: [count, mean, min, max, ewma, stddev]
  - name: slide-moving
    select: { metric: flow }
    window: { sliding: 12s, max_samples: 6 }
    aggregates: [count, mean, min, max, stddev, ewma]
  - name: slide-sorted
    select: { metric: flow }
    window: { sliding: 12s, max_samples: 6 }
    aggregates: [count, p90, skewness]
  - name: count
    window: { count: 5 }
    aggregates: [count, sum, last]
  - name: slide
    select: { metric: temp }
    window: { sliding: 15s, max_samples: 8 }
    aggregates: [count, max]
    alert: { when: "max > 60", suppress: 30s }
  - name: session
    window: { session: 7s }
    aggregates: [count, mean]
  - name: peer
    select: { metric: temp }
    window: { tumbling: 10s }
    alert: { when: "mean(metric.flow) > 10 and count(metric.flow) >= 1" }
  - name: grouped
    select: { metric: temp }
    group_by: all
    window: { tumbling: 10s }
    aggregates: [count, mean]
  - name: threshold
    select: { metric: temp }
    detect: { threshold: { raise: 50 } }
    alert: { severity: warning }
  - name: zscore
    select: { metric: temp }
    detect: { zscore: {} }
    alert: {}
  - name: robust
    select: { metric: temp }
    detect: { robust_zscore: { window: 16 } }
    alert: {}
  - name: ewma
    select: { metric: temp }
    detect: { ewma_chart: {} }
    alert: {}
  - name: cusum
    select: { metric: temp }
    detect: { cusum: {} }
    alert: { severity: critical }
  - name: rate
    select: { metric: flow }
    detect: { rate: { max: 3 } }
    alert: {}
  - name: flat
    select: { metric: flow }
    detect: { flatline: { for: 5s, epsilon: 0.5 } }
    alert: {}
  - name: range
    select: { metric: flow }
    detect: { range: { min: -40, max: 40 } }
    alert: {}
  - name: missing
    select: { metric: flow }
    detect: { missing: 8s }
    alert: {}
  - name: runtime
    select: { metric: flow }
    detect: { runtime: { running_above: 1, hours: 0.001 } }
    alert: {}
  - name: trend
    select: { metric: temp }
    detect: { trend: { above: 60, over: 1m, horizon: 1h, points: 16, min_points: 5 } }
    alert: {}
  - name: changepoint
    select: { metric: temp }
    detect: { changepoint: {} }
    alert: {}
  - name: novelty
    select: { metric: flow }
    detect: { novelty: {} }
    alert: {}
  - name: joint
    group_by: device
    window: { tumbling: 10s }
    detect:
      multivariate:
        metrics: { temp: 1.0, flow: 0.5 }
        warmup: 6
    alert: {}
fuse:
  - name: two
    of: [threshold, cusum, zscore]
    k: 2
    within: 1m
    severity: critical
incidents:
  gap: 1m
"#;

fn rules() -> RuleSet {
    RuleSet::parse_str(RULES, "snap.yaml").unwrap()
}

const DEVICES: [&str; 3] = ["p1", "p2", "p3"];
const METRICS: [&str; 2] = ["temp", "flow"];

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Device index, metric index, seconds forward (time only moves forward, within the
    /// hopping rule's lateness for its own series), value.
    Push(usize, usize, i64, i32),
    Advance(i64),
    NaN(usize, usize),
    /// Write a checkpoint here (the store keeps only the series it names; see `Store`).
    Checkpoint,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            12 => (0..3usize, 0..2usize, 0i64..4, -30i32..90)
                .prop_map(|(d, m, dt, v)| Step::Push(d, m, dt, v)),
            1 => (0i64..20).prop_map(Step::Advance),
            1 => (0..3usize, 0..2usize).prop_map(|(d, m)| Step::NaN(d, m)),
            2 => Just(Step::Checkpoint),
        ],
        0..300,
    )
}

/// What the agent's table would hold: the latest record per series, wiped by a full one.
#[derive(Default)]
struct Store {
    global: Vec<u8>,
    series: BTreeMap<u32, Vec<u8>>,
}

impl Store {
    fn write(&mut self, c: Checkpoint) {
        if c.full {
            self.series.clear();
        }
        self.global = c.global;
        self.series.extend(c.series);
    }

    fn read(&self) -> Checkpoint {
        Checkpoint::from_store(
            self.global.clone(),
            self.series.iter().map(|(k, v)| (*k, v.clone())).collect(),
        )
    }
}

/// Runs `steps` on `e`; `t` is the clock in seconds. Returns the events. Every input is
/// also written to `log`, which each checkpoint empties (as the agent's outbox does).
fn run(
    e: &mut Engine,
    t: &mut i64,
    steps: &[Step],
    store: &mut Store,
    log: &mut InputLog,
) -> Vec<Event> {
    let mut out = Vec::new();
    for step in steps {
        match *step {
            Step::Push(d, m, dt, v) => {
                *t += dt;
                push_logged(e, log, d, m, *t * S, f64::from(v), &mut out);
            }
            Step::NaN(d, m) => push_logged(e, log, d, m, *t * S, f64::NAN, &mut out),
            Step::Advance(dt) => {
                *t += dt;
                e.advance(*t * S, &mut out);
                log.advance(*t * S);
            }
            Step::Checkpoint => {
                store.write(e.checkpoint());
                log.take();
            }
        }
    }
    out
}

fn push_logged(
    e: &mut Engine,
    log: &mut InputLog,
    d: usize,
    m: usize,
    ts: i64,
    value: f64,
    out: &mut Vec<Event>,
) {
    let series = e.series(DEVICES[d], METRICS[m]).unwrap();
    e.push(Sample { series, ts, value }, out);
    log.sample(&DEVICES[d].into(), &METRICS[m].into(), ts, value);
}

/// Events compared by their debug text: NaN scores compare equal to themselves there.
fn text(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| format!("{e:?}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Stop after any prefix, restore a fresh engine from what the store holds (the last
    /// checkpoint, and with `log` the input since it replayed; without, a checkpoint at the
    /// cut), and continue: the same events as never stopping.
    #[test]
    fn restore_continues_like_an_engine_that_never_stopped(
        steps in steps(),
        cut in 0.0f64..1.0,
        with_log: bool,
    ) {
        let cut = (steps.len() as f64 * cut) as usize;
        let (mut whole, mut t) = (Engine::new(rules()), 0);
        let expected = run(&mut whole, &mut t, &steps, &mut Store::default(), &mut InputLog::default());

        let (mut store, mut log) = (Store::default(), InputLog::default());
        let (mut first, mut t) = (Engine::new(rules()), 0);
        let mut got = run(&mut first, &mut t, &steps[..cut], &mut store, &mut log);
        if !with_log {
            store.write(first.checkpoint());
        }
        let mut second = Engine::new(rules());
        if !store.global.is_empty() {
            let report = second.restore(&store.read()).unwrap();
            prop_assert!(report.changed.is_empty() && report.removed.is_empty());
        }
        if with_log {
            second.replay(&log.take()).unwrap();
        }
        got.extend(run(&mut second, &mut t, &steps[cut..], &mut Store::default(), &mut InputLog::default()));
        prop_assert_eq!(text(&got), text(&expected));
        prop_assert_eq!(second.stats().series, whole.stats().series);
    }
}

fn sample(e: &mut Engine, d: &str, m: &str, ts: i64, value: f64, out: &mut Vec<Event>) {
    let series = e.series(d, m).unwrap();
    e.push(Sample { series, ts, value }, out);
}

#[test]
fn a_checkpoint_holds_only_the_series_changed_since_the_last_one() {
    let mut e = Engine::new(rules());
    let mut out = Vec::new();
    for d in DEVICES {
        sample(&mut e, d, "temp", 0, 20.0, &mut out);
    }
    let first = e.checkpoint();
    assert!(first.full);
    // Three real series, the `all` group and the three multivariate groups.
    assert_eq!(first.series.len(), 7);
    assert!(e.checkpoint().series.is_empty());
    sample(&mut e, "p2", "temp", S, 21.0, &mut out);
    let next = e.checkpoint();
    assert!(!next.full);
    let ids: Vec<u32> = next.series.iter().map(|(id, _)| *id).collect();
    let p2 = e.series("p2", "temp").unwrap().0;
    // p2's temp, the `all` group and p2's multivariate group: nothing else.
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&p2));
}

/// A checkpoint holds every changed series' record at once: growth slack in each record
/// was most of the agent's peak memory at 10,000 series (docs/footprint.md).
#[test]
fn checkpoint_records_carry_no_growth_slack() {
    let mut e = Engine::new(rules());
    let mut out = Vec::new();
    for (k, d) in DEVICES.iter().enumerate() {
        for t in 0..50 {
            sample(
                &mut e,
                d,
                "temp",
                t * S,
                20.0 + (t % 7) as f64 + k as f64,
                &mut out,
            );
        }
    }
    let c = e.checkpoint();
    assert!(!c.series.is_empty());
    for (id, bytes) in &c.series {
        assert_eq!(bytes.capacity(), bytes.len(), "series {id}");
    }
}

/// The chunks of a checkpoint are the records `checkpoint` returns, split at the byte bound:
/// the agent stores one chunk before it encodes the next (docs/footprint.md).
#[test]
fn checkpoint_chunks_are_the_checkpoint_split_at_the_byte_bound() {
    let fill = |e: &mut Engine| {
        let mut out = Vec::new();
        for (k, d) in DEVICES.iter().enumerate() {
            for m in METRICS {
                for t in 0..50 {
                    let v = 20.0 + (t % 7) as f64 + k as f64;
                    sample(e, d, m, t * S, v, &mut out);
                }
            }
        }
    };
    let (mut whole, mut split) = (Engine::new(rules()), Engine::new(rules()));
    fill(&mut whole);
    fill(&mut split);
    let all = whole.checkpoint();
    let largest = all.series.iter().map(|(_, b)| b.len()).max().unwrap();
    let mut chunks = split.checkpoint_chunks(largest);
    assert!(chunks.full());
    assert_eq!(chunks.global(), &all.global[..]);
    let parts: Vec<_> = chunks.by_ref().collect();
    assert!(
        parts.len() > 1 && parts.len() < all.series.len(),
        "{}",
        parts.len()
    );
    for part in &parts {
        // The bound is reached by the last record of a chunk, never passed before it.
        let before_last: usize = part[..part.len() - 1].iter().map(|(_, b)| b.len()).sum();
        assert!(before_last < largest, "{before_last}");
    }
    assert_eq!(parts.concat(), all.series);
    // Taking the chunks took the changed set, as `checkpoint` does.
    assert!(split.checkpoint().series.is_empty());
    split.checkpoint_full_next();
    assert_eq!(split.checkpoint().series.len(), all.series.len());
}

#[test]
fn a_changed_rule_starts_fresh_and_is_reported_while_the_others_keep_their_state() {
    let src = "rules:\n  - name: a\n    window: { tumbling: 10s }\n    aggregates: [count]\n  - name: b\n    window: { tumbling: 10s }\n    aggregates: [count]\n";
    let mut e = Engine::new(RuleSet::parse_str(src, "x.yaml").unwrap());
    let mut out = Vec::new();
    for k in 0..4 {
        sample(&mut e, "d", "m", k * S, 1.0, &mut out);
    }
    let saved = e.checkpoint();
    // Reindented and moved to another file: same meaning, same state.
    let moved = src.replace("{ tumbling: 10s }", "{tumbling: 10s}");
    let changed = moved.replacen("[count]", "[count, mean]", 1);
    let mut again = Engine::new(RuleSet::parse_str(&changed, "y.yaml").unwrap());
    let report = again.restore(&saved).unwrap();
    assert_eq!(report.kept, vec!["b".into()]);
    assert_eq!(report.changed, vec!["a".into()]);
    sample(&mut again, "d", "m", 10 * S, 1.0, &mut out);
    let counts: Vec<(String, String)> = out
        .iter()
        .map(|e| (e.rule.to_string(), format!("{:?}", e.kind)))
        .collect();
    assert!(
        counts
            .iter()
            .any(|(r, k)| r == "b" && k.contains("(Count, 4.0)")),
        "{counts:?}"
    );
    assert!(
        counts
            .iter()
            .all(|(r, k)| r != "a" || !k.contains("(Count, 4.0)")),
        "{counts:?}"
    );
}

#[test]
fn a_checkpoint_of_another_format_is_refused_and_the_engine_stays_fresh() {
    let mut e = Engine::new(rules());
    sample(&mut e, "p1", "temp", 0, 20.0, &mut Vec::new());
    let saved = e.checkpoint();
    let mut newer = saved.clone();
    newer.global[0] = crate::CHECKPOINT_FORMAT + 1;
    let mut fresh = Engine::new(rules());
    assert_eq!(
        fresh.restore(&newer).unwrap_err(),
        SnapshotError::Format {
            found: crate::CHECKPOINT_FORMAT + 1,
            expected: crate::CHECKPOINT_FORMAT
        }
    );
    assert_eq!(fresh.stats().series, 0);
    // Truncated bytes are corrupt, not a panic, and leave the engine fresh too.
    let mut cut = saved.clone();
    cut.series[0].1.truncate(3);
    assert!(matches!(
        fresh.restore(&cut),
        Err(SnapshotError::Corrupt { .. })
    ));
    assert_eq!(fresh.stats().series, 0);
    assert_eq!(e.restore(&saved), Err(SnapshotError::NotFresh));
    assert!(fresh.restore(&saved).is_ok());
}

#[test]
fn after_a_restore_redelivered_samples_are_dropped_once_and_counted() {
    let src = "rules:\n  - name: c\n    window: { tumbling: 10s }\n    aggregates: [count]\n";
    let mut e = Engine::new(RuleSet::parse_str(src, "x.yaml").unwrap());
    let mut out = Vec::new();
    for k in 0..3 {
        sample(&mut e, "d", "m", k * S, 1.0, &mut out);
    }
    let saved = e.checkpoint();
    let mut again = Engine::new(RuleSet::parse_str(src, "x.yaml").unwrap());
    again.restore(&saved).unwrap();
    again.guard_redeliveries();
    // The broker sends the last two again (their acks were lost), then new ones. A caller
    // that logs input asks first, so it does not log them (replayed, they would count).
    let d = again.series("d", "m").unwrap();
    assert!(again.is_redelivery(&Sample {
        series: d,
        ts: 2 * S,
        value: 1.0
    }));
    assert!(!again.is_redelivery(&Sample {
        series: d,
        ts: 3 * S,
        value: 1.0
    }));
    for k in [1, 2, 3, 4] {
        sample(&mut again, "d", "m", k * S, 1.0, &mut out);
    }
    assert_eq!(again.stats().redelivered_dropped, 2);
    sample(&mut again, "d", "m", 10 * S, 1.0, &mut out);
    assert!(format!("{out:?}").contains("(Count, 5.0)"), "{out:?}");
}

/// The state types are the format: this pins one small record. If it fails, a state type
/// changed shape: bump `snapshot::FORMAT` (old checkpoints are then refused, not misread)
/// and update the bytes.
#[test]
fn the_record_format_is_pinned() {
    let src = "rules:\n  - name: c\n    window: { tumbling: 10s }\n    aggregates: [count, mean]\n";
    let mut e = Engine::new(RuleSet::parse_str(src, "x.yaml").unwrap());
    sample(&mut e, "d", "m", S, 2.5, &mut Vec::new());
    let c = e.checkpoint();
    let hex: String = c.series[0].1.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, GOLDEN, "state format changed: bump FORMAT");
}

const GOLDEN: &str = "030164016d0080897a019ac2c683ebf6addd2700010080dac40900000101000000000000044000000000000004400000000000000440000000000000044080897a000000000000044080897a000000000000000000000000000000000000000000000000000000000000f87f00000000000000000000000000000000000000000000000000000000000000";
