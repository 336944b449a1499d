//! Modbus poll cycle latency: 100 holding registers across 10 slaves (units 11–20 of one
//! pymodbus server, each slave on its own TCP connection) on loopback. A cycle is one poll of
//! every slave; its latency runs from the earliest poll start to the last delivery.
//! Needs `pymodbus` (installed by `scripts/test`).
//!
//!     cargo bench -p weir-drivers --bench modbus_poll

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_drivers::SourceCounters;
use weir_drivers::modbus::map::{DataType, Order, RegisterConfig, Table};
use weir_drivers::modbus::{self, GroupConfig, ModbusConfig, SlaveConfig};
use weir_tests::{free_port, wait_until};

const SLAVES: u8 = 10;
const CYCLES: usize = 200;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs this without `--bench`; the Modbus tests cover it.
        println!("modbus_poll: a measurement; run it with `cargo bench`");
        return Ok(());
    }
    let port = free_port()?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/modbus_server.py"
    );
    let mut server = Command::new("python3")
        .args([script, "tcp", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the pymodbus server")?;
    let result = (|| {
        wait_until("pymodbus to listen", Duration::from_secs(20), || {
            if let Some(status) = server.try_wait()? {
                bail!("the Modbus server exited: {status} (is pymodbus installed?)");
            }
            Ok(TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()))
        })?;
        tokio::runtime::Runtime::new()?.block_on(measure(port))
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

async fn measure(port: u16) -> Result<()> {
    let slaves = (0..SLAVES)
        .map(|i| SlaveConfig {
            device: format!("slave-{i}"),
            tcp: Some(format!("127.0.0.1:{port}")),
            rtu: None,
            unit: 11 + i,
            groups: vec![GroupConfig {
                interval: Duration::from_millis(50),
                registers: (0..10)
                    .map(|a| RegisterConfig {
                        name: format!("r{a}"),
                        table: Table::Holding,
                        address: a,
                        data_type: Some(DataType::U16),
                        byte_order: Order::Big,
                        word_order: Order::Big,
                        scale: 1.0,
                        offset: 0.0,
                    })
                    .collect(),
            }],
        })
        .collect();
    let cfg = ModbusConfig {
        name: "bench".into(),
        timeout: Duration::from_secs(1),
        retries: 0,
        max_gap: 0,
        // Values only, as the README figure was measured.
        quality: false,
        slaves,
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let counters = Arc::new(SourceCounters::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(modbus::run(cfg, tx, counters.clone(), shutdown.clone()));
    // Per slave: (poll start, arrival) of each poll, in order.
    let mut polls: Vec<Vec<(i64, i64)>> = vec![Vec::new(); usize::from(SLAVES)];
    let warmup = 5;
    while polls.iter().any(|p| p.len() < CYCLES + warmup) {
        let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .context("source ended")?;
        let arrived = now_us();
        let slave: usize = d.readings[0].device["slave-".len()..].parse()?;
        anyhow::ensure!(d.readings.len() == 10, "10 registers per poll");
        polls[slave].push((d.readings[0].ts, arrived));
    }
    shutdown.cancel();
    task.await??;
    let mut cycles: Vec<i64> = (warmup..warmup + CYCLES)
        .map(|k| {
            let start = polls.iter().map(|p| p[k].0).min().unwrap_or(0);
            let end = polls.iter().map(|p| p[k].1).max().unwrap_or(0);
            end - start
        })
        .collect();
    cycles.sort_unstable();
    let pct = |q: f64| cycles[((cycles.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "modbus TCP poll cycle, 100 registers across {SLAVES} slaves, {CYCLES} cycles: \
         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (timeouts {}, exceptions {})",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        SourceCounters::get(&counters.timeouts),
        SourceCounters::get(&counters.exceptions),
    );
    Ok(())
}
