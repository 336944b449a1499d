//! The retained per-gateway status message (`{prefix}/fleet/status/{gateway_id}`): what runs,
//! what became of the last attempt, and how many bundles were refused and why. `weir push`
//! reads it to print each gateway's outcome; a dashboard reads the whole fleet from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One gateway's fleet state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub gateway: String,
    /// The version running (0: none applied yet, the config's own rules).
    pub version: u64,
    /// Its bundle hash (SHA-256 of the signed encoding), if a bundle is applied.
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub last: Option<Attempt>,
    /// Bundles refused before validation, by reason (`unsigned`, `bad_signature`,
    /// `replayed`, `malformed`).
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// µs since the epoch when this message was written.
    pub at: i64,
}

/// What became of one bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub version: u64,
    pub hash: String,
    pub outcome: Outcome,
    /// `rejected`: every problem, `file:line:col: message`; `rolled_back`/`refused`: why.
    #[serde(default)]
    pub errors: Vec<String>,
    /// µs since the epoch.
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Switched to; health is being watched (`fleet.watch`).
    Trial,
    /// Ran through the watch period healthy.
    Applied,
    /// Failed validation; nothing changed.
    Rejected,
    /// Applied, then undone: the previous version runs again.
    RolledBack,
    /// Not signed by a trusted key, replayed or malformed; never looked at further.
    Refused,
}

impl Outcome {
    /// Whether the attempt is over (`trial` is not).
    pub fn is_final(self) -> bool {
        self != Outcome::Trial
    }
}
