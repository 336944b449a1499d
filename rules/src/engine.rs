//! The streaming core: series interning, tumbling windows, aggregates and alert state.
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

use crate::error::EngineError;
use crate::event::{Aggregate, AlertState, Event, EventKind, Sample, SeriesId};
use crate::ruleset::RuleSet;

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
    /// Samples dropped because their window had already closed; counted once per
    /// `(rule, series)` window that refused the sample.
    pub late_dropped: u64,
    /// Samples whose value was NaN, dropped before reaching any window.
    pub nan_dropped: u64,
    /// Windows closed with at least one sample (empty windows are never opened).
    pub windows_closed: u64,
    pub alerts_raised: u64,
    pub alerts_cleared: u64,
}

/// The running totals of one open window.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    #[inline]
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn get(&self, a: Aggregate) -> f64 {
        match a {
            Aggregate::Count => self.count as f64,
            Aggregate::Mean => self.sum / self.count as f64,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
        }
    }
}

/// The state of one rule on one series.
#[derive(Debug, Clone)]
struct Slot {
    rule: u32,
    /// Copied from the rule so the hot path does not touch the rule table.
    size: i64,
    /// Samples before this are late: the open window's start, or the end of the last
    /// closed one when no window is open.
    floor: i64,
    start: i64,
    end: i64,
    open: bool,
    raised: bool,
    acc: Acc,
}

#[derive(Debug)]
struct Series {
    device: Box<str>,
    metric: Box<str>,
    /// This series' slots are `slots[first..first + len]`.
    first: u32,
    len: u32,
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
        for (i, rule) in self.rules.rules.iter().enumerate() {
            if rule.device.matches(device) && rule.metric.matches(metric) {
                self.slots.push(Slot {
                    rule: u32::try_from(i).map_err(|_| too_many.clone())?,
                    size: rule.window,
                    floor: i64::MIN,
                    start: 0,
                    end: 0,
                    open: false,
                    raised: false,
                    acc: Acc::EMPTY,
                });
            }
        }
        let len = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())? - first;
        self.series.push(Series {
            device: device.into(),
            metric: metric.into(),
            first,
            len,
        });
        self.index
            .entry(device.into())
            .or_default()
            .insert(metric.into(), id);
        self.stats.series = self.series.len();
        Ok(id)
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
            return;
        }
        let Some(series) = self.series.get(s.series.0 as usize) else {
            return;
        };
        let range = series.first as usize..(series.first + series.len) as usize;
        for slot in &mut self.slots[range] {
            if s.ts < slot.floor {
                self.stats.late_dropped += 1;
                continue;
            }
            if slot.open && s.ts >= slot.end {
                close(&self.rules, &mut self.stats, slot, s.series, out);
            }
            if !slot.open {
                let start = s.ts.saturating_sub(s.ts.rem_euclid(slot.size));
                slot.start = start;
                slot.end = start.saturating_add(slot.size);
                slot.floor = start;
                slot.open = true;
                self.next_deadline = self.next_deadline.min(slot.end);
            }
            slot.acc.add(s.value);
        }
    }

    /// Event time has reached `watermark`: close every window ending at or before it.
    /// Events come out ordered by series id, then by rule order.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Event>) {
        if watermark < self.next_deadline {
            return;
        }
        let mut next = i64::MAX;
        for (id, series) in self.series.iter().enumerate() {
            let range = series.first as usize..(series.first + series.len) as usize;
            for slot in &mut self.slots[range] {
                if !slot.open {
                    continue;
                }
                if slot.end <= watermark {
                    // `id` fits in u32: it was checked when the series was interned.
                    close(&self.rules, &mut self.stats, slot, SeriesId(id as u32), out);
                } else {
                    next = next.min(slot.end);
                }
            }
        }
        self.next_deadline = next;
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }
}

/// Emits the window's events (Window first, then any alert transition) and resets the slot.
fn close(
    rules: &RuleSet,
    stats: &mut EngineStats,
    slot: &mut Slot,
    series: SeriesId,
    out: &mut Vec<Event>,
) {
    slot.open = false;
    slot.floor = slot.end;
    let acc = std::mem::replace(&mut slot.acc, Acc::EMPTY);
    stats.windows_closed += 1;
    let Some(rule) = rules.rules.get(slot.rule as usize) else {
        return;
    };
    if !rule.aggregates.is_empty() {
        out.push(Event {
            rule: rule.name.clone(),
            series,
            ts: slot.end,
            kind: EventKind::Window {
                start: slot.start,
                end: slot.end,
                values: rule.aggregates.iter().map(|&a| (a, acc.get(a))).collect(),
            },
        });
    }
    if let Some(alert) = &rule.alert {
        let value = acc.get(alert.condition.aggregate);
        let holds = alert.condition.holds(value);
        let state = match (holds, slot.raised) {
            (true, false) => AlertState::Raised,
            (false, true) => AlertState::Cleared,
            _ => return,
        };
        slot.raised = holds;
        match state {
            AlertState::Raised => stats.alerts_raised += 1,
            AlertState::Cleared => stats.alerts_cleared += 1,
        }
        out.push(Event {
            rule: rule.name.clone(),
            series,
            ts: slot.end,
            kind: EventKind::Alert {
                state,
                severity: alert.severity,
                value,
                condition: alert.text.clone(),
            },
        });
    }
}

#[cfg(test)]
mod tests;
