//! The agent as a systemd service: the notify protocol spoken for real over a datagram socket
//! the test provides (as systemd does), and the shipped unit checked by systemd's own tools.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weir_tests::{Agent, TestDir, weir_bin};

/// Datagrams received on `socket` until `until` returns true or `timeout` passes.
pub(crate) fn receive_until(
    socket: &UnixDatagram,
    seen: &mut Vec<String>,
    timeout: Duration,
    until: impl Fn(&[String]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !until(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out; systemd messages so far: {seen:#?}");
        }
        socket.set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
        match socket.recv(&mut buf) {
            Ok(n) => seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn count(seen: &[String], line: &str) -> usize {
    seen.iter().filter(|l| *l == line).count()
}

#[test]
fn notify_protocol_ready_status_watchdog_pings_reloading_and_stopping() -> Result<()> {
    let dir = TestDir::new("sd-notify")?;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    dir.write(
        "rules.yaml",
        "rules:\n  - name: r\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    let config = format!(
        "gateway_id: gw-sd\nrules: [rules.yaml]\nsources: [{{simulator: {{interval: 100ms}}}}]\noutbox: {{path: {:?}}}\nlog: {{status_interval: 200ms}}\n",
        dir.path().join("outbox.db").display().to_string()
    );
    let mut agent = Agent::start_with_env(
        &dir,
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            // 1 s: the agent pings every 500 ms while its pipeline makes progress.
            ("WATCHDOG_USEC", "1000000".as_ref()),
        ],
    )?;
    let mut seen = Vec::new();
    receive_until(&socket, &mut seen, Duration::from_secs(20), |s| {
        s.iter().any(|l| l == "READY=1")
    })
    .map_err(|e| agent.explain(e))?;
    // Readiness comes after the pipeline is up, never before.
    assert!(agent.log_contents().contains("pipeline ready"));
    receive_until(&socket, &mut seen, Duration::from_secs(10), |s| {
        count(s, "WATCHDOG=1") >= 3 && s.iter().any(|l| l.contains(" samples, "))
    })
    .map_err(|e| agent.explain(e))?;
    assert!(
        seen.iter().any(|l| l.starts_with("STATUS=running")),
        "{seen:#?}"
    );

    // `systemctl reload`: RELOADING=1 (with the monotonic time systemd v253+ requires), then
    // READY=1 again once the new rules run.
    let status = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()?;
    assert!(status.success());
    receive_until(&socket, &mut seen, Duration::from_secs(10), |s| {
        count(s, "READY=1") >= 2
    })
    .map_err(|e| agent.explain(e))?;
    let reloading = seen.iter().position(|l| l == "RELOADING=1");
    let ready_again = seen.iter().rposition(|l| l == "READY=1");
    assert!(
        matches!((reloading, ready_again), (Some(a), Some(b)) if a < b),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("rules reloaded: 1 kept")),
        "{seen:#?}"
    );

    let status = agent.terminate(Duration::from_secs(15))?;
    assert!(status.success(), "exit {status}");
    receive_until(&socket, &mut seen, Duration::from_secs(2), |s| {
        s.iter().any(|l| l == "STOPPING=1")
    })?;
    Ok(())
}

/// `systemd-analyze`, which the test command installs with Debian's `systemd` package.
fn systemd_analyze() -> Result<Command> {
    let path = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("systemd-analyze not found: install Debian's `systemd` package")?;
    Ok(Command::new(path))
}

/// The shipped unit with its `/usr/bin/weir` pointed at the binary under test, so `verify`
/// can check that the commands exist.
fn unit_under_test(dir: &TestDir) -> Result<std::path::PathBuf> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/weir.service"
    ))?;
    let bin = weir_bin()?;
    dir.write(
        "weir.service",
        &unit.replace("/usr/bin/weir", &bin.display().to_string()),
    )
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_2() -> Result<()> {
    let dir = TestDir::new("unit-security")?;
    let unit = unit_under_test(&dir)?;
    let out = systemd_analyze()?
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for weir.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no exposure level in:\n{text}"))?;
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    Ok(())
}

#[test]
fn the_unit_passes_systemd_analyze_verify() -> Result<()> {
    let dir = TestDir::new("unit-verify")?;
    let unit = unit_under_test(&dir)?;
    let out = systemd_analyze()?
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the host's own units are not ours; anything naming weir.service is.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("weir.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
    Ok(())
}
