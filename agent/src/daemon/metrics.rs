//! The Prometheus endpoint and `/healthz`, served on a small HTTP listener (localhost by
//! default: a gateway's metrics are for its own collector or an SSH tunnel, not the network).
//!
//! Nothing is counted twice: the pipeline, the sources and the outbox keep their own atomic
//! counters, and each scrape reads them into a [`Snapshot`] that a `prometheus-client`
//! collector encodes. A scrape costs one round trip to the outbox thread for its lane stats.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use weir_drivers::SourceCounters;

use weir_drivers::now_us;

use crate::daemon::pipeline::PipelineCounters;
use crate::outbox::{Lane, Outbox, OutboxCounters, OutboxStats};
use crate::uplink::UplinkCounters;

/// What a scrape reads from.
#[derive(Clone)]
pub struct Sources {
    pub outbox: Outbox,
    pub pipeline: Arc<PipelineCounters>,
    /// Current at every scrape: a reload may add or remove sources.
    pub sources: crate::daemon::sources::SourceList,
    /// `None` when no uplink is configured (its families are then left out).
    pub uplink: Option<Arc<UplinkCounters>>,
    /// `None` without `fleet:` (its families are then left out).
    pub fleet: Option<Arc<crate::daemon::fleet::FleetCounters>>,
}

/// How a per-lane gauge is read from a lane's stats.
type LaneValue<'a> = dyn Fn(&crate::outbox::LaneStats) -> f64 + 'a;

/// The values of one scrape.
#[derive(Debug)]
struct Snapshot {
    sources: Vec<(String, [u64; 9])>,
    /// Per source: transport up, the receive time of its last reading (µs; 0 = none), and
    /// whether it is stalled (connections keep failing before a message gets through).
    source_health: Vec<(String, bool, i64, bool)>,
    pipeline: [(&'static str, &'static str, u64); 17],
    outbox: OutboxStats,
    outbox_counters: [(&'static str, &'static str, u64); 10],
    /// µs since the epoch when appends started waiting for room (`overflow: block`), if now.
    blocked_since: Option<i64>,
    uplink: Option<Arc<UplinkCounters>>,
    fleet: Option<Arc<crate::daemon::fleet::FleetCounters>>,
    now_us: i64,
}

impl Sources {
    async fn snapshot(&self) -> Option<Snapshot> {
        let outbox = tokio::time::timeout(Duration::from_secs(2), self.outbox.stats())
            .await
            .ok()?
            .ok()?;
        let p = &self.pipeline;
        let c: Arc<OutboxCounters> = self.outbox.counters();
        let sources = self.sources.get();
        Some(Snapshot {
            sources: sources
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        [
                            s.received.load(Relaxed),
                            s.readings.load(Relaxed),
                            s.decode_errors.load(Relaxed),
                            s.connects.load(Relaxed),
                            s.crc_errors.load(Relaxed),
                            s.transport_errors.load(Relaxed),
                            s.timeouts.load(Relaxed),
                            s.exceptions.load(Relaxed),
                            s.oversized.load(Relaxed),
                        ],
                    )
                })
                .collect(),
            source_health: sources
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        s.is_connected(),
                        s.last_reading_us.load(Relaxed),
                        s.is_stalled(),
                    )
                })
                .collect(),
            pipeline: [
                (
                    "samples",
                    "Samples pushed through the rule engine.",
                    p.samples.load(Relaxed),
                ),
                (
                    "series_rejected",
                    "Samples dropped: their series is beyond engine.max_series.",
                    p.series_rejected.load(Relaxed),
                ),
                (
                    "events",
                    "Events the rules produced and handed to the outbox.",
                    p.events.load(Relaxed),
                ),
                (
                    "alerts",
                    "Alert transitions (raised or cleared) the rules produced.",
                    p.alerts.load(Relaxed),
                ),
                (
                    "encode_errors",
                    "Events lost because they could not be encoded.",
                    p.encode_errors.load(Relaxed),
                ),
                (
                    "actions_published",
                    "Alert transitions the local actions broker acknowledged (alert.local_topic).",
                    p.actions_published.load(Relaxed),
                ),
                (
                    "actions_dropped",
                    "Alert transitions not sent to the local actions broker (none configured, queue full, broker down).",
                    p.actions_dropped.load(Relaxed),
                ),
                (
                    "actions_topic_refused",
                    "Alert transitions not sent to the local actions broker: a {device}/{metric}/{rule} value contained /, +, # or NUL.",
                    p.actions_topic_refused.load(Relaxed),
                ),
                (
                    "clock_skewed",
                    "Samples whose device timestamp was far off the gateway clock (restamped or dropped).",
                    p.clock_skewed.load(Relaxed),
                ),
                (
                    "redelivered_dropped",
                    "Samples a broker sent again after a restart that the restored engine state already held, dropped.",
                    p.redelivered_dropped.load(Relaxed),
                ),
                (
                    "late_dropped",
                    "Samples refused as late (every window they belong to had closed, lateness included).",
                    p.late_dropped.load(Relaxed),
                ),
                (
                    "nan_dropped",
                    "NaN samples dropped.",
                    p.nan_dropped.load(Relaxed),
                ),
                (
                    "windows_closed",
                    "Windows closed and evaluated.",
                    p.windows_closed.load(Relaxed),
                ),
                (
                    "alerts_suppressed",
                    "Alert raises swallowed by a rule's suppress or cooldown (with their clears).",
                    p.alerts_suppressed.load(Relaxed),
                ),
                (
                    "groups_refused",
                    "Series that could not join a new group_by group: engine.max_series reached.",
                    p.groups_refused.load(Relaxed),
                ),
                (
                    "budget_refused",
                    "Rule slots (rule x series or group) not created: their worst-case state would pass engine.max_state_bytes.",
                    p.budget_refused.load(Relaxed),
                ),
                (
                    "turns",
                    "Turns of the engine loop (progress, for the watchdog).",
                    p.turns.load(Relaxed),
                ),
            ],
            outbox,
            outbox_counters: [
                (
                    "committed",
                    "Records committed to the outbox.",
                    c.appended.load(Relaxed),
                ),
                (
                    "deleted",
                    "Records deleted after the broker acknowledged them.",
                    c.deleted.load(Relaxed),
                ),
                (
                    "evicted",
                    "Records dropped by an outbox bound, every reason (data loss).",
                    c.evicted.load(Relaxed),
                ),
                (
                    "evicted_full",
                    "Records evicted oldest-first to make room (data loss).",
                    c.evicted_full.load(Relaxed),
                ),
                (
                    "refused_full",
                    "New records not stored: the outbox was full (drop_newest; data loss).",
                    c.refused_full.load(Relaxed),
                ),
                (
                    "expired",
                    "Records evicted for being older than max_age (data loss).",
                    c.expired.load(Relaxed),
                ),
                (
                    "discarded",
                    "Stored records the uplink could not encode (data loss).",
                    c.discarded.load(Relaxed),
                ),
                (
                    "write_errors",
                    "Outbox commits that failed.",
                    c.write_errors.load(Relaxed),
                ),
                (
                    "disk_full",
                    "Appends that found the disk full (the outbox is then held at its size).",
                    c.disk_full.load(Relaxed),
                ),
                (
                    "block_episodes",
                    "Times the engine started waiting for room (overflow: block) while the uplink drained.",
                    self.outbox.block_episodes(),
                ),
            ],
            blocked_since: self.outbox.blocked_since(),
            uplink: self.uplink.clone(),
            fleet: self.fleet.clone(),
            now_us: now_us(),
        })
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let source_families = [
            (
                "weir_source_received",
                "Units received (MQTT messages, simulator ticks).",
            ),
            (
                "weir_source_readings",
                "Readings decoded and sent to the engine.",
            ),
            (
                "weir_source_decode_errors",
                "Units that could not be decoded.",
            ),
            ("weir_source_connects", "Times the source (re)connected."),
            (
                "weir_source_crc_errors",
                "Device frames rejected by their CRC.",
            ),
            (
                "weir_source_transport_errors",
                "Ports or connections lost or failing.",
            ),
            (
                "weir_source_timeouts",
                "Device requests that were not answered in time.",
            ),
            ("weir_source_exceptions", "Modbus exception replies."),
            (
                "weir_source_oversized",
                "Of decode errors: messages above max_payload (skipped) or max_message (refused, per delivery).",
            ),
        ];
        for (i, (name, help)) in source_families.into_iter().enumerate() {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (source, values) in &self.sources {
                let labels = [("source", source.as_str())];
                ConstCounter::new(values[i]).encode(family.encode_family(&labels)?)?;
            }
        }
        let up = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "weir_source_connected",
            "1 while the source's transport is up (broker connection, open port, Modbus links); the simulator reports 0.",
            None,
            up.metric_type(),
        )?;
        for (source, connected, _, _) in &self.source_health {
            let labels = [("source", source.as_str())];
            ConstGauge::new(i64::from(*connected)).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "weir_source_stalled",
            "1 while the source cannot make progress: its connections keep failing before a message gets through (see the log).",
            None,
            up.metric_type(),
        )?;
        for (source, _, _, stalled) in &self.source_health {
            let labels = [("source", source.as_str())];
            ConstGauge::new(i64::from(*stalled)).encode(family.encode_family(&labels)?)?;
        }
        let age = ConstGauge::new(0.0f64);
        let mut family = encoder.encode_descriptor(
            "weir_source_last_reading_age_seconds",
            "Seconds since the source's last reading (-1 before the first).",
            None,
            age.metric_type(),
        )?;
        for (source, _, last, _) in &self.source_health {
            let labels = [("source", source.as_str())];
            let seconds = if *last == 0 {
                -1.0
            } else {
                (self.now_us - last).max(0) as f64 / 1e6
            };
            ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in self.pipeline.iter().chain(&self.outbox_counters) {
            let prefix = if self.outbox_counters.iter().any(|(n, ..)| n == name) {
                "weir_outbox_"
            } else {
                "weir_engine_"
            };
            let counter = ConstCounter::new(*value);
            let full_name = format!("{prefix}{name}");
            let family =
                encoder.encode_descriptor(&full_name, help, None, counter.metric_type())?;
            counter.encode(family)?;
        }
        let lane_gauges: [(&str, &str, &LaneValue); 3] = [
            (
                "weir_outbox_records",
                "Records waiting in the outbox.",
                &|l| l.count as f64,
            ),
            (
                "weir_outbox_bytes",
                "Topic and payload bytes waiting in the outbox.",
                &|l| l.bytes as f64,
            ),
            (
                "weir_outbox_oldest_age_seconds",
                "Age of the oldest waiting record (0 when empty).",
                &|l| {
                    l.oldest_created_at
                        .map_or(0.0, |t| (self.now_us - t).max(0) as f64 / 1e6)
                },
            ),
        ];
        for (name, help, value) in lane_gauges {
            let gauge = ConstGauge::new(0.0f64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for lane in Lane::ALL {
                let stats = &self.outbox.lanes[lane as usize];
                let labels = [("lane", lane.as_str())];
                ConstGauge::new(value(stats)).encode(family.encode_family(&labels)?)?;
            }
        }
        let limit = ConstGauge::new(self.outbox.max_bytes as f64);
        let family = encoder.encode_descriptor(
            "weir_outbox_max_bytes",
            "The outbox's byte bound.",
            None,
            limit.metric_type(),
        )?;
        limit.encode(family)?;
        let blocked = ConstGauge::new(
            self.blocked_since
                .map_or(0.0, |since| (self.now_us - since).max(0) as f64 / 1e6),
        );
        let family = encoder.encode_descriptor(
            "weir_outbox_blocked_seconds",
            "How long the engine has been waiting for room (overflow: block; 0 when it is not).",
            None,
            blocked.metric_type(),
        )?;
        blocked.encode(family)?;
        if let Some(uplink) = &self.uplink {
            encode_uplink(uplink, &mut encoder)?;
        }
        if let Some(fleet) = &self.fleet {
            fleet.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn encode_uplink(
    u: &UplinkCounters,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let up = ConstGauge::new(i64::from(u.connected.load(Relaxed)));
    let family = encoder.encode_descriptor(
        "weir_uplink_connected",
        "1 while the uplink is connected to the cloud broker.",
        None,
        up.metric_type(),
    )?;
    up.encode(family)?;
    let counters = [
        (
            "weir_uplink_connects",
            "Connections established (CONNACK): the first and every reconnect.",
            &u.connects,
        ),
        (
            "weir_uplink_connection_errors",
            "Connection attempts that failed and connections that were lost.",
            &u.connection_errors,
        ),
        (
            "weir_uplink_tls_errors",
            "TLS handshakes that failed (untrusted broker certificate, refused client certificate).",
            &u.tls_errors,
        ),
        (
            "weir_uplink_published",
            "Record publishes sent (a resend after a reconnect counts again).",
            &u.published,
        ),
        (
            "weir_uplink_acked",
            "Record publishes the broker acknowledged.",
            &u.acked,
        ),
    ];
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value.load(Relaxed));
        let family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(family)?;
    }
    let family = encoder.encode_descriptor(
        "weir_uplink_publish_latency_seconds",
        "Time from sending a record to its PUBACK.",
        None,
        u.latency.metric_type(),
    )?;
    u.latency.encode(family)
}

/// The exposition text of one scrape.
pub(super) async fn render(sources: &Sources) -> Option<String> {
    let snapshot = sources.snapshot().await?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).ok()?;
    Some(text)
}

/// Names of the sources that cannot make progress (see `SourceCounters::is_stalled`).
pub fn stalled_sources(sources: &[(String, Arc<SourceCounters>)]) -> Vec<String> {
    sources
        .iter()
        .filter(|(_, c)| c.is_stalled())
        .map(|(name, _)| name.clone())
        .collect()
}
