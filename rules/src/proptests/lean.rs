//! Lean rules (reading only aggregates a lean accumulator keeps: count, sum, mean, min, max,
//! first, last and what derives from them, percentiles, band energies) against the same
//! brute-force models as the full ones, in every window kind: skipping Welford's update and
//! the other totals must not change a single value they read.

use proptest::prelude::*;

use super::{
    ALPHA, CAP, FFT, Window, count_reference, every_aggregate, hopping_reference, run, same,
    session_reference, sliding_reference, stream, tumbling_reference, windows, windows_at_sample,
};
use crate::RuleSet;

fn lean_rules(window: &str) -> RuleSet {
    let names: Vec<&str> = every_aggregate()
        .into_iter()
        .filter(|a| a.is_lean())
        .map(|a| a.as_str())
        .collect();
    let yaml = format!(
        "rules:\n  - name: w\n    window: {window}\n    ewma_alpha: {ALPHA}\n    fft: {FFT}\n    aggregates: [{}]\n",
        names.join(", ")
    );
    let rules = RuleSet::parse_str(&yaml, "p.yaml").unwrap();
    assert!(rules.rules[0].acc.lean, "{yaml}");
    rules
}

/// The reference windows with only the lean aggregates, in the rule's order.
fn lean(windows: Vec<Window>) -> Vec<Window> {
    windows
        .into_iter()
        .map(|(s, e, vs)| (s, e, vs.into_iter().filter(|(a, _)| a.is_lean()).collect()))
        .collect()
}

#[test]
fn a_rule_reading_a_full_aggregate_anywhere_is_not_lean() {
    let full = |body: &str| {
        let yaml = format!("rules:\n  - name: w\n    window: {{ tumbling: 1s }}\n{body}\n");
        !RuleSet::parse_str(&yaml, "p.yaml").unwrap().rules[0]
            .acc
            .lean
    };
    assert!(full("    aggregates: [mean, stddev]"));
    assert!(full(
        "    aggregates: [mean]\n    alert: { when: \"ewma > 3\" }"
    ));
    assert!(full("    alert: { when: \"max > prev(slope)\" }"));
    assert!(full(
        "    alert: { when: \"x > 3\" }\n    let: { x: \"rms * 2\" }"
    ));
    assert!(!full(
        "    aggregates: [mean, p95]\n    alert: { when: \"max - min > 3\" }"
    ));
}

proptest! {
    #[test]
    fn lean_tumbling_windows_match_the_reference_model((start, steps, every) in stream()) {
        let (_, samples, out) = run(lean_rules("{ tumbling: 7ms }"), start, &steps, every);
        same(&windows(&out), &lean(tumbling_reference(&samples)))?;
    }

    #[test]
    fn lean_hopping_windows_match_the_reference_model((start, steps, every) in stream()) {
        let rules = lean_rules("{ hopping: { size: 7ms, hop: 3ms } }");
        let (_, samples, out) = run(rules, start, &steps, every);
        same(&windows(&out), &lean(hopping_reference(&samples)))?;
    }

    #[test]
    fn lean_count_windows_match_the_reference_model(
        (start, steps, every) in stream(),
        n in 1usize..20,
    ) {
        let rules = lean_rules(&format!("{{ count: {n} }}"));
        let (_, samples, out) = run(rules, start, &steps, every);
        same(&windows(&out), &lean(count_reference(&samples, n)))?;
    }

    #[test]
    fn lean_sliding_windows_match_the_reference_model((start, steps, every) in stream()) {
        let steps: Vec<(i64, i32)> = steps.iter().map(|&(g, v)| (g / 4, v)).collect();
        let rules = lean_rules(&format!("{{ sliding: 7ms, max_samples: {CAP} }}"));
        let (_, samples, out) = run(rules, start, &steps, every);
        let (want, _) = sliding_reference(&samples);
        same(&windows_at_sample(&out, &samples), &lean(want))?;
    }

    #[test]
    fn lean_session_windows_match_the_reference_model((start, steps, every) in stream()) {
        let (_, samples, out) = run(lean_rules("{ session: 3ms }"), start, &steps, every);
        same(&windows(&out), &lean(session_reference(&samples)))?;
    }
}

/// A message template is read too: `{stddev}` there must not see a lean window's stale
/// totals, nor `{p95}` a window without a sketch.
#[test]
fn aggregates_read_only_in_an_alert_message_are_kept() {
    let yaml = "rules:\n  - name: w\n    window: { tumbling: 10s }\n    alert: { when: \"mean > 2\", message: \"{stddev:.1} {p50:.0} {kurtosis:.2}\" }\n";
    let rules = RuleSet::parse_str(yaml, "p.yaml").unwrap();
    assert!(!rules.rules[0].acc.lean);
    let mut e = crate::Engine::new(rules);
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    for (k, v) in [1.0, 3.0, 5.0].into_iter().enumerate() {
        let sample = crate::Sample {
            series: id,
            ts: k as i64 * 1_000_000,
            value: v,
        };
        e.push(sample, &mut out);
    }
    e.advance(i64::MAX, &mut out);
    let message = out
        .iter()
        .find_map(|ev| match &ev.kind {
            crate::EventKind::Alert { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("the alert");
    // Population stddev of 1, 3, 5 is √(8/3) ≈ 1.6; kurtosis 1.5.
    assert_eq!(message.as_deref(), Some("1.6 3 1.50"), "{out:?}");
}
