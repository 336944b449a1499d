//! `weir eval` on more than NAB's layout, on the real binary: the simulator corpus's
//! long-format recordings with its own label file (faults among labelled operating changes),
//! and remaining-life scoring of run-to-failure units (`--rul`).

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

fn eval(args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = weir_command()?.arg("eval").args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[test]
fn eval_scores_long_format_recordings_against_the_simulator_labels_beside_random_alarms()
-> Result<()> {
    let dir = TestDir::new("eval-sim")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: hot\n    select: { device: \"pump-*\", metric: temp }\n    window: { count: 1 }\n    alert: { when: \"max > 90\" }\n",
    )?;
    // Two hours of pump-7 every minute, long format: temp over 90 from minute 100 (the fault
    // starts at 95 and ends at 105), and at minute 30, during a labelled load change, which is
    // normal operation: a false alarm. Flow rides along in the same file.
    let t0 = 1_767_225_600;
    let mut csv = String::from("timestamp,device,metric,value\n");
    for i in 0..120 {
        let temp = if i >= 100 || i == 30 { 95 } else { 60 };
        csv.push_str(&format!("{},pump-7,temp,{temp}\n", t0 + 60 * i));
        csv.push_str(&format!("{},pump-7,flow,80\n", t0 + 60 * i));
    }
    dir.write("data/pump-wear.csv", &csv)?;
    let labels = dir.write(
        "labels.json",
        &format!(
            r#"{{"pump-wear.csv": {{"device": "pump-7", "machine": "pump", "labels": [
              {{"kind": "load_change", "fault": false, "start": {}, "end": {}, "sensors": ["flow"]}},
              {{"kind": "bearing_wear", "fault": true, "start": {}, "end": {}, "sensors": ["temp"]}}]}}}}"#,
            t0 + 60 * 29,
            t0 + 60 * 31,
            t0 + 60 * 95,
            t0 + 60 * 105
        ),
    )?;
    let data = dir.path().join("data");
    let stdout = eval(&[
        "--rules".as_ref(),
        rules.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--faults".as_ref(),
        labels.as_os_str(),
        "--grace".as_ref(),
        "10m".as_ref(),
    ])?;
    let all = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("all "))
        .unwrap_or_else(|| panic!("no total in\n{stdout}"));
    let words: Vec<&str> = all.split_whitespace().collect();
    // Detected at minute 100 (300 s after the onset; the alert stays raised to the end);
    // the spike during the load change is the one false alarm, over the 1.6 h outside the
    // fault's window (minutes 95 to 105 + 10).
    assert_eq!(
        words[1..9],
        [
            "faults", "1", "detected", "1", "median", "delay", "300", "s"
        ],
        "{all}"
    );
    assert_eq!(words[11], "1", "{all}");
    assert!(
        all.contains("(0.606 per healthy hour, 1.6 of 2.0 h)"),
        "{all}"
    );
    let random = stdout
        .lines()
        .find(|l| l.contains("random alarms, same count per file (10 seeds)"))
        .unwrap_or_else(|| panic!("no random alarms in\n{stdout}"));
    assert!(random.contains("faults   1 detected"), "{random}");
    Ok(())
}

#[test]
fn eval_scores_remaining_life_predictions_against_the_truth() -> Result<()> {
    let dir = TestDir::new("eval-rul")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: rul\n    detect: { trend: { above: 1, over: 1000s, horizon: 1d, min_points: 5 } }\n    alert: { severity: info }\n",
    )?;
    // Three units wearing linearly at different rates, cut after 20 cycles: a line knows
    // exactly when each reaches 1 (after 100, 50 and 25 cycles).
    let mut units = String::from("unit,cycle,health\n");
    let mut truth = String::from("unit,cut,rul\n");
    for (u, rate) in [(1, 0.01), (2, 0.02), (3, 0.04)] {
        for c in 0..=20 {
            units.push_str(&format!("{u},{c},{}\n", rate * f64::from(c)));
        }
        truth.push_str(&format!("{u},20,{}\n", 1.0 / rate - 20.0));
    }
    let units = dir.write("units.csv", &units)?;
    let truth = dir.write("truth.csv", &truth)?;
    let stdout = eval(&[
        "--rules".as_ref(),
        rules.as_os_str(),
        "--data".as_ref(),
        units.as_os_str(),
        "--rul".as_ref(),
        truth.as_os_str(),
        "--sensitivity".as_ref(),
    ])?;
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let rules_line = line("rules ");
    assert_eq!(rules_line[1..3], ["units", "3"], "{stdout}");
    assert_eq!(rules_line[3], "RMSE");
    let rmse: f64 = rules_line[4].parse()?;
    assert!(rmse < 0.1, "{stdout}");
    let constant = line("constant guess");
    let baseline: f64 = constant[5].parse()?;
    assert!(baseline > 10.0, "{stdout}");
    // Each constant moved a step: `above: 1` as a count (0 and 2) moves every forecast by
    // many cycles; `over` changes nothing on exact lines; `min_points: 4` is refused.
    let row = |key: &str| {
        stdout
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no `{key}` row in\n{stdout}"))
    };
    assert!(row("over: 1000s").contains("667s: 0.0 (+0.0)"), "{stdout}");
    assert!(row("min_points: 5").contains("4: not valid"), "{stdout}");
    let worst = row("worst one-step move:");
    assert!(
        worst.contains("above: 1 -> ") && worst.contains("[cliff"),
        "{worst}"
    );
    Ok(())
}
