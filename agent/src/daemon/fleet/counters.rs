//! What `/metrics` shows of fleet operations: the running version and what became of bundles.
//! The same counts are in the retained status message (refusals survive restarts there; here
//! they count from the agent's start, as Prometheus counters do).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::fleet::{Outcome, Refusal};

/// Refusal reasons, in the order of [`FleetCounters::refused`].
const REASONS: [&str; 4] = ["unsigned", "bad_signature", "replayed", "malformed"];

#[derive(Debug, Default)]
pub struct FleetCounters {
    pub version: AtomicU64,
    pub refused: [AtomicU64; 4],
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    pub rolled_back: AtomicU64,
}

impl FleetCounters {
    pub(super) fn refusal(&self, refusal: &Refusal) {
        if let Some(i) = REASONS.iter().position(|r| *r == refusal.kind()) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    pub(super) fn outcome(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Rejected => &self.rejected,
            Outcome::RolledBack => &self.rolled_back,
            Outcome::Trial | Outcome::Refused => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The `weir_fleet_*` families.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let version =
            ConstGauge::new(i64::try_from(self.version.load(Relaxed)).unwrap_or(i64::MAX));
        let family = encoder.encode_descriptor(
            "weir_fleet_version",
            "The fleet bundle version running (0: the config's own rules).",
            None,
            version.metric_type(),
        )?;
        version.encode(family)?;
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "weir_fleet_refused",
            "Bundles refused before validation, by reason.",
            None,
            counter.metric_type(),
        )?;
        for (i, reason) in REASONS.iter().enumerate() {
            let labels = [("reason", *reason)];
            ConstCounter::new(self.refused[i].load(Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in [
            (
                "weir_fleet_applied",
                "Bundles applied (healthy through the watch).",
                &self.applied,
            ),
            (
                "weir_fleet_rejected",
                "Bundles rejected by validation.",
                &self.rejected,
            ),
            (
                "weir_fleet_rolled_back",
                "Bundles rolled back by the gateway itself.",
                &self.rolled_back,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Relaxed));
            let family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(family)?;
        }
        Ok(())
    }
}
