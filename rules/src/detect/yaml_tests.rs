//! Detector parameters in YAML: every bad value is reported with `file:line:column`, at the
//! value itself, and combinations that make no sense are explained.

use crate::RuleSet;

fn errors(src: &str) -> Vec<(u64, u64, String)> {
    let e = RuleSet::parse_str(src, "d.yaml").unwrap_err();
    e.diagnostics
        .into_iter()
        .map(|d| {
            assert_eq!(d.file, "d.yaml");
            assert_eq!(d.rule.as_deref(), Some("r"), "{d}");
            (d.line, d.column, d.message)
        })
        .collect()
}

#[test]
fn bad_detector_parameters_point_at_the_value() {
    let src = "\
rules:
  - name: r
    detect:
      cusum: { k: -1, h: 0, baseline: 1, learn: sometimes }
    alert: { severity: warning }
";
    let e = errors(src);
    let at: Vec<(u64, u64)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(4, 19), (4, 26), (4, 39), (4, 49)], "{e:?}");
    assert!(e[0].2.contains("`k` must be ≥ 0"));
    assert!(e[1].2.contains("`h` must be a positive number"));
    assert!(e[2].2.contains("between 2 and"));
    assert!(e[3].2.contains("unknown `learn` mode `sometimes`"));
}

#[test]
fn each_detector_validates_its_parameters() {
    let cases = [
        (
            "{ threshold: { raise: 80, for: 5 } }",
            "invalid duration `5`",
        ),
        ("{ zscore: { z: 0 } }", "`z` must be a positive number"),
        (
            "{ robust_zscore: { window: 3 } }",
            "`window` (values kept) must be between 5",
        ),
        (
            "{ robust_zscore: { window: 100000 } }",
            "must be between 5 and 4096",
        ),
        (
            "{ ewma_chart: { lambda: 1.5 } }",
            "`lambda` must be in (0, 1]",
        ),
        (
            "{ ewma_chart: { limit: -3 } }",
            "`limit` must be a positive number",
        ),
        ("{ rate: { max: 0 } }", "`max` must be a positive number"),
        ("{ flatline: { for: 0s } }", "must be greater than zero"),
        (
            "{ flatline: { for: 10s, epsilon: -1 } }",
            "`epsilon` must be ≥ 0",
        ),
        (
            "{ range: { min: 5, max: 1 } }",
            "`max` must not be below `min`",
        ),
        ("{ missing: soon }", "invalid duration `soon`"),
        ("{ }", "`detect` needs one of"),
        ("{ rate: { max: 1 }, missing: 10s }", "exactly one of"),
        ("{ cusum: { kk: 1 } }", "unknown field `kk`"),
        ("{ rate: { max: 1 }, value: max }", "without a `window`"),
    ];
    for (detect, want) in cases {
        let src =
            format!("rules:\n  - name: r\n    detect: {detect}\n    alert: {{ severity: info }}\n");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{detect}: {e:?}");
        assert_eq!(e[0].0, 3, "{detect}: {e:?}");
        assert!(
            e[0].1 >= 13,
            "{detect}: column inside the detect map: {e:?}"
        );
        assert!(e[0].2.contains(want), "{detect}: {e:?}");
    }
}

#[test]
fn detect_combined_with_when_window_or_nothing_is_explained() {
    let e = errors(
        "rules:\n  - name: r\n    detect: { rate: { max: 1 } }\n    alert: { when: \"mean > 1\" }\n",
    );
    assert_eq!((e[0].0, e[0].1), (4, 20));
    assert!(e[0].2.contains("cannot be combined"), "{e:?}");
    let e = errors("rules:\n  - name: r\n    detect: { rate: { max: 1 } }\n");
    assert_eq!((e[0].0, e[0].1), (3, 13));
    assert!(e[0].2.contains("add `alert"), "{e:?}");
    let e = errors(
        "rules:\n  - name: r\n    window: { tumbling: 1m }\n    detect: { missing: 1m }\n    alert: {}\n",
    );
    assert_eq!((e[0].0, e[0].1), (3, 13), "{e:?}");
    assert!(e[0].2.contains("remove `window`"), "{e:?}");
    let e = errors(
        "rules:\n  - name: r\n    window: { tumbling: 1m }\n    detect: { zscore: {}, value: \"mean +\" }\n    alert: {}\n",
    );
    assert_eq!(e[0].0, 4);
    assert!(e[0].2.starts_with("in `value`:"), "{e:?}");
    let e = errors("rules:\n  - name: r\n    window: { tumbling: 1m }\n    alert: {}\n");
    assert!(e[0].2.contains("`alert` needs `when`"), "{e:?}");
    let e = errors(
        "rules:\n  - name: r\n    detect: { missing: 1m }\n    aggregates: [mean]\n    alert: {}\n",
    );
    assert!(e[0].2.contains("need a `window`"), "{e:?}");
}

#[test]
fn trend_parameters_are_checked() {
    let cases = [
        ("{ trend: { over: 1h, horizon: 1d } }", "one limit"),
        (
            "{ trend: { above: 1, below: 0, over: 1h, horizon: 1d } }",
            "one limit",
        ),
        (
            "{ trend: { above: 1, over: 1, horizon: 1d } }",
            "invalid duration `1`",
        ),
        (
            "{ trend: { above: 1, over: 1h, horizon: 1d, points: 2 } }",
            "`points` must be between 5",
        ),
        (
            "{ trend: { above: 1, over: 1h, horizon: 1d, min_r2: 2 } }",
            "`min_r2` must be between 0 and 1",
        ),
    ];
    for (detect, want) in cases {
        let src =
            format!("rules:\n  - name: r\n    detect: {detect}\n    alert: {{ severity: info }}\n");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{detect}: {e:?}");
        assert!(e[0].2.contains(want), "{detect}: {e:?}");
    }
}

#[test]
fn noise_floor_and_changepoint_keys_are_validated_where_written() {
    let bad = [
        (
            "zscore: { min_sigma: -1 }",
            "`min_sigma` must be a number ≥ 0",
        ),
        (
            "cusum: { resolution: -0.5 }",
            "`resolution` must be a number ≥ 0",
        ),
        (
            "changepoint: { shift: 0 }",
            "`shift` must be a positive number",
        ),
        (
            "cusum: { baseline: base.yaml, learn: all }",
            "a baseline from a file is frozen",
        ),
    ];
    for (detect, want) in bad {
        let yaml = format!("rules:\n  - name: r\n    detect: {{ {detect} }}\n    alert: {{}}\n");
        let e = crate::RuleSet::parse_str(&yaml, "r.yaml").unwrap_err();
        assert!(e.diagnostics[0].message.contains(want), "{detect}: {e}");
        assert_eq!(e.diagnostics[0].line, 3, "{detect}: {e}");
    }
    let ok = "rules:\n  - name: r\n    detect: { cusum: { baseline: base.yaml, learn: frozen, resolution: 1 } }\n    alert: {}\n";
    assert!(crate::RuleSet::parse_str(ok, "r.yaml").is_ok());
}
