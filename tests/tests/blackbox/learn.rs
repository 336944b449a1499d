//! `weir learn` then `weir replay` with the learned baseline, on the real binary: the
//! baseline a field engineer sets from a healthy recording instead of learning online.

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

use crate::common::replay_events;

/// A quantised flow meter (1 l/min steps) dithering around 50.
fn healthy(n: usize, shift: impl Fn(usize) -> f64) -> String {
    let mut csv = String::from("timestamp,device,metric,value\n");
    for t in 0..n {
        let v = 50.0 + [0.0, 1.0, 0.0, -1.0, 0.0][t % 5] + shift(t);
        csv.push_str(&format!("{},pump-1,flow,{v}\n", 1_700_000_000 + t));
    }
    csv
}

#[test]
fn learn_writes_baselines_that_rules_reference_and_detectors_start_from() -> Result<()> {
    let dir = TestDir::new("learn")?;
    let learn_rules = dir.write(
        "learn.yaml",
        "rules:\n  - name: flow-shift\n    select: { metric: flow }\n    detect: { cusum: {} }\n    alert: { severity: warning }\n",
    )?;
    let data = dir.write("healthy.csv", &healthy(3_600, |_| 0.0))?;
    let baseline = dir.path().join("pump-baseline.yaml");
    let out = weir_command()?
        .arg("learn")
        .arg("--rules")
        .arg(&learn_rules)
        .arg(&data)
        .arg("-o")
        .arg(&baseline)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3600 samples, 1 baselines"), "{stderr}");
    let text = std::fs::read_to_string(&baseline)?;
    // σ = sqrt(2/5) of the dither, MAD 0 (most values sit on 50), the step 1 l/min.
    for part in [
        "{ rule: \"flow-shift\", device: \"pump-1\", metric: \"flow\", n: 3600, mean: 50.000",
        "sigma: 0.63245553203367",
        "median: 50.0, mad: 0.0, step: 1.0 }",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }

    // The same rule referencing the file: judged from the first sample, so a shift of
    // +2 l/min 30 s into a recording (long before a 200-value warm-up) is found.
    let rules = dir.write(
        "pump.yaml",
        "rules:\n  - name: flow-shift\n    select: { metric: flow }\n    detect: { cusum: { baseline: pump-baseline.yaml } }\n    alert: { severity: warning }\n",
    )?;
    let faulty = dir.write(
        "faulty.csv",
        &healthy(120, |t| if t >= 30 { 2.0 } else { 0.0 }),
    )?;
    let (events, _) = replay_events(&rules, &faulty)?;
    let raised: Vec<i64> = events
        .iter()
        .filter(|e| e["state"] == "raised")
        .map(|e| e["ts"].as_i64().unwrap_or_default() / 1_000_000 - 1_700_000_000)
        .collect();
    assert_eq!(raised.len(), 1, "{events:#?}");
    assert!((30..40).contains(&raised[0]), "{raised:?}");

    // Learning online instead, the same recording raises nothing: the shift is inside the
    // warm-up. That is what the baseline file is for.
    let online = dir.write("online.yaml", &std::fs::read_to_string(&learn_rules)?)?;
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&online)
        .arg(&faulty)
        .output()?;
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"raised\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A missing baseline file is a rule error at the `baseline` key: exit 2, file:line:col.
    std::fs::remove_file(&baseline)?;
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(&rules)
        .arg(&faulty)
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:34", rules.display())),
        "{stderr}"
    );
    Ok(())
}
