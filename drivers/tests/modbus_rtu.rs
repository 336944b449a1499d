//! The Modbus source over RTU: pymodbus (`fixtures/modbus_server.py`) serving on one end of a
//! socat pty pair, the source on the other. Values of every type decode, exceptions are
//! counted, and line settings (parity, stop bits) are set on both ends.

#![expect(
    clippy::unwrap_used,
    reason = "test harness helpers: a failed setup step should panic the test"
)]

#[path = "common/modbus.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{WAIT, every_type, qualities, reg, start, values};
use weir_drivers::SourceCounters;
use weir_drivers::modbus::map::{DataType, Order, Table};
use weir_drivers::modbus::{self, GroupConfig, ModbusConfig, SlaveConfig};
use weir_tests::wait_until;

/// socat's pty pair with pymodbus serving Modbus RTU on one end.
struct RtuServer {
    socat: Child,
    server: Child,
    _dir: weir_tests::TestDir,
    device: std::path::PathBuf,
    slave_end: std::path::PathBuf,
}

impl RtuServer {
    fn start() -> RtuServer {
        RtuServer::start_with("N", 1)
    }

    /// pymodbus with `parity` (`N`, `E` or `O`) and `stop_bits` on its end of the pair.
    fn start_with(parity: &str, stop_bits: u8) -> RtuServer {
        let dir = weir_tests::TestDir::new("modbus-rtu").unwrap();
        let device = dir.path().join("ttyWEIR");
        let slave_end = dir.path().join("ttySLAVE");
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .arg(format!("pty,raw,echo=0,link={}", slave_end.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs (scripts/test installs it)");
        wait_until("socat's pty links", WAIT, || {
            Ok((device.exists() && slave_end.exists()).then_some(()))
        })
        .unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/modbus_server.py"
        );
        let server = Command::new("python3")
            .args([script, "rtu"])
            .arg(&slave_end)
            .args([parity, &stop_bits.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs");
        RtuServer {
            socat,
            server,
            _dir: dir,
            device,
            slave_end,
        }
    }
}

impl Drop for RtuServer {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.socat] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_on_a_pty_decodes_and_counts_exceptions() {
    let server = RtuServer::start();
    let line = modbus::RtuConfig {
        path: server.device.clone(),
        baud: 19_200,
        data_bits: 8,
        parity: weir_drivers::serial::Parity::None,
        stop_bits: 1,
    };
    let on_line = |device: &str, unit: u8, registers| SlaveConfig {
        device: device.into(),
        tcp: None,
        rtu: Some(line.clone()),
        unit,
        groups: vec![GroupConfig {
            interval: Duration::from_millis(200),
            registers,
        }],
    };
    let cfg = ModbusConfig {
        name: "rtu".into(),
        // The server may still be starting: polls time out and are retried until it answers.
        timeout: Duration::from_millis(500),
        retries: 1,
        max_gap: 0,
        quality: true,
        slaves: vec![
            on_line("plc-1", 1, every_type()),
            on_line(
                "plc-2",
                2,
                vec![reg("x", Table::Holding, 50, DataType::U16, Order::Big)],
            ),
        ],
    };
    let mut src = start(cfg);
    // The first polls may time out while pymodbus starts; they report quality 256.
    let started = Instant::now();
    let got = loop {
        let d = src.next().await;
        let got = values(&d);
        if &*d.readings[0].device == "plc-1" && !got.is_empty() {
            break got;
        }
        assert!(started.elapsed() < WAIT, "pymodbus never answered");
    };
    assert_eq!(got.len(), every_type().len(), "{got:?}");
    assert_eq!(got["f64_little"], 21.5);
    assert_eq!(got["i32_little"], -2.0);
    assert_eq!(got["coil1"], 0.0);
    let c = src.counters.clone();
    wait_until("an exception from unit 2", WAIT, move || {
        Ok((SourceCounters::get(&c.exceptions) >= 1).then_some(()))
    })
    .unwrap();
    src.stop().await;
}

/// The line settings as the kernel holds them for a tty (`stty -a`).
fn stty(path: &std::path::Path) -> String {
    let out = Command::new("stty")
        .arg("-F")
        .arg(path)
        .arg("-a")
        .output()
        .unwrap();
    assert!(out.status.success(), "stty: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Modbus RTU's default line, 8E1 in the standard, here with even parity and two stop bits
/// configured on both ends (the weir source and pymodbus/pyserial).
///
/// What a pseudo-terminal can and cannot check: a pty moves bytes, not bits on a wire, so it
/// neither adds parity bits nor checks them, and the Linux pty driver silently clears PARENB
/// on `tcsetattr` (`stty` shows `-parenb` on both ends whatever was asked). A wrong parity on
/// one end would therefore still talk here; only a real UART pair (or a USB adapter loop)
/// can catch that (and the fixture has to retry pyserial's second `tcsetattr` without PARENB,
/// which a pty refuses once it has dropped it). Nor does a pty keep the baud rate. What the
/// test does check: the source opens the port with even parity and two stop bits without an
/// error, the settings a pty keeps reach the tty (`stty`: `cstopb`, `cs8`, parity checking on
/// input), pymodbus on the other end runs with its equal setting, and every value decodes
/// right over that line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_with_even_parity_and_two_stop_bits_on_a_pty_decodes() {
    let server = RtuServer::start_with("E", 2);
    let line = modbus::RtuConfig {
        path: server.device.clone(),
        baud: 19_200,
        data_bits: 8,
        parity: weir_drivers::serial::Parity::Even,
        stop_bits: 2,
    };
    let cfg = ModbusConfig {
        name: "rtu-8e2".into(),
        timeout: Duration::from_millis(500),
        retries: 1,
        max_gap: 0,
        quality: true,
        slaves: vec![SlaveConfig {
            device: "meter-1".into(),
            tcp: None,
            rtu: Some(line),
            unit: 1,
            groups: vec![GroupConfig {
                interval: Duration::from_millis(200),
                registers: every_type(),
            }],
        }],
    };
    let mut src = start(cfg);
    // The first polls may time out while pymodbus starts (quality 256); no other failure.
    let started = Instant::now();
    let (got, quality) = loop {
        let d = src.next().await;
        let (got, quality) = (values(&d), qualities(&d));
        if !got.is_empty() {
            break (got, quality);
        }
        assert!(quality.values().all(|&q| q == 256.0), "{d:?}");
        assert!(started.elapsed() < WAIT, "pymodbus never answered");
    };
    assert_eq!(got.len(), every_type().len(), "{got:?}");
    assert_eq!(got["u32_little"], 65538.0);
    assert_eq!(got["f32_big"], 21.5);
    assert_eq!(got["f64_little"], 21.5);
    assert_eq!(got["i16_scaled"], -41.0);
    assert_eq!(got["coil2"], 1.0);
    assert!(quality.values().all(|&q| q == 0.0), "{quality:?}");
    assert_eq!(SourceCounters::get(&src.counters.exceptions), 0);
    // The settings the port holds while the source has it open. Of the parity request the
    // pty keeps the input side (`inpck`: check parity, `-ignpar`: do not ignore errors; with
    // `parity: none` the source sets the opposite) but not PARENB, and it keeps no baud rate.
    let ours = stty(&server.device);
    let words: Vec<&str> = ours.split_whitespace().collect();
    for want in ["cstopb", "cs8", "inpck", "-ignpar", "-crtscts"] {
        assert!(words.contains(&want), "{want} on the source's end: {ours}");
    }
    let theirs = stty(&server.slave_end);
    assert!(
        theirs.split_whitespace().any(|w| w == "cstopb"),
        "two stop bits on pymodbus' end: {theirs}"
    );
    src.stop().await;
}
