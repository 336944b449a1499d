//! Engine checkpoints from the pipeline's side: restoring the engine at start, writing its
//! changed state into the outbox, and holding device acknowledgements until then.
//!
//! **Why acks wait.** A QoS 1 message acknowledged to its broker is never sent again. If it
//! were acknowledged once its events were committed (as without checkpoints) but before the
//! state it changed was, a crash in between would restore a state that never saw it, and the
//! broker would not redeliver it: a sample lost from every open window. So with checkpoints
//! on, acks are handed to the checkpoint, not to the records, and fire after the transaction
//! holding that checkpoint commits. To keep acks as prompt as before (a broker stops sending
//! once its in-flight window of unacknowledged messages is full), a checkpoint is written at
//! the end of every loop turn that holds acks; it holds only the series that turn changed.
//! Without pending acks (serial, Modbus, the simulator), a checkpoint is written every
//! `engine.checkpoint_interval`, which bounds what those sources can lose in a crash.
//!
//! **Duplicates after a crash.** A sample is acknowledged only after a checkpoint holding
//! its state committed, so a message the broker sends again was either never in the restored
//! state (its ack was held: counted once, now), or its ack was lost between the commit and
//! the broker: then it is at or before its series' newest checkpointed timestamp and
//! [`Engine::guard_redeliveries`] drops it (counted in `redelivered_dropped`), so no sample
//! is counted twice. The records of events emitted after the last checkpoint may already be
//! committed (an earlier transaction of the same turn): those events are emitted again when
//! the redelivered samples arrive, so a consumer may see them twice, under new ids; at most
//! one loop turn's events (sources with acks) or one interval's (without).

use std::time::Duration;

use tokio::time::Instant;
use weir_drivers::Ack;
use weir_rules::Engine;

use crate::daemon::run_hours::RunHoursFile;
use crate::outbox::{Outbox, OutboxError};

pub(super) struct Checkpoints {
    interval: Duration,
    last: Instant,
    /// Acks of samples whose state is not checkpointed yet.
    held: Vec<Ack>,
}

impl Checkpoints {
    pub(super) fn new(interval: Duration) -> Checkpoints {
        Checkpoints {
            interval,
            last: Instant::now(),
            held: Vec::new(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// Takes the turn's acks: they fire with the next checkpoint.
    pub(super) fn hold(&mut self, acks: &mut Vec<Ack>) {
        self.held.append(acks);
    }

    /// Writes a checkpoint when acks wait for one, when the interval has passed, or on
    /// `force` (shutdown); queued after the records of every event emitted so far.
    pub(super) async fn maybe_write(
        &mut self,
        engine: &mut Engine,
        outbox: &Outbox,
        force: bool,
    ) -> Result<(), OutboxError> {
        if !force && self.held.is_empty() && self.last.elapsed() < self.interval {
            return Ok(());
        }
        self.last = Instant::now();
        let checkpoint = engine.checkpoint();
        if checkpoint.series.is_empty() && !checkpoint.full && self.held.is_empty() {
            return Ok(());
        }
        outbox
            .checkpoint(checkpoint, std::mem::take(&mut self.held))
            .await
    }
}

/// Puts the outbox's engine checkpoint back into `engine` (fresh: nothing interned), then
/// the run-hour counters of `run_hours` for the series the checkpoint did not hold (the
/// checkpoint is newer). Anything that cannot be restored is logged; the engine then starts
/// fresh.
pub async fn restore(engine: &mut Engine, outbox: &Outbox, run_hours: &RunHoursFile) {
    let started = std::time::Instant::now();
    match outbox.engine_state().await {
        Ok(None) => tracing::info!("no engine checkpoint in the outbox: engine state starts fresh"),
        Ok(Some(c)) => match engine.restore(&c) {
            Ok(report) => {
                engine.guard_redeliveries();
                tracing::info!(
                    series = report.series,
                    rules_kept = report.kept.len(),
                    bytes = c.bytes(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "engine state restored from its checkpoint"
                );
                for rule in &report.changed {
                    tracing::warn!(rule = %rule, "rule changed since the engine checkpoint: its state starts fresh");
                }
                for rule in &report.removed {
                    tracing::info!(rule = %rule, "rule removed since the engine checkpoint: its state is dropped");
                }
                if report.series_refused > 0 {
                    tracing::warn!(
                        refused = report.series_refused,
                        "engine checkpoint holds more series than engine.max_series: those start fresh"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "engine checkpoint not restored: engine state starts fresh")
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot read the engine checkpoint: engine state starts fresh")
        }
    }
    let have = engine.runtime_counters();
    let saved: Vec<_> = run_hours
        .load()
        .into_iter()
        .filter(|c| {
            !have
                .iter()
                .any(|h| h.rule == c.rule && h.device == c.device && h.metric == c.metric)
        })
        .collect();
    if !saved.is_empty() {
        let restored = engine.restore_runtime(&saved);
        tracing::info!(path = %run_hours.path().display(), restored, saved = saved.len(), "run-time counters restored");
    }
}
