use super::*;
use weir_rules::RuleSet;

const RULES: &str = "rules:\n  - name: hot\n    select: { device: \"*\", metric: \"*\" }\n    window: { tumbling: 10s }\n    aggregates: [count, max]\n    alert: { when: \"max > 50\", severity: critical }\n";

fn replay(data: &str) -> (Summary, Vec<serde_json::Value>) {
    let engine = Engine::new(RuleSet::parse_str(RULES, "rules.yaml").unwrap());
    let mut out = Vec::new();
    let defaults = Defaults {
        device: "dev".into(),
        metric: "value".into(),
    };
    let mut engine = engine;
    let summary = run(
        &mut engine,
        data.as_bytes(),
        &mut out,
        &defaults,
        Path::new("data.csv"),
        None,
    )
    .unwrap();
    let events = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, events)
}

#[test]
fn csv_with_header_judges_complete_windows_and_drops_the_partial_last_one() {
    let (summary, events) = replay(
        "timestamp,value\n2014-04-01 00:00:00,10\n2014-04-01 00:00:05,60\n2014-04-01 00:00:12,1\n",
    );
    assert_eq!(summary.samples, 3);
    assert_eq!(summary.skipped, 0);
    // Window [0,10): count 2, max 60 → window + raised; window [10,20) is still open when
    // the file ends at 12 s: partial, dropped and counted, never stamped at 20 s.
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["state"].as_str()))
        .collect();
    assert_eq!(kinds, [("window", None), ("alert", Some("raised"))]);
    assert_eq!(summary.partial_windows, 1);
    assert_eq!(events[0]["values"]["count"], 2.0);
    assert_eq!(events[0]["device"], "dev");
    assert_eq!(events[0]["metric"], "value");
    assert_eq!(events[0]["end"], 1_396_310_410_000_000i64);
    assert_eq!((summary.events, summary.alerts), (2, 1));
}

#[test]
fn jsonl_rows_name_their_series_and_bad_lines_are_skipped_not_fatal() {
    let (summary, events) = replay(concat!(
        "{\"ts\": 1000, \"device\": \"a\", \"metric\": \"t\", \"value\": 70}\n",
        "not json\n",
        "{\"ts\": 1001, \"device\": \"b\", \"metric\": \"t\", \"value\": 1}\n",
        "{\"ts\": 1002, \"value\": \"hot\"}\n",
        "{\"ts\": 1010, \"device\": \"a\", \"metric\": \"t\", \"value\": 0}\n",
        "{\"ts\": 1010, \"device\": \"b\", \"metric\": \"t\", \"value\": 0}\n",
    ));
    assert_eq!(summary.samples, 4);
    assert_eq!(summary.skipped, 2);
    let devices: Vec<&str> = events
        .iter()
        .map(|e| e["device"].as_str().unwrap())
        .collect();
    assert!(
        devices.contains(&"a") && devices.contains(&"b"),
        "{devices:?}"
    );
    assert_eq!(summary.alerts, 1, "only device a crossed 50");
}

#[test]
fn the_same_file_replays_to_the_same_bytes() {
    let data: String = (0..500)
        .map(|i| format!("{},d{},m,{}\n", 1_000_000 + i * 997, i % 7, (i * 37) % 101))
        .collect();
    let (a, events_a) = replay(&data);
    let (b, events_b) = replay(&data);
    assert_eq!(events_a, events_b);
    assert_eq!((a.samples, a.events), (b.samples, b.events));
    assert!(a.events > 0);
}

#[test]
fn the_plot_shows_every_series_its_windows_and_its_alerts() {
    let data: String = (0..600)
        .map(|i| {
            let hot = (200..260).contains(&i);
            let value = if hot { 80 } else { 20 + i % 5 };
            format!(
                "{},d{},m,{value}\n",
                1_396_310_400_000_000i64 + i * 1_000_000,
                i % 2
            )
        })
        .collect();
    let engine = Engine::new(RuleSet::parse_str(RULES, "rules.yaml").unwrap());
    let mut plot = Plot::default();
    let defaults = Defaults {
        device: "dev".into(),
        metric: "value".into(),
    };
    let mut engine = engine;
    let summary = run(
        &mut engine,
        data.as_bytes(),
        std::io::sink(),
        &defaults,
        Path::new("data.csv"),
        Some(&mut plot),
    )
    .unwrap();
    let mut svg = Vec::new();
    plot.write_svg(&mut svg).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("d0 / m") && svg.contains("d1 / m"),
        "a panel per series"
    );
    assert_eq!(svg.matches("class=\"samples\"").count(), 2);
    assert_eq!(
        svg.matches("class=\"window\"").count(),
        2,
        "rule hot on each series"
    );
    // Both series cross 50 in the same 10 s windows: one raise and one clear each.
    assert_eq!(summary.alerts, 4);
    assert_eq!(svg.matches("class=\"raise\"").count(), 2);
    assert_eq!(svg.matches("class=\"clear\"").count(), 2);
    assert_eq!(
        svg.matches("class=\"raised\"").count(),
        2,
        "shaded while raised"
    );
    assert!(
        svg.contains("hot (count)"),
        "the legend names rule and aggregate"
    );
}
