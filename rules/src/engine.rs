//! The streaming core: series interning, dispatch of samples to windows, alert state.
//!
//! Layout is chosen for the per-sample path, which a gateway runs millions of times a second:
//! when a `(device, metric)` pair is first interned, the rules whose globs match it are found
//! once and a window slot per matching rule is appended to one flat `Vec`. A sample then costs
//! a `Vec` index to find its series' slot range and a few arithmetic operations per slot — no
//! hashing, no string work, no allocation. Allocation happens only when a window closes and
//! an event is built.
//!
//! Determinism: nothing here iterates a `HashMap`. `advance` walks series in id order and
//! each series' slots in rule order, so the same inputs always give the same event order.

use std::collections::HashMap;

use crate::agg::{Acc, Closed, Env};
use crate::detect::{self, Detector};
use crate::error::EngineError;
use crate::event::{Aggregate, AlertState, Event, EventKind, Sample, SeriesId};
use crate::labels::DeviceLabels;
use crate::ruleset::{Rule, RuleSet};
use crate::window::{Done, Win};

/// Resource bounds for an [`Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many distinct `(device, metric)` pairs may be interned.
    pub max_series: usize,
}

impl Limits {
    pub const DEFAULT_MAX_SERIES: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: Self::DEFAULT_MAX_SERIES,
        }
    }
}

/// Counters for metrics and tests. All monotonic except `series`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Interned series.
    pub series: usize,
    /// Samples refused because every window they belong to had already closed (beyond the
    /// rule's allowed lateness); counted once per `(rule, series)` that refused the sample,
    /// whether dropped or emitted as a `Late` event (`late: emit`).
    pub late_dropped: u64,
    /// Samples a full sliding window dropped (its oldest) to make room, per `(rule, series)`.
    pub window_overflow: u64,
    /// Samples whose value was NaN, dropped before reaching any window.
    pub nan_dropped: u64,
    /// Windows closed with at least one sample (empty windows are never opened).
    pub windows_closed: u64,
    pub alerts_raised: u64,
    pub alerts_cleared: u64,
}

/// The state of one rule on one series.
#[derive(Debug, Clone)]
struct Slot {
    rule: u32,
    raised: bool,
    /// Copied from the rule so the hot path does not touch the rule table.
    alpha: f64,
    emit_late: bool,
    win: Win,
    /// The previous closed window, kept only for rules whose condition reads `prev(...)`;
    /// allocated at the first close and overwritten in place after that.
    prev: Option<Box<Closed>>,
    /// The rule's detector state on this series (rules with `detect:` only).
    det: Option<Box<Detector>>,
}
impl Slot {
    fn new(rule_index: u32, rule: &Rule) -> Slot {
        Slot {
            rule: rule_index,
            raised: false,
            alpha: rule.ewma_alpha,
            emit_late: rule.emit_late,
            win: Win::new(rule.window, Acc::new(&rule.acc)),
            prev: None,
            det: rule
                .detect
                .as_ref()
                .map(|d| Box::new(Detector::new(&d.kind))),
        }
    }
}

#[derive(Debug)]
struct Series {
    device: Box<str>,
    metric: Box<str>,
    /// This series' slots are `slots[first..first + len]`.
    first: u32,
    len: u32,
    /// The latest value received, for other series' `metric.<name>` references.
    last: f64,
}

/// The other metrics of one device, for `metric.<name>` in expressions.
struct Peers<'a> {
    index: &'a HashMap<Box<str>, HashMap<Box<str>, SeriesId>>,
    series: &'a [Series],
    device: &'a str,
}

impl Peers<'_> {
    /// The latest value of `metric` on the same device; NaN before its first sample.
    fn last(&self, metric: &str) -> f64 {
        self.index
            .get(self.device)
            .and_then(|m| m.get(metric))
            .and_then(|id| self.series.get(id.0 as usize))
            .map_or(f64::NAN, |s| s.last)
    }
}

/// Runs a [`RuleSet`] over samples. See the crate docs for the model.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    limits: Limits,
    index: HashMap<Box<str>, HashMap<Box<str>, SeriesId>>,
    series: Vec<Series>,
    slots: Vec<Slot>,
    /// No open window ends before this, so `advance` below it has nothing to do.
    next_deadline: i64,
    labels: DeviceLabels,
    stats: EngineStats,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        Engine::with_limits(rules, Limits::default())
    }

    pub fn with_limits(rules: RuleSet, limits: Limits) -> Engine {
        Engine {
            rules,
            limits,
            index: HashMap::new(),
            series: Vec::new(),
            slots: Vec::new(),
            next_deadline: i64::MAX,
            labels: DeviceLabels::default(),
            stats: EngineStats::default(),
        }
    }

    /// Interns `(device, metric)`. A known pair is looked up without allocating; a new one
    /// is matched against every rule once, here, so `push` never has to.
    pub fn series(&mut self, device: &str, metric: &str) -> Result<SeriesId, EngineError> {
        if let Some(id) = self.index.get(device).and_then(|m| m.get(metric)) {
            return Ok(*id);
        }
        let limit = self.limits.max_series;
        let too_many = EngineError::TooManySeries { limit };
        if self.series.len() >= limit {
            return Err(too_many);
        }
        let id = SeriesId(u32::try_from(self.series.len()).map_err(|_| too_many.clone())?);
        let first = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())?;
        let labels = self.labels.of(device);
        for (i, rule) in self.rules.rules.iter().enumerate() {
            if rule.selects(device, metric, &labels) {
                let i = u32::try_from(i).map_err(|_| too_many.clone())?;
                self.slots.push(Slot::new(i, rule));
            }
        }
        let len = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())? - first;
        self.series.push(Series {
            device: device.into(),
            metric: metric.into(),
            first,
            len,
            last: f64::NAN,
        });
        self.index
            .entry(device.into())
            .or_default()
            .insert(metric.into(), id);
        self.stats.series = self.series.len();
        Ok(id)
    }

    /// Sets the device labels rules select on (`select.labels`). Call before the first
    /// sample: series already interned keep their rules until the next [`Engine::reload`].
    pub fn set_labels(&mut self, labels: DeviceLabels) {
        self.labels = labels;
    }

    /// The `(device, metric)` pair behind an id, if this engine issued it.
    pub fn series_name(&self, id: SeriesId) -> Option<(&str, &str)> {
        let s = self.series.get(id.0 as usize)?;
        Some((&s.device, &s.metric))
    }

    /// Feeds one sample. A sample at or after the end of its (rule, series) open window
    /// closes that window first (appending its events to `out`); a sample before the open
    /// window's start is late and dropped. NaN values and ids this engine did not issue are
    /// ignored (NaN is counted).
    pub fn push(&mut self, s: Sample, out: &mut Vec<Event>) {
        if s.value.is_nan() {
            self.stats.nan_dropped += 1;
            self.nan_to_detectors(s, out);
            return;
        }
        let Some(series) = self.series.get_mut(s.series.0 as usize) else {
            return;
        };
        series.last = s.value;
        let range = series.first as usize..(series.first + series.len) as usize;
        let peers = Peers {
            index: &self.index,
            series: &self.series,
            device: &self.series[s.series.0 as usize].device,
        };
        let mut deadline = self.next_deadline;
        for slot in &mut self.slots[range] {
            let Slot {
                rule,
                raised,
                alpha,
                emit_late,
                win,
                prev,
                det,
            } = slot;
            let stats = &mut self.stats;
            let rules = &self.rules;
            let pushed = win.push(s.ts, s.value, *alpha, |done| {
                let slot = SlotMut {
                    rule: *rule,
                    raised,
                    prev,
                    det,
                };
                close(rules, stats, slot, &peers, s.series, done, out);
            });
            deadline = deadline.min(det_deadline(rules, *rule, det));
            if pushed.late {
                self.stats.late_dropped += 1;
                if *emit_late && let Some(rule) = rules.rules.get(*rule as usize) {
                    out.push(Event {
                        rule: rule.name.clone(),
                        series: s.series,
                        ts: s.ts,
                        kind: EventKind::Late { value: s.value },
                    });
                }
            }
            if pushed.overflow {
                self.stats.window_overflow += 1;
            }
            deadline = deadline.min(pushed.deadline);
        }
        self.next_deadline = deadline;
    }

    /// Event time has reached `watermark`: close every window ending at or before it, and
    /// raise `missing` alerts whose silence has lasted long enough. Events come out ordered
    /// by series id, then by rule order. `i64::MAX` means the input has ended: every window
    /// closes, but no silence is reported.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Event>) {
        if watermark < self.next_deadline {
            return;
        }
        let mut next = i64::MAX;
        for (id, series) in self.series.iter().enumerate() {
            let range = series.first as usize..(series.first + series.len) as usize;
            let peers = Peers {
                index: &self.index,
                series: &self.series,
                device: &series.device,
            };
            for slot in &mut self.slots[range] {
                let Slot {
                    rule,
                    raised,
                    win,
                    prev,
                    det,
                    ..
                } = slot;
                let stats = &mut self.stats;
                let rules = &self.rules;
                // `id` fits in u32: it was checked when the series was interned.
                let series = SeriesId(id as u32);
                next = next.min(win.advance(watermark, |done| {
                    let slot = SlotMut {
                        rule: *rule,
                        raised,
                        prev,
                        det,
                    };
                    close(rules, stats, slot, &peers, series, done, out);
                }));
                if let (Some(d), Some(r)) = (det.as_deref_mut(), rules.rules.get(*rule as usize))
                    && let (Some(spec), Some(alert)) = (&r.detect, &r.alert)
                {
                    d.advance(&spec.kind, watermark, &mut |v| {
                        detect::transition(r, alert, raised, stats, series, v, out);
                    });
                }
                next = next.min(det_deadline(rules, *rule, det));
            }
        }
        self.next_deadline = next;
    }

    /// Bytes of per-series window state: the slots (inline state) plus what they own on
    /// the heap. Excludes the series index and names, which do not depend on the rules.
    pub fn state_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self
                .slots
                .iter()
                .map(|s| {
                    s.win.heap_bytes()
                        + s.prev
                            .as_ref()
                            .map_or(0, |p| size_of::<Closed>() + p.acc.heap_bytes())
                        + s.det
                            .as_ref()
                            .map_or(0, |d| size_of::<Detector>() + d.heap_bytes())
                })
                .sum::<usize>()
    }

    /// NaN reaches no window, but a detector may care (`range` reports it, `missing` takes
    /// it as a sign of life); the others skip it.
    fn nan_to_detectors(&mut self, s: Sample, out: &mut Vec<Event>) {
        let Some(series) = self.series.get(s.series.0 as usize) else {
            return;
        };
        let range = series.first as usize..(series.first + series.len) as usize;
        for slot in &mut self.slots[range] {
            let (Some(d), Some(r)) = (
                slot.det.as_deref_mut(),
                self.rules.rules.get(slot.rule as usize),
            ) else {
                continue;
            };
            let (Some(spec), Some(alert)) = (&r.detect, &r.alert) else {
                continue;
            };
            let (raised, stats) = (&mut slot.raised, &mut self.stats);
            d.feed(&spec.kind, s.ts, s.value, &mut |v| {
                detect::transition(r, alert, raised, stats, s.series, v, out);
            });
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }
}

/// When a slot's detector next needs an `advance` (`i64::MAX`: never, so far).
fn det_deadline(rules: &RuleSet, rule: u32, det: &Option<Box<Detector>>) -> i64 {
    match (
        det,
        rules
            .rules
            .get(rule as usize)
            .and_then(|r| r.detect.as_ref()),
    ) {
        (Some(d), Some(spec)) => d.deadline(&spec.kind),
        _ => i64::MAX,
    }
}

/// Emits a closed window's events: Window first, then any alert transition.
/// The parts of a [`Slot`] a closing window updates, borrowed apart from its window.
struct SlotMut<'a> {
    rule: u32,
    raised: &'a mut bool,
    prev: &'a mut Option<Box<Closed>>,
    det: &'a mut Option<Box<Detector>>,
}

fn close(
    rules: &RuleSet,
    stats: &mut EngineStats,
    slot: SlotMut<'_>,
    peers: &Peers<'_>,
    series: SeriesId,
    done: Done,
    out: &mut Vec<Event>,
) {
    let SlotMut {
        rule,
        raised,
        prev,
        det,
    } = slot;
    stats.windows_closed += 1;
    let Some(rule) = rules.rules.get(rule as usize) else {
        return;
    };
    // Empty (no allocation) unless the rule reads other metrics of the device.
    let others: Vec<f64> = rule.others.iter().map(|m| peers.last(m)).collect();
    let env = Env {
        cur: &done.closed,
        prev: prev.as_deref(),
        others: &others,
    };
    if !rule.aggregates.is_empty() {
        out.push(Event {
            rule: rule.name.clone(),
            series,
            ts: done.ts,
            kind: EventKind::Window {
                start: done.start,
                end: done.end,
                values: rule.aggregates.iter().map(|&a| (a, env.get(a))).collect(),
            },
        });
    }
    if let Some(alert) = &rule.alert {
        let (holds, value) = match (&alert.condition, &rule.detect, det.as_deref_mut()) {
            (Some(c), _, _) => c.eval(&env),
            (None, Some(spec), Some(d)) => {
                let x = spec
                    .value
                    .as_ref()
                    .map_or_else(|| env.get(Aggregate::Mean), |v| v.eval(&env));
                d.feed(&spec.kind, done.ts, x, &mut |v| {
                    detect::transition(rule, alert, raised, stats, series, v, out);
                });
                (*raised, f64::NAN)
            }
            _ => (false, f64::NAN),
        };
        if rule.uses_prev() {
            match prev {
                Some(p) => **p = done.closed,
                None => *prev = Some(Box::new(done.closed)),
            }
        }
        if alert.condition.is_none() {
            return;
        }
        let state = match (holds, *raised) {
            (true, false) => AlertState::Raised,
            (false, true) => AlertState::Cleared,
            _ => return,
        };
        *raised = holds;
        match state {
            AlertState::Raised => stats.alerts_raised += 1,
            AlertState::Cleared => stats.alerts_cleared += 1,
        }
        out.push(Event {
            rule: rule.name.clone(),
            series,
            ts: done.ts,
            kind: EventKind::Alert {
                state,
                severity: alert.severity,
                value,
                condition: alert.text.clone(),
                score: f64::NAN,
            },
        });
    }
}

mod reload;
mod runtime;
pub use reload::ReloadReport;
pub use runtime::RuntimeCounter;

#[cfg(test)]
mod peers_tests;
#[cfg(test)]
mod tests;
