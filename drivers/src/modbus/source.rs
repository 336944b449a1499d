//! The Modbus source's async shell: one task per slave, each with its own connection, so a
//! slave that stops answering costs only its own polls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader, tcp};
use tokio_modbus::slave::Slave;
use tokio_util::sync::CancellationToken;

use super::config::{ModbusConfig, SlaveConfig};
use super::map::{Batch, RegisterConfig, Table, plan};
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
    let up = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for slave in &cfg.slaves {
        let poller = Poller {
            source: cfg.name.clone(),
            device: Arc::from(slave.device.as_str()),
            timeout: cfg.timeout,
            retries: cfg.retries,
            groups: groups(slave, cfg.max_gap),
            slave: slave.clone(),
            slaves: cfg.slaves.len(),
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
    batches: Vec<Batch>,
    due: Instant,
}

fn groups(slave: &SlaveConfig, max_gap: u16) -> Vec<Group> {
    let now = Instant::now();
    slave
        .groups
        .iter()
        .map(|g| Group {
            interval: g.interval,
            metrics: g
                .registers
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
            batches: plan(&g.registers, max_gap),
            registers: g.registers.clone(),
            due: now,
        })
        .collect()
}

struct Poller {
    source: String,
    device: Arc<str>,
    timeout: Duration,
    retries: u32,
    groups: Vec<Group>,
    slave: SlaveConfig,
    slaves: usize,
    up: Arc<AtomicUsize>,
    counters: Arc<SourceCounters>,
}

/// Why a read produced no words.
enum ReadError {
    /// The slave answered with an exception: it is there, the request is wrong for it.
    Exception(String),
    /// No usable answer after every attempt; the connection is dropped.
    Failed(String),
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
            let Some((gi, due)) = self
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| (i, g.due))
                .min_by_key(|&(_, d)| d)
            else {
                return Ok(());
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
            let now = Instant::now();
            let group = &mut self.groups[gi];
            group.due += group.interval;
            if group.due <= now {
                // Polls that took longer than the interval: skip the missed ones.
                group.due = now + group.interval;
            }
            let ts = crate::now_us();
            let mut readings = Vec::new();
            for b in 0..self.groups[gi].batches.len() {
                let words = match self.read(&mut ctx, gi, b, &shutdown).await {
                    Ok(words) => words,
                    Err(ReadError::Exception(e)) => {
                        SourceCounters::add(&self.counters.exceptions, 1);
                        tracing::warn!(source = %self.source, device = %self.device, unit = self.slave.unit, error = %e, "modbus exception");
                        continue;
                    }
                    Err(ReadError::Failed(e)) => {
                        tracing::warn!(source = %self.source, device = %self.device, error = %e, "modbus slave not answering");
                        break;
                    }
                };
                let group = &self.groups[gi];
                let batch = &group.batches[b];
                for &(i, off) in &batch.items {
                    let reg = &group.registers[i];
                    let at = usize::from(off);
                    let width = usize::from(reg.data_type().width());
                    match words.get(at..at + width).and_then(|w| reg.decode(w)) {
                        Some(value) if value.is_finite() => readings.push(Reading {
                            device: Arc::clone(&self.device),
                            metric: Arc::clone(&group.metrics[i]),
                            ts,
                            value,
                        }),
                        _ => SourceCounters::add(&self.counters.decode_errors, 1),
                    }
                }
            }
            if readings.is_empty() {
                continue;
            }
            let n = readings.len() as u64;
            SourceCounters::add(&self.counters.received, 1);
            let delivery = Delivery {
                readings,
                ack: None,
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                sent = tx.send(delivery) => if sent.is_err() { return Err(()) },
            }
            self.counters.sent(n, crate::now_us());
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
        self.counters.set_connected(n == self.slaves);
    }

    /// Reads one batch, connecting first if needed; retries timeouts and transport errors on
    /// a fresh connection.
    async fn read(
        &self,
        ctx: &mut Option<Context>,
        gi: usize,
        b: usize,
        shutdown: &CancellationToken,
    ) -> Result<Vec<u16>, ReadError> {
        let batch = &self.groups[gi].batches[b];
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                let delay = (BACKOFF_MIN * 2u32.saturating_pow(attempt - 1)).min(BACKOFF_MAX);
                tokio::select! {
                    () = shutdown.cancelled() => return Err(ReadError::Failed("shutting down".into())),
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
                        last = e;
                        continue;
                    }
                }
            }
            let Some(c) = ctx.as_mut() else { continue };
            let answer = tokio::time::timeout(self.timeout, read_batch(c, batch)).await;
            match answer {
                Ok(Ok(Ok(words))) => return Ok(words),
                Ok(Ok(Err(code))) => {
                    return Err(ReadError::Exception(format!(
                        "{code} reading {:?} {}+{}",
                        batch.table, batch.start, batch.count
                    )));
                }
                Ok(Err(e)) => {
                    SourceCounters::add(&self.counters.transport_errors, 1);
                    last = e.to_string();
                }
                Err(_) => {
                    SourceCounters::add(&self.counters.timeouts, 1);
                    last = format!("no answer within {:?}", self.timeout);
                }
            }
            // A late answer would be taken for the next request's: start afresh.
            *ctx = None;
            self.set_up(false);
        }
        Err(ReadError::Failed(last))
    }

    async fn connect(&self) -> Result<Context, String> {
        let connect = async {
            let addr = tokio::net::lookup_host(&self.slave.tcp)
                .await
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| format!("{} resolves to no address", self.slave.tcp))?;
            tcp::connect_slave(addr, Slave(self.slave.unit))
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| format!("connecting to {} timed out", self.slave.tcp))?
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
