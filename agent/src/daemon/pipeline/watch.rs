//! What the engine's task shows to an onlooker (the status page) without knowing it: the
//! pipeline calls a [`Watch`] with the samples it accepted and the events it produced, and
//! the page implements it. The trait keeps the dependency one way (`page` imports the
//! pipeline's counters through the metrics, so the pipeline must not import the page).

use weir_rules::{Event, Sample, SeriesId};

/// A series' `(device, metric)`.
pub type Names<'a> = dyn Fn(SeriesId) -> (&'a str, &'a str) + 'a;

pub trait Watch: Send + Sync {
    /// Whether it wants to be shown anything now (the page may be turned off by a reload).
    fn watching(&self) -> bool {
        true
    }
    /// The samples of one delivery the engine accepted, in order.
    fn samples(&self, samples: &[Sample], names: &Names<'_>);
    /// The events of one batch, in order.
    fn events(&self, events: &[Event], names: &Names<'_>);
}
