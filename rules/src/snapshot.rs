//! Checkpoints of an engine's state, so that a restarted agent carries on as if it had never
//! stopped: open windows and their accumulators, sliding buffers, detector state (baselines,
//! CUSUM and EWMA sums, trend points, novelty, changepoints, multivariate), alert lifecycles,
//! peer windows, the fuse/incident layer and the engine's clock.
//!
//! **What is written.** [`crate::Engine::checkpoint`] returns a [`Checkpoint`]: one small
//! engine-wide record and one record per series (or group) whose state changed since the
//! previous checkpoint: a sample reached it, or `advance` closed one of its windows or woke
//! one of its detectors. An idle series costs nothing, so a checkpoint costs in proportion to
//! activity, not to the number of series. The first checkpoint of an engine (and the first
//! after a [`crate::Engine::reload`] or a restore) is *full*: every series, and the store is
//! to drop what it held before (series ids may have moved).
//!
//! **Encoding.** Each record is one format byte ([`FORMAT`]) followed by the state types'
//! own `#[derive(Serialize, Deserialize)]` encoded with `postcard` (compact varints, exact
//! `f64` bits, no schema in the bytes; already the workspace's device-frame codec). The
//! state types *are* the format: changing a field of any of them must bump [`FORMAT`], and the
//! golden-bytes test in `snapshot_tests` fails until it is. A record of another format is
//! refused with [`SnapshotError::Format`]; the agent then starts fresh and says so.
//!
//! **Keyed by meaning.** Each slot's state is stored under a fingerprint of its rule: FNV-1a
//! of the rule's name and its parsed definition (the same `definition` a reload compares), so
//! moving a rule to another file, reindenting it or reordering keys keeps its state, and
//! changing what it means starts it fresh. A changed rule keeps one bit, whether its alert
//! was raised, so its next evaluation clears it rather than raising it twice (as a reload
//! does). [`RestoreReport`] names kept, changed and removed rules for the log.
//!
//! What is derived from the rules rather than state (FFT plans, a peer window's aggregates,
//! a series' rules) is rebuilt from the current rules at restore, never stored.

use std::sync::Arc;

/// The format byte that starts every record. Bump it when any state type changes shape
/// (2: `novelty` gained its stuck test's run and block runs; 3: a slot's window state is
/// optional, kept in its own table).
pub const FORMAT: u8 = 3;

/// The state changed since the previous checkpoint, encoded; also what
/// [`crate::Engine::restore`] reads back (then with every series the store holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Every series is in `series` and the store should drop any record not in it.
    pub full: bool,
    /// The engine-wide record: rule fingerprints, clock, fuse and incident state.
    pub global: Vec<u8>,
    /// `(series id, record)` of each series changed, in id order.
    pub series: Vec<(u32, Vec<u8>)>,
}

impl Checkpoint {
    /// A checkpoint to restore from, as a store read it back.
    pub fn from_store(global: Vec<u8>, series: Vec<(u32, Vec<u8>)>) -> Checkpoint {
        Checkpoint {
            full: true,
            global,
            series,
        }
    }

    /// Encoded bytes in this checkpoint.
    pub fn bytes(&self) -> usize {
        self.global.len() + self.series.iter().map(|(_, b)| b.len()).sum::<usize>()
    }
}

/// What [`crate::Engine::restore`] did, by rule name, for the log line an operator reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// Rules whose state came back.
    pub kept: Vec<Arc<str>>,
    /// Rules whose definition changed since the checkpoint: they start fresh (a raised alert
    /// stays raised until it clears).
    pub changed: Vec<Arc<str>>,
    /// Rules in the checkpoint that the rule set no longer has.
    pub removed: Vec<Arc<str>>,
    /// Series and groups restored.
    pub series: usize,
    /// Series in the checkpoint that could not be interned again (`max_series`).
    pub series_refused: usize,
}

/// Why a checkpoint was not restored. The engine is left fresh in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("engine checkpoint has format {found}, this weir reads format {expected}")]
    Format { found: u8, expected: u8 },
    #[error("engine checkpoint record {record} is unreadable: {reason}")]
    Corrupt { record: String, reason: String },
    #[error("an engine can only be restored before its first sample")]
    NotFresh,
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher promises neither).
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `FORMAT` then `value`, postcard-encoded.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: postcard errors only on a full buffer
    // or a sequence of unknown length, and every state type has known lengths. Were it to,
    // the record would read back as corrupt and that series start fresh.
    let mut bytes = postcard::to_extend(value, vec![FORMAT]).unwrap_or_else(|_| vec![FORMAT]);
    // The Vec grew by doubling: up to half of it is slack, and a checkpoint holds one record
    // per series at once (at 10,000 series of issue 19's workload, 2 KB allocated per
    // ~1.2 KB record, most of the agent's peak RSS; docs/footprint.md). Shrinking in place
    // hands the tail back to the allocator for the next record.
    bytes.shrink_to_fit();
    bytes
}

/// Reads a record written by [`encode`]; `record` names it in the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    record: &dyn Fn() -> String,
) -> Result<T, SnapshotError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| SnapshotError::Corrupt {
            record: record(),
            reason: e.to_string(),
        }),
        Some((&found, _)) => Err(SnapshotError::Format {
            found,
            expected: FORMAT,
        }),
        None => Err(SnapshotError::Corrupt {
            record: record(),
            reason: "empty".into(),
        }),
    }
}

/// Fixed-size arrays longer than serde's 32, as a sequence.
pub(crate) mod array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(a: &[f64; N], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(a.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[f64; N], D::Error> {
        let v = Vec::<f64>::deserialize(d)?;
        let n = v.len();
        v.try_into()
            .map_err(|_| serde::de::Error::invalid_length(n, &format!("an array of {N}").as_str()))
    }
}
