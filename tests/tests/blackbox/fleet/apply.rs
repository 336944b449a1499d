//! A signed bundle is applied and unchanged rules keep their state; a bundle with a rule error
//! is rejected with `file:line:col` and the old rules keep running.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use weir_tests::{Collector, Message, Mosquitto, Publisher, TestDir};

use super::{
    Gateway, ROLLOUT, bundle_dir, operator_key, outcome, push, statuses, text, wait_devices,
    wait_status,
};

const STEADY: &str = "rules:
  - name: steady
    select: { device: pump-1, metric: temp }
    window: { tumbling: 10s }
    aggregates: [count]
";

const ADDED: &str = "rules:
  - name: added
    select: { device: pump-1, metric: temp }
    window: { count: 1 }
    aggregates: [last]
";

/// A rule error on line 4, column 23 (`banana` is no duration).
const BROKEN: &str = "rules:
  - name: broken
    select: { device: pump-1, metric: temp }
    window: { tumbling: banana }
    aggregates: [count]
";

fn window_count(messages: &[Message], rule: &str, start_us: u64) -> Option<f64> {
    messages.iter().find_map(|m| {
        (m.str("kind") == Some("window")
            && m.str("rule") == Some(rule)
            && m.u64("start") == Some(start_us))
        .then(|| m.field("values")?.get("count")?.as_f64())
        .flatten()
    })
}

#[test]
fn fleet_applies_a_signed_bundle_keeping_state_and_rejects_a_rule_error_with_its_location()
-> Result<()> {
    let dir = TestDir::new("fleet-apply")?;
    let key = operator_key(&dir)?;
    let devices = Mosquitto::start()?;
    let cloud = Mosquitto::start()?;
    let events = Collector::start(cloud.port(), "weir/gw-apply/#")?;
    let status = statuses(cloud.port())?;
    dir.write("rules/steady.yaml", STEADY)?;
    let gateway = Gateway {
        id: "gw-apply",
        cloud: cloud.port(),
        devices: Some(devices.port()),
        rules: &["rules/steady.yaml"],
        labels: "",
        engine: "idle_close: 5s",
    };
    let mut agent = gateway.start(&dir, &dir.path().join("trusted"))?;
    wait_devices(&devices, &agent)?;
    wait_status(&status, "gw-apply", "the first status", |m| {
        m.u64("version") == Some(0)
    })?;
    let mut publisher = Publisher::connect(devices.port())?;
    // Three minutes ahead, on a 10 s boundary: only the test's own samples close the window.
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let base = (now_ms + 180_000) / 10_000 * 10_000;
    let sample = |p: &mut Publisher, offset_ms: u64| {
        p.publish(
            "plant/pump-1/temp",
            format!("{{\"value\": 20, \"ts\": {}}}", base + offset_ms),
        )
    };
    sample(&mut publisher, 1_000)?;
    sample(&mut publisher, 2_000)?;

    let v1 = bundle_dir(
        &dir,
        "v1",
        &[("steady.yaml", STEADY), ("added.yaml", ADDED)],
    )?;
    let out = push(&v1, &key, cloud.port(), 1, &["--gateway", "gw-apply"])?;
    let said = text(&out);
    assert!(out.status.success(), "{said}\n{}", agent.log_tail());
    assert!(said.contains("gw-apply: applied version 1"), "{said}");
    // The figures for the README: bundle bytes, push → switched and push → applied.
    eprintln!("FIGURES fleet push:\n{said}");
    let applied = wait_status(&status, "gw-apply", "version 1 applied", |m| {
        m.u64("version") == Some(1) && outcome(m) == Some("applied")
    })?;
    assert_eq!(
        applied.field("hash").and_then(|h| h.as_str()).map(str::len),
        Some(64)
    );

    // The new rule runs; `steady` kept its open window: 1 s and 2 s before the switch, 3 s after.
    sample(&mut publisher, 3_000)?;
    events.wait_for("the added rule's event", ROLLOUT, |m| {
        m.iter().any(|m| m.str("rule") == Some("added"))
    })?;
    sample(&mut publisher, 12_000)?;
    let messages = events.wait_for("steady's first window", ROLLOUT, |m| {
        window_count(m, "steady", base * 1000).is_some()
    })?;
    assert_eq!(
        window_count(&messages, "steady", base * 1000),
        Some(3.0),
        "state of an unchanged rule was lost"
    );

    // A rule error: rejected with file:line:col, version 1 keeps running.
    let v2 = bundle_dir(
        &dir,
        "v2",
        &[("steady.yaml", STEADY), ("broken.yaml", BROKEN)],
    )?;
    let out = push(&v2, &key, cloud.port(), 2, &["--gateway", "gw-apply"])?;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("gw-apply: rejected version 2"), "{said}");
    assert!(
        said.contains("broken.yaml:4:"),
        "no file:line:col in: {said}"
    );
    let rejected = wait_status(&status, "gw-apply", "version 2 rejected", |m| {
        outcome(m) == Some("rejected")
    })?;
    assert_eq!(rejected.u64("version"), Some(1), "{}", rejected.summary());
    let errors = rejected
        .field("last")
        .and_then(|l| l.get("errors"))
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(errors.contains("broken.yaml:4:"), "{errors}");
    sample(&mut publisher, 13_000)?;
    sample(&mut publisher, 22_000)?;
    events.wait_for("steady's second window, from the old rules", ROLLOUT, |m| {
        window_count(m, "steady", (base + 10_000) * 1000) == Some(2.0)
    })?;
    agent.assert_running()?;
    Ok(())
}

#[test]
fn fleet_bundle_config_runs_after_a_restart_and_a_stop_during_the_trial_rolls_back() -> Result<()> {
    let dir = TestDir::new("fleet-config")?;
    let key = operator_key(&dir)?;
    let cloud = Mosquitto::start()?;
    let status = statuses(cloud.port())?;
    dir.write(
        "rules/ticks.yaml",
        "rules:\n  - name: ticks\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    let gateway = Gateway {
        id: "gw-cfg",
        cloud: cloud.port(),
        devices: None,
        rules: &["rules/ticks.yaml"],
        labels: "",
        engine: "idle_close: 1s",
    };
    let trusted = dir.path().join("trusted");
    // Long enough to stop the agent while a version is on trial.
    let local = gateway.yaml(&trusted).replace("watch: 2s", "watch: 8s");
    // The bundle's config: a second source.
    let pushed = local.replace(
        "  - simulator: { interval: 100ms }\n",
        "  - simulator: { interval: 100ms }\n  - simulator: { name: second, interval: 1s }\n",
    );
    let config = dir.write("pushed.yaml", &pushed)?;
    let from = bundle_dir(
        &dir,
        "b",
        &[(
            "ticks.yaml",
            "rules:\n  - name: ticks\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
        )],
    )?;
    let push_with_config = |version: u64, wait: &str| -> Result<std::process::Output> {
        Ok(weir_tests::weir_command()?
            .arg("push")
            .arg(&from)
            .arg("--key")
            .arg(&key)
            .arg("--agent-config")
            .arg(&config)
            .args(["--gateway", "gw-cfg", "--port", &cloud.port().to_string()])
            .args(["--version", &version.to_string(), "--wait", wait])
            .output()?)
    };

    let mut agent = weir_tests::Agent::start(&dir, &local)?;
    agent.wait_for_log("uplink connected", crate::common::STARTUP)?;
    // Version 1 is switched to, then the agent stops during its trial.
    let out = push_with_config(1, "3s")?;
    assert_eq!(out.status.code(), Some(3), "still on trial: {}", text(&out));
    agent.wait_for_log("fleet: switched", ROLLOUT)?;
    agent.wait_for_log("takes effect when the agent restarts", ROLLOUT)?;
    agent.terminate(crate::common::STARTUP)?;
    let mut agent = weir_tests::Agent::start(&dir, &local)?;
    agent.wait_for_log("rolled back at start", crate::common::STARTUP)?;
    agent.wait_for_log(
        "pipeline ready gateway=gw-cfg sources=1",
        crate::common::STARTUP,
    )?;
    let back = wait_status(&status, "gw-cfg", "the rollback at start", |m| {
        outcome(m) == Some("rolled_back")
    })?;
    assert_eq!(back.u64("version"), Some(0), "{}", back.summary());

    // Version 2 runs its watch through; the next start uses the bundle's config.
    let out = push_with_config(2, "40s")?;
    assert!(out.status.success(), "{}\n{}", text(&out), agent.log_tail());
    agent.terminate(crate::common::STARTUP)?;
    let check = weir_tests::weir_command()?
        .arg("check")
        .arg("-c")
        .arg(dir.path().join("weir.yaml"))
        .output()?;
    assert!(
        text(&check).contains("ok (2 sources"),
        "weir check does not see the bundle's config: {}",
        text(&check)
    );
    let mut agent = weir_tests::Agent::start(&dir, &local)?;
    agent.wait_for_log(
        "pipeline ready gateway=gw-cfg sources=2",
        crate::common::STARTUP,
    )?;
    agent.assert_running()?;
    Ok(())
}
