//! Engine state from the pipeline's side: restoring the engine at start, logging its input
//! beside the records, and writing a checkpoint every `engine.checkpoint_interval`.
//!
//! **Exactness.** Every batch of engine input (the samples pushed, after the clock guard, and
//! the `advance` calls) is logged in the transaction that commits the batch's records, before
//! the batch's device acks fire (`Outbox::append_logged`). A checkpoint empties the log in
//! its own transaction. So at any instant the stored checkpoint plus the stored log is the
//! input of every committed record, and a restart rebuilds the engine from them exactly
//! (`weir_rules::Engine::replay`; the engine is deterministic). A QoS 1 message is
//! acknowledged only after its input is durable, as its events always were: a crash before
//! that makes the broker redeliver a message the restored state never saw.
//!
//! **Duplicates after a crash.** A crash after the commit but before the ack reached the
//! broker makes it redeliver a message whose sample is already in the restored state. After a
//! restore each series drops samples at or before its newest restored timestamp until a
//! newer one arrives (`Engine::guard_redeliveries`, counted in `redelivered_dropped`), so no
//! sample is counted twice. Events are not emitted twice either: replayed input emits nothing.
//!
//! **Sources without acks** (serial, Modbus, the simulator) lose only the batch that was not
//! committed yet, as their records always could: their input is logged the same way.
//! `advance` calls alone (wall-time ticks with no sample) ride with the next write rather than
//! forcing a commit of their own every tick; a crash can lose the last ones, which only
//! matters to a window that wall time closed and a sample within its lateness would have
//! joined afterwards.
//!
//! **Cost.** The log costs about 17 bytes per sample; a checkpoint writes the state of the
//! series that changed since the previous one (all of them on a busy gateway), so the
//! interval trades flash writes against replay time at start (see `docs/engine-state.md`).
//!
//! **Memory.** A checkpoint is encoded and handed to the writer [`CHUNK_BYTES`] at a time,
//! each chunk written before the next is encoded (`Outbox::checkpoint_stream`), so the
//! agent holds a few chunks of encoded state rather than a second copy of the engine's (at
//! 10,000 series of issue 19's workload that copy was ~10 MiB of the peak RSS;
//! docs/footprint.md). The engine takes no input meanwhile: its state must not change
//! between chunks. Samples wait in the source channel for the write (about the time the
//! writer took for the whole checkpoint before, now on the pipeline's path: tens of
//! milliseconds at 10,000 series). A checkpoint that was not stored (a failed commit, a
//! full disk) makes the next one full, so no series it held is left behind.

use std::time::Duration;

use tokio::time::Instant;
use weir_rules::Engine;

use crate::outbox::{CheckpointStored, Outbox, OutboxError};

/// Encoded engine state per chunk handed to the writer.
pub(super) const CHUNK_BYTES: usize = 128 * 1024;

pub(super) struct Checkpoints {
    interval: Duration,
    last: Instant,
    /// Whether the previous checkpoint was committed (`None` before the first).
    previous: Option<CheckpointStored>,
}

impl Checkpoints {
    pub(super) fn new(interval: Duration) -> Checkpoints {
        Checkpoints {
            interval,
            last: Instant::now(),
            previous: None,
        }
    }

    pub(super) fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// Writes a checkpoint when the interval has passed, or on `force` (shutdown, reload);
    /// queued after the records and input of everything before it. The engine's input log
    /// in memory is emptied: the checkpoint holds its effect.
    pub(super) async fn maybe_write(
        &mut self,
        core: &mut super::Core,
        outbox: &Outbox,
        run_hours: &mut crate::daemon::run_hours::Saved,
        force: bool,
    ) -> Result<(), OutboxError> {
        if !force && self.last.elapsed() < self.interval {
            return Ok(());
        }
        self.last = Instant::now();
        core.clear_log();
        if self.previous.as_ref().is_some_and(|p| !p.get()) {
            // Its series are no longer marked changed: only a full checkpoint has them. Not
            // stored means failed (the writer logged why) or, just after it, not committed
            // yet: a full checkpoint is right either way.
            tracing::info!(
                "previous engine checkpoint not stored (yet): this one holds every series"
            );
            core.engine.checkpoint_full_next();
        }
        let started = std::time::Instant::now();
        // The run-hour counters that changed go in the checkpoint's transaction (module
        // `run_hours`), taken before the chunks borrow the engine.
        let hours = run_hours.changed(&core.engine);
        let mut chunks = core.engine.checkpoint_chunks(CHUNK_BYTES);
        let (full, series) = (chunks.full(), chunks.remaining());
        if series == 0 && !full {
            if !hours.is_empty() {
                outbox.save_run_hours(hours, Vec::new()).await?;
            }
            return Ok(());
        }
        let sink = outbox
            .checkpoint_stream(full, chunks.global().to_vec(), hours)
            .await?;
        for chunk in chunks.by_ref() {
            sink.send(chunk).await;
        }
        self.previous = Some(sink.end().await);
        tracing::debug!(
            series,
            full,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "engine checkpoint handed to the outbox"
        );
        Ok(())
    }
}

/// Puts the outbox's engine state back into `engine` (fresh: nothing interned): the last
/// checkpoint, then the input logged since, replayed. What cannot be restored is logged; the
/// engine then starts fresh. Run hours come after (`crate::daemon::run_hours::restore`).
pub async fn restore(engine: &mut Engine, outbox: &Outbox) {
    let started = std::time::Instant::now();
    match outbox.engine_state().await {
        Ok(stored) => {
            let restored = match &stored.checkpoint {
                None => true,
                Some(c) => match engine.restore(c) {
                    Ok(report) => {
                        tracing::info!(
                            series = report.series,
                            rules_kept = report.kept.len(),
                            bytes = c.bytes(),
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
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "engine checkpoint not restored: engine state starts fresh");
                        false
                    }
                },
            };
            if restored {
                let mut samples = 0;
                for batch in &stored.log {
                    match engine.replay(batch) {
                        Ok(n) => samples += n,
                        Err(e) => {
                            tracing::warn!(error = %e, "engine input log unreadable: the rest of it is not replayed");
                            break;
                        }
                    }
                }
                engine.guard_redeliveries();
                tracing::info!(
                    checkpoint = stored.checkpoint.is_some(),
                    replayed_samples = samples,
                    took_ms = started.elapsed().as_millis() as u64,
                    "engine state rebuilt"
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the engine state: engine state starts fresh")
        }
    }
}
