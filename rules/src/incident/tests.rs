//! Fused alerts and incidents through the engine, on per-sample threshold rules.

use crate::event::{AlertState, Event, EventKind, Sample, Severity};
use crate::{Engine, RuleSet};

const RULES: &str = r#"
rules:
  - name: hot
    select: { metric: temp }
    detect: { threshold: { raise: 80 } }
    alert: { severity: warning }
  - name: shaky
    select: { metric: vib }
    detect: { threshold: { raise: 5 } }
    alert: { severity: critical }
  - name: loud
    select: { metric: noise }
    detect: { threshold: { raise: 90 } }
    alert: { severity: info }
EXTRA
"#;

const MIN: i64 = 60_000_000;

/// Feeds `(minute, device, metric, value)` rows and ends the input.
fn run(extra: &str, rows: &[(i64, &str, &str, f64)]) -> (Engine, Vec<Event>) {
    let src = RULES.replace("EXTRA", extra);
    let mut engine = Engine::new(RuleSet::parse_str(&src, "i.yaml").unwrap());
    let mut out = Vec::new();
    for &(minute, device, metric, value) in rows {
        let series = engine.series(device, metric).unwrap();
        engine.push(
            Sample {
                series,
                ts: minute * MIN,
                value,
            },
            &mut out,
        );
    }
    engine.advance(i64::MAX, &mut out);
    (engine, out)
}

/// `(minute, device, state, contributors as rule/metric)` of each incident event.
fn incidents(engine: &Engine, events: &[Event]) -> Vec<(i64, String, AlertState, Vec<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Incident {
                state,
                contributors,
                ..
            } => {
                let (device, metric) = engine.series_name(e.series).unwrap();
                assert_eq!(metric, "*");
                let c = contributors
                    .iter()
                    .map(|c| format!("{}/{}", c.rule, c.metric))
                    .collect();
                Some((e.ts / MIN, device.to_owned(), *state, c))
            }
            _ => None,
        })
        .collect()
}

const INCIDENTS: &str = "incidents:\n  gap: 10m";

#[test]
fn alerts_of_one_device_within_the_gap_are_one_incident_with_one_raise_and_one_clear() {
    let rows = [
        (0, "p1", "temp", 60.0),
        (0, "p1", "vib", 1.0),
        (5, "p1", "temp", 90.0),  // hot raises: the incident opens
        (8, "p1", "vib", 7.0),    // shaky joins
        (10, "p1", "temp", 60.0), // hot clears
        (20, "p1", "vib", 1.0),   // shaky clears: quiet from minute 20
        (25, "p1", "temp", 85.0), // hot again within the gap: same incident
        (26, "p1", "temp", 60.0),
        (30, "p1", "vib", 1.0),
        (60, "p1", "vib", 1.0), // the gap has passed: the incident clears
    ];
    let (engine, events) = run(INCIDENTS, &rows);
    let got = incidents(&engine, &events);
    assert_eq!(
        got,
        vec![
            (5, "p1".into(), AlertState::Raised, vec!["hot/temp".into()]),
            (
                26,
                "p1".into(),
                AlertState::Cleared,
                vec!["hot/temp".into(), "shaky/vib".into()]
            ),
        ]
    );
    // The contributing alerts stay available as their own events.
    let alerts = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Alert { .. }))
        .count();
    assert_eq!(alerts, 6);
    // The clear carries the highest severity of its contributors.
    let sev = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Incident {
            severity, opened, ..
        } => Some((*severity, *opened)),
        _ => None,
    });
    assert_eq!(sev, Some((Severity::Critical, 5 * MIN)));
}

#[test]
fn devices_have_their_own_incidents_and_a_long_quiet_starts_a_new_one() {
    let rows = [
        (0, "p1", "temp", 90.0),
        (0, "p2", "temp", 90.0),
        (1, "p1", "temp", 60.0),
        (1, "p2", "temp", 60.0),
        (30, "p1", "temp", 90.0), // 29 min after the clear: a new incident
        (31, "p1", "temp", 60.0),
        (50, "p1", "temp", 60.0),
    ];
    let (engine, events) = run(INCIDENTS, &rows);
    let got: Vec<(i64, String, AlertState)> = incidents(&engine, &events)
        .into_iter()
        .map(|(t, d, s, _)| (t, d, s))
        .collect();
    use AlertState::{Cleared, Raised};
    assert_eq!(
        got,
        vec![
            (0, "p1".into(), Raised),
            (0, "p2".into(), Raised),
            (1, "p1".into(), Cleared),
            (1, "p2".into(), Cleared),
            (30, "p1".into(), Raised),
            (31, "p1".into(), Cleared),
        ]
    );
}

#[test]
fn an_incident_still_raised_at_the_end_is_not_cleared() {
    let (engine, events) = run(
        INCIDENTS,
        &[(0, "p1", "temp", 90.0), (5, "p1", "temp", 95.0)],
    );
    let got = incidents(&engine, &events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, AlertState::Raised);
}

const FUSE: &str = r#"fuse:
  - name: two-of-three
    of: [hot, shaky, loud]
    k: 2
    within: 10m
    severity: critical"#;

fn fused(engine: &Engine, events: &[Event]) -> Vec<(i64, AlertState, Vec<String>)> {
    events
        .iter()
        .filter(|e| &*e.rule == "two-of-three")
        .map(|e| match &e.kind {
            EventKind::Alert {
                state,
                contributions,
                severity,
                ..
            } => {
                assert_eq!(*severity, Severity::Critical);
                assert_eq!(engine.series_name(e.series), Some(("p1", "*")));
                let m = contributions.iter().map(|c| c.0.to_string()).collect();
                (e.ts / MIN, *state, m)
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn k_of_n_counts_alerts_raised_or_cleared_less_than_within_ago() {
    let rows = [
        (0, "p1", "temp", 90.0),   // hot: 1 of 3
        (2, "p1", "temp", 60.0),   // hot clears, counts until minute 12
        (8, "p1", "vib", 7.0),     // shaky: 2 of 3 → raised
        (9, "p1", "vib", 1.0),     // shaky clears, counts until 19
        (30, "p1", "vib", 1.0),    // both holds passed → cleared at 19
        (40, "p1", "noise", 95.0), // loud alone: 1 of 3, nothing
        (60, "p1", "noise", 50.0),
    ];
    let (engine, events) = run(FUSE, &rows);
    use AlertState::{Cleared, Raised};
    assert_eq!(
        fused(&engine, &events),
        vec![
            (8, Raised, vec!["hot/temp".into(), "shaky/vib".into()]),
            (12, Cleared, vec!["hot/temp".into(), "shaky/vib".into()]),
        ]
    );
}

#[test]
fn alerts_farther_apart_than_within_do_not_fuse() {
    let rows = [
        (0, "p1", "temp", 90.0),
        (1, "p1", "temp", 60.0), // counts until 11
        (15, "p1", "vib", 7.0),
        (16, "p1", "vib", 1.0),
        (40, "p1", "vib", 1.0),
    ];
    let (engine, events) = run(FUSE, &rows);
    assert_eq!(fused(&engine, &events), vec![]);
}

#[test]
fn a_fused_alert_joins_its_device_incident() {
    let extra = format!("{FUSE}\n{INCIDENTS}");
    let rows = [
        (0, "p1", "temp", 90.0),
        (1, "p1", "vib", 7.0),
        (2, "p1", "temp", 60.0),
        (3, "p1", "vib", 1.0),
        (60, "p1", "vib", 1.0),
    ];
    let (engine, events) = run(&extra, &rows);
    let got = incidents(&engine, &events);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].3, vec!["hot/temp", "shaky/vib", "two-of-three/*"]);
}

#[test]
fn bad_sections_are_reported_with_their_location() {
    let e = RuleSet::parse_str(&RULES.replace("EXTRA", "incidents:\n  gap: 10x"), "i.yaml")
        .unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.column), (16, 8), "{d:?}");
    let e = RuleSet::parse_str(
        &RULES.replace(
            "EXTRA",
            &FUSE
                .replace("k: 2", "k: 0")
                .replace("within: 10m", "within: 10m\n    typo: 1"),
        ),
        "i.yaml",
    )
    .unwrap_err();
    assert!(e.diagnostics[0].message.contains("typo"), "{e}");
    let e = RuleSet::parse_str(
        &RULES.replace("EXTRA", &FUSE.replace("k: 2", "k: 0")),
        "i.yaml",
    )
    .unwrap_err();
    assert!(e.diagnostics[0].message.contains("`k`"), "{e}");
}

#[test]
fn the_shipped_machine_rule_files_load() {
    for (name, src) in [
        (
            "pump.yaml",
            include_str!("../../../examples/rules/pump.yaml"),
        ),
        (
            "motor.yaml",
            include_str!("../../../examples/rules/motor.yaml"),
        ),
        (
            "compressor.yaml",
            include_str!("../../../examples/rules/compressor.yaml"),
        ),
    ] {
        let set = RuleSet::parse_str(src, name).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !set.device.incidents.is_empty() && !set.device.fuse.is_empty(),
            "{name}"
        );
    }
}

/// Same input, any order within a timestamp: the same incident events (contributors in a
/// fixed order, and the raise waits until every alert of its instant is in).
#[test]
fn alerts_of_one_instant_in_either_order_give_the_same_incident_events() {
    let extra = format!("{FUSE}\n{INCIDENTS}");
    let forward = [
        (0, "p1", "temp", 60.0),
        (0, "p1", "vib", 1.0),
        (5, "p1", "temp", 90.0),
        (5, "p1", "vib", 7.0),
        (6, "p1", "temp", 60.0),
        (6, "p1", "vib", 1.0),
        (60, "p1", "vib", 1.0),
    ];
    let mut backward = forward;
    backward.swap(2, 3);
    backward.swap(4, 5);
    let pick = |events: Vec<Event>| -> Vec<Event> {
        events
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Incident { .. }) || &*e.rule == "two-of-three")
            .collect()
    };
    let (engine, a) = run(&extra, &forward);
    let (_, b) = run(&extra, &backward);
    let got = incidents(&engine, &a);
    assert_eq!(
        got[0].3,
        vec!["hot/temp", "shaky/vib", "two-of-three/*"],
        "{got:?}"
    );
    assert_eq!(pick(a), pick(b));
}

#[test]
fn a_fuse_rule_named_like_a_rule_and_a_second_incidents_section_are_refused() {
    let src = RULES.replace("EXTRA", &FUSE.replace("two-of-three", "hot"));
    let e = RuleSet::parse_str(&src, "i.yaml").unwrap_err();
    assert!(
        e.diagnostics[0].message.contains("duplicate rule name"),
        "{e}"
    );
    let a = RuleSet::parse_str(&RULES.replace("EXTRA", INCIDENTS), "a.yaml").unwrap();
    let b = RuleSet::parse_str("rules: []\nincidents:\n  gap: 5m\n", "b.yaml").unwrap();
    let e = RuleSet::merge(vec![a, b]).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!(d.file, "b.yaml");
    assert!(
        d.message.contains("second `incidents:`") && d.message.contains("a.yaml:"),
        "{e}"
    );
}

/// A pump file and a motor file on one gateway: each brings its own `incidents:` section,
/// each governs the devices it selects.
#[test]
fn incident_sections_for_different_devices_add_up() {
    let files = [
        include_str!("../../../examples/rules/pump.yaml"),
        include_str!("../../../examples/rules/motor.yaml"),
        include_str!("../../../examples/rules/compressor.yaml"),
    ];
    let sets: Vec<RuleSet> = files
        .iter()
        .enumerate()
        .map(|(i, src)| RuleSet::parse_str(src, &format!("{i}.yaml")).unwrap())
        .collect();
    let merged = RuleSet::merge(sets).unwrap();
    assert_eq!(merged.device.incidents.len(), 3);
    assert_eq!(
        merged.device.incidents_for("motor-2").map(|s| s.gap),
        merged.device.incidents.get(1).map(|s| s.gap)
    );
    assert!(merged.device.incidents_for("boiler-1").is_none());
}

/// The machine files' first layer judges sensors whatever their names: a tag the file does
/// not know, quantised (steps of 1, mostly on one value), raises nothing for an hour; then
/// a NaN from it raises the machine's `-invalid` alert and one incident.
#[test]
fn the_machine_files_judge_a_sensor_they_do_not_name() {
    for (machine, src) in [
        ("pump", include_str!("../../../examples/rules/pump.yaml")),
        ("motor", include_str!("../../../examples/rules/motor.yaml")),
        (
            "compressor",
            include_str!("../../../examples/rules/compressor.yaml"),
        ),
    ] {
        let mut engine = Engine::new(RuleSet::parse_str(src, "m.yaml").unwrap());
        let device = format!("{machine}-1");
        let series = engine.series(&device, "p_inlet_kpa_7").unwrap();
        let mut out = Vec::new();
        for s in 0..3600i64 {
            let value = if s == 3599 {
                f64::NAN
            } else if s % 7 == 0 {
                51.0
            } else {
                50.0
            };
            engine.push(
                Sample {
                    series,
                    ts: s * 1_000_000,
                    value,
                },
                &mut out,
            );
        }
        // The end of the input (an incident raise waits for the rest of its instant); the
        // end of a recording is not silence, so `-silent` stays quiet.
        engine.finish(&mut out);
        let raised: Vec<String> = out
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Alert {
                    state: AlertState::Raised,
                    ..
                } => Some(format!("alert {} at {}", e.rule, e.ts / 1_000_000)),
                EventKind::Incident {
                    state: AlertState::Raised,
                    ..
                } => Some(format!("incident at {}", e.ts / 1_000_000)),
                _ => None,
            })
            .collect();
        assert_eq!(
            raised,
            [
                format!("alert {machine}-invalid at 3599"),
                "incident at 3599".to_string()
            ],
            "{machine}"
        );
    }
}
