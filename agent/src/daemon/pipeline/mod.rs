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
//!
//! With `engine.checkpoint_interval` set (the default), the engine's input is logged with
//! the records and its state checkpointed into the outbox, so a restart carries on where it
//! stopped (module `checkpoints`).
//!
//! The work per delivery (clock guard, engine, events into outbox records) is [`Core`]:
//! synchronous, handed the time, unit-tested without a runtime. This module is the async shell
//! around it: it waits for deliveries, ticks and reloads, reads the clock, and awaits the
//! outbox.

mod checkpoints;
mod core;
#[cfg(test)]
mod tests;
mod watch;

use self::checkpoints::Checkpoints;
pub use self::checkpoints::restore as restore_engine;
pub use self::core::Core;
pub use self::watch::{Names, Watch};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use weir_drivers::{Ack, Delivery, now_us};
use weir_rules::Engine;

use crate::daemon::clock_guard::ClockGuard;
use crate::outbox::{Outbox, OutboxError};
use crate::uplink::topic_for;

/// How many queued deliveries are folded into one outbox append.
const MAX_BATCH: usize = 512;
/// How often event time is advanced on wall time.
const TICK: Duration = Duration::from_millis(250);
/// Without checkpoints, run-hour counters are written at most this often (and at shutdown):
/// flash wears. With them, they go with each checkpoint.
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
    /// Samples a broker sent again after a restart whose state was already restored
    /// (`Engine::guard_redeliveries`), dropped.
    pub redelivered_dropped: AtomicU64,
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
    pub topics: [Arc<str>; 3],
    pub idle_close: Duration,
    /// Engine checkpoints into the outbox (`Duration::ZERO`: none; module `checkpoints`).
    pub checkpoint_interval: Duration,
    pub clock_guard: ClockGuard,
    /// Local publication of alerts with `alert.local_topic`.
    pub actions: crate::daemon::actions::Actions,
    pub counters: Arc<PipelineCounters>,
    /// Shown the samples and events (the status page, when it is on).
    pub watch: Option<Arc<dyn Watch>>,
}

/// The uplink topic of every lane, in `Lane` order.
pub fn lane_topics(prefix: &str, gateway_id: &str) -> [Arc<str>; 3] {
    crate::outbox::Lane::ALL.map(|lane| topic_for(prefix, gateway_id, lane).into())
}

impl Pipeline {
    /// Runs until every source has dropped its sender. `reloads` brings new rule sets
    /// (SIGHUP); they are applied between two batches.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Delivery>,
        mut reloads: mpsc::Receiver<crate::daemon::reload::Request>,
    ) -> Result<(), OutboxError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let Pipeline {
            engine,
            outbox,
            topics,
            mut idle_close,
            checkpoint_interval,
            clock_guard,
            actions,
            counters,
            watch,
        } = self;
        // The engine was restored from the last checkpoint before the sources started.
        let mut checkpoints = Checkpoints::new(checkpoint_interval);
        let mut core = Core::new(engine, topics, clock_guard, Arc::clone(&counters));
        core.show_to(watch);
        if !checkpoint_interval.is_zero() {
            core.log_input();
        }
        let mut shell = Shell {
            outbox,
            actions,
            counters,
        };
        let mut acks = Vec::new();
        let mut saved = crate::daemon::run_hours::Saved::of(&core.engine);
        let mut last_save = tokio::time::Instant::now();
        let mut last_release = last_save;
        let mut releases = crate::daemon::allocator::Releases::default();
        loop {
            // A reload cannot be replayed from the input log: checkpoint right after it.
            let mut reloaded = false;
            tokio::select! {
                delivery = rx.recv() => {
                    let Some(delivery) = delivery else { break };
                    core.ingest(&delivery.readings, now_us());
                    acks.extend(delivery.ack);
                    // Fold what else is already queued into the same commit.
                    for _ in 1..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(d) => {
                                core.ingest(&d.readings, now_us());
                                acks.extend(d.ack);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(request) = reloads.recv() => {
                    // Before the rules are matched again, so selections and groups see them.
                    if let Some(labels) = request.labels {
                        core.engine.set_labels(labels);
                    }
                    if let Some(actions) = request.actions {
                        shell.actions = actions;
                    }
                    if let Some(lag) = request.idle_close {
                        idle_close = lag;
                    }
                    if let Some(guard) = request.clock_guard {
                        core.set_clock_guard(guard);
                    }
                    let report = core.engine.reload(request.rules);
                    reloaded = true;
                    // The requester may have given up waiting; the swap stands regardless.
                    let _ = request.done.send(report);
                }
                _ = tick.tick() => {
                    core.advance(now_us().saturating_sub(micros(idle_close)));
                    if !checkpoints.enabled() && last_save.elapsed() >= SAVE_RUNTIME_EVERY {
                        last_save = tokio::time::Instant::now();
                        shell.save_run_hours(&core.engine, &mut saved).await?;
                    }
                    // Here rather than in a task of its own: this loop already wakes on a
                    // timer, and a task is kilobytes of code (module `allocator`).
                    let flushed = shell.counters.events.load(Ordering::Relaxed);
                    if releases.due(last_release.elapsed(), flushed) {
                        last_release = tokio::time::Instant::now();
                        crate::daemon::allocator::release();
                    }
                }
            }
            shell.flush(&mut core, &mut acks).await?;
            if checkpoints.enabled() {
                checkpoints
                    .maybe_write(&mut core, &shell.outbox, &mut saved, reloaded)
                    .await?;
            }
            core.publish_stats();
            let actions = &shell.actions.counters;
            shell
                .counters
                .actions_published
                .store(actions.published.load(Ordering::Relaxed), Ordering::Relaxed);
            shell
                .counters
                .actions_dropped
                .store(actions.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
            shell.counters.actions_topic_refused.store(
                actions.topic_refused.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            shell.counters.turns.fetch_add(1, Ordering::Relaxed);
        }
        if checkpoints.enabled() {
            checkpoints
                .maybe_write(&mut core, &shell.outbox, &mut saved, true)
                .await?;
        } else {
            shell.save_run_hours(&core.engine, &mut saved).await?;
        }
        Ok(())
    }
}

/// What the loop awaits: the outbox and the actions publisher.
struct Shell {
    outbox: Outbox,
    actions: crate::daemon::actions::Actions,
    counters: Arc<PipelineCounters>,
}

impl Shell {
    /// Queues the run-hour counters that changed since `saved` for the next transaction
    /// (checkpoints off; with them, they go with each checkpoint).
    async fn save_run_hours(
        &self,
        engine: &Engine,
        saved: &mut crate::daemon::run_hours::Saved,
    ) -> Result<(), OutboxError> {
        let changed = saved.changed(engine);
        if changed.is_empty() {
            return Ok(());
        }
        self.outbox.save_run_hours(changed, Vec::new()).await
    }

    /// Commits the records of the events so far with `acks` (fired once they are durable),
    /// and hands alerts with a `local_topic` to the actions publisher.
    async fn flush(&self, core: &mut Core, acks: &mut Vec<Ack>) -> Result<(), OutboxError> {
        if !core.has_events() && acks.is_empty() && !core.has_logged_samples() {
            return Ok(());
        }
        crate::support::fault::inject("pipeline");
        let out = core.records(now_us());
        for (topic, body) in out.actions {
            self.actions.send(topic, body);
        }
        for (rule, why) in &out.refused_actions {
            self.actions.refuse(rule, why);
        }
        let n = out.records.len() as u64;
        let acks = std::mem::take(acks);
        let appended = match core.take_log() {
            Some(log) => self.outbox.append_logged(out.records, acks, log).await,
            None => self.outbox.append(out.records, acks).await,
        };
        match appended {
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

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
