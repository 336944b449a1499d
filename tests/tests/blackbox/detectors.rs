//! Anomaly detectors through the real binary: a `missing` alert raised by the agent's
//! processing-time advance once a device goes quiet (the engine reads no clock), and
//! detector alerts with their scores in `weir replay` output.

use std::time::Duration;

use anyhow::Result;
use weir_tests::{Mosquitto, Publisher, TestDir};

use crate::common::{Running, distinct_alerts, publish_series, replay_events, start_with_cloud};

const RULES: &str = "rules:
  - name: pressure-high
    select: { device: \"pump-*\", metric: pressure }
    detect: { threshold: { raise: 10, clear: 8, for: 1s } }
    alert: { severity: critical }
  - name: pump-silent
    select: { device: \"pump-*\", metric: pressure }
    detect: { missing: 2s }
    alert: { severity: warning, message: \"{device} silent for {missing:.0} s\" }
";

#[test]
fn a_quiet_device_raises_missing_on_processing_time_and_its_return_clears_it() -> Result<()> {
    let Running {
        dir: _dir,
        devices,
        cloud: _cloud,
        collector,
        mut agent,
    } = start_with_cloud("detectors", "gw-d", Mosquitto::start()?, "pumps", RULES)?;
    let mut publisher = Publisher::connect(devices.port())?;
    let topic = "plant/pump-1/pressure";
    publish_series(
        &mut publisher,
        topic,
        Duration::from_millis(100),
        Duration::from_millis(2500),
        |_| 12.0,
    )?;
    // Silence: the agent advances event time to `now - idle_close` (5 s in the test config)
    // every 250 ms, so the alert comes about 2 s + 5 s after the last sample.
    let messages = collector
        .wait_for("a missing-data alert", Duration::from_secs(30), |m| {
            distinct_alerts(m)
                .iter()
                .any(|a| a.str("rule") == Some("pump-silent"))
        })
        .map_err(|e| agent.explain(e))?;
    let alerts = distinct_alerts(&messages);
    let high: Vec<_> = alerts
        .iter()
        .filter(|a| a.str("rule") == Some("pressure-high"))
        .collect();
    assert_eq!(
        high.len(),
        1,
        "{:#?}",
        alerts.iter().map(|a| a.summary()).collect::<Vec<_>>()
    );
    assert_eq!(high[0].str("state"), Some("raised"));
    assert_eq!(
        high[0].str("condition"),
        Some("threshold(> 10, clear at 8, for 1s)")
    );
    assert_eq!(high[0].f64("value"), Some(12.0));
    let silent = alerts
        .iter()
        .find(|a| a.str("rule") == Some("pump-silent"))
        .expect("waited for it");
    assert_eq!(silent.str("state"), Some("raised"), "{}", silent.summary());
    assert_eq!(silent.str("severity"), Some("warning"));
    assert_eq!(silent.str("device"), Some("pump-1"));
    assert_eq!(silent.f64("score"), Some(2.0), "{}", silent.summary());
    assert!(
        silent.field("value").is_some_and(|v| v.is_null()),
        "{}",
        silent.summary()
    );
    assert_eq!(
        silent.str("message"),
        Some("pump-1 silent for 2 s"),
        "{}",
        silent.summary()
    );

    // The device is back: the next sample clears it.
    publish_series(
        &mut publisher,
        topic,
        Duration::from_millis(100),
        Duration::from_millis(300),
        |_| 12.0,
    )?;
    collector
        .wait_for("the missing alert cleared", Duration::from_secs(15), |m| {
            distinct_alerts(m)
                .iter()
                .any(|a| a.str("rule") == Some("pump-silent") && a.str("state") == Some("cleared"))
        })
        .map_err(|e| agent.explain(e))?;
    agent.assert_running()?;
    Ok(())
}

#[test]
fn replay_reports_detector_alerts_with_scores_and_no_silence_at_the_end_of_the_file() -> Result<()>
{
    let dir = TestDir::new("replay-detectors")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:
  - name: stuck
    detect: { flatline: { for: 20s } }
    alert: { severity: warning }
  - name: gap
    detect: { missing: 30s }
    alert: { severity: info }
",
    )?;
    // 1 Hz for 60 s with a moving value, stuck at 5 for 30 s, a 100 s gap, 10 s more.
    let mut csv = String::from("timestamp,value\n");
    for t in 0..60 {
        csv.push_str(&format!("{},{}\n", 1_700_000_000 + t, t % 7));
    }
    for t in 60..90 {
        csv.push_str(&format!("{},5\n", 1_700_000_000 + t));
    }
    for t in 190..200 {
        csv.push_str(&format!("{},{}\n", 1_700_000_000 + t, t % 7));
    }
    let data = dir.write("pump-3.csv", &csv)?;
    let (events, _) = replay_events(&rules, &data)?;
    let got: Vec<(String, String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["rule"].as_str().unwrap_or_default().to_owned(),
                e["state"].as_str().unwrap_or_default().to_owned(),
                e["ts"].as_i64().unwrap_or_default() / 1_000_000 - 1_700_000_000,
            )
        })
        .collect();
    // Within one sample, events come in rule order: the sample at 190 clears `stuck`, then
    // shows `gap` the 100 s hole (raised at 89 + 30 s, cleared at once).
    let want = [
        ("stuck", "raised", 80), // flat at 5 from 60 on: 20 s later
        ("stuck", "cleared", 190),
        ("gap", "raised", 119),
        ("gap", "cleared", 190),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(r, s, t)| ((*r).to_owned(), (*s).to_owned(), *t))
        .collect();
    assert_eq!(got, want, "{events:#?}");
    assert_eq!(events[0]["score"], 20.0);
    assert_eq!(events[0]["condition"], "flatline(within 0 for 20s)");
    assert_eq!(
        events[3]["score"], 101.0,
        "seconds since the previous sample"
    );
    Ok(())
}

#[test]
fn replay_emits_trend_predictions_and_the_alert_when_the_limit_is_near() -> Result<()> {
    let dir = TestDir::new("replay-trend")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:
  - name: bearing-trend
    window: { tumbling: 1m }
    detect: { trend: { above: 90, over: 1h, horizon: 30m, min_points: 5 } }
    alert: { severity: warning, message: \"{above} in {score:.0} s\" }
",
    )?;
    // 60 °C rising 0.01 °C/s for 25 minutes: 90 °C is reached 3000 s after the start.
    let mut csv = String::from("timestamp,value\n");
    for t in 0..1500 {
        csv.push_str(&format!(
            "{},{}\n",
            1_700_000_040 + t,
            60.0 + 0.01 * t as f64
        ));
    }
    let data = dir.write("pump-9.csv", &csv)?;
    let (events, _) = replay_events(&rules, &data)?;
    let predictions: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "prediction")
        .collect();
    // 25 one-minute windows; predictions from the 5th on.
    assert_eq!(predictions.len(), 21, "{events:#?}");
    let last = predictions[predictions.len() - 1];
    assert_eq!(last["threshold"], 90.0);
    assert_eq!(last["points"], 25, "every window is within the hour");
    let r2 = last["r2"].as_f64().unwrap_or_default();
    assert!(r2 > 0.9999, "{last}");
    // The last window ends 1500 s in, when the file ends (last sample 1499 s: the window
    // holds all its samples, so it is judged, stamped at that last sample); its mean lags
    // the end by 30.5 s: about 1531.5 s to go from 1499 s (1531.1: the last point of the
    // fit sits 1 s early on the 60 s grid, which tilts the line a little).
    let secs = last["seconds_to_threshold"].as_f64().unwrap_or_default();
    assert!((secs - 1531.1).abs() < 0.05, "{last}");
    let alerts: Vec<&serde_json::Value> = events.iter().filter(|e| e["kind"] == "alert").collect();
    assert_eq!(alerts.len(), 1, "{events:#?}");
    assert_eq!(alerts[0]["state"], "raised");
    let message = alerts[0]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("90 in 17"), "{message}");
    Ok(())
}

#[test]
fn replay_reports_changepoints_as_onset_and_return_events() -> Result<()> {
    let dir = TestDir::new("replay-changepoint")?;
    let rules = dir.write(
        "rules.yaml",
        "rules:
  - name: flow-level
    detect: { changepoint: { baseline: 100 } }
    alert: { severity: info }
",
    )?;
    // 1 Hz: 50 ± 0.5 for 300 s, 53 ± 0.5 for 300 s, back to 50 for 300 s.
    let mut csv = String::from("timestamp,value\n");
    for t in 0..900 {
        let level = if (300..600).contains(&t) { 53.0 } else { 50.0 };
        let ripple = [0.0, 0.5, -0.5, 0.25, -0.25][t % 5];
        csv.push_str(&format!("{},{}\n", 1_700_000_000 + t, level + ripple));
    }
    let data = dir.write("pump-5.csv", &csv)?;
    let (events, _) = replay_events(&rules, &data)?;
    let secs = |e: &serde_json::Value, key: &str| {
        e[key].as_i64().unwrap_or_default() / 1_000_000 - 1_700_000_000
    };
    let got: Vec<(&str, i64, i64)> = events
        .iter()
        .map(|e| {
            (
                e["change"].as_str().unwrap_or_default(),
                secs(e, "onset"),
                secs(e, "ts"),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e["kind"] == "changepoint"),
        "{events:#?}"
    );
    assert_eq!(got[0].0, "onset");
    assert!(
        (295..=300).contains(&got[0].1) && (300..310).contains(&got[0].2),
        "{got:?}"
    );
    assert_eq!(got[1].0, "return");
    assert!(
        (595..=600).contains(&got[1].1) && (600..610).contains(&got[1].2),
        "{got:?}"
    );
    assert!((events[0]["after"].as_f64().unwrap_or_default() - 53.0).abs() < 0.5);
    Ok(())
}
