//! The engine's memory budget (module `budget`): the hopping rule from issue 15 over 10,000
//! series stays within `max_state_bytes`, refusals are counted, and reloads keep the bound.

use crate::{Engine, Limits, RuleSet, Sample};

const HOPPING: &str = "rules:
  - name: hop
    window: { hopping: { size: 64s, hop: 1s }, lateness: 192s }
    aggregates: [mean, p99, kurtosis]
";
const S: i64 = 1_000_000;

fn rules(src: &str) -> RuleSet {
    RuleSet::parse_str(src, "r.yaml").unwrap()
}

#[test]
fn the_hopping_rule_over_10000_series_stays_within_the_budget() {
    let budget = 16 << 20;
    let limits = Limits {
        max_state_bytes: budget,
        ..Limits::default()
    };
    let cost = Engine::state_costs(&rules(HOPPING))[0].1;
    // 256 open windows with a 2 KB sketch each: over half a megabyte per series.
    assert!(cost > 500_000 && cost < 1_000_000, "{cost}");
    let mut e = Engine::with_limits(rules(HOPPING), limits);
    let ids: Vec<_> = (0..10_000)
        .map(|i| e.series(&format!("d{i}"), "v").unwrap())
        .collect();
    let admitted = budget / cost;
    let stats = e.stats();
    assert_eq!(stats.series, 10_000, "every series is interned");
    assert_eq!(stats.budget_refused, 10_000 - admitted as u64);
    assert!(stats.state_reserved <= budget);
    // Five minutes of 1 Hz data on every series, in order: every admitted series reaches
    // its steady state of 256 open windows, then the measured state is compared.
    let mut out = Vec::new();
    let mut peak = 0;
    for t in 0..300 {
        for (i, id) in ids.iter().enumerate() {
            let value = ((t * 7 + i as i64) % 13) as f64;
            e.push(
                Sample {
                    series: *id,
                    ts: t * S,
                    value,
                },
                &mut out,
            );
        }
        out.clear();
        if t % 50 == 49 {
            peak = peak.max(e.state_bytes());
        }
    }
    assert!(
        peak <= budget,
        "measured {peak} bytes over a budget of {budget}"
    );
    assert!(
        peak > budget / 8,
        "the admitted series did fill their windows: {peak}"
    );
    // Series past the budget are interned but carry no state.
    assert_eq!(e.stats().budget_refused, 10_000 - admitted as u64);
}

#[test]
fn the_default_budget_is_64_mib_and_cheap_rules_fit_10000_series() {
    assert_eq!(Limits::default().max_state_bytes, 64 << 20);
    let tumbling =
        "rules:\n  - name: t\n    window: { tumbling: 10s }\n    aggregates: [mean, max]\n";
    let cost = Engine::state_costs(&rules(tumbling))[0].1;
    assert!(cost * 10_000 < 64 << 20, "{cost} bytes per series");
    let mut e = Engine::new(rules(tumbling));
    for i in 0..10_000 {
        e.series(&format!("d{i}"), "v").unwrap();
    }
    assert_eq!(e.stats().budget_refused, 0);
}

#[test]
fn a_reload_keeps_running_state_and_admits_new_rules_only_within_the_budget() {
    let cost = Engine::state_costs(&rules(HOPPING))[0].1;
    let limits = Limits {
        max_state_bytes: cost * 3,
        ..Limits::default()
    };
    let mut e = Engine::with_limits(rules(HOPPING), limits);
    for i in 0..5 {
        e.series(&format!("d{i}"), "v").unwrap();
    }
    assert_eq!(e.stats().budget_refused, 2);
    // The same rule again under a second name: its new slots must fit, the kept ones stay.
    let twice = format!(
        "{HOPPING}  - name: hop2\n    window: {{ hopping: {{ size: 64s, hop: 1s }}, lateness: 192s }}\n    aggregates: [mean, p99, kurtosis]\n"
    );
    e.reload(rules(&twice));
    let stats = e.stats();
    assert!(stats.state_reserved <= cost * 3, "{stats:?}");
    // Before: d3, d4. The reload: hop again on d3, d4, and hop2 on all five.
    assert_eq!(stats.budget_refused, 2 + 2 + 5, "{stats:?}");
    assert_eq!(stats.state_reserved, cost * 3);
}

#[test]
fn rules_on_different_metrics_do_not_add_up_per_series() {
    let src = "rules:
  - name: a
    select: { metric: temp }
    window: { tumbling: 10s }
    aggregates: [p99]
  - name: b
    select: { metric: rpm }
    window: { tumbling: 10s }
    aggregates: [p99]
  - name: c
    select: { metric: \"t*\" }
    window: { tumbling: 10s }
    aggregates: [mean]
";
    let set = rules(src);
    let costs: Vec<usize> = Engine::state_costs(&set).iter().map(|(_, c)| *c).collect();
    // `temp` may meet `t*`, `rpm` meets neither: the worst series has a and c.
    assert_eq!(Engine::state_per_series(&set), costs[0] + costs[2]);
}
