//! The engine's task: deliveries in, events to the outbox, acknowledgements after commit.
//!
//! One task owns the [`Engine`], so rule state needs no locks and events come out in the
//! order samples went in. It batches what the sources have queued, pushes it through the
//! engine, and hands the resulting records to the outbox *together with* the deliveries'
//! acknowledgements: the outbox writer fires those only after the transaction holding the
//! records has committed (guarantee 3 of the design).
//!
//! Event time also moves on wall time: every tick the engine is advanced to
//! `now - idle_close`, so a device that went silent still has its last window evaluated.
//!
//! The loop ends when every source has dropped its sender (they do on shutdown), after the
//! last queued delivery has been processed and committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use weir_drivers::{Ack, Delivery};
use weir_rules::{Engine, Event, EventKind, Sample};

use crate::clock_guard::{ClockGuard, Verdict};
use crate::encode;
use crate::outbox::{NewRecord, Outbox, OutboxError};
use crate::runtime_store::RuntimeStore;
use crate::uplink::topic_for;

/// How many queued deliveries are folded into one outbox append.
const MAX_BATCH: usize = 512;
/// How often event time is advanced on wall time.
const TICK: Duration = Duration::from_millis(250);
/// Run-hour counters are written at most this often (and at shutdown): flash wears.
const SAVE_RUNTIME_EVERY: Duration = Duration::from_secs(60);

/// Counters for the status line and, later, metrics.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Turns of the engine loop (at least one per tick while healthy): the watchdog's proof
    /// of progress.
    pub turns: Arc<AtomicU64>,
    pub samples: AtomicU64,
    /// Samples of series beyond `engine.max_series`, dropped.
    pub series_rejected: AtomicU64,
    /// Samples whose device timestamp was far off the gateway clock (restamped or dropped).
    pub clock_skewed: AtomicU64,
    pub events: AtomicU64,
    pub alerts: AtomicU64,
    /// Events that could not be encoded (should stay 0; logged at ERROR).
    pub encode_errors: AtomicU64,
    /// Alert transitions published on the local actions broker / not sent there.
    pub actions_published: AtomicU64,
    pub actions_dropped: AtomicU64,
    /// Alert transitions whose local topic was refused: a placeholder's value would have
    /// added a topic level.
    pub actions_topic_refused: AtomicU64,
    /// Copies of the engine's own statistics, refreshed every loop turn.
    pub late_dropped: AtomicU64,
    pub nan_dropped: AtomicU64,
    pub windows_closed: AtomicU64,
    /// Raises an alert's `suppress` or `cooldown` swallowed.
    pub alerts_suppressed: AtomicU64,
    /// Series that could not join a new `group_by` group (`engine.max_series` reached).
    pub groups_refused: AtomicU64,
    /// Rule slots (rule × series or group) refused by `engine.max_state_bytes`.
    pub budget_refused: AtomicU64,
}

pub struct Pipeline {
    pub engine: Engine,
    pub outbox: Outbox,
    /// The uplink topic of each lane, indexed by `Lane as usize` (built once, cloned per event).
    pub topics: [String; 3],
    pub idle_close: Duration,
    pub clock_guard: ClockGuard,
    /// Where run-hour counters are persisted.
    pub runtime: RuntimeStore,
    /// Local publication of alerts with `alert.local_topic`.
    pub actions: crate::actions::Actions,
    pub counters: Arc<PipelineCounters>,
}

/// The uplink topic of every lane, in `Lane` order.
pub fn lane_topics(prefix: &str, gateway_id: &str) -> [String; 3] {
    crate::outbox::Lane::ALL.map(|lane| topic_for(prefix, gateway_id, lane))
}

impl Pipeline {
    /// Runs until every source has dropped its sender. `reloads` brings new rule sets
    /// (SIGHUP); they are applied between two batches.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Delivery>,
        mut reloads: mpsc::Receiver<crate::reload::Request>,
    ) -> Result<(), OutboxError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = Vec::new();
        let mut acks = Vec::new();
        let mut saved = self.engine.runtime_counters();
        let mut last_save = tokio::time::Instant::now();
        loop {
            tokio::select! {
                delivery = rx.recv() => {
                    let Some(delivery) = delivery else { break };
                    self.ingest(delivery, &mut events, &mut acks);
                    // Fold what else is already queued into the same commit.
                    for _ in 1..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(d) => self.ingest(d, &mut events, &mut acks),
                            Err(_) => break,
                        }
                    }
                }
                Some(request) = reloads.recv() => {
                    let report = self.engine.reload(request.rules);
                    // The requester may have given up waiting; the swap stands regardless.
                    let _ = request.done.send(report);
                }
                _ = tick.tick() => {
                    let watermark = now_us().saturating_sub(micros(self.idle_close));
                    self.engine.advance(watermark, &mut events);
                    if last_save.elapsed() >= SAVE_RUNTIME_EVERY {
                        last_save = tokio::time::Instant::now();
                        self.save_runtime(&mut saved).await;
                    }
                }
            }
            self.flush(&mut events, &mut acks).await?;
            let stats = self.engine.stats();
            self.counters
                .late_dropped
                .store(stats.late_dropped, Ordering::Relaxed);
            self.counters
                .nan_dropped
                .store(stats.nan_dropped, Ordering::Relaxed);
            self.counters
                .windows_closed
                .store(stats.windows_closed, Ordering::Relaxed);
            self.counters
                .alerts_suppressed
                .store(stats.alerts_suppressed, Ordering::Relaxed);
            self.counters
                .groups_refused
                .store(stats.groups_refused, Ordering::Relaxed);
            let before = self
                .counters
                .budget_refused
                .swap(stats.budget_refused, Ordering::Relaxed);
            if before == 0 && stats.budget_refused > 0 {
                // Once: the counter keeps the rest.
                tracing::warn!(
                    reserved_bytes = stats.state_reserved,
                    refused = stats.budget_refused,
                    "engine.max_state_bytes reached: rules skip new series from now on \
                     (weir_engine_budget_refused_total counts them; see weir check)"
                );
            }
            let actions = &self.actions.counters;
            self.counters
                .actions_published
                .store(actions.published.load(Ordering::Relaxed), Ordering::Relaxed);
            self.counters
                .actions_dropped
                .store(actions.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
            self.counters.actions_topic_refused.store(
                actions.topic_refused.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            self.counters.turns.fetch_add(1, Ordering::Relaxed);
        }
        self.save_runtime(&mut saved).await;
        Ok(())
    }

    /// Writes the run-hour counters if they changed since `saved`, off the async threads.
    async fn save_runtime(&self, saved: &mut Vec<weir_rules::RuntimeCounter>) {
        let now = self.engine.runtime_counters();
        if now == *saved {
            return;
        }
        let path = self.runtime.path().to_path_buf();
        let counters = now.clone();
        let written =
            tokio::task::spawn_blocking(move || RuntimeStore::at(path).save(&counters)).await;
        match written {
            Ok(Ok(())) => *saved = now,
            Ok(Err(e)) => {
                tracing::error!(path = %self.runtime.path().display(), "cannot save run-time counters: {e}")
            }
            Err(e) => tracing::error!("run-time counter writer failed: {e}"),
        }
    }

    fn ingest(&mut self, delivery: Delivery, events: &mut Vec<Event>, acks: &mut Vec<Ack>) {
        let now = now_us();
        for r in &delivery.readings {
            let ts = match self.clock_guard.check(r.ts, now) {
                Verdict::Ok(ts) => ts,
                Verdict::Restamp { now, skew } => {
                    self.clock_skewed(&r.device, skew, "restamped with the arrival time");
                    now
                }
                Verdict::Drop { skew } => {
                    self.clock_skewed(&r.device, skew, "dropped");
                    continue;
                }
            };
            match self.engine.series(&r.device, &r.metric) {
                Ok(series) => {
                    self.engine.push(
                        Sample {
                            series,
                            ts,
                            value: r.value,
                        },
                        events,
                    );
                    self.counters.samples.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let n = self
                        .counters
                        .series_rejected
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    // Logged on powers of two: visible, but a flood cannot flood the log.
                    if n.is_power_of_two() {
                        tracing::warn!(device = %r.device, metric = %r.metric, rejected = n, "sample dropped: {e}");
                    }
                }
            }
        }
        acks.extend(delivery.ack);
    }

    fn clock_skewed(&self, device: &str, skew_us: i64, what: &str) {
        let n = self.counters.clock_skewed.fetch_add(1, Ordering::Relaxed) + 1;
        // Logged on powers of two: a device with a dead clock battery cannot flood the log.
        if n.is_power_of_two() {
            let skew_s = skew_us / 1_000_000;
            tracing::warn!(
                device,
                skew_s,
                total = n,
                "device clock far off the gateway's: sample {what}"
            );
        }
    }

    async fn flush(
        &mut self,
        events: &mut Vec<Event>,
        acks: &mut Vec<Ack>,
    ) -> Result<(), OutboxError> {
        if events.is_empty() && acks.is_empty() {
            return Ok(());
        }
        let created_at = now_us();
        let mut records: Vec<NewRecord> = Vec::with_capacity(events.len());
        for event in events.drain(..) {
            let (device, metric) = self.engine.series_name(event.series).unwrap_or(("?", "?"));
            log_alert(&event, device, metric);
            let topic = self.topics[encode::lane_of(&event) as usize].clone();
            match encode::record(&event, device, metric, topic, created_at) {
                Ok(r) => {
                    if matches!(event.kind, EventKind::Alert { .. })
                        && let Some(t) = self.engine.rules().local_topic(&event.rule)
                    {
                        match crate::actions::topic(t, &event.rule, device, metric) {
                            // The JSON body, without the outbox's format byte.
                            Ok(topic) => self.actions.send(topic, r.payload[1..].to_vec()),
                            Err(e) => self.actions.refuse(&event.rule, &e),
                        }
                    }
                    records.push(r);
                }
                Err(e) => {
                    self.counters.encode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(rule = %event.rule, "event lost: cannot encode it: {e}");
                }
            }
        }
        self.counters
            .events
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let alerts = records
            .iter()
            .filter(|r| r.lane == crate::outbox::Lane::Alerts)
            .count();
        self.counters
            .alerts
            .fetch_add(alerts as u64, Ordering::Relaxed);
        let n = records.len() as u64;
        match self.outbox.append(records, std::mem::take(acks)).await {
            // Only a record the encoder got wrong lands here (config validation rules out
            // bad topics and a bound smaller than a record). Its messages stay unacked, so
            // the device broker redelivers them after a reconnect; the engine goes on.
            Err(e @ OutboxError::InvalidRecord { .. }) => {
                self.counters.encode_errors.fetch_add(n, Ordering::Relaxed);
                tracing::error!("{n} events not stored: {e}");
                Ok(())
            }
            other => other,
        }
    }
}

/// Alerts are what an operator watching the console wants to see, one line each.
fn log_alert(event: &Event, device: &str, metric: &str) {
    if let EventKind::Alert {
        state,
        severity,
        value,
        condition,
        message,
        ..
    } = &event.kind
    {
        tracing::warn!(
            target: "weir::alert",
            rule = %event.rule,
            series = %format_args!("{device}/{metric}"),
            severity = %severity,
            value = %format_args!("{value:.3}"),
            condition = %condition,
            "ALERT {}{}{}", state.as_str(),
            if message.is_some() { ": " } else { "" },
            message.as_deref().unwrap_or("")
        );
    }
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
