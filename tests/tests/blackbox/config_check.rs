//! `weir check` refuses every config `weir run` would refuse, and the other way round: each
//! section's fields are walked with a value the runtime cannot use (an empty host, port 0,
//! an in-flight window of 0, a keep-alive under the MQTT client's second, a 70,000-byte topic
//! prefix, …). Both commands must exit 2 before anything starts and print the same
//! `file:line:col: message`, pointing at the line that holds the bad value.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weir_tests::{TestDir, weir_command};

/// One bad config: `sources`, extra `outbox` lines and extra top-level sections replace or
/// extend a config that is valid (checked first). `at` is text on the line the problem must
/// point at; `says` is part of the message.
struct Case {
    name: &'static str,
    sources: Option<&'static str>,
    outbox: &'static str,
    extra: &'static str,
    at: &'static str,
    says: &'static str,
}

const fn case(
    name: &'static str,
    extra: &'static str,
    at: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        sources: None,
        outbox: "",
        extra,
        at,
        says,
    }
}

const fn source(
    name: &'static str,
    sources: &'static str,
    at: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        sources: Some(sources),
        outbox: "",
        extra: "",
        at,
        says,
    }
}

const fn outbox(
    name: &'static str,
    outbox: &'static str,
    at: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        sources: None,
        outbox,
        extra: "",
        at,
        says,
    }
}

const SIMULATOR: &str = "  - simulator: { interval: 1s }\n";
/// A valid uplink, for cases that need one to be present.
const UPLINK: &str = "uplink:\n  host: 127.0.0.1\n  port: 1883\n";

fn cases() -> Vec<Case> {
    vec![
        // sources
        source(
            "mqtt host",
            "  - mqtt:\n      host: ''\n",
            "host: ''",
            "host must not be empty",
        ),
        source(
            "mqtt port",
            "  - mqtt:\n      port: 0\n",
            "port: 0",
            "port 0",
        ),
        source(
            "mqtt keep_alive",
            "  - mqtt: { keep_alive: 500ms }\n",
            "- mqtt",
            "keep_alive",
        ),
        source(
            "mqtt subscriptions",
            "  - mqtt: { subscriptions: [] }\n",
            "- mqtt",
            "subscriptions",
        ),
        source(
            "simulator interval",
            "  - simulator: { interval: 0s }\n",
            "- simulator",
            "interval",
        ),
        source(
            "serial baud",
            "  - serial: { path: /dev/ttyS9, protocol: json_lines, baud: 0 }\n",
            "- serial",
            "baud",
        ),
        source(
            "modbus tcp port",
            "  - modbus:\n      slaves: [{ device: plc, tcp: 'plc:0', groups: [{ interval: 1s, registers: [{ name: t, table: holding, address: 0 }] }] }]\n",
            "- modbus",
            "host:port",
        ),
        source(
            "two sources, one name",
            "  - simulator: {}\n  - simulator: {}\n",
            "  - simulator: {}\n  - simulator",
            "used twice",
        ),
        source(
            "serial max_line",
            "  - serial: { path: /dev/ttyS9, protocol: json_lines, max_line: 1000000000 }\n",
            "- serial",
            "max_line",
        ),
        // outbox
        outbox(
            "outbox path",
            "  path: ''\n",
            "path: ''",
            "path must not be empty",
        ),
        outbox(
            "outbox max_bytes",
            "  max_bytes: 1KB\n",
            "max_bytes",
            "64KiB",
        ),
        outbox(
            "outbox batch_max",
            "  batch_max: 0\n",
            "batch_max",
            "batch_max 0",
        ),
        outbox(
            "outbox batch_delay",
            "  batch_delay: 1h\n",
            "batch_delay",
            "at most 10s",
        ),
        outbox(
            "outbox max_age",
            "  max_age: 0s\n",
            "max_age",
            "longer than 0",
        ),
        outbox(
            "outbox overflow block without uplink",
            "  overflow: block\n",
            "overflow",
            "needs an `uplink`",
        ),
        // uplink
        case(
            "uplink host",
            "uplink: { host: '', inflight: 0, keep_alive: 500ms }\n",
            "uplink:",
            "host must not be empty",
        ),
        case("uplink port", "uplink:\n  port: 0\n", "port: 0", "port 0"),
        case(
            "uplink inflight 0",
            "uplink:\n  inflight: 0\n",
            "inflight",
            "between 1 and 65535",
        ),
        case(
            "uplink inflight huge",
            "uplink:\n  inflight: 70000\n",
            "inflight",
            "between 1 and 65535",
        ),
        case(
            "uplink keep_alive",
            "uplink:\n  keep_alive: 500ms\n",
            "keep_alive",
            "between 1s and 65535s",
        ),
        case(
            "uplink keep_alive huge",
            "uplink:\n  keep_alive: 1d\n",
            "keep_alive",
            "between 1s and 65535s",
        ),
        case(
            "uplink client_id",
            "uplink:\n  client_id: ''\n",
            "client_id",
            "must not be empty",
        ),
        case(
            "uplink topic wildcard",
            "uplink:\n  topic_prefix: 'a/#'\n",
            "topic_prefix",
            "wildcards",
        ),
        case(
            "uplink topic reserved",
            "uplink:\n  topic_prefix: '$SYS'\n",
            "topic_prefix",
            "reserved",
        ),
        case(
            "uplink batch level",
            "uplink:\n  batch: { level: 0 }\n",
            "level: 0",
            "level 0",
        ),
        case(
            "uplink batch max_bytes",
            "uplink:\n  batch: { max_bytes: 1GiB }\n",
            "max_bytes",
            "16MiB",
        ),
        // actions
        case(
            "actions host",
            "actions:\n  host: 'a b'\n",
            "host:",
            "spaces",
        ),
        case("actions port", "actions:\n  port: 0\n", "port: 0", "port 0"),
        // metrics
        case(
            "metrics port",
            "metrics:\n  listen: '127.0.0.1:0'\n",
            "listen:",
            "port 0",
        ),
        case(
            "metrics address",
            "metrics:\n  listen: 'localhost'\n",
            "listen:",
            "address",
        ),
        // The status page would show the gateway to its whole network without a token.
        case(
            "status page off loopback without a token",
            "metrics:\n  listen: '0.0.0.0:9464'\n",
            "listen:",
            "not a loopback address",
        ),
        case(
            "status page token too short",
            "metrics:\n  listen: '0.0.0.0:9464'\n  page:\n    token: short\n",
            "token:",
            "at least 16 characters",
        ),
        // labels
        case(
            "labels pattern",
            "labels:\n  - { devices: 'pump-[', set: { site: a } }\n",
            "pump-[",
            "labels",
        ),
        // engine
        case(
            "engine max_series",
            "engine:\n  max_series: 0\n",
            "max_series",
            "nonzero",
        ),
        case(
            "engine channel 0",
            "engine:\n  channel: 0\n",
            "channel",
            "nonzero",
        ),
        case(
            "engine channel huge",
            "engine:\n  channel: 2000000\n",
            "channel",
            "at most",
        ),
        case(
            "engine idle_close",
            "engine:\n  idle_close: soon\n",
            "idle_close",
            "duration",
        ),
        // log
        case(
            "log level",
            "log:\n  level: 'weir=loud'\n",
            "level",
            "log.level",
        ),
        case(
            "log status_interval",
            "log:\n  status_interval: 0s\n",
            "status_interval",
            "longer than 0",
        ),
    ]
}

fn yaml(dir: &Path, c: &Case) -> String {
    // A case that sets `path` itself replaces the test's own.
    let path = match c.outbox.contains("path:") {
        true => String::new(),
        false => format!(
            "  path: {:?}\n",
            dir.join("outbox.db").display().to_string()
        ),
    };
    format!(
        "gateway_id: gw-1\nsources:\n{sources}outbox:\n{path}{outbox}{extra}",
        sources = c.sources.unwrap_or(SIMULATOR),
        outbox = c.outbox,
        extra = c.extra,
    )
}

/// Runs `cmd` to its exit, at most `limit`: a `weir run` that accepted the config would
/// otherwise run on. Returns the exit code and stderr.
fn run_to_exit(mut cmd: Command, limit: Duration) -> Result<(Option<i32>, String)> {
    let stderr = tempfile::NamedTempFile::new()?;
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(stderr.reopen()?)
        .spawn()
        .context("starting weir")?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "still running after {limit:?} (the config was accepted); stderr:\n{}",
                std::fs::read_to_string(stderr.path())?
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status.code(), std::fs::read_to_string(stderr.path())?))
}

fn weir(verb: &str, config: &Path) -> Result<(Option<i32>, String)> {
    let mut cmd = weir_command()?;
    cmd.arg(verb).arg("--config").arg(config);
    run_to_exit(cmd, Duration::from_secs(20))
}

#[test]
fn check_and_run_refuse_every_bad_field_alike_with_file_line_col() -> Result<()> {
    let dir = TestDir::new("config-check")?;
    // The base is valid, and so is it with an uplink: each case breaks exactly one thing.
    for (name, extra) in [("base.yaml", ""), ("base-uplink.yaml", UPLINK)] {
        let text = yaml(dir.path(), &case("base", extra, "", ""));
        let path = dir.write(name, &text)?;
        let (code, stderr) = weir("check", &path)?;
        assert_eq!(code, Some(0), "{name} should pass:\n{text}\n{stderr}");
    }
    let mut failures = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let text = yaml(dir.path(), c);
        let file = format!("case-{i}.yaml");
        let path = dir.write(&file, &text)?;
        // The line the marker ends on (a marker over two lines names the second).
        let end = text
            .find(c.at)
            .with_context(|| format!("{}: marker {:?} not in the config", c.name, c.at))?
            + c.at.len();
        let line = 1 + text[..end].matches('\n').count();
        let (check_code, check_err) = weir("check", &path)?;
        let (run_code, run_err) = weir("run", &path)?;
        let want = format!("{}:{line}:", path.display());
        let located = check_err
            .lines()
            .any(|l| l.starts_with(&want) && l.contains(c.says) && has_column(l, &want));
        if check_code != Some(2) || run_code != Some(2) || check_err != run_err || !located {
            failures.push(format!(
                "{}: check exit {check_code:?}, run exit {run_code:?}, want exit 2 and a line \
                 `{want}<col>: …{}…`\n--- config\n{text}--- check\n{check_err}--- run\n{run_err}",
                c.name, c.says
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// `line` goes on from `prefix` with a column number and a colon.
fn has_column(line: &str, prefix: &str) -> bool {
    line[prefix.len()..]
        .split_once(':')
        .is_some_and(|(col, _)| !col.is_empty() && col.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn a_topic_prefix_of_70000_bytes_is_refused_where_it_is_written() -> Result<()> {
    let dir = TestDir::new("config-check-long")?;
    let extra = format!("uplink:\n  topic_prefix: {}\n", "t".repeat(70_000));
    let text = format!(
        "gateway_id: gw-1\nsources:\n{SIMULATOR}outbox:\n  path: {:?}\n{extra}",
        dir.path().join("outbox.db").display().to_string()
    );
    let path = dir.write("long.yaml", &text)?;
    let (check_code, check_err) = weir("check", &path)?;
    let (run_code, run_err) = weir("run", &path)?;
    assert_eq!(
        (check_code, run_code),
        (Some(2), Some(2)),
        "{check_err}\n{run_err}"
    );
    assert_eq!(check_err, run_err);
    let want = format!("{}:7:", path.display());
    assert!(
        check_err
            .lines()
            .any(|l| l.starts_with(&want) && l.contains("at most 256")),
        "{check_err}"
    );
    Ok(())
}
