use super::*;

/// Every diagnostic as `line:column: rule: message` — positions are what these tests pin.
fn errors(src: &str) -> Vec<(u64, u64, Option<String>, String)> {
    let e = RuleSet::parse_str(src, "r.yaml").unwrap_err();
    e.diagnostics
        .into_iter()
        .map(|d| {
            assert_eq!(d.file, "r.yaml");
            (d.line, d.column, d.rule, d.message)
        })
        .collect()
}

fn positions(src: &str) -> Vec<(u64, u64)> {
    errors(src).into_iter().map(|(l, c, _, _)| (l, c)).collect()
}

#[test]
fn parses_a_valid_file_with_defaults() {
    let set = RuleSet::parse_str(
        r#"
rules:
  - name: pump-overheat
    select: { device: "pump-*", metric: temperature }
    window: { tumbling: 10s }
    aggregates: [mean, max]
    alert:
      when: "mean > 80"
      severity: critical
  - name: everything
    window: { tumbling: 500ms }
    alert: { when: count >= 3 }
  - name: numeric-metric
    select: { metric: 42 }
    window: { tumbling: 1d }
    aggregates: [count]
"#,
        "ok.yaml",
    )
    .unwrap();
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    assert_eq!(
        set.names().collect::<Vec<_>>(),
        ["pump-overheat", "everything", "numeric-metric"]
    );
    let r = &set.rules[1];
    assert_eq!(
        r.window,
        crate::window::WindowSpec::Tumbling { size: 500_000 }
    );
    assert!(r.device.matches("anything") && r.metric.matches("anything"));
    let alert = r.alert.as_ref().unwrap();
    assert_eq!(alert.severity, Severity::Warning);
    assert_eq!(&*alert.text, "count >= 3");
    assert_eq!(set.rules[0].aggregates, [Aggregate::Mean, Aggregate::Max]);
    assert!(set.rules[2].metric.matches("42"));
    assert_eq!(
        set.rules[2].window,
        crate::window::WindowSpec::Tumbling {
            size: 86_400_000_000
        }
    );
}

#[test]
fn empty_rules_list_is_valid() {
    assert!(
        RuleSet::parse_str("rules: []\n", "r.yaml")
            .unwrap()
            .is_empty()
    );
    assert!(RuleSet::parse_str("rules:\n", "r.yaml").unwrap().is_empty());
}

#[test]
fn yaml_syntax_error_is_located() {
    let e = errors("rules:\n  - name: a\n    window: { tumbling: [10s }\n");
    assert_eq!(e.len(), 1);
    let (line, column, rule, msg) = &e[0];
    // serde-saphyr points at the bracket that was closed by the wrong one.
    assert_eq!((*line, *column, rule.as_deref()), (3, 25, None));
    assert!(msg.starts_with("invalid YAML: mismatched bracket"), "{msg}");
    assert_eq!(positions("rules: [\n"), [(1, 8)]);
}

#[test]
fn unknown_keys_at_every_level() {
    let src = "\
rules:
  - name: a
    window: { tumbling: 10s, slidng: 5s }
    aggregates: [mean]
  - name: b
    selcet: { device: x }
    window: { tumbling: 10s }
    aggregates: [mean]
  - name: c
    window: { tumbling: 10s }
    alert: { when: mean > 1, level: info }
version: 2
";
    let e = errors(src);
    let got: Vec<_> = e.iter().map(|(l, c, r, _)| (*l, *c, r.clone())).collect();
    assert_eq!(
        got,
        [
            (3, 30, Some("a".into())),
            (6, 5, Some("b".into())),
            (11, 30, Some("c".into())),
            (12, 1, None),
        ]
    );
    assert!(e[0].3.contains("unknown field `slidng`"), "{}", e[0].3);
    assert!(e[3].3.contains("unknown key `version`"), "{}", e[3].3);
}

#[test]
fn bad_durations() {
    let src = "\
rules:
  - name: zero
    window: { tumbling: 0s }
    aggregates: [mean]
  - name: unitless
    window:
      tumbling: 10
    aggregates: [mean]
  - name: fractional
    window: { tumbling: \"1.5m\" }
    aggregates: [mean]
";
    let e = errors(src);
    let got: Vec<_> = e
        .iter()
        .map(|(l, c, r, _)| (*l, *c, r.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (3, 25, "zero".into()),
            (7, 17, "unitless".into()),
            (10, 25, "fractional".into())
        ]
    );
    assert!(e[0].3.contains("greater than zero"));
}

#[test]
fn bad_globs_point_inside_the_pattern() {
    let src = "\
rules:
  - name: g
    select: { device: \"pump-[1]\" }
    window: { tumbling: 10s }
    aggregates: [mean]
  - name: empty
    select:
      device: ''
      metric: te}mp
    window: { tumbling: 10s }
    aggregates: [mean]
";
    // `[` is character 5 of the quoted pattern starting at column 23 (the quote): 23 + 1 + 5.
    // An empty quoted pattern: the position right after the opening quote.
    // `}` is character 2 of the plain pattern starting at column 15.
    assert_eq!(positions(src), [(3, 29), (8, 16), (9, 17)]);
}

#[test]
fn when_errors_point_inside_the_expression() {
    let src = r#"rules:
  - name: plain
    window: { tumbling: 10s }
    alert: { when: mean >> 80 }
  - name: double
    window: { tumbling: 10s }
    alert: { when: "\t avg > 80" }
  - name: single
    window: { tumbling: 10s }
    alert:
      when: '''x'' > 1'
  - name: trailing
    window: { tumbling: 10s }
    alert: { when: "max > 1 2" }
  - name: severity
    window: { tumbling: 10s }
    alert: { when: max > 1, severity: fatal }
"#;
    let e = errors(src);
    let got: Vec<_> = e
        .iter()
        .map(|(l, c, r, _)| (*l, *c, r.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            // `mean >> 80`: the second `>` at offset 6 of a plain scalar at column 20.
            (4, 26, "plain".into()),
            // `\t` is one character but two in the file: `avg` is at offset 2, raw index 4.
            (7, 24, "double".into()),
            // `''` decodes to `'`: the error is at offset 0, right after the opening quote.
            (11, 14, "single".into()),
            (14, 29, "trailing".into()),
            (17, 39, "severity".into()),
        ]
    );
    assert!(e[1].3.contains("unknown aggregate `avg`"), "{}", e[1].3);
    assert!(e[4].3.contains("unknown severity `fatal`"), "{}", e[4].3);
}

#[test]
fn rule_needs_aggregates_or_alert_and_known_aggregates() {
    let src = "\
rules:
  - name: idle
    window: { tumbling: 10s }
  - name: idle2
    window: { tumbling: 10s }
    aggregates: []
  - name: aggs
    window: { tumbling: 10s }
    aggregates: [mean, avg, mean]
";
    let e = errors(src);
    let got: Vec<_> = e.iter().map(|(l, c, _, _)| (*l, *c)).collect();
    assert_eq!(got, [(2, 11), (4, 11), (9, 24), (9, 29)]);
    assert!(e[0].3.contains("neither `aggregates` nor `alert`"));
    assert!(e[3].3.contains("listed twice"));
}

#[test]
fn missing_and_mistyped_fields() {
    let src = "\
rules:
  - window: { tumbling: 10s }
    aggregates: [mean]
  - name: nowindow
    aggregates: [mean]
  - name: typed
    window: [10s]
    aggregates: [mean]
  - name: ''
    window: { tumbling: 10s }
    aggregates: [mean]
";
    let e = errors(src);
    let got: Vec<_> = e.iter().map(|(l, c, r, _)| (*l, *c, r.clone())).collect();
    assert_eq!(
        got,
        [
            (2, 5, None),
            (4, 5, Some("nowindow".into())),
            (7, 13, Some("typed".into())),
            (9, 11, None),
        ]
    );
    assert!(e[0].3.contains("missing field `name`"));
    assert!(e[1].3.contains("missing field `window`"));
}

#[test]
fn top_level_shape_errors() {
    assert_eq!(positions("rules: 3\n"), [(1, 8)]);
    assert_eq!(positions("- a\n"), [(1, 1)]);
    assert_eq!(positions(""), [(1, 1)]);
}

#[test]
fn duplicate_names_in_one_file_even_when_one_rule_is_broken() {
    let src = "\
rules:
  - name: a
    window: { tumbling: 10s }
    aggregates: [mean]
  - name: a
    window: { tumbling: 0s }
    aggregates: [mean]
";
    let e = errors(src);
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].0, e[0].1), (5, 11));
    assert!(
        e[0].3.contains("first defined at r.yaml:2:11"),
        "{}",
        e[0].3
    );
    assert_eq!((e[1].0, e[1].1), (6, 25));
}

const ONE: &str =
    "rules:\n  - name: shared\n    window: { tumbling: 1s }\n    aggregates: [count]\n";
const TWO: &str = "rules:\n  - name: own\n    window: { tumbling: 1s }\n    aggregates: [count]\n  - name: shared\n    window: { tumbling: 1s }\n    aggregates: [count]\n";

#[test]
fn duplicate_names_across_merged_files() {
    let a = RuleSet::parse_str(ONE, "a.yaml").unwrap();
    let b = RuleSet::parse_str(TWO, "b.yaml").unwrap();
    let e = RuleSet::merge(vec![a.clone(), b.clone()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.yaml:5:11: rule `shared`: duplicate rule name (first defined at a.yaml:2:11)"
    );
    let c = RuleSet::parse_str(&TWO.replace("shared", "other"), "c.yaml").unwrap();
    let merged = RuleSet::merge(vec![a, c]).unwrap();
    assert_eq!(
        merged.names().collect::<Vec<_>>(),
        ["shared", "own", "other"]
    );
}

#[test]
fn diagnostic_display_omits_a_missing_rule() {
    let d = Diagnostic::new("f.yaml", 3, 7, None, "boom");
    assert_eq!(d.to_string(), "f.yaml:3:7: boom");
    let d = Diagnostic::new("f.yaml", 3, 7, Some("r".into()), "boom");
    assert_eq!(d.to_string(), "f.yaml:3:7: rule `r`: boom");
}

#[test]
fn window_kinds_and_ewma_alpha_are_validated() {
    let src = "\
rules:
  - name: none
    window: {}
    aggregates: [mean]
  - name: two
    window: { tumbling: 1s, count: 3 }
    aggregates: [mean]
  - name: hop
    window: { hopping: { size: 1s, hop: 2s } }
    aggregates: [mean]
  - name: many
    window: { hopping: { size: 1h, hop: 1s } }
    aggregates: [mean]
  - name: zero
    window: { count: 0 }
    aggregates: [mean]
  - name: alpha
    window: { count: 3 }
    ewma_alpha: 1.5
    aggregates: [ewma]
  - name: cap
    window: { sliding: 1m, max_samples: 0 }
    aggregates: [mean]
  - name: capped
    window: { session: 1m, max_samples: 10 }
    aggregates: [mean]
  - name: good
    window: { hopping: { size: 1m, hop: 10s } }
    ewma_alpha: 1
    aggregates: [ewma, stddev, peak_to_peak]
    alert: { when: \"ewma > clamp(prev(ewma) * 1.1, 0, 100) or not rms < 3\" }
";
    let e = errors(src);
    let got: Vec<_> = e.iter().map(|(l, c, _, _)| (*l, *c)).collect();
    assert_eq!(
        got,
        [
            (3, 13),
            (6, 13),
            (9, 41),
            (12, 41),
            (15, 22),
            (19, 17),
            (22, 41),
            (25, 41)
        ]
    );
    assert!(e[0].3.contains("needs one of"), "{}", e[0].3);
    assert!(e[1].3.contains("exactly one"), "{}", e[1].3);
    assert!(e[2].3.contains("must not exceed"), "{}", e[2].3);
    assert!(e[3].3.contains("at most 64"), "{}", e[3].3);
    assert!(e[4].3.contains("greater than zero"), "{}", e[4].3);
    assert!(e[5].3.contains("(0, 1]"), "{}", e[5].3);
    assert!(e[6].3.contains("between 1 and 65536"), "{}", e[6].3);
    assert!(e[7].3.contains("only applies to `sliding`"), "{}", e[7].3);
}

#[test]
fn errors_inside_longer_expressions_point_at_the_column() {
    let src = r#"rules:
  - name: x
    window: { tumbling: 10s }
    alert: { when: "mean > 1 and sqrt(max, 2) < 3" }
"#;
    let e = errors(src);
    // `sqrt` is at offset 13 of the quoted string whose quote is at column 20.
    assert_eq!((e[0].0, e[0].1), (4, 34));
    assert!(e[0].3.contains("`sqrt` takes 1 argument"), "{}", e[0].3);
}

#[test]
fn let_values_are_checked_in_order_and_located() {
    let src = r#"rules:
  - name: bad
    window: { tumbling: 10s }
    let:
      mean: "max"
      spread: "max - mni"
      ratio: "spread / later"
      later: "mean > 1"
      2x: "1"
    alert: { when: "ratio > 1 and spread > 0" }
  - name: unused
    window: { tumbling: 10s }
    aggregates: [mean]
    let: { x: "mean" }
"#;
    let e = errors(src);
    let got: Vec<_> = e.iter().map(|(l, c, _, _)| (*l, *c)).collect();
    assert_eq!(got, [(5, 7), (6, 22), (7, 24), (8, 15), (9, 7), (14, 10)]);
    assert!(e[0].3.contains("`mean` is an aggregate"), "{}", e[0].3);
    assert!(
        e[1].3.contains("in `let.spread`: unknown aggregate `mni`"),
        "{}",
        e[1].3
    );
    // Values see only the ones before them.
    assert!(e[2].3.contains("unknown aggregate `later`"), "{}", e[2].3);
    assert!(e[3].3.contains("must be a number"), "{}", e[3].3);
    assert!(e[4].3.contains("not a valid name"), "{}", e[4].3);
    assert!(e[5].3.contains("no alert"), "{}", e[5].3);
}

#[test]
fn local_topic_is_kept_and_a_wildcard_is_refused() {
    let ok = "rules:\n  - name: hot\n    window: { tumbling: 1s }\n    alert: { when: \"max > 1\", local_topic: \"actions/{device}\" }\n";
    let set = RuleSet::parse_str(ok, "r.yaml").unwrap();
    assert_eq!(set.local_topic("hot"), Some("actions/{device}"));
    assert_eq!(set.local_topic("other"), None);
    let bad = ok.replace("actions/{device}", "actions/#");
    assert_eq!(positions(&bad), [(4, 44)]);
}

#[test]
fn a_huge_rule_name_is_rejected_without_being_echoed() {
    let name = "n".repeat(1 << 20);
    let src = format!(
        "rules:\n  - name: {name}\n    window: {{ tumbling: 1s }}\n    aggregates: [mean]\n  - name: ok\n    window: {{ tumbling: 1s }}\n    aggregates: [nope]\n"
    );
    let errs = errors(&src);
    let (line, column, rule, message) = &errs[0];
    assert_eq!((*line, *column), (2, 11));
    assert_eq!(*rule, None);
    assert!(message.contains("1048576 bytes; at most 128"), "{message}");
    assert!(
        message.len() < 300,
        "the name is not echoed: {} bytes",
        message.len()
    );
    assert!(
        errs.len() == 2,
        "the other rules are still checked: {errs:?}"
    );
    let limit = "n".repeat(crate::ruleset::rule::MAX_RULE_NAME);
    let ok = format!(
        "rules:\n  - name: {limit}\n    window: {{ tumbling: 1s }}\n    aggregates: [mean]\n"
    );
    assert!(RuleSet::parse_str(&ok, "r.yaml").is_ok());
}
