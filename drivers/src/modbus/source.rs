//! The Modbus source's async shell: one task per connection. Each TCP slave gets its own
//! connection, so a slave that stops answering costs only its own polls; the slaves of one
//! RTU line share it (a serial bus carries one request at a time).

use crate::{Handed, hand_over};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader, rtu, tcp};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_util::sync::CancellationToken;

use super::config::{ModbusConfig, SlaveConfig, Transport};
use super::map::{Batch, RegisterConfig, Table, plan};
use super::quality::{self, Quality};
use crate::backoff::Backoff;
use crate::{Delivery, Reading, SourceCounters, SourceError};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Polls every slave of `cfg` until `shutdown`. Returns an error only for an invalid
/// configuration or a closed pipeline; unreachable or failing slaves are retried forever.
pub async fn run(
    cfg: ModbusConfig,
    tx: mpsc::Sender<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    cfg.validate()?;
    // TCP slaves each on their own; RTU slaves grouped by line.
    let mut lines: Vec<(Transport, Vec<&SlaveConfig>)> = Vec::new();
    for slave in &cfg.slaves {
        let Some(transport) = slave.transport() else {
            continue; // `validate` has reported it
        };
        match lines.iter_mut().find(|(t, _)| matches!((t, &transport), (Transport::Rtu(a), Transport::Rtu(b)) if a.path == b.path)) {
            Some((_, slaves)) => slaves.push(slave),
            None => lines.push((transport, vec![slave])),
        }
    }
    let up = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let n_lines = lines.len();
    for (transport, slaves) in lines {
        let poller = Poller {
            source: cfg.name.clone(),
            timeout: cfg.timeout,
            retries: cfg.retries,
            units: slaves
                .iter()
                .map(|s| unit(s, cfg.max_gap, cfg.quality))
                .collect(),
            transport,
            lines: n_lines,
            up: up.clone(),
            counters: counters.clone(),
        };
        tasks.spawn(poller.run(tx.clone(), shutdown.clone()));
    }
    tracing::info!(source = %cfg.name, slaves = cfg.slaves.len(), "modbus polling started");
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(())) if shutdown.is_cancelled() => {}
            Ok(Err(())) => return Err(SourceError::PipelineClosed { name: cfg.name }),
            Err(e) => tracing::error!(source = %cfg.name, error = %e, "modbus slave task failed"),
        }
    }
    Ok(())
}

struct Group {
    interval: Duration,
    registers: Vec<RegisterConfig>,
    metrics: Vec<Arc<str>>,
    /// Per register, its `<metric>.quality` series; empty with `quality: false`.
    quality: Vec<Arc<str>>,
    batches: Vec<Batch>,
    /// Per batch: an exception was logged at WARN (a wrong map answers the same every poll).
    exception_warned: Vec<AtomicBool>,
    due: Instant,
}

/// One slave on a connection.
struct Unit {
    device: Arc<str>,
    id: u8,
    /// Set while the unit is not answering, so that is logged at WARN once, not every poll.
    failing: AtomicBool,
    groups: Vec<Group>,
}

fn unit(slave: &SlaveConfig, max_gap: u16, with_quality: bool) -> Unit {
    let now = Instant::now();
    let groups = slave
        .groups
        .iter()
        .map(|g| Group {
            interval: g.interval,
            metrics: g
                .registers
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
            quality: g
                .registers
                .iter()
                .filter(|_| with_quality)
                .map(|r| Arc::from(quality::metric(&r.name)))
                .collect(),
            batches: plan(&g.registers, max_gap),
            exception_warned: plan(&g.registers, max_gap)
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            registers: g.registers.clone(),
            due: now,
        })
        .collect();
    Unit {
        device: Arc::from(slave.device.as_str()),
        id: slave.unit,
        failing: AtomicBool::new(false),
        groups,
    }
}

impl Unit {
    fn quality_reading(&self, metric: &Arc<str>, ts: i64, q: Quality) -> Reading {
        Reading {
            device: Arc::clone(&self.device),
            metric: Arc::clone(metric),
            ts,
            value: q.code(),
        }
    }

    /// Sends quality `q` for every value of batch `b` of group `g` (none were read).
    fn mark(&self, g: usize, b: usize, q: Quality, ts: i64, readings: &mut Vec<Reading>) {
        let group = &self.groups[g];
        for &(i, _) in &group.batches[b].items {
            if let Some(metric) = group.quality.get(i) {
                readings.push(self.quality_reading(metric, ts, q));
            }
        }
    }
}

/// Polls the units on one connection.
struct Poller {
    source: String,
    timeout: Duration,
    retries: u32,
    units: Vec<Unit>,
    transport: Transport,
    /// Connections of the whole source, for `connected`.
    lines: usize,
    up: Arc<AtomicUsize>,
    counters: Arc<SourceCounters>,
}

/// Why a read produced no words.
enum ReadError {
    /// The slave answered with an exception: it is there, the request is wrong for it.
    Exception { code: u8, message: String },
    /// No usable answer after every attempt (`Timeout` or `Transport`, from the last
    /// attempt); the connection is dropped.
    Failed { quality: Quality, message: String },
}

impl Poller {
    /// `Err(())`: the pipeline closed.
    async fn run(
        mut self,
        tx: mpsc::Sender<Delivery>,
        shutdown: CancellationToken,
    ) -> Result<(), ()> {
        let mut ctx: Option<Context> = None;
        loop {
            let next = self
                .units
                .iter()
                .enumerate()
                .flat_map(|(u, unit)| {
                    unit.groups
                        .iter()
                        .enumerate()
                        .map(move |(g, group)| (u, g, group.due))
                })
                .min_by_key(|&(.., due)| due);
            let Some((u, g, due)) = next else {
                return Ok(());
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
            let now = Instant::now();
            let group = &mut self.units[u].groups[g];
            group.due += group.interval;
            if group.due <= now {
                // Polls that took longer than the interval: skip the missed ones.
                group.due = now + group.interval;
            }
            let ts = crate::now_us();
            let mut readings = Vec::new();
            let n_batches = self.units[u].groups[g].batches.len();
            for b in 0..n_batches {
                let unit = &self.units[u];
                let words = match self
                    .read(&mut ctx, unit.id, &unit.groups[g].batches[b], &shutdown)
                    .await
                {
                    Ok(words) => {
                        if unit.failing.swap(false, Ordering::Relaxed) {
                            tracing::info!(source = %self.source, device = %unit.device, unit = unit.id, "modbus slave answering again");
                        }
                        words
                    }
                    Err(ReadError::Exception { code, message: e }) => {
                        SourceCounters::add(&self.counters.exceptions, 1);
                        unit.mark(g, b, Quality::Exception(code), ts, &mut readings);
                        if unit.groups[g].exception_warned[b].swap(true, Ordering::Relaxed) {
                            tracing::debug!(source = %self.source, device = %unit.device, unit = unit.id, error = %e, "modbus exception");
                        } else {
                            tracing::warn!(source = %self.source, device = %unit.device, unit = unit.id, error = %e, "modbus exception (logged once per request; counted in `exceptions`)");
                        }
                        continue;
                    }
                    Err(ReadError::Failed {
                        quality,
                        message: e,
                    }) => {
                        // This request and the group's later ones were not made.
                        for rest in b..n_batches {
                            unit.mark(g, rest, quality, ts, &mut readings);
                        }
                        if unit.failing.swap(true, Ordering::Relaxed) {
                            tracing::debug!(source = %self.source, device = %unit.device, unit = unit.id, error = %e, "modbus slave still not answering");
                        } else {
                            tracing::warn!(source = %self.source, device = %unit.device, unit = unit.id, error = %e, "modbus slave not answering");
                        }
                        break;
                    }
                };
                let group = &unit.groups[g];
                for &(i, off) in &group.batches[b].items {
                    let reg = &group.registers[i];
                    let at = usize::from(off);
                    let width = usize::from(reg.data_type().width());
                    let q = match words.get(at..at + width).and_then(|w| reg.decode(w)) {
                        Some(value) if value.is_finite() => {
                            readings.push(Reading {
                                device: Arc::clone(&unit.device),
                                metric: Arc::clone(&group.metrics[i]),
                                ts,
                                value,
                            });
                            Quality::Good
                        }
                        _ => {
                            SourceCounters::add(&self.counters.decode_errors, 1);
                            Quality::Invalid
                        }
                    };
                    if let Some(metric) = group.quality.get(i) {
                        readings.push(unit.quality_reading(metric, ts, q));
                    }
                }
            }
            if readings.is_empty() {
                continue;
            }
            SourceCounters::add(&self.counters.received, 1);
            let delivery = Delivery {
                readings,
                ack: None,
            };
            match hand_over(&tx, delivery, &self.counters, &shutdown).await {
                Handed::Sent => {}
                Handed::Shutdown => break,
                Handed::Closed => return Err(()),
            }
        }
        if ctx.is_some() {
            self.set_up(false);
        }
        Ok(())
    }

    fn set_up(&self, up: bool) {
        let n = if up {
            self.up.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.up.fetch_sub(1, Ordering::Relaxed) - 1
        };
        self.counters.set_connected(n == self.lines);
    }

    /// Reads one batch from unit `id`, connecting first if needed; retries timeouts and
    /// transport errors on a fresh connection.
    async fn read(
        &self,
        ctx: &mut Option<Context>,
        id: u8,
        batch: &Batch,
        shutdown: &CancellationToken,
    ) -> Result<Vec<u16>, ReadError> {
        let mut last = (Quality::Transport, String::new());
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        for attempt in 0..=self.retries {
            if attempt > 0 {
                let delay = backoff.failed();
                tokio::select! {
                    () = shutdown.cancelled() => return Err(ReadError::Failed { quality: Quality::Transport, message: "shutting down".into() }),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            if ctx.is_none() {
                match self.connect().await {
                    Ok(c) => {
                        *ctx = Some(c);
                        SourceCounters::add(&self.counters.connects, 1);
                        self.set_up(true);
                    }
                    Err(e) => {
                        SourceCounters::add(&self.counters.transport_errors, 1);
                        last = (Quality::Transport, e);
                        continue;
                    }
                }
            }
            let Some(c) = ctx.as_mut() else { continue };
            c.set_slave(Slave(id));
            let answer = tokio::time::timeout(self.timeout, read_batch(c, batch)).await;
            match answer {
                Ok(Ok(Ok(words))) => return Ok(words),
                Ok(Ok(Err(code))) => {
                    return Err(ReadError::Exception {
                        code: u8::from(code),
                        message: format!(
                            "{code} reading {:?} {}+{}",
                            batch.table, batch.start, batch.count
                        ),
                    });
                }
                Ok(Err(e)) => {
                    SourceCounters::add(&self.counters.transport_errors, 1);
                    last = (Quality::Transport, e.to_string());
                }
                Err(_) => {
                    SourceCounters::add(&self.counters.timeouts, 1);
                    last = (
                        Quality::Timeout,
                        format!("no answer within {:?}", self.timeout),
                    );
                }
            }
            // A late answer would be taken for the next request's: start afresh.
            *ctx = None;
            self.set_up(false);
        }
        Err(ReadError::Failed {
            quality: last.0,
            message: last.1,
        })
    }

    async fn connect(&self) -> Result<Context, String> {
        match &self.transport {
            Transport::Tcp(address) => {
                let connect = async {
                    let addr = tokio::net::lookup_host(address)
                        .await
                        .map_err(|e| e.to_string())?
                        .next()
                        .ok_or_else(|| format!("{address} resolves to no address"))?;
                    tcp::connect(addr).await.map_err(|e| e.to_string())
                };
                tokio::time::timeout(self.timeout, connect)
                    .await
                    .map_err(|_| format!("connecting to {address} timed out"))?
            }
            Transport::Rtu(line) => crate::serial::port::open(crate::serial::port::Line {
                path: &line.path,
                baud: line.baud,
                data_bits: line.data_bits,
                parity: line.parity,
                stop_bits: line.stop_bits,
            })
            .map(rtu::attach)
            .map_err(|e| format!("opening {}: {e}", line.path.display())),
        }
    }
}

async fn read_batch(ctx: &mut Context, b: &Batch) -> tokio_modbus::Result<Vec<u16>> {
    let bits = |r: tokio_modbus::Result<Vec<bool>>| {
        r.map(|r| r.map(|v| v.into_iter().map(u16::from).collect()))
    };
    match b.table {
        Table::Coil => bits(ctx.read_coils(b.start, b.count).await),
        Table::DiscreteInput => bits(ctx.read_discrete_inputs(b.start, b.count).await),
        Table::Holding => ctx.read_holding_registers(b.start, b.count).await,
        Table::Input => ctx.read_input_registers(b.start, b.count).await,
    }
}
