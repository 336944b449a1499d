//! Engine glue for device-level detection: which series feed a `multivariate` group, the
//! per-metric contributions its alerts carry, and the alert layer (`fuse:` and
//! `incidents:`, module `incident`) that runs after the windows on each `push` and
//! `advance`, on the alert events they produced.
//!
//! A multivariate rule is a grouped rule (`group_by: device`) like any other: one slot per
//! device, fed by every series the rule selects. Its detector additionally keeps per-metric
//! window sums, so it must know which metric each feeding series is; that is settled here
//! once, when the series is interned, so the per-sample path compares a `u32` and never a
//! name.

use std::collections::HashMap;

use super::{Engine, Series};
use crate::detect::{DetectKind, Detector};
use crate::event::{Event, EventKind, Sample, SeriesId};
use crate::incident::{AlertIn, Layer, Out};
use crate::ruleset::GroupBy;
use crate::window::WindowSpec;

/// The alert layer's state beside the engine.
#[derive(Debug, Default)]
pub(super) struct AlertLayer {
    pub(super) layer: Layer,
    /// The engine's clock: the latest sample time or watermark seen.
    pub(super) clock: i64,
    /// The longest window of the rule set: how long after its timestamp an alert may still
    /// be emitted (a window closes when a later sample arrives).
    slack: i64,
    /// Each device's series for fused alerts and incidents (metric `*`).
    series: HashMap<Box<str>, SeriesId>,
    /// Until the clock passes this, a batch without alerts has nothing to do.
    pub(super) next: i64,
    /// The sections' definition, to keep the state across a reload that did not change them.
    pub(super) definition: String,
    pub(super) active: bool,
}

impl AlertLayer {
    pub(super) fn heap_bytes(&self) -> usize {
        self.layer.heap_bytes() + self.series.capacity() * size_of::<(Box<str>, SeriesId)>()
    }
}

impl Engine {
    /// Feeds one sample. A sample at or after the end of its (rule, series) open window
    /// closes that window first (appending its events to `out`); a sample before the open
    /// window's start is late and dropped. NaN values and ids this engine did not issue are
    /// ignored (NaN is counted). Alert transitions it caused then reach `fuse:` rules and
    /// incidents, whose events follow them in `out`.
    pub fn push(&mut self, s: Sample, out: &mut Vec<Event>) {
        if !self.alerts.active {
            return self.push_windows(s, out);
        }
        let before = out.len();
        self.push_windows(s, out);
        self.alert_layer(before, s.ts, out);
    }

    /// Event time has reached `watermark`: close every window ending at or before it, and
    /// raise `missing` alerts whose silence has lasted long enough. Events come out ordered
    /// by series id, then by rule order, then fused alerts and incidents. `i64::MAX` means
    /// the input has ended: every window closes, but no silence is reported, and incidents
    /// whose alerts have all cleared clear without waiting for their `gap`.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Event>) {
        if !self.alerts.active {
            return self.advance_windows(watermark, out);
        }
        let before = out.len();
        self.advance_windows(watermark, out);
        self.alert_layer(before, watermark, out);
    }

    /// The input has ended ([`Engine::finish`]): the alert layer sees the events from
    /// `before` on, and incidents whose alerts have all cleared clear.
    pub(super) fn end_alert_layer(&mut self, before: usize, out: &mut Vec<Event>) {
        if self.alerts.active {
            self.alert_layer(before, i64::MAX, out);
        }
    }

    /// Sets the alert layer up for the current rules (keeping its state if they did not
    /// change it).
    pub(super) fn with_alert_layer(mut self) -> Engine {
        self.reset_alert_layer();
        self
    }

    pub(super) fn reset_alert_layer(&mut self) {
        let definition = self.rules.device.definition();
        if definition != self.alerts.definition {
            self.alerts.layer = Layer::default();
            self.alerts.definition = definition;
        }
        // Look at the next batch whatever it holds.
        self.alerts.next = i64::MIN;
        self.alerts.active = !self.rules.device.is_empty();
        self.alerts.slack = self
            .rules
            .rules
            .iter()
            .map(|r| match r.window {
                WindowSpec::Tumbling { size } | WindowSpec::Hopping { size, .. } => size,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
    }

    fn alert_layer(&mut self, before: usize, now: i64, out: &mut Vec<Event>) {
        self.alerts.clock = self.alerts.clock.max(now);
        let quiet = !out[before..]
            .iter()
            .any(|e| matches!(e.kind, EventKind::Alert { .. }));
        if quiet && self.alerts.clock <= self.alerts.next {
            return;
        }
        let alerts: Vec<AlertIn> = out[before..]
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Alert {
                    state, severity, ..
                } => {
                    let (device, metric) = self.device_of(e)?;
                    Some(AlertIn {
                        ts: e.ts,
                        rule: e.rule.clone(),
                        device: device.into(),
                        metric: metric.into(),
                        state: *state,
                        severity: *severity,
                    })
                }
                _ => None,
            })
            .collect();
        let mut emitted = Vec::new();
        let (clock, slack) = (self.alerts.clock, self.alerts.slack);
        let spec = &self.rules.device;
        self.alerts
            .layer
            .process(spec, &alerts, clock, slack, &mut emitted);
        self.alerts.next = self.alerts.layer.next_deadline(spec, slack);
        for o in emitted {
            let (device, event) = match o {
                Out::Fused {
                    device,
                    rule,
                    ts,
                    state,
                    severity,
                    condition,
                    members,
                } => (
                    device,
                    Event {
                        rule,
                        series: SeriesId(u32::MAX),
                        ts,
                        kind: EventKind::Alert {
                            state,
                            severity,
                            value: members.len() as f64,
                            condition,
                            score: members.len() as f64,
                            message: None,
                            contributions: members.into_iter().map(|m| (m, 1.0)).collect(),
                        },
                    },
                ),
                Out::Incident {
                    device,
                    rule,
                    ts,
                    state,
                    severity,
                    opened,
                    contributors,
                } => (
                    device,
                    Event {
                        rule,
                        series: SeriesId(u32::MAX),
                        ts,
                        kind: EventKind::Incident {
                            state,
                            severity,
                            opened,
                            contributors,
                        },
                    },
                ),
            };
            if let Some(series) = self.device_series(&device) {
                if let EventKind::Alert { state, .. } = &event.kind {
                    match state {
                        crate::AlertState::Raised => self.stats.alerts_raised += 1,
                        crate::AlertState::Cleared => self.stats.alerts_cleared += 1,
                    }
                }
                out.push(Event { series, ..event });
            }
        }
    }

    /// The device (and metric) an alert event is about, when it is about one device: a
    /// series, or a `group_by: device` group (metric `*`); `None` for label and `all` groups.
    fn device_of(&self, e: &Event) -> Option<(&str, &str)> {
        let s = self.series.get(e.series.0 as usize)?;
        if !s.group {
            return Some((&s.device, &s.metric));
        }
        if self.alerts.series.get(&*s.device) == Some(&e.series) {
            return Some((&s.device, "*"));
        }
        let rule = self.rules.rules.iter().find(|r| r.name == e.rule)?;
        match rule.group.as_ref().map(|g| &g.by) {
            Some(GroupBy::Device) => Some((&s.device, "*")),
            _ => None,
        }
    }

    /// The series fused alerts and incidents of `device` are emitted on (metric `*`),
    /// interned like a group (never matched by rules); `None` when `max_series` is reached.
    pub(super) fn device_series(&mut self, device: &str) -> Option<SeriesId> {
        if let Some(id) = self.alerts.series.get(device) {
            return Some(*id);
        }
        if self.series.len() >= self.limits.max_series {
            return None;
        }
        let id = SeriesId(u32::try_from(self.series.len()).ok()?);
        let first = u32::try_from(self.slots.len()).ok()?;
        let (device_name, metric) = (self.name(device), self.name("*"));
        self.series.push(Series {
            device: device_name,
            metric,
            first,
            len: 0,
            peer_first: 0,
            peer_len: 0,
            fwd_first: 0,
            fwd_len: 0,
            group: true,
            dirty: false,
            newest: i64::MIN,
            guarded: false,
        });
        self.touch(id.0);
        self.alerts.series.insert(device.into(), id);
        Some(id)
    }
}

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
