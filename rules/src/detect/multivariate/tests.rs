//! The multivariate detector through the engine: an operating change moves every sensor
//! and stays quiet, a decorrelation raises and names its sensor, a quantised or frozen
//! sensor never gives a non-finite score.

use std::sync::Arc;

use super::State;
use crate::event::{AlertState, Event, EventKind, Sample};
use crate::{Engine, RuleSet};

const RULES: &str = r#"
rules:
  - name: pump-joint
    select: { device: "pump-*" }
    group_by: device
    window: { tumbling: 1m }
    detect:
      multivariate:
        metrics: { flow: 1.0, current: 0.3, temp: 0.2 }
        warmup: 30
        LEARN
    alert: { severity: warning }
"#;

/// A tiny deterministic noise source (xorshift), in [-1, 1).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Runs `minutes` of a pump sampled every 10 s: flow = 100·load, current = 10 + 40·load,
/// temp = 40 + 10·load; `fault(minute)` adds amps that move no water.
fn run(
    learn: &str,
    minutes: i64,
    load: impl Fn(i64) -> f64,
    fault: impl Fn(i64) -> f64,
    quantise_flow: bool,
) -> Vec<Event> {
    let src = RULES.replace("LEARN", &format!("learn: {learn}"));
    let mut engine = Engine::new(RuleSet::parse_str(&src, "t.yaml").unwrap());
    let mut out = Vec::new();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let pump = Pump {
        load: &load,
        fault: &fault,
        quantise_flow,
        reversed: false,
    };
    pump.feed(&mut engine, &mut noise, 0..minutes, &mut out);
    engine.advance(i64::MAX, &mut out);
    out
}

/// The simulated pump of these tests.
struct Pump<'a> {
    load: &'a dyn Fn(i64) -> f64,
    fault: &'a dyn Fn(i64) -> f64,
    quantise_flow: bool,
    /// Push each timestamp's metrics in the reverse order.
    reversed: bool,
}

impl Pump<'_> {
    fn feed(
        &self,
        engine: &mut Engine,
        noise: &mut Noise,
        minutes: std::ops::Range<i64>,
        out: &mut Vec<Event>,
    ) {
        let ids = ["flow", "current", "temp"].map(|m| engine.series("pump-1", m).unwrap());
        for step in minutes.start * 6..minutes.end * 6 {
            let minute = step / 6;
            let l = (self.load)(minute);
            let mut flow = 100.0 * l + noise.next();
            if self.quantise_flow {
                flow = (flow / 5.0).round() * 5.0;
            }
            let values = [
                flow,
                10.0 + 40.0 * l + (self.fault)(minute) + 0.3 * noise.next(),
                40.0 + 10.0 * l + 0.2 * noise.next(),
            ];
            let mut samples: Vec<Sample> = ids
                .iter()
                .zip(values)
                .map(|(id, v)| Sample {
                    series: *id,
                    ts: step * 10_000_000,
                    value: v,
                })
                .collect();
            if self.reversed {
                samples.reverse();
            }
            for s in samples {
                engine.push(s, out);
            }
        }
    }
}

/// `(minute, state, score, contributions)` of one alert transition.
type Seen = (i64, AlertState, f64, Vec<(Arc<str>, f64)>);

fn alerts(events: &[Event]) -> Vec<Seen> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Alert {
                state,
                score,
                contributions,
                ..
            } => Some((e.ts / 60_000_000, *state, *score, contributions.clone())),
            _ => None,
        })
        .collect()
}

/// The load steps between 0.5 and 1.0 every 20 minutes after a warm-up that saw both.
fn stepping(minute: i64) -> f64 {
    if (minute / 10) % 2 == 0 { 0.5 } else { 1.0 }
}

#[test]
fn a_load_change_that_moves_every_sensor_does_not_alarm() {
    let events = run(
        "exclude_anomalies",
        240,
        |m| {
            if m < 40 {
                stepping(m)
            } else {
                0.5 + (m % 37) as f64 / 74.0
            }
        },
        |_| 0.0,
        false,
    );
    assert_eq!(alerts(&events), vec![]);
}

#[test]
fn current_without_flow_raises_names_current_and_clears_after() {
    let fault = |m: i64| if (100..130).contains(&m) { 3.0 } else { 0.0 };
    let events = run("exclude_anomalies", 200, stepping, fault, false);
    let a = alerts(&events);
    assert_eq!(a.len(), 2, "{a:?}");
    let (raised_at, state, score, contributions) = &a[0];
    assert_eq!(*state, AlertState::Raised);
    assert!(
        (100..=102).contains(raised_at),
        "raised at minute {raised_at}"
    );
    assert!(score.is_finite() && *score > 25.0);
    let top = contributions
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(&*top.0, "current", "{contributions:?}");
    // One sensor moved: correcting it alone explains (nearly) the whole score.
    assert!(
        top.1 > 0.8 * score && top.1 <= score * 1.0001,
        "{contributions:?} {score}"
    );
    assert!(contributions.iter().all(|c| c.1 >= 0.0));
    assert_eq!(a[1].1, AlertState::Cleared);
    assert!(
        (130..=133).contains(&a[1].0),
        "cleared at minute {}",
        a[1].0
    );
}

#[test]
fn a_quantised_sensor_gives_finite_scores_and_no_storm() {
    let fault = |m: i64| if (100..130).contains(&m) { 3.0 } else { 0.0 };
    let events = run("exclude_anomalies", 200, stepping, fault, true);
    let a = alerts(&events);
    assert!(
        a.iter()
            .all(|(.., score, c)| score.is_finite() && c.iter().all(|x| x.1.is_finite()))
    );
    assert_eq!(a.len(), 2, "{a:?}");
}

#[test]
fn frozen_keeps_judging_by_the_warm_up_and_all_absorbs_a_lasting_shift() {
    // A lasting decorrelation from minute 60 on.
    let fault = |m: i64| if m >= 60 { 3.0 } else { 0.0 };
    let frozen = alerts(&run("frozen", 400, stepping, fault, false));
    assert_eq!(
        frozen.len(),
        1,
        "frozen: raised and never cleared: {frozen:?}"
    );
    let all = alerts(&run("all", 2400, stepping, fault, false));
    assert!(
        all.len() >= 2 && all.last().unwrap().1 == AlertState::Cleared,
        "{all:?}"
    );
}

#[test]
fn the_state_is_fixed_size() {
    assert_eq!(size_of::<State>(), 848);
}

/// Same input, any order within a timestamp: same events (the per-metric sums do not
/// depend on which metric of a timestamp arrives first).
#[test]
fn the_order_of_metrics_within_a_timestamp_does_not_matter() {
    let fault = |m: i64| if (100..130).contains(&m) { 3.0 } else { 0.0 };
    let go = |reversed: bool| {
        let src = RULES.replace("LEARN", "learn: exclude_anomalies");
        let mut engine = Engine::new(RuleSet::parse_str(&src, "t.yaml").unwrap());
        let mut out = Vec::new();
        let pump = Pump {
            load: &stepping,
            fault: &fault,
            quantise_flow: false,
            reversed,
        };
        pump.feed(&mut engine, &mut Noise(7), 0..200, &mut out);
        engine.advance(i64::MAX, &mut out);
        out
    };
    let forward = go(false);
    assert!(!alerts(&forward).is_empty());
    assert_eq!(forward, go(true));
}

/// A reload that changes the rule restarts the detector, which must still know which
/// series carries which metric (they were interned before the reload).
#[test]
fn a_changed_rule_keeps_judging_after_a_reload() {
    let fault = |m: i64| if m >= 100 { 3.0 } else { 0.0 };
    let pump = Pump {
        load: &stepping,
        fault: &fault,
        quantise_flow: false,
        reversed: false,
    };
    let src = RULES.replace("LEARN", "learn: exclude_anomalies");
    let mut engine = Engine::new(RuleSet::parse_str(&src, "t.yaml").unwrap());
    let mut out = Vec::new();
    let mut noise = Noise(11);
    pump.feed(&mut engine, &mut noise, 0..40, &mut out);
    let changed = src.replace("warmup: 30", "warmup: 31");
    engine.reload(RuleSet::parse_str(&changed, "t.yaml").unwrap());
    pump.feed(&mut engine, &mut noise, 40..160, &mut out);
    let a = alerts(&out);
    assert_eq!(a.len(), 1, "{a:?}");
    assert!((100..=102).contains(&a[0].0), "{a:?}");
}
