//! Frame decoding throughput on one core: a stream of COBS + postcard + CRC frames fed to the
//! accumulator in 1 KiB reads, as the serial source does.
//!
//!     cargo bench -p weir-drivers --bench frames
//!     WEIR_BENCH_FRAMES=5000000 cargo bench -p weir-drivers --bench frames

use std::hint::black_box;
use std::time::Instant;

use weir_drivers::frame::{self, Accumulator, Feed, Frame, MAX_WIRE, Point};

fn main() {
    // `cargo test --all-targets` runs this too, without `--bench`: then a quick smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WEIR_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 1_000_000 } else { 1_000 });
    // A typical sensor frame: a device name, a sequence number and four values.
    let mut stream = Vec::with_capacity(n * 64);
    let mut out = [0u8; MAX_WIRE];
    for seq in 0..n as u32 {
        let mut f = Frame {
            device: "pump-0042".try_into().expect("short name"),
            seq,
            ts_ms: None,
            points: heapless::Vec::new(),
        };
        for (i, metric) in ["temperature", "vibration", "pressure", "current"]
            .iter()
            .enumerate()
        {
            let point = Point {
                metric: (*metric).try_into().expect("short name"),
                value: seq as f32 * 0.5 + i as f32,
            };
            f.points.push(point).expect("4 points fit");
        }
        let len = frame::encode(&f, &mut out).expect("encodes");
        stream.extend_from_slice(&out[..len]);
    }
    for round in 0..if measuring { 3 } else { 1 } {
        let mut acc = Accumulator::<MAX_WIRE>::new();
        let started = Instant::now();
        let mut frames = 0usize;
        for chunk in stream.chunks(1024) {
            let mut rest = chunk;
            loop {
                match acc.feed(rest) {
                    Feed::Consumed => break,
                    Feed::Frame { frame, remaining } => {
                        black_box(&frame);
                        frames += 1;
                        rest = remaining;
                    }
                    Feed::Rejected { remaining, .. } => rest = remaining,
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(frames, n, "every frame decodes");
        println!(
            "round {round}: {n} frames ({} bytes, {:.1} B/frame) in {secs:.3} s: {:.0} frames/s, {:.1} MB/s on one core",
            stream.len(),
            stream.len() as f64 / n as f64,
            n as f64 / secs,
            stream.len() as f64 / secs / 1e6
        );
    }
}
