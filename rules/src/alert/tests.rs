use crate::{AlertState, Engine, Event, EventKind, RuleSet, Sample};

const S: i64 = 1_000_000;

fn run(yaml: &str, values: &[f64]) -> (Vec<Event>, Engine) {
    let mut e = Engine::new(RuleSet::parse_str(yaml, "a.yaml").unwrap());
    let id = e.series("pump-1", "pressure").unwrap();
    let mut out = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let s = Sample {
            series: id,
            ts: i as i64 * S,
            value,
        };
        e.push(s, &mut out);
    }
    (out, e)
}

/// `(second, raised?)` of each alert transition.
fn transitions(events: &[Event]) -> Vec<(i64, bool)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Alert { state, .. } => Some((e.ts / S, state == AlertState::Raised)),
            _ => None,
        })
        .collect()
}

fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Alert { message, .. } => message.as_deref().map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// 90 on even seconds, 70 on odd ones: a condition flapping every second.
fn flapping(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if i % 2 == 0 { 90.0 } else { 70.0 })
        .collect()
}

fn rule(alert_extra: &str) -> String {
    format!(
        "rules:\n  - name: flap\n    detect: {{ threshold: {{ raise: 80 }} }}\n    alert: {{ severity: warning{alert_extra} }}\n"
    )
}

#[test]
fn without_storm_control_every_flap_is_sent() {
    let (out, e) = run(&rule(""), &flapping(31));
    assert_eq!(transitions(&out).len(), 31);
    assert_eq!(e.stats().alerts_suppressed, 0);
}

#[test]
fn suppress_sends_at_most_one_raise_per_period_with_its_clear() {
    let (out, e) = run(&rule(", suppress: 10s"), &flapping(31));
    assert_eq!(
        transitions(&out),
        [
            (0, true),
            (1, false),
            (10, true),
            (11, false),
            (20, true),
            (21, false),
            (30, true)
        ]
    );
    // 16 raises happened (every even second), 4 were sent.
    assert_eq!(e.stats().alerts_suppressed, 12);
    assert_eq!(e.stats().alerts_raised, 4);
}

#[test]
fn cooldown_keeps_quiet_after_a_clear() {
    let (out, _) = run(&rule(", cooldown: 5s"), &flapping(31));
    assert_eq!(
        transitions(&out),
        [
            (0, true),
            (1, false),
            (6, true),
            (7, false),
            (12, true),
            (13, false),
            (18, true),
            (19, false),
            (24, true),
            (25, false),
            (30, true)
        ]
    );
}

#[test]
fn storm_control_applies_to_when_conditions_too() {
    let yaml = "rules:
  - name: hot
    window: { tumbling: 1s }
    alert: { when: \"max > 80\", suppress: 1m }
";
    // Windows close when the next sample arrives: the last value only closes no window.
    let (out, e) = run(yaml, &flapping(120));
    assert_eq!(
        transitions(&out),
        [(1, true), (2, false), (61, true), (62, false)]
    );
    assert_eq!(e.stats().alerts_suppressed, 58);
}

#[test]
fn message_is_filled_with_the_values_that_caused_it() {
    let yaml = "rules:
  - name: high
    detect: { threshold: { raise: 6.5, clear: 6 } }
    alert:
      severity: critical
      message: \"{device}/{metric}: pressure {value:.1} bar above {raise} ({rule}, {severity}, {state}) {{ok}}\"
";
    let (out, _) = run(yaml, &[5.0, 7.04, 5.5]);
    assert_eq!(
        messages(&out),
        [
            "pump-1/pressure: pressure 7.0 bar above 6.5 (high, critical, raised) {ok}",
            "pump-1/pressure: pressure 5.5 bar above 6.5 (high, critical, cleared) {ok}",
        ]
    );
}

#[test]
fn message_expressions_read_the_window_and_let_values() {
    let yaml = "rules:
  - name: spread
    window: { count: 3 }
    let: { swing: \"max - min\" }
    alert:
      when: \"swing > 5\"
      message: \"swing {swing:.2} (mean {mean:.0}, z {score}) at {max * 10:.0}\"
";
    let (out, _) = run(yaml, &[1.0, 2.0, 9.5, 1.0, 1.0, 1.0]);
    assert_eq!(
        messages(&out),
        [
            "swing 8.50 (mean 4, z NaN) at 95",
            "swing 0.00 (mean 1, z NaN) at 10"
        ]
    );
}

#[test]
fn bad_templates_and_durations_point_inside_the_value() {
    let bad = |alert: &str| {
        let yaml = format!(
            "rules:\n  - name: r\n    window: {{ tumbling: 1s }}\n    alert: {{ when: \"max > 1\", {alert} }}\n"
        );
        let e = RuleSet::parse_str(&yaml, "a.yaml").unwrap_err();
        assert_eq!(e.diagnostics.len(), 1, "{e}");
        let d = &e.diagnostics[0];
        (d.line, d.column, d.message.clone())
    };
    // `message: "x {mnea} y"` starts at column 40; `{` is the 3rd character.
    let (l, c, m) = bad("message: \"x {mnea} y\"");
    assert_eq!((l, c), (4, 44), "{m}");
    assert!(
        m.starts_with("in `message`: unknown aggregate `mnea`"),
        "{m}"
    );
    let (_, c, m) = bad("message: \"x {value:.z}\"");
    assert_eq!(c, 49, "{m}");
    assert!(m.contains("`:.N`"), "{m}");
    let (_, c, m) = bad("message: \"open { here\"");
    assert_eq!(c, 46, "{m}");
    assert!(m.contains("unclosed `{`"), "{m}");
    let (_, _, m) = bad("message: \"{raise}\"");
    assert!(
        m.contains("unknown aggregate `raise`"),
        "no detector, no `raise`: {m}"
    );
    let (_, c, m) = bad("suppress: 10");
    assert_eq!(c, 41, "{m}");
    assert!(m.contains("invalid duration `10`"), "{m}");
    let (_, _, m) = bad("cooldown: 0s");
    assert!(m.contains("must be greater than zero"), "{m}");
}

#[test]
fn expressions_in_a_per_sample_rules_message_are_refused() {
    let yaml = "rules:\n  - name: r\n    detect: { rate: { max: 1 } }\n    alert: { message: \"{mean}\" }\n";
    let e = RuleSet::parse_str(yaml, "a.yaml").unwrap_err();
    assert!(e.to_string().contains("reads a window"), "{e}");
    let ok = "rules:\n  - name: r\n    detect: { rate: { max: 1 } }\n    alert: { message: \"{value} {max}/s\" }\n";
    let (out, _) = run(ok, &[0.0, 5.0]);
    assert_eq!(messages(&out), ["5 1/s"]);
}
