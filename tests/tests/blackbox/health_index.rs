//! A multi-sensor health index as one rule, through `weir replay` on the real binary: `let`
//! values combine two metrics of a device, `ewma(x, alpha)` smooths the index across
//! windows, `aggregates:` publishes it, and `trend` forecasts when it reaches its limit.

use anyhow::Result;
use weir_tests::TestDir;

use crate::common::replay_events;

const RULES: &str = r#"rules:
  - name: pump-health
    select: { device: "pump-*", metric: bearing_temp }
    window: { tumbling: 1m }
    let:
      hi: "(mean - 50) / 40 + mean(metric.vibration) / 10"
      hi_smooth: "ewma(hi, 0.3)"
    aggregates: [hi, hi_smooth]
    detect:
      trend: { above: 1, over: 1h, horizon: 30m, min_points: 10 }
      value: hi_smooth
    alert: { severity: warning }
"#;

#[test]
fn replay_publishes_smooths_and_forecasts_a_two_sensor_health_index() -> Result<()> {
    let dir = TestDir::new("health-index")?;
    let rules = dir.write("rules.yaml", RULES)?;
    // 40 minutes of a wearing pump: temperature and vibration creep up together, with
    // alternating noise on the vibration the smoothing should take out. Vibration comes first
    // in each minute, so it is in before the temperature's window closes.
    let mut csv = String::from("timestamp,device,metric,value\n");
    let t0 = 1_767_225_600;
    for m in 0..=40 {
        let wiggle = if m % 2 == 0 { 0.5 } else { -0.5 };
        let vib = 1.0 + 0.05 * m as f64 + wiggle;
        let temp = 50.0 + 0.4 * m as f64;
        csv.push_str(&format!("{},pump-1,vibration,{vib}\n", t0 + 60 * m + 5));
        csv.push_str(&format!(
            "{},pump-1,bearing_temp,{temp}\n",
            t0 + 60 * m + 10
        ));
    }
    let data = dir.write("pump.csv", &csv)?;
    let (events, stderr) = replay_events(&rules, &data)?;

    let windows: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e["kind"] == "window")
        .map(|e| {
            let v = &e["values"];
            (v["hi"].as_f64().unwrap(), v["hi_smooth"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(windows.len(), 40, "{stderr}");
    // hi = 0.01·m + 0.1 + 0.005·m ± 0.05: it swings by 0.1 from window to window; the
    // smoothed index moves by less than half as much.
    let swing = |f: fn(&(f64, f64)) -> f64| {
        windows
            .windows(2)
            .skip(10)
            .map(|w| (f(&w[1]) - f(&w[0])).abs())
            .fold(0.0, f64::max)
    };
    let (raw, smooth) = (swing(|w| w.0), swing(|w| w.1));
    assert!(
        raw > 0.09 && smooth < 0.5 * raw,
        "raw {raw}, smooth {smooth}"
    );

    let predictions: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "prediction")
        .collect();
    assert!(predictions.len() >= 25, "{predictions:#?}");
    // The index climbs 0.015 per minute from about 0.7 at the end: 1 in about 20 minutes.
    let last = predictions.last().unwrap();
    let level = last["level"].as_f64().unwrap();
    let secs = last["seconds_to_threshold"].as_f64().unwrap();
    let want = (1.0 - level) / 0.015 * 60.0;
    assert!(
        (secs - want).abs() < 0.2 * want,
        "{secs} s at level {level}, want {want}"
    );
    let raised = events
        .iter()
        .find(|e| e["kind"] == "alert" && e["state"] == "raised")
        .expect("a trend alert once the index is within 30 minutes of 1");
    assert_eq!(raised["rule"], "pump-health");
    Ok(())
}
