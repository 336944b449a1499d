//! The engine's input since its last checkpoint, as a log: what makes a checkpoint plus the
//! log an exact copy of the state, whatever happened after the checkpoint.
//!
//! Why a log and not a checkpoint per batch: a device message may be acknowledged only once
//! the state it changed is durable. Writing that state (a series' windows, sketch, detector
//! buffers: easily 2 KB) for every message would write flash at kilobytes per sample; its
//! input is a few bytes. So the agent writes each batch's input beside the batch's records
//! (same transaction), acknowledges as before, and writes a checkpoint only now and then,
//! which lets it drop the log up to there. On a restart it restores the checkpoint and
//! replays the log ([`crate::Engine::replay`]): the engine is deterministic, so the replay
//! rebuilds exactly the state it had; the events it emits again are dropped (their records
//! were committed with the log).
//!
//! A batch is one record: [`crate::CHECKPOINT_FORMAT`], then postcard of the series names it
//! mentions (each once) and its inputs (a name index, timestamp and value per sample;
//! timestamps of `advance` calls), about 17 bytes per sample.

use std::collections::HashMap;
use std::sync::Arc;

use crate::snapshot::{SnapshotError, decode, encode};
use crate::{Engine, Sample};

/// One batch of engine input, in order.
#[derive(Debug, Default, Clone)]
pub struct InputLog {
    names: Vec<(Arc<str>, Arc<str>)>,
    index: HashMap<(Arc<str>, Arc<str>), u32>,
    inputs: Vec<Input>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Input {
    /// `names[name]` at `ts` (µs).
    Sample {
        name: u32,
        ts: i64,
        value: f64,
    },
    Advance(i64),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Batch {
    names: Vec<(Arc<str>, Arc<str>)>,
    inputs: Vec<Input>,
}

impl InputLog {
    /// A sample the engine was given (after any restamping: exactly what `push` saw).
    pub fn sample(&mut self, device: &Arc<str>, metric: &Arc<str>, ts: i64, value: f64) {
        let key = (Arc::clone(device), Arc::clone(metric));
        let next = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name = *self.index.entry(key).or_insert_with_key(|k| {
            self.names.push(k.clone());
            next
        });
        self.inputs.push(Input::Sample { name, ts, value });
    }

    /// An `advance` the engine was given.
    pub fn advance(&mut self, watermark: i64) {
        self.inputs.push(Input::Advance(watermark));
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Whether the batch holds a sample (not only `advance` calls).
    pub fn has_samples(&self) -> bool {
        !self.names.is_empty()
    }

    /// The batch, encoded; the log is empty again.
    pub fn take(&mut self) -> Vec<u8> {
        self.index.clear();
        let batch = Batch {
            names: std::mem::take(&mut self.names),
            inputs: std::mem::take(&mut self.inputs),
        };
        encode(&batch)
    }
}

impl Engine {
    /// Feeds a batch written by [`InputLog::take`] again, dropping the events (see the module
    /// docs); returns how many samples it held. Series beyond `max_series` are skipped, as
    /// they were the first time.
    pub fn replay(&mut self, batch: &[u8]) -> Result<usize, SnapshotError> {
        let batch: Batch = decode(batch, &|| "input log".into())?;
        // Interned at their first sample, as the first time, so ids come out the same.
        let mut ids: Vec<Option<Option<crate::SeriesId>>> = vec![None; batch.names.len()];
        let mut out = Vec::new();
        let mut samples = 0;
        for input in batch.inputs {
            match input {
                Input::Sample { name, ts, value } => {
                    let (Some(slot), Some((device, metric))) =
                        (ids.get_mut(name as usize), batch.names.get(name as usize))
                    else {
                        continue;
                    };
                    let id = *slot.get_or_insert_with(|| self.series(device, metric).ok());
                    if let Some(series) = id {
                        self.push(Sample { series, ts, value }, &mut out);
                        samples += 1;
                    }
                }
                Input::Advance(w) => self.advance(w, &mut out),
            }
            out.clear();
        }
        Ok(samples)
    }
}
