//! The outbox's engine-state side, as the pipeline sees it: engine checkpoints (streamed a
//! chunk at a time, so the agent never holds a second copy of the engine's state), the
//! run-hour counters written with them, and reading both back at start. The writer's side
//! (tables, transactions) is module `engine_state`; the records' side is the rest of
//! [`Outbox`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::engine_state::{self, StateOp, StoredState};
use super::writer::{AfterCommit, Command};
use super::{Outbox, OutboxError};

/// The pipeline's end of a streamed engine checkpoint ([`Outbox::checkpoint_stream`]).
/// Dropped before [`CheckpointSink::end`], the checkpoint is not stored (the records queued
/// with it are).
pub struct CheckpointSink {
    parts: flume::Sender<engine_state::Part>,
    pub(super) status: Arc<AtomicU8>,
}

impl CheckpointSink {
    /// Hands the writer the next `(series id, record)` chunk; waits while it is still
    /// writing the one before. A writer that gave the stream up (its transaction failed) or
    /// has stopped takes nothing more: the chunk is dropped and the checkpoint is not
    /// stored, which [`CheckpointStored::get`] says (a stopped writer fails the next append).
    pub async fn send(&self, series: Vec<(u32, Vec<u8>)>) {
        let _ = self
            .parts
            .send_async(engine_state::Part::Series(series))
            .await;
    }

    /// Every chunk has been sent; [`CheckpointStored::get`] says when it has been stored.
    pub async fn end(self) -> CheckpointStored {
        let _ = self.parts.send_async(engine_state::Part::End).await;
        CheckpointStored(self.status)
    }
}

/// Whether a streamed checkpoint has been committed.
#[derive(Debug, Clone)]
pub struct CheckpointStored(pub(super) Arc<AtomicU8>);

impl CheckpointStored {
    /// True once the transaction that wrote it has committed; false while it has not, and
    /// for good if it failed or was abandoned.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire) == engine_state::STORED
    }
}

impl Outbox {
    /// Queues a whole engine checkpoint and hands it to the writer as one chunk of a
    /// [`Outbox::checkpoint_stream`] (one write path for both); `run_hours` go in the same
    /// transaction. Returns once the writer has taken it.
    pub async fn checkpoint(
        &self,
        state: weir_rules::Checkpoint,
        run_hours: Vec<weir_rules::RuntimeCounter>,
    ) -> Result<(), OutboxError> {
        let sink = self
            .checkpoint_stream(state.full, state.global, run_hours)
            .await?;
        sink.send(state.series).await;
        sink.end().await;
        Ok(())
    }

    /// Queues run-hour counters (those changed since the last written); `after_commit` runs
    /// once they are durable.
    pub async fn save_run_hours(
        &self,
        counters: Vec<weir_rules::RuntimeCounter>,
        after_commit: Vec<AfterCommit>,
    ) -> Result<(), OutboxError> {
        self.append_ops(Vec::new(), after_commit, vec![StateOp::RunHours(counters)])
            .await
    }

    /// The stored run-hour counters (module `engine_state`).
    pub async fn run_hours(&self) -> Result<Vec<weir_rules::RuntimeCounter>, OutboxError> {
        self.request(|reply| Command::LoadRunHours { reply }).await
    }

    /// Queues an engine checkpoint whose series records the caller then sends a chunk at a
    /// time ([`CheckpointSink::send`], then [`CheckpointSink::end`]), each a chunk of
    /// [`weir_rules::Engine::checkpoint_chunks`]; the writer writes each
    /// chunk as it arrives, in the transaction of the records queued before it, and takes the
    /// next only after that, so at most a few chunks of encoded state exist at once. The
    /// caller must not append anything else until the sink has ended (the writer is inside the
    /// transaction meanwhile). `global` is the engine-wide record; `run_hours`, the run-hour
    /// counters that changed, are written in the same transaction (after the checkpoint, and
    /// also when the stream is abandoned: they are counters, restored only where ahead).
    pub async fn checkpoint_stream(
        &self,
        full: bool,
        global: Vec<u8>,
        run_hours: Vec<weir_rules::RuntimeCounter>,
    ) -> Result<CheckpointSink, OutboxError> {
        // Capacity 1: the chunk being encoded, one queued, one being written.
        let (parts, rx) = flume::bounded(1);
        let status = Arc::new(AtomicU8::new(engine_state::NEW));
        let committed = Arc::clone(&status);
        let hook: AfterCommit = Box::new(move || {
            // Only a stream that was written in this transaction becomes stored.
            let _ = committed.compare_exchange(
                engine_state::WRITTEN,
                engine_state::STORED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        });
        let mut state = vec![StateOp::Stream(engine_state::CheckpointStream {
            full,
            global,
            parts: rx,
            status: Arc::clone(&status),
        })];
        if !run_hours.is_empty() {
            state.push(StateOp::RunHours(run_hours));
        }
        self.tx
            .send_async(Command::Append {
                records: Vec::new(),
                after_commit: vec![hook],
                state,
                // Holds one chunk at a time by itself (the stream's queue).
                queued: 0,
            })
            .await
            .map_err(|_| OutboxError::Closed)?;
        Ok(CheckpointSink { parts, status })
    }

    /// The stored engine checkpoint and the input logged since.
    pub async fn engine_state(&self) -> Result<StoredState, OutboxError> {
        self.request(|reply| Command::LoadState { reply }).await
    }
}
