//! The pipeline's per-delivery work, synchronous and handed the time: readings through the
//! clock guard into the engine, the engine's events into outbox records (and local action
//! messages). No I/O and no clock here, so it is tested with plain function calls; the async
//! loop in the parent module only moves deliveries in and records out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use weir_drivers::Reading;
use weir_rules::{Engine, Event, EventKind, InputLog, Sample};

use super::PipelineCounters;
use super::watch::Watch;
use crate::daemon::actions::UnsafeTopic;
use crate::daemon::clock_guard::{ClockGuard, Verdict};
use crate::outbox::event_records as encode;
use crate::outbox::{Lane, NewRecord};

/// Events whose room is kept from one delivery to the next (a burst's room is given back).
const KEEP_EVENTS: usize = 256;

/// The engine with its clock guard and counters, and the events not yet turned into records.
pub struct Core {
    pub engine: Engine,
    /// The uplink topic of each lane, indexed by `Lane as usize`.
    topics: [Arc<str>; 3],
    clock_guard: ClockGuard,
    counters: Arc<PipelineCounters>,
    events: Vec<Event>,
    /// Shown the accepted samples and the events (the status page, when it is on).
    watch: Option<Arc<dyn Watch>>,
    /// The samples of the delivery being ingested, for `watch`.
    accepted: Vec<Sample>,
    /// The engine's input since the last write, when engine state is kept (module
    /// `checkpoints`).
    log: Option<InputLog>,
    /// Reused while events become records.
    scratch: encode::Scratch,
}

/// What the events so far become.
#[derive(Debug, Default)]
pub struct Output {
    /// For the outbox, in event order.
    pub records: Vec<NewRecord>,
    /// `(topic, JSON body)` for the local actions broker: alerts of rules with a
    /// `local_topic`.
    pub actions: Vec<(String, Vec<u8>)>,
    /// `(rule, why)` for alerts whose local topic was refused: a placeholder's value would
    /// have added a topic level. The alert itself is still a record.
    pub refused_actions: Vec<(String, UnsafeTopic)>,
}

impl Core {
    pub fn new(
        engine: Engine,
        topics: [Arc<str>; 3],
        clock_guard: ClockGuard,
        counters: Arc<PipelineCounters>,
    ) -> Core {
        Core {
            engine,
            topics,
            clock_guard,
            counters,
            events: Vec::new(),
            watch: None,
            accepted: Vec::new(),
            log: None,
            scratch: encode::Scratch::default(),
        }
    }

    /// Judges timestamps by `guard` from the next sample on (a reload).
    pub fn set_clock_guard(&mut self, guard: ClockGuard) {
        self.clock_guard = guard;
    }

    /// Logs the engine's input from now on (module `checkpoints`).
    pub fn log_input(&mut self) {
        self.log = Some(InputLog::default());
    }

    /// Forgets the input logged so far (a checkpoint holds its effect).
    pub fn clear_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.take();
        }
    }

    /// Whether samples were logged since the last write (they must reach the outbox even
    /// when they caused no event).
    pub fn has_logged_samples(&self) -> bool {
        self.log.as_ref().is_some_and(InputLog::has_samples)
    }

    /// The input logged since the last write, encoded, if input is logged.
    pub fn take_log(&mut self) -> Option<Vec<u8>> {
        self.log
            .as_mut()
            .filter(|l| !l.is_empty())
            .map(InputLog::take)
    }

    /// Shows accepted samples and events to `watch` from now on.
    pub fn show_to(&mut self, watch: Option<Arc<dyn Watch>>) {
        self.watch = watch;
    }

    /// Pushes readings that arrived at gateway time `now` (µs) through the clock guard into
    /// the engine.
    pub fn ingest(&mut self, readings: &[Reading], now: i64) {
        // Asked once per delivery: the page may be turned off or on by a reload.
        let watching = self.watch.as_ref().is_some_and(|w| w.watching());
        for r in readings {
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
                    let sample = Sample {
                        series,
                        ts,
                        value: r.value,
                    };
                    // Already in the restored state: neither pushed nor logged (replayed, it
                    // would be counted after all).
                    if self.engine.is_redelivery(&sample) {
                        self.counters
                            .redelivered_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    self.engine.push(sample, &mut self.events);
                    if let Some(log) = &mut self.log {
                        log.sample(&r.device, &r.metric, ts, r.value);
                    }
                    self.counters.samples.fetch_add(1, Ordering::Relaxed);
                    if watching {
                        self.accepted.push(sample);
                    }
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
        self.show_samples();
    }

    /// Shows `watch` the samples just accepted (once per delivery: one lock, not one per
    /// reading).
    fn show_samples(&mut self) {
        if let Some(watch) = &self.watch
            && !self.accepted.is_empty()
        {
            let engine = &self.engine;
            watch.samples(&self.accepted, &|s| {
                engine.series_name(s).unwrap_or(("?", "?"))
            });
            self.accepted.clear();
        }
    }

    /// Moves event time to `watermark` (µs): windows that end before it close.
    pub fn advance(&mut self, watermark: i64) {
        self.engine.advance(watermark, &mut self.events);
        if let Some(log) = &mut self.log {
            log.advance(watermark);
        }
    }

    /// Whether events wait to become records.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The records (stamped `created_at`, µs) and local action messages of the events so
    /// far; counts events and alerts, logs each alert, counts and logs an event that cannot
    /// be encoded.
    pub fn records(&mut self, created_at: i64) -> Output {
        let mut out = Output {
            records: Vec::with_capacity(self.events.len()),
            actions: Vec::new(),
            refused_actions: Vec::new(),
        };
        if let Some(watch) = self.watch.as_ref().filter(|w| w.watching()) {
            let engine = &self.engine;
            watch.events(&self.events, &|s| {
                engine.series_name(s).unwrap_or(("?", "?"))
            });
        }
        for event in self.events.drain(..) {
            let (device, metric) = self.engine.series_name(event.series).unwrap_or(("?", "?"));
            log_alert(&event, device, metric);
            let topic = Arc::clone(&self.topics[encode::lane_of(&event) as usize]);
            match encode::record(&event, device, metric, topic, created_at, &mut self.scratch) {
                Ok(r) => {
                    if matches!(event.kind, EventKind::Alert { .. })
                        && let Some(t) = self.engine.rules().local_topic(&event.rule)
                    {
                        match crate::daemon::actions::topic(t, &event.rule, device, metric) {
                            Ok(topic) => {
                                out.actions.push((topic, self.scratch.json_body().to_vec()));
                            }
                            Err(e) => out.refused_actions.push((event.rule.to_string(), e)),
                        }
                    }
                    out.records.push(r);
                }
                Err(e) => {
                    self.counters.encode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(rule = %event.rule, "event lost: cannot encode it: {e}");
                }
            }
        }
        // Every series closing its window at once grows `events` to one per series; kept, that
        // capacity (112 B an event) would stay resident between bursts.
        self.events.shrink_to(KEEP_EVENTS);
        self.counters
            .events
            .fetch_add(out.records.len() as u64, Ordering::Relaxed);
        let alerts = out
            .records
            .iter()
            .filter(|r| r.lane == Lane::Alerts)
            .count();
        self.counters
            .alerts
            .fetch_add(alerts as u64, Ordering::Relaxed);
        out
    }

    /// Copies the engine's own statistics into the counters (once per loop turn).
    pub fn publish_stats(&self) {
        let stats = self.engine.stats();
        let c = &self.counters;
        c.late_dropped.store(stats.late_dropped, Ordering::Relaxed);
        c.nan_dropped.store(stats.nan_dropped, Ordering::Relaxed);
        c.windows_closed
            .store(stats.windows_closed, Ordering::Relaxed);
        c.alerts_suppressed
            .store(stats.alerts_suppressed, Ordering::Relaxed);
        c.groups_refused
            .store(stats.groups_refused, Ordering::Relaxed);
        let before = c
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
