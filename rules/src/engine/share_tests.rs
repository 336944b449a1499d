//! Shared window states (module `share`): which rules share, and that sharing changes nothing
//! a rule sees: every rule's events are those of the same rule alone in an engine, through
//! late samples, NaN, advances, the end of the input, reloads and restores.

use proptest::prelude::*;

use super::tests::{S, engine};
use super::*;
use crate::event::{Event, Sample};

/// Issue 19's workload, plus a rule on the same window that emits late samples and one on
/// another window length.
const RULES: &str = r#"
rules:
  - name: hot
    window: { tumbling: 10s }
    aggregates: [mean, max]
    alert: { when: "max > 80" }
  - name: spike
    detect: { robust_zscore: { window: 16 } }
    alert: { severity: warning }
  - name: drift
    window: { tumbling: 10s }
    detect: { cusum: { baseline: 4 } }
    alert: { severity: warning }
  - name: late
    window: { tumbling: 10s, late: emit }
    aggregates: [count]
    alert: { when: "mean > 60", cooldown: 20s }
  - name: longer
    window: { tumbling: 20s }
    aggregates: [mean]
"#;

fn roles(e: &Engine) -> Vec<(String, share::Share, u32)> {
    e.slots
        .iter()
        .map(|s| {
            (
                e.rules.rules[s.rule as usize].name.to_string(),
                s.share,
                s.win,
            )
        })
        .collect()
}

#[test]
fn rules_keeping_the_same_window_read_one_state() {
    let mut e = engine(RULES);
    e.series("pump-1", "temp").unwrap();
    e.series("pump-2", "temp").unwrap();
    use share::Share::{Follows, Leads, Own};
    let r = roles(&e);
    let of = |k: usize| (r[k].1, r[k].2);
    // hot, drift and late keep `tumbling: 10s` with lean totals: one state; spike has none;
    // longer keeps another.
    assert_eq!(
        [of(0), of(1), of(2), of(3), of(4)],
        [
            (Leads, 0),
            (Own, NO_WIN),
            (Follows, 0),
            (Follows, 0),
            (Own, 1)
        ]
    );
    assert_eq!(of(5), (Leads, 2));
    assert_eq!(e.wins.len(), 4);
    // A percentile needs a sketch, `stddev` Welford totals: other accumulators, other states.
    let mut e = engine(
        "rules:\n  - name: a\n    window: { tumbling: 10s }\n    aggregates: [mean]\n  - name: b\n    window: { tumbling: 10s }\n    aggregates: [p95]\n  - name: c\n    window: { tumbling: 10s }\n    aggregates: [stddev]\n  - name: d\n    window: { tumbling: 10s }\n    aggregates: [max]\n",
    );
    e.series("pump-1", "temp").unwrap();
    let wins: Vec<u32> = e.slots.iter().map(|s| s.win).collect();
    assert_eq!(wins, [0, 1, 2, 0]);
}

fn run(e: &mut Engine, ids: &[SeriesId], steps: &[Step], out: &mut Vec<Event>) {
    for step in steps {
        match *step {
            Step::Sample(k, ts, value) => e.push(
                Sample {
                    series: ids[k % ids.len()],
                    ts,
                    value,
                },
                out,
            ),
            Step::Advance(ts) => e.advance(ts, out),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Sample(usize, i64, f64),
    Advance(i64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => (0usize..2, 0i64..120, prop_oneof![Just(f64::NAN), 0.0..100.0f64])
            .prop_map(|(k, t, v)| Step::Sample(k, t * S / 2, v)),
        1 => (0i64..130).prop_map(|t| Step::Advance(t * S / 2)),
    ];
    prop::collection::vec(step, 0..160).prop_map(|mut v| {
        // Mostly in time order, with the out-of-order steps the generator left in place.
        let n = v.len();
        v[..n * 3 / 4].sort_by_key(|s| match s {
            Step::Sample(_, t, _) | Step::Advance(t) => *t,
        });
        v
    })
}

/// Each rule alone in an engine, fed the same steps: what it sees with a window of its own.
fn alone(rules: &str, steps: &[Step], finish: bool) -> Vec<String> {
    let set = RuleSet::parse_str(rules, "test.yaml").unwrap();
    let mut events = Vec::new();
    for rule in &set.rules {
        let one = set_of(rules, &rule.name);
        let mut e = engine(&one);
        let ids = [
            e.series("pump-1", "temp").unwrap(),
            e.series("pump-2", "temp").unwrap(),
        ];
        let mut out = Vec::new();
        run(&mut e, &ids, steps, &mut out);
        if finish {
            e.finish(&mut out);
        }
        events.push(out);
    }
    merge(events)
}

/// The rule named `name` of `rules`, as a rule file of its own.
fn set_of(rules: &str, name: &str) -> String {
    let mut keep = false;
    let mut out = String::from("rules:\n");
    for line in rules
        .lines()
        .skip_while(|l| !l.starts_with("rules:"))
        .skip(1)
    {
        if let Some(n) = line.strip_prefix("  - name: ") {
            keep = n == name;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Events by rule, in rule order, each rule's in its own order (how they interleave across
/// rules is the engine's slot order, which this does not model).
fn merge(by_rule: Vec<Vec<Event>>) -> Vec<String> {
    by_rule
        .into_iter()
        .flat_map(|evs| evs.into_iter().map(|ev| format!("{ev:?}")))
        .collect()
}

fn by_rule(rules: &str, out: Vec<Event>) -> Vec<String> {
    let set = RuleSet::parse_str(rules, "test.yaml").unwrap();
    let groups = set
        .rules
        .iter()
        .map(|r| out.iter().filter(|ev| ev.rule == r.name).cloned().collect())
        .collect();
    merge(groups)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn a_shared_window_gives_every_rule_what_its_own_would(steps in steps(), finish: bool) {
        let mut e = engine(RULES);
        let ids = [e.series("pump-1", "temp").unwrap(), e.series("pump-2", "temp").unwrap()];
        let mut out = Vec::new();
        run(&mut e, &ids, &steps, &mut out);
        if finish {
            e.finish(&mut out);
        }
        prop_assert_eq!(by_rule(RULES, out), alone(RULES, &steps, finish));
    }

    /// Stopped anywhere, checkpointed and restored, an engine goes on as one that never
    /// stopped, and its states are still shared.
    #[test]
    fn a_restored_shared_window_goes_on_as_before(steps in steps(), cut in 0usize..160) {
        let cut = cut.min(steps.len());
        let mut whole = engine(RULES);
        let ids = [whole.series("pump-1", "temp").unwrap(), whole.series("pump-2", "temp").unwrap()];
        let mut out = Vec::new();
        run(&mut whole, &ids, &steps[..cut], &mut out);
        let saved = whole.checkpoint();
        let mut restored = engine(RULES);
        restored.restore(&saved).unwrap();
        prop_assert_eq!(restored.wins.len(), whole.wins.len());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        run(&mut whole, &ids, &steps[cut..], &mut a);
        run(&mut restored, &ids, &steps[cut..], &mut b);
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

/// A rule added by a reload starts its window fresh: it does not share the state a kept rule
/// filled before it existed. Rules kept together stay together; a checkpoint holding two
/// different states for what a fresh engine would share restores them apart.
#[test]
fn reloads_and_restores_share_only_equal_states() {
    let one = set_of(RULES, "hot");
    let two = format!("{one}{}", &set_of(RULES, "drift")["rules:\n".len()..]);
    let mut e = engine(&one);
    let id = e.series("pump-1", "temp").unwrap();
    let mut out = Vec::new();
    for t in 0..5 {
        e.push(
            Sample {
                series: id,
                ts: t * S,
                value: 50.0,
            },
            &mut out,
        );
    }
    e.reload(RuleSet::parse_str(&two, "test.yaml").unwrap());
    let wins: Vec<u32> = e.slots.iter().map(|s| s.win).collect();
    assert_eq!(wins, [0, 1], "drift is new: its window starts empty");
    // Both kept by a second reload: still apart (their states differ).
    e.reload(RuleSet::parse_str(&two, "test.yaml").unwrap());
    assert_eq!(e.wins.len(), 2);
    // Restored into an engine that would share them: kept apart, and going on alike.
    let saved = e.checkpoint();
    let mut r = engine(&two);
    r.restore(&saved).unwrap();
    let wins: Vec<u32> = r.slots.iter().map(|s| s.win).collect();
    assert_eq!(wins, [0, 1]);
    assert!(r.slots.iter().all(|s| s.share == share::Share::Own));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for t in 5..40 {
        let s = Sample {
            series: id,
            ts: t * S,
            value: 50.0 + (t % 7) as f64 * 9.0,
        };
        e.push(s, &mut a);
        r.push(s, &mut b);
    }
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(a.len() > 3);
    // Two rules added by one reload share from the start.
    let mut e = engine("rules: []\n");
    e.series("pump-1", "temp").unwrap();
    e.reload(RuleSet::parse_str(&two, "test.yaml").unwrap());
    let wins: Vec<u32> = e.slots.iter().map(|s| s.win).collect();
    assert_eq!(wins, [0, 0]);
    assert_eq!(e.wins.len(), 1);
}
