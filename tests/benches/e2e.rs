//! End-to-end ingest throughput: device publisher → local broker → `weir` (release build) →
//! engine → SQLite outbox commit, compared in the same run with what the same broker delivers
//! to a plain MQTT subscriber. The ratio is the figure to compare across machines. The agent
//! runs twice, with engine checkpoints off and on (`engine.checkpoint_interval`).
//!
//!     cargo bench -p weir-tests --bench e2e            # 200,000 samples over 100 series
//!     WEIR_BENCH_SAMPLES=1000000 cargo bench -p weir-tests --bench e2e
//!     WEIR_BENCH_BIN=/path/to/weir cargo bench -p weir-tests --bench e2e   # that binary, not
//!                                                                          # a fresh build
//!
//! Samples carry event-time stamps (`{"value": v, "ts": ms}`) one millisecond apart per series,
//! so 1 s tumbling windows close on event time as the samples arrive. The run is complete when
//! the outbox has *committed* one `count` record per closed window (read from the agent's
//! status line), and those counts add up to every sample sent — so the figure is samples whose
//! effects are durable, not samples merely received.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use weir_tests::{Agent, Mosquitto, TestDir};

const SERIES: u64 = 100;
/// Concurrent publisher connections, so the device side is not the narrowest pipe.
const PUBLISHERS: u64 = 4;
/// Samples per 1 s window per series (stamps are 1 ms apart).
const PER_WINDOW: u64 = 1000;

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: there, do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let samples: u64 = std::env::var("WEIR_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let per_series = (samples / SERIES).max(1);
    let samples = per_series * SERIES;
    match std::env::var_os("WEIR_BENCH_BIN") {
        // SAFETY: set before any thread of this process reads the environment.
        Some(bin) => unsafe { std::env::set_var("WEIR_BIN", bin) },
        None => build_release()?,
    }
    let runtime = tokio::runtime::Runtime::new()?;

    // Baseline: the broker delivering the same stream to a plain subscriber.
    let broker = Mosquitto::start()?;
    let baseline = runtime.block_on(baseline(broker.port(), per_series))?;

    // Weir: the same stream through the agent to committed outbox records, without and
    // with engine checkpoints (`engine.checkpoint_interval`), in the same run.
    let off = weir_run(&runtime, per_series, "0s")?;
    let on = weir_run(&runtime, per_series, "5s")?;
    // The baseline again, after: the better of the two is the broker's figure.
    let baseline = baseline.min(runtime.block_on(baseline_run(broker.port(), per_series))?);

    let rate = |d: Duration| samples as f64 / d.as_secs_f64();
    println!(
        "e2e ingest, {samples} samples over {SERIES} series, {PUBLISHERS} publishers, QoS 1, loopback"
    );
    println!(
        "  broker → plain subscriber : {:>10.0} samples/s  ({:.2} s)",
        rate(baseline),
        baseline.as_secs_f64()
    );
    for (name, run) in [("checkpoints off", &off), ("checkpoints on ", &on)] {
        println!("  {name}:");
        println!(
            "    broker → weir → committed : {:>10.0} samples/s  ({:.2} s; publisher done after {:.2} s)",
            rate(run.weir),
            run.weir.as_secs_f64(),
            run.published.as_secs_f64()
        );
        println!(
            "    ratio weir / broker       : {:>10.2}",
            baseline.as_secs_f64() / run.weir.as_secs_f64()
        );
        println!(
            "    weir CPU                  : {:>10.2} s  → {:.0} samples per CPU-second",
            run.cpu,
            samples as f64 / run.cpu.max(1e-9)
        );
        println!("    weir RSS at the end       : {:>10} KiB", run.rss);
    }
    println!(
        "  ingest with checkpoints on / off: {:.2}",
        off.weir.as_secs_f64() / on.weir.as_secs_f64()
    );
    Ok(())
}

/// One agent run's figures.
struct WeirRun {
    weir: Duration,
    published: Duration,
    cpu: f64,
    rss: u64,
}

/// The stream through a fresh broker and agent with `engine.checkpoint_interval` set.
fn weir_run(
    runtime: &tokio::runtime::Runtime,
    per_series: u64,
    checkpoint_interval: &str,
) -> Result<WeirRun> {
    let devices = Mosquitto::start()?;
    let dir = TestDir::new("bench-e2e")?;
    dir.write(
        "rules.yaml",
        "rules:\n  - name: count\n    select: { device: \"*\", metric: m }\n    window: { tumbling: 1s }\n    aggregates: [count]\n",
    )?;
    let config = format!(
        "gateway_id: bench\nrules: [rules.yaml]\nsources:\n  - mqtt:\n      port: {}\n      subscriptions: [{{ topic: \"bench/{{device}}/{{metric}}\" }}]\noutbox:\n  path: {:?}\n  max_bytes: 1GiB\nengine: {{ idle_close: 1h, checkpoint_interval: {checkpoint_interval}, clock_guard: {{ max_ahead: 2h }} }}\nlog: {{ level: info, status_interval: 100ms }}\n",
        devices.port(),
        dir.path().join("outbox.db").display().to_string(),
    );
    let mut agent = Agent::start(&dir, &config)?;
    agent.wait_for_log("mqtt source connected", Duration::from_secs(30))?;
    devices.wait_for_subscription("bench/+/+", Duration::from_secs(30))?;

    let windows_per_series = per_series.div_ceil(PER_WINDOW);
    let expected_records = windows_per_series * SERIES;
    let cpu_before = cpu_seconds(agent.pid()).unwrap_or(0.0);
    let started = Instant::now();
    runtime.block_on(publish(devices.port(), per_series, true))?;
    let published = started.elapsed();
    agent.wait_for_latest_line(
        &format!("{expected_records} committed records"),
        Duration::from_secs(600),
        |line| committed(line).filter(|&n| n >= expected_records),
    )?;
    let weir = started.elapsed();
    let cpu = cpu_seconds(agent.pid()).unwrap_or(0.0) - cpu_before;
    let rss = rss_kib(agent.pid()).unwrap_or(0);
    Ok(WeirRun {
        weir,
        published,
        cpu,
        rss,
    })
}

fn build_release() -> Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "weir-agent", "--bin", "weir"])
        .current_dir(root)
        .status()
        .context("cargo build --release")?;
    if !status.success() {
        bail!("building the release weir failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("WEIR_BIN", format!("{target}/release/weir")) };
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Publishes `per_series` samples for each series at QoS 1 over [`PUBLISHERS`] connections
/// with wide in-flight windows, then (with `trailing`) one sample per series an hour later so
/// every full window closes.
async fn publish(port: u16, per_series: u64, trailing: bool) -> Result<()> {
    // Ten minutes ahead, so wall-time advancing never closes these windows early; the
    // trailing samples are 70 minutes ahead, inside the agent's `clock_guard.max_ahead: 2h`.
    let base = (now_ms() / 1000 + 600) * 1000;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let series: Vec<u64> = (0..SERIES).filter(|s| s % PUBLISHERS == p).collect();
        tasks.push(tokio::spawn(publish_some(
            port, p, series, per_series, base, trailing,
        )));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn publish_some(
    port: u16,
    id: u64,
    series: Vec<u64>,
    per_series: u64,
    base: u64,
    trailing: bool,
) -> Result<()> {
    let mut options = MqttOptions::new(format!("bench-pub-{port}-{id}"), "127.0.0.1", port);
    options.set_inflight(1000);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10_000);
    let n = series.len() as u64;
    let total = per_series * n + if trailing { n } else { 0 };
    let poller = tokio::spawn(async move {
        let mut acked = 0u64;
        while acked < total {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher connection: {e}")),
            }
        }
        Ok(())
    });
    for k in 0..per_series {
        for s in &series {
            let payload = format!("{{\"value\":{},\"ts\":{}}}", k % 97, base + k);
            client
                .publish(format!("bench/d{s}/m"), QoS::AtLeastOnce, false, payload)
                .await?;
        }
    }
    if trailing {
        for s in &series {
            let payload = format!("{{\"value\":0,\"ts\":{}}}", base + 3_600_000);
            client
                .publish(format!("bench/d{s}/m"), QoS::AtLeastOnce, false, payload)
                .await?;
        }
    }
    poller.await??;
    Ok(())
}

async fn baseline(port: u16, per_series: u64) -> Result<Duration> {
    baseline_run(port, per_series).await
}

async fn baseline_run(port: u16, per_series: u64) -> Result<Duration> {
    let mut options = MqttOptions::new(format!("bench-sub-{}", now_ms()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 100);
    client.subscribe("bench/#", QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
            break;
        }
    }
    let expected = per_series * SERIES;
    let started = Instant::now();
    let publisher = tokio::spawn(publish(port, per_series, false));
    let mut received = 0u64;
    let receive = async {
        while received < expected {
            if let Event::Incoming(Packet::Publish(_)) = events.poll().await? {
                received += 1;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(300), receive)
        .await
        .context("baseline subscriber: not every message arrived within 300 s")??;
    let elapsed = started.elapsed();
    publisher.await??;
    Ok(elapsed)
}

/// `committed=N` from the agent's status line.
fn committed(line: &str) -> Option<u64> {
    let rest = line.split("committed=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// User + system CPU time of a process, from /proc/<pid>/stat (fields 14 and 15).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Some(ticks / hz)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
