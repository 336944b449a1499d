//! Outbox figures: durable ingest rate (group commit), drain rate to a local mosquitto through
//! the real uplink, and bytes written to disk per record and per payload byte, for
//! `synchronous: normal` and `full`, one record per message and batches of 100.
//!
//!     cargo bench -p weir-agent --bench outbox                  # 200,000 records
//!     WEIR_BENCH_RECORDS=1000000 cargo bench -p weir-agent --bench outbox
//!     WEIR_BENCH_INFLIGHT=256 cargo bench -p weir-agent --bench outbox   # uplink.inflight
//!     WEIR_BENCH_BATCH_MAX=4096 cargo bench -p weir-agent --bench outbox  # outbox.batch_max
//!     WEIR_BENCH_CACHE_KIB=2000 cargo bench -p weir-agent --bench outbox  # writer page cache
//!
//! Targets (issue 6): ingest ≥ 200,000 records/s, drain ≥ 50,000 records/s, ≤ 2 bytes written
//! per payload byte. "Written" is `write_bytes` from `/proc/self/io` (what this process sent
//! towards the block device, page cache included) over the phase; `wchar` (every byte handed
//! to `write(2)`, sockets included) is printed beside it. Payload bytes are topic + the JSON
//! body as appended (format 1); the outbox stores the body in the smaller format 2 (see
//! `support/payload.rs`), which is what the bound counts.
//!
//! Ingest is durable: the rate counts records whose transaction has committed at the
//! configured `synchronous` level. Drain counts records published by the real uplink to a
//! mosquitto started here, acknowledged (PUBACK) and deleted from the outbox. In the same run
//! the same messages are published by a plain rumqttc client (same in-flight window, no
//! outbox): that is the broker's own ceiling on this machine, and the ratio says how much of
//! it the uplink reaches.
//!
//! The outbox and the uplink are the agent library's own (`weir_agent`): the code measured is
//! the code that ships.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use outbox::config::Synchronous;
use outbox::{Lane, NewRecord, Outbox, OutboxConfig, PAYLOAD_V1};
use tokio_util::sync::CancellationToken;
use weir_agent::{outbox, uplink};
use weir_tests::Mosquitto;

/// `uplink.inflight` for the drain: `WEIR_BENCH_INFLIGHT`, else the default.
fn inflight() -> usize {
    std::env::var("WEIR_BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(uplink::UplinkConfig::default().inflight)
}

/// `outbox.batch_max` for the ingest: `WEIR_BENCH_BATCH_MAX`, else the default.
fn batch_max() -> usize {
    std::env::var("WEIR_BENCH_BATCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(OutboxConfig::default().batch_max)
}

/// The writer's SQLite page cache, KiB: `WEIR_BENCH_CACHE_KIB`, else the outbox's own.
fn cache_kib() -> u32 {
    std::env::var("WEIR_BENCH_CACHE_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(OutboxConfig::default().cache_kib)
}

/// Records per `append` call: what the pipeline folds into one call at most.
const PER_APPEND: usize = 512;

#[derive(Debug, Clone, Copy, Default)]
struct Io {
    write_bytes: u64,
    wchar: u64,
}

impl Io {
    fn now() -> Io {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        Io {
            write_bytes: field("write_bytes:"),
            wchar: field("wchar:"),
        }
    }

    fn since(self, before: Io) -> Io {
        Io {
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            wchar: self.wchar.saturating_sub(before.wchar),
        }
    }
}

/// The comm and the CPU seconds (user + system) of one `/proc/…/stat` line, which counts
/// in clock ticks of 1/100 s (Linux's USER_HZ).
fn stat_cpu(stat: &str) -> Option<(&str, f64)> {
    // `pid (comm) state ppid …`: fields after the comm's closing parenthesis.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, comm)| comm);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the comm.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Some((comm, ticks as f64 / 100.0))
}

/// CPU seconds used so far by this process's threads named `name` (`/proc/self/task/*/stat`).
fn thread_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| stat_cpu(&stat).and_then(|(comm, cpu)| (comm == name).then_some(cpu)))
        .sum()
}

/// CPU seconds used so far by process `pid` (`self` for this one).
fn process_cpu(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu(&stat).map(|(_, cpu)| cpu))
        .unwrap_or(0.0)
}

/// CPU seconds of this process and of the broker over one phase.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    own: f64,
    broker: f64,
}

impl Cpu {
    fn now(broker: &str) -> Cpu {
        Cpu {
            own: process_cpu("self"),
            broker: process_cpu(broker),
        }
    }
    fn since(self, start: Cpu) -> Cpu {
        Cpu {
            own: self.own - start.own,
            broker: self.broker - start.broker,
        }
    }
}

/// A window record like the pipeline writes (~200 bytes), most of them aggregates.
fn record(n: u64) -> NewRecord {
    let lane = match n % 20 {
        0 => Lane::Alerts,
        1 => Lane::Predictions,
        _ => Lane::Aggregates,
    };
    let body = format!(
        r#"{{"kind":"window","rule":"pump-overheat","device":"pump-{d}","metric":"temperature","ts":{ts},"start":{ts},"end":{end},"values":{{"count":10,"mean":{m:.3},"max":{x:.3}}}}}"#,
        d = n % 100,
        ts = 1_732_530_000_000_000 + n as i64 * 1000,
        end = 1_732_530_001_000_000 + n as i64 * 1000,
        m = 60.0 + (n % 37) as f64 * 0.731,
        x = 70.0 + (n % 23) as f64 * 1.117,
    );
    let mut payload = Vec::with_capacity(body.len() + 1);
    payload.push(PAYLOAD_V1);
    payload.extend_from_slice(body.as_bytes());
    NewRecord {
        lane,
        topic: format!("weir/gw-bench/{lane}").into(),
        created_at: 1_732_530_000_000_000 + n as i64,
        payload,
    }
}

fn file_len(path: &Path, suffix: &str) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Resolves once everything queued before it is committed.
async fn flush(outbox: &Outbox) -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    outbox
        .append_with(
            vec![],
            vec![Box::new(move || {
                let _ = tx.send(());
            })],
        )
        .await?;
    rx.await.context("the writer dropped the flush hook")
}

struct Figures {
    ingest_rate: f64,
    /// Records per CPU-second of the writer thread during the ingest.
    ingest_per_cpu: f64,
    ingest_io: Io,
    payload_bytes: u64,
    files: (u64, u64),
    drain_rate: f64,
    /// Records/s up to the last PUBACK (the deletes of the last batch may follow, see
    /// `DELETE_DELAY` in the uplink): the figure comparable to the plain publisher's clock.
    acked_rate: f64,
    drain_io: Io,
    batches: u64,
    /// The same messages from a plain rumqttc publisher, records/s.
    broker_rate: f64,
    /// CPU of this process (uplink, writer, rumqttc) and of the broker during the drain.
    drain_cpu: Cpu,
    /// The same during the plain publisher's run.
    broker_cpu: Cpu,
}

/// One way of running the outbox and uplink.
struct Scenario {
    sync: Synchronous,
    batch: Option<uplink::BatchConfig>,
}

impl Scenario {
    fn uplink(&self, port: u16, client: &str) -> uplink::UplinkConfig {
        uplink::UplinkConfig {
            port,
            client_id: Some(format!("{client}-{}", std::process::id())),
            inflight: inflight(),
            batch: self.batch.clone(),
            ..uplink::UplinkConfig::default()
        }
    }
}

/// The broker's own rate for `messages`: a plain rumqttc client publishing them at QoS 1
/// with the uplink's in-flight window, nothing else. Returns records/s (`records` in all).
async fn broker_rate(
    cfg: &uplink::UplinkConfig,
    messages: Vec<(String, Vec<u8>)>,
    records: u64,
    broker_pid: &str,
) -> Result<(f64, Cpu)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(
        cfg.client_id.clone().unwrap_or_default() + "-plain",
        cfg.host.clone(),
        cfg.port,
    );
    opts.set_inflight(u16::try_from(cfg.inflight).unwrap_or(u16::MAX))
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, cfg.inflight + 4);
    let total = messages.len();
    // The clock includes the connect, as the drain's does.
    let cpu0 = Cpu::now(broker_pid);
    let t0 = Instant::now();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok::<_, rumqttc::ClientError>(client)
    });
    let mut acked = 0;
    while acked < total {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
            acked += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = Cpu::now(broker_pid).since(cpu0);
    let client = publisher.await??;
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    Ok((records as f64 / secs, cpu))
}

async fn run_one(
    records: u64,
    scenario: &Scenario,
    broker_port: u16,
    broker_pid: &str,
) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let cfg = OutboxConfig {
        path: dir.path().join("outbox.db"),
        max_bytes: 1 << 40,
        synchronous: scenario.sync,
        batch_max: batch_max(),
        cache_kib: cache_kib(),
        ..OutboxConfig::default()
    };
    // Build the input first: the figure is the outbox's, not the formatter's.
    let mut chunks = Vec::new();
    let mut payload_bytes = 0;
    let mut n = 0;
    while n < records {
        let chunk: Vec<NewRecord> = (n..(n + PER_APPEND as u64).min(records))
            .map(record)
            .collect();
        payload_bytes += chunk.iter().map(NewRecord::size).sum::<u64>();
        n += chunk.len() as u64;
        chunks.push(chunk);
    }
    // What the uplink will send, for the broker's own figure: in fetch order (lane, id).
    let mut stored: Vec<outbox::Record> = chunks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| outbox::Record {
            id: i as u64 + 1,
            lane: r.lane,
            topic: r.topic.to_string(),
            created_at: r.created_at,
            payload: r.payload.clone(),
        })
        .collect();
    stored.sort_by_key(|r| (r.lane, r.id));
    let uplink_cfg = scenario.uplink(broker_port, "weir-bench");
    // The uplink's own grouping: the same messages the drain below publishes.
    let messages: Vec<(String, Vec<u8>)> = uplink::Grouper::new(&uplink_cfg, "gw-bench")
        .group(&stored)
        .messages
        .into_iter()
        .map(|m| (m.topic.to_owned(), m.payload))
        .collect();
    drop(stored);

    let (outbox, thread) = Outbox::open(&cfg)?;
    let io0 = Io::now();
    let cpu0 = thread_cpu("weir-outbox");
    let t0 = Instant::now();
    for chunk in chunks {
        outbox.append(chunk, vec![]).await?;
    }
    flush(&outbox).await?;
    let ingest_secs = t0.elapsed().as_secs_f64();
    let ingest_cpu = thread_cpu("weir-outbox") - cpu0;
    let ingest_io = Io::now().since(io0);
    let counters = outbox.counters();
    let appended = counters.appended.load(Ordering::Relaxed);
    if appended != records {
        bail!("appended {appended} of {records}");
    }
    let batches = counters.committed_batches.load(Ordering::Relaxed);
    let files = (file_len(&cfg.path, ""), file_len(&cfg.path, "-wal"));

    let shutdown = CancellationToken::new();
    let io1 = Io::now();
    let cpu1 = Cpu::now(broker_pid);
    let t1 = Instant::now();
    let uplink_counters = std::sync::Arc::new(uplink::UplinkCounters::default());
    let task = tokio::spawn(uplink::run(
        uplink_cfg.clone(),
        "gw-bench".into(),
        outbox.clone(),
        uplink_counters.clone(),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut acked_secs = None;
    while counters.deleted.load(Ordering::Relaxed) < records {
        if Instant::now() > deadline || task.is_finished() {
            bail!(
                "drain stalled at {} of {records}",
                counters.deleted.load(Ordering::Relaxed)
            );
        }
        if acked_secs.is_none() && uplink_counters.acked.load(Ordering::Relaxed) >= records {
            acked_secs = Some(t1.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain_secs = t1.elapsed().as_secs_f64();
    let acked_secs = acked_secs.unwrap_or(drain_secs);
    let drain_cpu = Cpu::now(broker_pid).since(cpu1);
    let drain_io = Io::now().since(io1);
    shutdown.cancel();
    task.await??;
    drop(outbox);
    thread.join()?;
    let (broker_rate, broker_cpu) = broker_rate(&uplink_cfg, messages, records, broker_pid).await?;
    Ok(Figures {
        ingest_rate: records as f64 / ingest_secs,
        ingest_per_cpu: records as f64 / ingest_cpu.max(0.01),
        ingest_io,
        payload_bytes,
        files,
        drain_rate: records as f64 / drain_secs,
        acked_rate: records as f64 / acked_secs,
        drain_io,
        batches,
        broker_rate,
        drain_cpu,
        broker_cpu,
    })
}

fn main() -> Result<()> {
    let records: u64 = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = Mosquitto::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "outbox bench: {records} records of ~{} bytes (topic + payload), {PER_APPEND} per append, outbox.batch_max {}, uplink.inflight {}, writer page cache {} KiB",
        record(1).size(),
        batch_max(),
        inflight(),
        cache_kib()
    );
    let scenarios = [
        Scenario {
            sync: Synchronous::Normal,
            batch: None,
        },
        Scenario {
            sync: Synchronous::Normal,
            batch: Some(uplink::BatchConfig::default()),
        },
        Scenario {
            sync: Synchronous::Full,
            batch: None,
        },
    ];
    for scenario in &scenarios {
        let broker_pid = broker
            .pid()
            .context("the broker is not running")?
            .to_string();
        let f = runtime.block_on(run_one(records, scenario, broker.port(), &broker_pid))?;
        let per_rec = |b: u64| b as f64 / records as f64;
        let per_byte = |b: u64| b as f64 / f.payload_bytes as f64;
        println!(
            "\nsynchronous = {}, {}",
            scenario.sync.pragma_value().to_lowercase(),
            match &scenario.batch {
                None => "one record per message".to_string(),
                Some(b) => format!("batches of {} records (json)", b.max_records),
            }
        );
        println!(
            "  ingest   {:>10.0} records/s  ({} transactions, {:.0} records each)   target >= 200000",
            f.ingest_rate,
            f.batches,
            records as f64 / f.batches.max(1) as f64
        );
        println!(
            "           {:>10.0} records per CPU-second of the writer thread (SQLite, its writes; the machine's load aside)",
            f.ingest_per_cpu
        );
        println!(
            "           write_bytes {:>7.1} B/record {:>5.2} B/payload byte   target <= 2.00",
            per_rec(f.ingest_io.write_bytes),
            per_byte(f.ingest_io.write_bytes)
        );
        println!(
            "           wchar       {:>7.1} B/record {:>5.2} B/payload byte",
            per_rec(f.ingest_io.wchar),
            per_byte(f.ingest_io.wchar)
        );
        println!(
            "           files after ingest: db {} B + wal {} B = {:.2} B/payload byte",
            f.files.0,
            f.files.1,
            per_byte(f.files.0 + f.files.1)
        );
        println!(
            "  drain    {:>10.0} records/s  (publish, PUBACK, delete)   target >= 50000",
            f.drain_rate,
        );
        println!(
            "           broker's own rate for the same messages (plain rumqttc, no outbox): {:.0} records/s; drain/broker {:.2}",
            f.broker_rate,
            f.drain_rate / f.broker_rate
        );
        println!(
            "           to the last PUBACK (deletes aside): {:.0} records/s; acked/broker {:.2}",
            f.acked_rate,
            f.acked_rate / f.broker_rate
        );
        let us = |secs: f64| secs * 1e6 / records as f64;
        println!(
            "           CPU per record: drain {:.1} µs here + {:.1} µs broker; plain publisher {:.1} µs + {:.1} µs broker",
            us(f.drain_cpu.own),
            us(f.drain_cpu.broker),
            us(f.broker_cpu.own),
            us(f.broker_cpu.broker)
        );
        println!(
            "           write_bytes {:>7.1} B/record (deletes; wchar incl. socket {:.1} B/record)",
            per_rec(f.drain_io.write_bytes),
            per_rec(f.drain_io.wchar)
        );
        println!(
            "  lifetime write_bytes {:>5.2} B/payload byte (ingest + drain)",
            per_byte(f.ingest_io.write_bytes + f.drain_io.write_bytes)
        );
    }
    Ok(())
}
