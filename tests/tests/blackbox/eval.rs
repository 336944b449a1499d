//! `weir eval` as a user runs it: a rule file, a small labelled corpus in NAB's layout, and
//! the report on stdout, with figures worked out by hand from NAB's scoring rules.

use std::path::{Path, PathBuf};

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

/// One alert per sample above 5 (a count window of one sample: the alert follows the value).
const RULES: &str = "rules:\n  - name: spike\n    select: { metric: \"*\" }\n    window: { count: 1 }\n    alert: { when: \"max > 5\" }\n";

/// 100 rows, one a minute from 2014-04-01 00:00, 0 except `high` rows at 10.
fn series(high: &[usize]) -> String {
    let mut csv = String::from("timestamp,value\n");
    for i in 0..100 {
        let value = if high.contains(&i) { 10 } else { 0 };
        csv.push_str(&format!(
            "2014-04-01 {:02}:{:02}:00,{value}\n",
            i / 60,
            i % 60
        ));
    }
    csv
}

/// a.csv has one window, 00:56–01:04 (rows 56..=64); b.csv none.
fn labels(dir: &TestDir) -> Result<PathBuf> {
    dir.write(
        "labels/combined_windows.json",
        r#"{"cat/a.csv": [["2014-04-01 00:56:00.000000", "2014-04-01 01:04:00.000000"]], "cat/b.csv": []}"#,
    )
}

/// `weir eval` on `dir/data`; its stdout, once it has succeeded.
fn eval(dir: &TestDir, rules: &Path, labels: &Path, extra: &[&str]) -> Result<String> {
    let out = weir_command()?
        .arg("eval")
        .args(extra)
        .arg("--rules")
        .arg(rules)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--labels")
        .arg(labels)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[test]
fn eval_scores_alerts_against_labelled_windows_as_nab_does() -> Result<()> {
    let dir = TestDir::new("eval")?;
    let rules = dir.write("rules.yaml", RULES)?;
    // a: the anomaly is labelled at 01:02 inside the window 00:56–01:04 (rows 56..=64); the
    // values jump on rows 60–62, so the alert is raised on row 60. b: no anomaly, one spike
    // on row 30: a false alarm, after the 15 probation rows, with no window before it.
    dir.write("data/cat/a.csv", &series(&[60, 61, 62]))?;
    // A line neither reader can use is skipped by both, and counted.
    dir.write("data/cat/b.csv", &(series(&[30]) + "not,a,row\n"))?;
    let labels = labels(&dir)?;
    dir.write(
        "labels/combined_labels.json",
        r#"{"cat/a.csv": ["2014-04-01 01:02:00"], "cat/b.csv": []}"#,
    )?;
    let stdout = eval(&dir, &rules, &labels, &[])?;
    // Row 60 of the 9-row window: y = -(64 - 60 + 1)/9, credit σ(y)/σ(-1) = 0.894905;
    // the false alarm costs fpWeight. standard: 0.784905 → 100 (0.784905 + 1) / 2 = 89.2;
    // low FP: 0.894905 - 0.22 → 83.7; low FN: 0.784905 against null -2 → 92.8.
    let profile = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{stdout}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        profile("standard")[1..],
        ["1", "0.785", "-1.0", "1.0", "89.2"]
    );
    assert_eq!(
        profile("reward_low_FP_rate")[1..],
        ["1", "0.675", "-1.0", "1.0", "83.7"]
    );
    assert_eq!(
        profile("reward_low_FN_rate")[1..],
        ["1", "0.785", "-2.0", "1.0", "92.8"]
    );
    assert_eq!(profile("cat")[1..], ["2", "1", "1", "1", "0.785", "89.2"]);
    assert!(
        stdout.contains("1 of 1 windows detected, 1 false alarms"),
        "{stdout}"
    );
    assert!(stdout.contains("median lead: 2m before"), "{stdout}");
    assert!(stdout.contains("throughput: 200 values"), "{stdout}");
    assert!(stdout.contains("1 lines skipped"), "{stdout}");
    Ok(())
}

#[test]
fn eval_prints_chance_the_healthy_false_alarm_rate_and_each_constant_moved() -> Result<()> {
    let dir = TestDir::new("eval-trust")?;
    let rules = dir.write("rules.yaml", RULES)?;
    dir.write("data/cat/a.csv", &series(&[60, 61, 62]))?;
    dir.write("data/cat/b.csv", &series(&[30]))?;
    let labels = labels(&dir)?;
    let stdout = eval(
        &dir,
        &rules,
        &labels,
        &["--baselines", "20", "--sensitivity"],
    )?;
    // Random alarms: one per file, on any of the 85 rows after probation. The window has 9
    // of a.csv's: chance finds it about one seed in 9, so its mean is far below the
    // detector's 89.2, and it varies between seeds.
    let chance = stdout
        .lines()
        .find(|l| l.contains("random") && l.trim_start().starts_with("standard"))
        .unwrap_or_else(|| panic!("no chance line in\n{stdout}"));
    let words: Vec<&str> = chance.split_whitespace().collect();
    assert_eq!(words[1], "89.2", "{chance}");
    let mean: f64 = words[3].parse()?;
    let spread: f64 = words[5].parse()?;
    assert!(mean < 60.0 && spread > 0.0, "{chance}");
    assert!(stdout.contains("20 seeds"), "{stdout}");
    // b.csv has no window: one raise from row 15 (00:15, after probation) to row 99 (01:39),
    // 1.4 h.
    assert!(
        stdout.contains("healthy files (no labelled window): 1 files, 1.4 h after probation, 1 raises: 0.7143 false alarms per hour"),
        "{stdout}"
    );
    // The rule's constants: `count: 1` (a count: 0 is refused, 2 scores) and the 5 in the
    // condition (±1: every high value is 10, so nothing changes).
    let row = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} row in\n{stdout}"))
            .to_owned()
    };
    let five = row("rules.yaml:5:");
    assert!(five.contains("4: 89.2 / 83.7 / 92.8 (+0.0)"), "{five}");
    assert!(five.contains("6: 89.2 / 83.7 / 92.8 (+0.0)"), "{five}");
    let count = row("count: 1");
    assert!(count.contains("0: not valid"), "{count}");
    assert!(count.contains("2: "), "{count}");
    assert!(stdout.contains("worst one-step move:"), "{stdout}");
    Ok(())
}

#[test]
fn eval_with_a_broken_rule_file_exits_2() -> Result<()> {
    let dir = TestDir::new("eval-bad-rules")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: x\n    window: { count: 1 }\n    alert: { when: \"max >\" }\n",
    )?;
    dir.write("data/cat/a.csv", &series(&[]))?;
    let labels = dir.write("combined_windows.json", r#"{"cat/a.csv": []}"#)?;
    let out = weir_command()?
        .args(["eval", "--rules"])
        .arg(&rules)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--labels")
        .arg(&labels)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:", rules.display())),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn eval_scores_multi_column_recordings_against_fault_intervals() -> Result<()> {
    let dir = TestDir::new("eval-faults")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: hot\n    select: { metric: temp }\n    window: { count: 1 }\n    alert: { when: \"max > 90\" }\n",
    )?;
    // pump-1: 120 minutes, temp above 90 from minute 100 (the fault starts at 95), and a
    // spike at minute 30 (a false alarm); current in its own column, never alerting.
    let mut csv = String::from("timestamp,temp,current\n");
    for i in 0..120 {
        let temp = if i >= 100 || i == 30 { 95 } else { 60 };
        csv.push_str(&format!(
            "2024-01-01 {:02}:{:02}:00,{temp},3.5\n",
            i / 60,
            i % 60
        ));
    }
    dir.write("data/pump-1.csv", &csv)?;
    let faults = dir.write(
        "faults.json",
        r#"{"pump-1.csv": [["2024-01-01 01:35:00", "2024-01-01 01:59:00"]]}"#,
    )?;
    let out = weir_command()?
        .arg("eval")
        .arg("--rules")
        .arg(&rules)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--faults")
        .arg(&faults)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("all "))
        .unwrap_or_else(|| panic!("no total in\n{stdout}"));
    let words: Vec<&str> = all.split_whitespace().collect();
    // faults 1, detected 1, median delay 300 s (01:40 - 01:35), 1 false alarm in the
    // 1.58 h outside the fault (1.98 h of recording).
    assert_eq!(
        words[1..11],
        [
            "faults", "1", "detected", "1", "median", "delay", "300", "s", "false", "alarms"
        ],
        "{all}"
    );
    assert_eq!(words[11], "1", "{all}");
    assert!(
        all.contains("(0.632 per healthy hour, 1.6 of 2.0 h)"),
        "{all}"
    );
    Ok(())
}
