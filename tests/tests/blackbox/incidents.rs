//! Device-level detection end to end through `weir replay`: the shipped pump rules
//! (`examples/rules/pump.yaml`: a multivariate rule, physical limits, stuck-sensor
//! rules, a `fuse` rule and `incidents:`) over the shipped cavitation recording
//! (`data/sim/pump-process.csv`), after the pump's healthy recording for the warm-up.
//! One fault must come out as one incident whose contributors are the alerts that fired,
//! those alerts must still be records of their own, and every number must be finite.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;
use weir_tests::{TestDir, weir_command};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The machine's 6 h healthy recording, shifted to end where `data` starts, then `data`:
/// what a gateway sees when the shipped rules' six-hour warm-up has learned the pump.
fn with_baseline(dir: &TestDir, data: &str) -> Result<PathBuf> {
    let healthy = std::fs::read_to_string(repo("data/sim/pump-healthy.csv"))?;
    let scored = std::fs::read_to_string(repo(data))?;
    let mut csv = String::from("timestamp,device,metric,value\n");
    for line in healthy.lines().skip(1) {
        let (ts, rest) = line.split_once(',').expect("timestamp,rest");
        let ts: i64 = ts.parse()?;
        csv.push_str(&format!("{},{rest}\n", ts - 6 * 3600));
    }
    for line in scored.lines().skip(1) {
        csv.push_str(line);
        csv.push('\n');
    }
    dir.write("pump.csv", &csv)
}

fn replay(rules: &str, data: &std::path::Path) -> Result<Vec<Value>> {
    let out = weir_command()?
        .arg("replay")
        .arg("--rules")
        .arg(repo(rules))
        .arg(data)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

#[test]
fn one_fault_is_one_incident_naming_its_alerts_which_stay_records() -> Result<()> {
    let dir = TestDir::new("incidents")?;
    let data = with_baseline(&dir, "data/sim/pump-process.csv")?;
    let events = replay("examples/rules/pump.yaml", &data)?;
    let incidents: Vec<&Value> = events.iter().filter(|e| e["kind"] == "incident").collect();
    let raises: Vec<&&Value> = incidents
        .iter()
        .filter(|e| e["state"] == "raised")
        .collect();
    assert_eq!(raises.len(), 1, "{incidents:#?}");
    let incident = raises[0];
    assert_eq!(incident["device"], "pump-1");
    assert_eq!(incident["metric"], "*");
    assert_eq!(incident["rule"], "incident");
    assert_eq!(incident["opened"], incident["ts"]);
    // The alerts that fired are records of their own, and every rule that raised on the
    // pump while the incident was open is a contributor (the raise names the first ones).
    let alerts: Vec<&Value> = events.iter().filter(|e| e["kind"] == "alert").collect();
    let raised_rules: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a["state"] == "raised")
        .filter_map(|a| a["rule"].as_str())
        .collect();
    assert!(raised_rules.len() >= 3, "{raised_rules:?}");
    let first = incident["contributors"].as_array().unwrap();
    assert!(!first.is_empty());
    for c in first {
        assert!(raised_rules.contains(c["rule"].as_str().unwrap()), "{c}");
        assert_eq!(c["raised"], incident["ts"]);
    }
    // The fused rule raised once the device rule and a physical limit agreed.
    let fused: Vec<&&Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "pump-fault-confirmed")
        .collect();
    assert_eq!(fused[0]["state"], "raised");
    assert_eq!(fused[0]["severity"], "critical");
    assert!(fused[0]["contributions"].as_object().unwrap().len() >= 2);
    // The multivariate alerts say which sensor moved, for all six sensors, finitely.
    for a in alerts.iter().filter(|a| a["rule"] == "pump-device") {
        let c = a["contributions"].as_object().unwrap();
        assert_eq!(c.len(), 6, "{a}");
        assert!(
            c.values().all(|v| v.as_f64().is_some_and(f64::is_finite)),
            "{a}"
        );
        assert!(a["score"].as_f64().is_some_and(f64::is_finite), "{a}");
    }
    Ok(())
}

#[test]
fn a_quantised_sensor_never_gives_a_non_finite_score() -> Result<()> {
    // The healthy recording's flow meter reports in 2 m³/h steps; replayed after itself,
    // so the six-hour warm-up is over and the multivariate rule judges every window.
    let dir = TestDir::new("incidents-quantised")?;
    let data = with_baseline(&dir, "data/sim/pump-healthy.csv")?;
    let events = replay("examples/rules/pump.yaml", &data)?;
    for e in events.iter().filter(|e| e["kind"] == "alert") {
        for key in ["score", "value"] {
            if let Some(v) = e.get(key) {
                assert!(v.as_f64().is_some_and(f64::is_finite), "{key} in {e}");
            }
        }
    }
    Ok(())
}
