//! The serial source's async shell: open the port, move bytes into the decoder, send what
//! it yields, and reopen with backoff when the port fails or the device disappears.

use crate::{Handed, hand_over};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;

use super::config::{Protocol, SerialConfig};
use super::lines::{LineAccumulator, LineDecoder, LineFeed};
use super::port;
use crate::backoff::Backoff;
use crate::frame::{Accumulator, Feed, FrameError};
use crate::{Delivery, Reading, SourceCounters, SourceError};

/// Names kept interned per source; a device inventing names beyond this gets them allocated
/// per reading instead of growing the map.
const MAX_INTERNED: usize = 1024;
/// WARN lines about bad input per minute; the rest go to DEBUG (counters keep the total).
const WARNS_PER_MINUTE: u32 = 10;

/// Runs the serial source until `shutdown`. Returns an error only for an invalid
/// configuration or a closed pipeline; a port that fails is reopened with backoff forever.
pub async fn run(
    cfg: SerialConfig,
    tx: mpsc::Sender<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    cfg.validate()?;
    let mut decoder = Decoder::new(&cfg);
    let mut backoff = Backoff::new(cfg.reopen_min, cfg.reopen_max);
    let mut down_since: Option<Instant> = None;
    let path = cfg.path.display().to_string();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        match port::open(port::Line {
            path: &cfg.path,
            baud: cfg.baud,
            data_bits: cfg.data_bits,
            parity: cfg.parity,
            stop_bits: cfg.stop_bits,
        }) {
            Ok(port) => {
                SourceCounters::add(&counters.connects, 1);
                counters.set_connected(true);
                tracing::info!(source = %cfg.name, port = %path, baud = cfg.baud, "serial port open");
                // A port that stays open PROVE_AFTER starts the backoff over; one that fails
                // at once (a device that resets on open) keeps it growing.
                backoff.connected();
                decoder.reset();
                let end = read_port(port, &mut decoder, &tx, &counters, &shutdown).await;
                counters.set_connected(false);
                match end {
                    End::Shutdown => return Ok(()),
                    End::PipelineClosed => {
                        return Err(SourceError::PipelineClosed { name: cfg.name });
                    }
                    End::Lost(reason) => {
                        SourceCounters::add(&counters.transport_errors, 1);
                        tracing::warn!(source = %cfg.name, port = %path, %reason, "serial port lost; reopening");
                        down_since = Some(Instant::now());
                    }
                }
            }
            Err(e) => {
                SourceCounters::add(&counters.transport_errors, 1);
                match down_since {
                    None => {
                        tracing::warn!(source = %cfg.name, port = %path, error = %e, "serial port does not open; retrying");
                        down_since = Some(Instant::now());
                    }
                    Some(t) => {
                        tracing::debug!(source = %cfg.name, port = %path, error = %e, down_for = ?t.elapsed(), "serial port still does not open")
                    }
                }
            }
        }
        let delay = backoff.failed();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

enum End {
    Shutdown,
    PipelineClosed,
    Lost(String),
}

async fn read_port(
    mut port: SerialStream,
    decoder: &mut Decoder,
    tx: &mpsc::Sender<Delivery>,
    counters: &SourceCounters,
    shutdown: &CancellationToken,
) -> End {
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    loop {
        let n = tokio::select! {
            biased;
            () = shutdown.cancelled() => return End::Shutdown,
            read = port.read(&mut buf) => match read {
                Ok(0) => return End::Lost("end of file".to_owned()),
                Ok(n) => n,
                Err(e) => return End::Lost(e.to_string()),
            },
        };
        decoder.push(&buf[..n], crate::now_us(), counters, &mut out);
        for readings in out.drain(..) {
            SourceCounters::add(&counters.received, 1);
            let delivery = Delivery {
                readings,
                ack: None,
            };
            // Back-pressure: while the pipeline is full the port is not read; the kernel's
            // buffer then overflows and the decoder resynchronises on what follows.
            match hand_over(tx, delivery, counters, shutdown).await {
                Handed::Sent => {}
                Handed::Shutdown => return End::Shutdown,
                Handed::Closed => return End::PipelineClosed,
            }
        }
    }
}

/// Bytes to readings, for any protocol; counts and logs what it rejects.
struct Decoder {
    name: String,
    default_device: Arc<str>,
    kind: Kind,
    names: HashMap<String, Arc<str>>,
    warns: (Instant, u32),
}

enum Kind {
    Frames(Box<Accumulator>),
    Lines {
        acc: LineAccumulator,
        dec: LineDecoder,
    },
}

impl Decoder {
    fn new(cfg: &SerialConfig) -> Self {
        let kind = match cfg.protocol {
            Protocol::Frames => Kind::Frames(Box::new(Accumulator::new())),
            p => Kind::Lines {
                acc: LineAccumulator::new(cfg.max_line),
                dec: match p {
                    Protocol::JsonLines => LineDecoder::JsonLines {
                        max_line: cfg.max_line,
                    },
                    Protocol::KvLines => LineDecoder::KvLines,
                    _ => LineDecoder::Csv { header: None },
                },
            },
        };
        Decoder {
            name: cfg.name.clone(),
            default_device: Arc::from(cfg.device.as_deref().unwrap_or(&cfg.name)),
            kind,
            names: HashMap::new(),
            warns: (Instant::now(), 0),
        }
    }

    fn reset(&mut self) {
        match &mut self.kind {
            Kind::Frames(acc) => acc.reset(),
            Kind::Lines { acc, dec } => {
                acc.reset();
                dec.reset();
            }
        }
    }

    /// Decodes `bytes`, appending one reading list per good frame or line to `out`.
    fn push(
        &mut self,
        mut bytes: &[u8],
        now_us: i64,
        counters: &SourceCounters,
        out: &mut Vec<Vec<Reading>>,
    ) {
        let names = &mut self.names;
        let default_device = &self.default_device;
        let mut bad: Vec<String> = Vec::new();
        match &mut self.kind {
            Kind::Frames(acc) => loop {
                match acc.feed(bytes) {
                    Feed::Consumed => break,
                    Feed::Frame { frame, remaining } => {
                        bytes = remaining;
                        let device = if frame.device.is_empty() {
                            Arc::clone(default_device)
                        } else {
                            intern(names, &frame.device)
                        };
                        let ts = frame.ts_ms.map_or(now_us, |ms| {
                            i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(1000)
                        });
                        let readings: Vec<Reading> = frame
                            .points
                            .iter()
                            .filter(|p| p.value.is_finite())
                            .map(|p| Reading {
                                device: Arc::clone(&device),
                                metric: intern(names, &p.metric),
                                ts,
                                value: f64::from(p.value),
                            })
                            .collect();
                        if !readings.is_empty() {
                            out.push(readings);
                        }
                    }
                    Feed::Rejected { error, remaining } => {
                        bytes = remaining;
                        SourceCounters::add(&counters.decode_errors, 1);
                        if matches!(error, FrameError::Crc { .. }) {
                            SourceCounters::add(&counters.crc_errors, 1);
                        }
                        bad.push(error.to_string());
                    }
                }
            },
            Kind::Lines { acc, dec } => loop {
                match acc.feed(bytes) {
                    LineFeed::Consumed => break,
                    LineFeed::TooLong { limit, remaining } => {
                        bytes = remaining;
                        SourceCounters::add(&counters.decode_errors, 1);
                        bad.push(format!("line longer than {limit} bytes"));
                    }
                    LineFeed::Line { line, remaining } => {
                        bytes = remaining;
                        match dec.decode(line) {
                            Ok(None) => {}
                            Ok(Some(record)) => {
                                let device = record.device.filter(|d| !d.is_empty()).map_or_else(
                                    || Arc::clone(default_device),
                                    |d| intern(names, &d),
                                );
                                let ts = record.ts.unwrap_or(now_us);
                                out.push(
                                    record
                                        .values
                                        .iter()
                                        .map(|(metric, value)| Reading {
                                            device: Arc::clone(&device),
                                            metric: intern(names, metric),
                                            ts,
                                            value: *value,
                                        })
                                        .collect(),
                                );
                            }
                            Err(e) => {
                                SourceCounters::add(&counters.decode_errors, 1);
                                bad.push(e.to_string());
                            }
                        }
                    }
                }
            },
        }
        for reason in bad {
            self.warn_bad(&reason);
        }
    }

    fn warn_bad(&mut self, reason: &str) {
        let (start, n) = &mut self.warns;
        if start.elapsed() >= Duration::from_secs(60) {
            *start = Instant::now();
            *n = 0;
        }
        *n = n.saturating_add(1);
        if *n <= WARNS_PER_MINUTE {
            tracing::warn!(source = %self.name, %reason, "bad serial input");
        } else {
            tracing::debug!(source = %self.name, %reason, "bad serial input");
        }
    }
}

fn intern(names: &mut HashMap<String, Arc<str>>, name: &str) -> Arc<str> {
    if let Some(n) = names.get(name) {
        return Arc::clone(n);
    }
    let n: Arc<str> = Arc::from(name);
    if names.len() < MAX_INTERNED {
        names.insert(name.to_owned(), Arc::clone(&n));
    }
    n
}
