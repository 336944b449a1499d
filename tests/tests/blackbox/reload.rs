//! Hot reload under traffic: SIGHUP swaps the rules between two samples, unchanged rules keep
//! their open windows, a changed rule restarts, and a broken rule file keeps the old set.
//!
//! Samples carry timestamps minutes ahead, so no window closes on processing time during the
//! test: every window closes only when the test's own later sample passes its end, which makes
//! the counts exact whatever the machine's load.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use weir_tests::{Message, Mosquitto, Publisher};

use crate::common::{STARTUP, start_with_cloud};

const RULES: &str = r#"
rules:
  - name: steady
    select: { device: pump-1, metric: temp }
    window: { tumbling: 10s }
    aggregates: [count]
  - name: tuned
    select: { device: pump-1, metric: temp }
    window: { tumbling: 10s }
    aggregates: [count]
    alert: { when: "max > 1000" }
  # Closes a window per probe sample pair: its event proves the samples before it were seen.
  - name: probe
    select: { device: probe, metric: tick }
    window: { count: 1 }
    aggregates: [last]
"#;

fn count_in(messages: &[Message], rule: &str, start_us: u64) -> Option<f64> {
    messages.iter().find_map(|m| {
        (m.str("kind") == Some("window")
            && m.str("rule") == Some(rule)
            && m.u64("start") == Some(start_us))
        .then(|| m.field("values")?.get("count")?.as_f64())
        .flatten()
    })
}

fn sighup(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .context("running `kill -HUP`")?;
    anyhow::ensure!(status.success(), "kill -HUP {pid}: {status}");
    Ok(())
}

#[test]
fn sighup_swaps_rules_keeping_unchanged_state_and_a_bad_file_keeps_the_old_set() -> Result<()> {
    let mut run = start_with_cloud("reload", "gw-reload", Mosquitto::start()?, "r", RULES)?;
    let mut publisher = Publisher::connect(run.devices.port())?;
    // Three minutes ahead (within the clock guard's 5 min), on a 10 s boundary.
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let base = (now_ms + 180_000) / 10_000 * 10_000;
    let sample = |p: &mut Publisher, offset_ms: u64| {
        p.publish(
            "plant/pump-1/temp",
            format!("{{\"value\": 20, \"ts\": {}}}", base + offset_ms),
        )
    };
    let mut probes = 0u64;
    let mut probe = |p: &mut Publisher, run: &crate::common::Running| -> Result<()> {
        probes += 1;
        p.publish(
            "plant/probe/tick",
            format!("{{\"value\": {probes}, \"ts\": {}}}", base + probes),
        )?;
        let want = probes as f64;
        run.collector
            .wait_for("the probe's window", STARTUP, |m| {
                m.iter().any(|m| {
                    m.str("rule") == Some("probe")
                        && m.field("values")
                            .and_then(|v| v.get("last"))
                            .and_then(|v| v.as_f64())
                            == Some(want)
                })
            })
            .map(drop)
    };

    for k in 0..5 {
        sample(&mut publisher, k * 1000)?;
    }
    probe(&mut publisher, &run)?;

    // Change `tuned`, add `fresh`, leave `steady` and `probe` as they were.
    let changed = RULES.replace("max > 1000", "max > 2000").replace(
        "rules:\n",
        "rules:\n  - name: fresh\n    select: { device: pump-1, metric: temp }\n    window: { tumbling: 10s }\n    aggregates: [count]\n",
    );
    run.dir.write("rules/r.yaml", &changed)?;
    sighup(run.agent.pid())?;
    run.agent.wait_for_log("rules reloaded", STARTUP)?;
    let log = run.agent.log_contents();
    assert!(
        log.contains("restarted=tuned") && log.contains("added=fresh") && log.contains("kept=2"),
        "{}",
        run.agent.log_tail()
    );

    for k in 5..10 {
        sample(&mut publisher, k * 1000)?;
    }
    sample(&mut publisher, 10_000)?;
    let start_us = base * 1000;
    let messages = run
        .collector
        .wait_for("the first windows of all three rules", STARTUP, |m| {
            ["steady", "tuned", "fresh"]
                .iter()
                .all(|r| count_in(m, r, start_us).is_some())
        })
        .map_err(|e| run.agent.explain(e))?;
    // `steady` kept the 5 samples it had before the reload; the others saw only the 5 after.
    assert_eq!(count_in(&messages, "steady", start_us), Some(10.0));
    assert_eq!(count_in(&messages, "tuned", start_us), Some(5.0));
    assert_eq!(count_in(&messages, "fresh", start_us), Some(5.0));

    // A broken `when` in the file: the reload is refused with the location, the old set runs.
    run.dir.write(
        "rules/r.yaml",
        &changed.replace("max > 2000", "max >> 2000"),
    )?;
    sighup(run.agent.pid())?;
    run.agent
        .wait_for_log("reload rejected", STARTUP)
        .map_err(|e| run.agent.explain(e))?;
    let log = run.agent.log_contents();
    assert!(log.contains("r.yaml:"), "{}", run.agent.log_tail());
    for k in 11..20 {
        sample(&mut publisher, k * 1000)?;
    }
    sample(&mut publisher, 20_000)?;
    let second = start_us + 10_000_000;
    let messages = run
        .collector
        .wait_for("the second windows", STARTUP, |m| {
            ["steady", "tuned", "fresh"]
                .iter()
                .all(|r| count_in(m, r, second).is_some())
        })
        .map_err(|e| run.agent.explain(e))?;
    for rule in ["steady", "tuned", "fresh"] {
        assert_eq!(count_in(&messages, rule, second), Some(10.0), "{rule}");
    }
    run.agent.assert_running()?;
    Ok(())
}
