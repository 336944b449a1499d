//! `engine.max_state_bytes`: `weir check` warns when the rules could need more state than the
//! budget at `engine.max_series`, and `weir replay` under that budget refuses (and counts) the
//! rule slots past it instead of growing. Regression for issue 15 item 5 (a hopping rule with
//! lateness over 10,000 series reached 1.55 GB in `weir replay`).

use anyhow::Result;
use weir_tests::{TestDir, weir_command};

const HOPPING: &str = "rules:
  - name: hop
    window: { hopping: { size: 64s, hop: 1s }, lateness: 192s }
    aggregates: [mean, p99, kurtosis]
";

#[test]
fn check_warns_about_the_budget_and_replay_stays_within_it() -> Result<()> {
    let dir = TestDir::new("engine-budget")?;
    dir.write("hop.yaml", HOPPING)?;
    let config = dir.write(
        "weir.yaml",
        "gateway_id: g\nrules: [hop.yaml]\nsources: [{simulator: {interval: 1s}}]\n\
         outbox: {path: outbox.db}\nmetrics: {listen: ~}\n\
         engine: {max_series: 1000, max_state_bytes: 4MiB}\n",
    )?;
    let out = weir_command()?
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not a refusal: {err}");
    assert!(err.contains("warning: the rules may need up to"), "{err}");
    assert!(err.contains("rule `hop`"), "{err}");

    // 500 series, 10 s each: the budget admits only a few of them.
    let mut csv = String::from("timestamp,device,metric,value\n");
    for t in 0..10 {
        for d in 0..500 {
            csv.push_str(&format!("{},d{d},v,{}\n", 1_700_000_000 + t, (t + d) % 7));
        }
    }
    let data = dir.write("data.csv", &csv)?;
    let out = weir_command()?
        .args(["replay", "-r"])
        .arg(dir.path().join("hop.yaml"))
        .arg("-c")
        .arg(&config)
        .arg("-o")
        .arg(dir.path().join("events.jsonl"))
        .arg(&data)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let refused: u64 = err
        .split(", ")
        .find_map(|part| part.strip_suffix(" rule slots over the memory budget"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no budget count in: {err}"));
    // About 600 KB per series: 4 MiB admits 6 of 500.
    assert!((490..500).contains(&refused), "{refused} refused: {err}");
    Ok(())
}
