//! The serial source against real pseudo-terminals: `socat` makes a pair, the source opens
//! one end by path and the test writes device bytes into the other.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_tests::{TestDir, wait_until};

use super::*;
use crate::frame::{self, Frame, MAX_WIRE, Point};
use crate::{Delivery, SourceCounters};

const WAIT: Duration = Duration::from_secs(10);

/// A `socat` pty pair: `device` is where the source reads, `host` where the test writes.
struct PtyPair {
    child: Child,
    device: PathBuf,
    host: PathBuf,
}

impl PtyPair {
    fn start(dir: &Path) -> Result<PtyPair> {
        let device = dir.join("ttyDEV");
        let host = dir.join("ttyHOST");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .arg(format!("pty,raw,echo=0,link={}", host.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting socat (apt-get install socat)")?;
        wait_until("socat's pty links", WAIT, || {
            Ok((device.exists() && host.exists()).then_some(()))
        })?;
        Ok(PtyPair {
            child,
            device,
            host,
        })
    }

    fn writer(&self) -> Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.host)
            .context("opening the host end")
    }

    /// Stops socat with SIGTERM, so it removes its links: the device is "unplugged".
    fn unplug(mut self) -> Result<()> {
        let status = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill failed");
        self.child.wait()?;
        wait_until("the links to go", WAIT, || {
            Ok((!self.device.exists()).then_some(()))
        })
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(path: &Path, protocol: Protocol) -> SerialConfig {
    SerialConfig {
        name: "uart".to_owned(),
        path: path.to_owned(),
        baud: 115_200,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        protocol,
        device: None,
        max_line: 64,
        reopen_min: Duration::from_millis(20),
        reopen_max: Duration::from_millis(200),
    }
}

struct Running {
    rx: mpsc::Receiver<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), crate::SourceError>>,
}

fn start(cfg: SerialConfig) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let counters = Arc::new(SourceCounters::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(cfg, tx, counters.clone(), shutdown.clone()));
    Running {
        rx,
        counters,
        shutdown,
        task,
    }
}

impl Running {
    async fn next(&mut self) -> Result<Vec<(String, String, f64)>> {
        let d = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .context("no delivery in time")?
            .context("source ended")?;
        Ok(d.readings
            .iter()
            .map(|r| (r.device.to_string(), r.metric.to_string(), r.value))
            .collect())
    }

    fn wait_connects(&self, n: u64) -> Result<()> {
        let c = self.counters.clone();
        wait_until("the port to open", WAIT, move || {
            Ok((SourceCounters::get(&c.connects) >= n && c.is_connected()).then_some(()))
        })
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task).await???;
        Ok(())
    }
}

fn frame_bytes(device: &str, seq: u32, value: f32) -> Vec<u8> {
    let mut f = Frame {
        device: device.try_into().expect("short name"),
        seq,
        ts_ms: None,
        points: heapless::Vec::new(),
    };
    let metric = "level".try_into().expect("short name");
    f.points.push(Point { metric, value }).expect("fits");
    let mut out = [0u8; MAX_WIRE];
    let n = frame::encode(&f, &mut out).expect("encodes");
    out[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_good_bad_partial_and_unplugged() -> Result<()> {
    let dir = TestDir::new("serial-frames")?;
    let pty = PtyPair::start(dir.path())?;
    let mut src = start(config(&pty.device, Protocol::Frames));
    src.wait_connects(1)?;

    let mut w = pty.writer()?;
    let mut corrupt = frame_bytes("tank", 2, 2.0);
    corrupt[4] ^= 0x01; // a letter of the device name: the CRC catches it
    let partial = frame_bytes("tank", 3, 3.0);
    let mut stream = b"boot banner, not a frame\0".to_vec();
    stream.extend(frame_bytes("tank", 1, 1.0));
    stream.extend(&corrupt);
    stream.extend(&partial[..partial.len() / 2]);
    stream.push(0); // a device that reset mid-frame sends 0x00 first
    stream.extend(frame_bytes("tank", 4, 4.0));
    stream.extend(frame_bytes("", 5, 5.0)); // no device name: the source's name
    w.write_all(&stream)?;

    assert_eq!(
        src.next().await?,
        vec![("tank".into(), "level".into(), 1.0)]
    );
    assert_eq!(
        src.next().await?,
        vec![("tank".into(), "level".into(), 4.0)]
    );
    assert_eq!(
        src.next().await?,
        vec![("uart".into(), "level".into(), 5.0)]
    );
    let c = &src.counters;
    assert_eq!(
        SourceCounters::get(&c.decode_errors),
        3,
        "banner, corrupt, partial"
    );
    assert_eq!(SourceCounters::get(&c.crc_errors), 1);
    // `readings` counts once the send has completed, which may be just after we received.
    let c2 = src.counters.clone();
    wait_until("3 readings counted", WAIT, move || {
        Ok((SourceCounters::get(&c2.readings) == 3).then_some(()))
    })?;

    // Unplug: the source notices, retries while the device is gone, and reads the
    // device again once it is back at the same path.
    drop(w);
    pty.unplug()?;
    let c2 = src.counters.clone();
    wait_until("the loss to be noticed", WAIT, move || {
        Ok((!c2.is_connected() && SourceCounters::get(&c2.transport_errors) >= 2).then_some(()))
    })?;
    let pty = PtyPair::start(dir.path())?;
    src.wait_connects(2)?;
    pty.writer()?.write_all(&frame_bytes("tank", 6, 6.0))?;
    assert_eq!(
        src.next().await?,
        vec![("tank".into(), "level".into(), 6.0)]
    );
    src.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_lines_with_garbage() -> Result<()> {
    let dir = TestDir::new("serial-csv")?;
    let pty = PtyPair::start(dir.path())?;
    let mut src = start(config(&pty.device, Protocol::Csv));
    src.wait_connects(1)?;
    let mut w = pty.writer()?;
    let long = "9".repeat(200);
    let text = format!(
        "device,temp,hum\r\npump-1,21.5,40\r\n{long}\r\npump-1,warm,41\r\npump-1,22\r\n,23,42\r\n"
    );
    w.write_all(text.as_bytes())?;
    assert_eq!(
        src.next().await?,
        vec![
            ("pump-1".into(), "temp".into(), 21.5),
            ("pump-1".into(), "hum".into(), 40.0)
        ]
    );
    assert_eq!(
        src.next().await?,
        vec![
            ("uart".into(), "temp".into(), 23.0),
            ("uart".into(), "hum".into(), 42.0)
        ]
    );
    assert_eq!(
        SourceCounters::get(&src.counters.decode_errors),
        3,
        "long, warm, short"
    );
    src.stop().await
}

#[test]
fn config_validation_names_the_field() {
    let mut cfg = config(Path::new("/dev/ttyS0"), Protocol::KvLines);
    assert_eq!(cfg.validate(), Ok(()));
    cfg.stop_bits = 3;
    assert!(
        matches!(cfg.validate(), Err(crate::SourceError::Config { field, .. }) if field == "stop_bits")
    );
    cfg.stop_bits = 2;
    cfg.reopen_max = Duration::from_millis(1);
    assert!(
        matches!(cfg.validate(), Err(crate::SourceError::Config { field, .. }) if field == "reopen_max")
    );
}
