use std::path::PathBuf;

use super::nab::{Window, optimise, probation, score};
use super::*;

const STANDARD: Costs = PROFILES[0].costs;

/// NAB's data, vendored in the repository (`data/nab`).
fn nab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/nab")
}

/// σ(y) = 2 / (1 + e^{5y}) − 1 is tanh(−5y/2): an independent way to the same numbers.
fn sigma(y: f64) -> f64 {
    (-2.5 * y).tanh()
}

/// 20 rows, one a minute; probation 3 rows; one window on rows 10..=14.
fn small(scores: &[(usize, f64)]) -> Series {
    let timestamps: Vec<i64> = (0..20).map(|i| i * 60_000_000).collect();
    let mut row_scores = vec![0.0; 20];
    for &(i, s) in scores {
        row_scores[i] = s;
    }
    Series::new(
        "cat/small.csv".into(),
        timestamps,
        &[(600_000_000, 840_000_000)],
        row_scores,
    )
    .unwrap()
}

#[test]
fn probation_is_fifteen_percent_capped_at_750_rows() {
    assert_eq!(probation(20), 3);
    assert_eq!(probation(4032), 604);
    assert_eq!(probation(5000), 750);
    assert_eq!(probation(22695), 750);
}

#[test]
fn windows_are_placed_on_rows_including_both_ends() {
    let s = small(&[]);
    assert_eq!(
        s.windows,
        [Window {
            first: 10,
            last: 14
        }]
    );
    // A window between rows still covers the rows inside it.
    let between = Series::new("x".into(), vec![0, 10, 20, 30], &[(5, 25)], vec![]).unwrap();
    assert_eq!(between.windows, [Window { first: 1, last: 2 }]);
    assert!(Series::new("x".into(), vec![0, 10], &[(3, 7)], vec![]).is_err());
    assert!(Series::new("x".into(), vec![0, 10, 20], &[(0, 10), (10, 20)], vec![]).is_err());
}

#[test]
fn only_the_first_detection_in_a_window_counts_and_false_positives_are_weighted_by_distance() {
    // Row 1: in probation, ignored. Row 5: before any window, −fp. Row 11: first detection,
    // position −(14 − 11 + 1)/5 = −0.8. Row 13: a later one in the same window, ignored.
    // Row 17: 3 rows past a 5-row window, y = 3/4.
    let s = small(&[(1, 1.0), (5, 1.0), (11, 1.0), (13, 1.0), (17, 1.0)]);
    let tally = score(&s, STANDARD, 0.5);
    let expected = sigma(-0.8) / sigma(-1.0) - 0.11 + 0.11 * sigma(0.75);
    assert!((tally.score - expected).abs() < 1e-12, "{}", tally.score);
    assert!(sigma(0.75) < 0.0);
    assert_eq!(
        (tally.tp, tally.fn_, tally.fp, tally.tn),
        (2, 3, 2, 10),
        "17 rows after probation"
    );
    assert_eq!((tally.windows, tally.detected), (1, 1));
    assert_eq!(tally.first_detections, [Some(11)]);
    // The low-FN profile doubles the cost of a miss.
    let missed = score(&small(&[]), PROFILES[2].costs, 0.5);
    assert_eq!(missed.score, -2.0);
    // A detection on the window's first row earns exactly tpWeight.
    assert!((score(&small(&[(10, 1.0)]), STANDARD, 0.5).score - 1.0).abs() < 1e-12);
}

#[test]
fn far_false_positives_cost_the_full_weight() {
    // 200 rows, a 5-row window on rows 40..=44: row 100 is 56/4 = 14 widths past it (> 3).
    let timestamps: Vec<i64> = (0..200).collect();
    let mut scores = vec![0.0; 200];
    scores[100] = 1.0;
    let s = Series::new("x".into(), timestamps, &[(40, 44)], scores).unwrap();
    assert!((score(&s, STANDARD, 1.0).score - (-1.0 - 0.11)).abs() < 1e-12);
}

#[test]
fn the_corpus_threshold_is_the_best_distinct_score() {
    // 0.95 outside the window, 0.9 on its first row, 0.5 on many rows outside.
    let mut marks = vec![(5, 0.95), (10, 0.9)];
    marks.extend((15..20).map(|i| (i, 0.5)));
    let s = small(&marks);
    let best = optimise(std::slice::from_ref(&s), STANDARD);
    assert_eq!(best.threshold, 0.9);
    assert!((best.score - (1.0 - 0.11)).abs() < 1e-12);
    assert!((score(&s, STANDARD, 0.9).score - best.score).abs() < 1e-12);
    // With nothing worth flagging the optimiser keeps "never": the null score.
    let mut scores = vec![0.0; 200];
    scores[100] = 1.0;
    let useless = Series::new("x".into(), (0..200).collect(), &[(40, 44)], scores).unwrap();
    let best = optimise(&[useless], STANDARD);
    assert_eq!((best.threshold, best.score), (f64::INFINITY, -1.0));
}

/// The published per-file table `relativeEntropy_<profile>_scores.csv`:
/// file → (score, tp, tn, fp, fn).
fn published_table(profile: &str) -> BTreeMap<String, (f64, u64, u64, u64, u64)> {
    let path = nab_dir().join(format!(
        "reference/relativeEntropy/relativeEntropy_{profile}_scores.csv"
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.starts_with("Totals"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (
                f[2].to_owned(),
                (f[4].parse().unwrap(), n(5), n(6), n(7), n(8)),
            )
        })
        .collect()
}

#[test]
fn published_relative_entropy_scores_are_reproduced() {
    let nab = nab_dir();
    let labels = corpus::read_windows(&nab.join("labels/combined_windows.json")).unwrap();
    let series = load_results(&nab.join("reference/relativeEntropy"), &labels).unwrap();
    assert_eq!(series.len(), 58);
    let windows: usize = labels.values().map(Vec::len).sum();
    assert_eq!(windows, 116);
    let evaluation = evaluate(&series, windows);

    let published: serde_json::Value =
        serde_json::from_reader(File::open(nab.join("reference/final_results.json")).unwrap())
            .unwrap();
    let raw: serde_json::Value =
        serde_json::from_reader(File::open(nab.join("reference/thresholds.json")).unwrap())
            .unwrap();
    let mut normalised = Vec::new();
    for p in &evaluation.profiles {
        let name = p.profile.name;
        let want = published["relativeEntropy"][name].as_f64().unwrap();
        assert!(
            (p.normalised - want).abs() < 1e-6,
            "{name}: {} vs {want}",
            p.normalised
        );
        let want_raw = raw["relativeEntropy"][name]["score"].as_f64().unwrap();
        assert!((p.best.score - want_raw).abs() < 1e-6, "{name}");
        normalised.push(format!("{:.1}", p.normalised));
        // Every file, at the published threshold, as in NAB's own table.
        let threshold = raw["relativeEntropy"][name]["threshold"].as_f64().unwrap();
        let table = published_table(name);
        assert_eq!(table.len(), 58);
        for s in &series {
            let t = score(s, p.profile.costs, threshold);
            let (score, tp, tn, fp, fn_) = table[&s.name];
            assert!(
                (t.score - score).abs() < 1e-9,
                "{name} {}: {}",
                s.name,
                t.score
            );
            assert_eq!((t.tp, t.tn, t.fp, t.fn_), (tp, tn, fp, fn_), "{}", s.name);
        }
    }
    assert_eq!(normalised, ["54.6", "47.6", "58.8"]);
}

#[test]
fn alert_sink_keeps_raised_alert_times_across_split_writes() {
    let mut sink = AlertSink::default();
    let text = concat!(
        r#"{"kind":"window","rule":"r","ts":5,"start":0,"end":5,"values":{}}"#,
        "\n",
        r#"{"kind":"alert","rule":"r","device":"d","metric":"m","ts":7,"state":"raised"}"#,
        "\n",
        r#"{"kind":"alert","rule":"r","device":"d","metric":"m","ts":9,"state":"cleared"}"#,
        "\n",
        r#"{"kind":"alert","rule":"r","device":"d","metric":"m","ts":12,"state":"raised"}"#,
    );
    for chunk in text.as_bytes().chunks(7) {
        sink.write_all(chunk).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(sink.raised, [(0, 7), (0, 12)]);
}

#[test]
fn raised_alerts_land_on_the_row_that_raised_them_even_after_a_step_back_in_time() {
    // Rows at 0, 60, 120, 180, then a step back to 90, then 240, 300 (no final newline).
    // Above 5 at 120, 90 and 300, with a clear in between each: three raises, each on its
    // own row; the one at 90 must not be credited to the earlier row at 120.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.csv");
    std::fs::write(
        &path,
        "timestamp,value\n0,0\n60,0\n120,9\n180,0\n90,9\n\n240,0\n300,9",
    )
    .unwrap();
    let rules = RuleSet::parse_str(
        "rules:\n  - name: r\n    window: { count: 1 }\n    alert: { when: \"max > 5\" }\n",
        "r.yaml",
    )
    .unwrap();
    let rows = corpus::read_rows(&path).unwrap();
    assert_eq!(rows.timestamps.len(), 7);
    assert_eq!(rows.lines, [2, 3, 4, 5, 6, 8, 9]);
    let (scores, stats) = detect(&rules, &path, &rows, 10).unwrap();
    assert_eq!(scores, [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!((stats.values, stats.after_end), (7, 0));
}

#[test]
fn the_shipped_nab_rule_file_raises_once_on_a_spike() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules/nab.yaml");
    let rules = crate::config::rule_files::load_paths(&[path])
        .all_or_nothing()
        .unwrap();
    // 400 samples alternating 5 and 6, one of 20 on row 350: both rules raise there (a new
    // extreme; a departure of the EWMA by more than 4 sigma), and nowhere else.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("spike.csv");
    let csv: String = (0..400)
        .map(|i| {
            let v = if i == 350 { 20 } else { 5 + i % 2 };
            format!("{},{v}\n", i * 300)
        })
        .collect();
    std::fs::write(&data, format!("timestamp,value\n{csv}")).unwrap();
    let rows = corpus::read_rows(&data).unwrap();
    let (scores, stats) = detect(&rules, &data, &rows, 10).unwrap();
    assert_eq!(stats.values, 400);
    let raised: Vec<usize> = (0..400).filter(|&i| scores[i] == 1.0).collect();
    assert_eq!(raised, [350]);
}
