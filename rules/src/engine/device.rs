//! Engine glue for device-level detection: which series feed a `multivariate` group, and
//! the per-metric contributions its alerts carry.
//!
//! A multivariate rule is a grouped rule (`group_by: device`) like any other: one slot per
//! device, fed by every series the rule selects. Its detector additionally keeps per-metric
//! window sums, so it must know which metric each feeding series is; that is settled here
//! once, when the series is interned, so the per-sample path compares a `u32` and never a
//! name.

use super::Engine;
use crate::detect::{DetectKind, Detector};
use crate::event::{Event, EventKind, SeriesId};

impl Engine {
    /// `series` (of `metric`) joined `group`: a multivariate detector there learns which
    /// metric it carries.
    pub(super) fn register_member(&mut self, group: SeriesId, series: SeriesId, metric: &str) {
        let Some(slots) = self
            .series
            .get(group.0 as usize)
            .and_then(|g| self.slots.get(g.slots()))
        else {
            return;
        };
        for slot in slots {
            let Some(rule) = self.rules.rules.get(slot.rule as usize) else {
                continue;
            };
            if let (Some(spec), Some(det)) = (&rule.detect, self.dets.get_mut(slot.det as usize))
                && matches!(spec.kind, DetectKind::Multivariate(_))
            {
                det.register(&spec.kind, series, metric);
            }
        }
    }
}

impl Engine {
    /// After a reload rebuilt the slots: tells every multivariate group its members again.
    pub(super) fn register_all_members(&mut self) {
        for id in 0..self.series.len() {
            let s = &self.series[id];
            if s.group {
                continue;
            }
            let metric = s.metric.clone();
            let groups: Vec<u32> = self.fwd.get(s.fwd()).unwrap_or_default().to_vec();
            for g in groups {
                // `id` fits in u32: it was checked when the series was interned.
                self.register_member(SeriesId(g), SeriesId(id as u32), &metric);
            }
        }
    }
}

/// Fills in the contributions of the alert transitions `d` just caused (`fresh`).
#[inline]
pub(super) fn attach_contributions(d: &Detector, kind: &DetectKind, fresh: &mut [Event]) {
    if !matches!(kind, DetectKind::Multivariate(_)) {
        return;
    }
    for e in fresh {
        if let EventKind::Alert { contributions, .. } = &mut e.kind {
            *contributions = d.contributions(kind);
        }
    }
}
