//! The streaming core: series interning, dispatch of samples to windows, alert state.
//!
//! Layout is chosen for the per-sample path, which a gateway runs millions of times a second:
//! when a `(device, metric)` pair is first interned, the rules whose globs match it are found
//! once and a window slot per matching rule is appended to one flat `Vec`. A sample then costs
//! a `Vec` index to find its series' slot range and a few arithmetic operations per slot — no
//! hashing, no string work, no allocation. Allocation happens only when a window closes and
//! an event is built.
//!
//! Grouped rules (`group_by`) keep one slot per group instead: the group is interned like a
//! series (a *group series*, named after the group, never matched by rules or read by
//! `metric.<name>`) that holds the rule's only slot for that group, and each real series in
//! the group gets a forwarding entry to it in `Engine::fwd`. A sample then walks its own slots
//! and then its forwarding entries — still an index walk, no hashing — and the group's events
//! carry the group series' id, so the agent names them like any other series.
//!
//! Determinism: nothing here iterates a `HashMap`. `advance` walks series in id order and
//! each series' slots in rule order, so the same inputs always give the same event order.
//!
//! Rules that keep the same window over a series read one window state (module `share`).
//!
//! This file holds the types, interning and construction; the per-sample path (`push`,
//! `advance`) is in `feed`, interned names in `names`, the name index in `index`, reloading in `reload`, group interning
//! in `group`.

use std::collections::{HashMap, HashSet};

use more::{More, MoreAt, Mores};
use names::{Name, intern};

use crate::agg::{Acc, Closed};
use crate::alert::{self, Lifecycle};
use crate::detect::Detector;
use crate::error::EngineError;
use crate::event::SeriesId;
use crate::labels::DeviceLabels;
use crate::ruleset::{Rule, RuleSet};
use crate::window::Win;

/// Resource bounds for an [`Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many distinct `(device, metric)` pairs may be interned. Each group of a grouped
    /// rule takes one entry too (it is interned like a series).
    pub max_series: usize,
    /// Bytes of rule state (windows, sketches, detectors) the engine may reserve: each rule's
    /// worst case per series is reserved when a series (or group) gets a slot of that rule,
    /// and a slot that would pass this is refused and counted (see module `budget`).
    pub max_state_bytes: usize,
}

impl Limits {
    pub const DEFAULT_MAX_SERIES: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: Self::DEFAULT_MAX_SERIES,
            max_state_bytes: crate::budget::DEFAULT_MAX_STATE_BYTES,
        }
    }
}

/// Counters for metrics and tests. All monotonic except `series`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Interned series (groups not included).
    pub series: usize,
    /// Groups of grouped rules (`group_by`), each holding one window.
    pub groups: usize,
    /// Times a series could not join a new group of a grouped rule because `max_series` was
    /// reached (the series itself was interned; that rule does not see it).
    pub groups_refused: u64,
    /// Samples dropped because their window had already closed; counted once per
    /// `(rule, series)` window that refused the sample.
    pub late_dropped: u64,
    /// Samples a full sliding window dropped (its oldest) to make room, per `(rule, series)`.
    pub window_overflow: u64,
    /// Samples whose value was NaN, dropped before reaching any window.
    pub nan_dropped: u64,
    /// Windows closed with at least one sample (empty windows are never opened).
    pub windows_closed: u64,
    pub alerts_raised: u64,
    pub alerts_cleared: u64,
    /// Raises swallowed by an alert's `suppress` or `cooldown` (their clears are too).
    pub alerts_suppressed: u64,
    /// `(rule, series)` slots not created because their worst case would pass
    /// `max_state_bytes`: that rule does not see that series (or group).
    pub budget_refused: u64,
    /// Bytes reserved for rule state now (each slot's worst case), at most `max_state_bytes`
    /// except after a reload that kept more.
    pub state_reserved: usize,
    /// Windows still open when [`Engine::finish`] ended the input: partial, so dropped
    /// unjudged (see `finish`).
    pub partial_windows: u64,
    /// Samples dropped after a restore as redeliveries of samples the restored state already
    /// holds (see [`Engine::guard_redeliveries`]).
    pub redelivered_dropped: u64,
}

/// The state of one rule on one series: 16 bytes, three of them per series in issue 19's
/// workload, so every word here is 240 KB at 10,000 series. What only some rules keep
/// (`prev`, `let` memory, storm control) is in `Engine::mores`, by the slot's index, not
/// behind a pointer in every slot (8 bytes of every slot, 0.23 MiB at that workload).
#[derive(Debug, Clone)]
struct Slot {
    rule: u32,
    /// Index of the rule's window state on this series in `Engine::wins` ([`NO_WIN`] for a
    /// detector rule without a window, which has none: a window state is 112 bytes).
    win: u32,
    /// Index of the rule's detector state on this series in `Engine::dets` ([`NO_DET`] for
    /// rules without `detect:`).
    det: u32,
    raised: bool,
    /// Whether another slot of the series reads the same window state (module `share`).
    /// A detector rule without a window (`win` is [`NO_WIN`]) is a *direct* slot: samples
    /// go straight to the detector (no window, no accumulator), the cheapest path a sample
    /// can take.
    share: share::Share,
    /// [`crate::agg::AccSpec::lean`], copied from the rule so the hot path does not touch
    /// the rule table (a lean rule never reads the EWMA factor, the only other thing the
    /// window update needs from it).
    lean: bool,
    emit_late: bool,
}

/// [`Slot::more_bytes`], for the budget (module `budget`).
pub(crate) fn slot_more_bytes(rule: &Rule) -> usize {
    Slot::more_bytes(rule)
}

/// `Slot::det` of a rule without a detector.
const NO_DET: u32 = u32::MAX;
/// `Slot::win` of a direct slot.
const NO_WIN: u32 = u32::MAX;

impl Slot {
    /// A fresh slot for `rule` (at `rule_index`); its detector state, if any, is appended
    /// to `tables.dets`, its window state, if any, to `tables.wins`, unless `shared` names
    /// a fresh window state of the series' that it reads too (module `share`; the caller
    /// sets the slots' roles). `None` when a table would outgrow u32 indices.
    /// `name` is the series' (or group's) `(device, metric)`, to find a learned baseline.
    fn new(
        rule_index: u32,
        rule: &Rule,
        tables: Tables<'_>,
        name: (&str, &str),
        shared: Option<u32>,
    ) -> Option<Slot> {
        let (dets, wins) = tables;
        let det = match &rule.detect {
            Some(d) => {
                let at = u32::try_from(dets.len()).ok()?;
                let learned = d
                    .learned
                    .as_ref()
                    .and_then(|l| l.get(&(Box::<str>::from(name.0), Box::<str>::from(name.1))));
                dets.push(Detector::seeded(&d.kind, learned));
                at
            }
            None => NO_DET,
        };
        let direct = is_direct(rule);
        let win = if direct {
            NO_WIN
        } else if let Some(at) = shared {
            at
        } else {
            let at = u32::try_from(wins.len()).ok()?;
            wins.push(Win::new(rule.window, Acc::new(&rule.acc)));
            at
        };
        Some(Slot {
            rule: rule_index,
            win,
            det,
            raised: false,
            share: share::Share::Own,
            lean: rule.acc.lean,
            emit_late: rule.emit_late,
        })
    }

    /// The [`More`] a fresh slot of `rule` starts with, if the rule keeps one.
    fn fresh_more(rule: &Rule) -> Option<More> {
        let life = rule
            .alert
            .as_ref()
            .filter(|a| alert::needs_lifecycle(a))
            .map(|_| Box::default());
        Slot::needs_more(rule).then(|| More {
            life,
            ..More::default()
        })
    }

    /// Whether `rule`'s slots keep a [`More`]: it reads `prev(...)`, has `let:` values or
    /// storm control.
    fn needs_more(rule: &Rule) -> bool {
        rule.uses_prev()
            || !rule.lets.is_empty()
            || rule.alert.as_ref().is_some_and(alert::needs_lifecycle)
    }

    /// The bytes a slot of `rule` holds beyond its own: its [`More`], if it keeps one (for
    /// the budget, module `budget`).
    fn more_bytes(rule: &Rule) -> usize {
        if Slot::needs_more(rule) {
            // An entry of `Engine::mores`, with a hash table's spare room (7/8 full at most).
            size_of::<(u32, More)>() * 8 / 7 + 1
        } else {
            0
        }
    }

    /// The slot's [`More`], or `spare` (all `None`) for a slot without one: what a rule
    /// without it reads, and never writes (see [`Slot::needs_more`]).
    fn more<'a>(more: Option<&'a mut More>, spare: &'a mut More) -> &'a mut More {
        match more {
            Some(m) => m,
            None => spare,
        }
    }
}

/// The engine's detector and window tables, where [`Slot::new`] appends a slot's state.
type Tables<'a> = (&'a mut Vec<Detector>, &'a mut Vec<Win>);

/// A detector rule without a window: its samples go straight to the detector, and its slot
/// has no window state.
pub(crate) fn is_direct(rule: &Rule) -> bool {
    rule.detect.is_some() && !rule.windowed
}

#[derive(Debug)]
struct Series {
    /// Shared with the series index's key and the device's other series (`Engine::name`).
    device: Name,
    /// Shared with every series of this metric name (`Engine::name`).
    metric: Name,
    /// This series' slots are `slots[first..first + len]`.
    first: u32,
    len: u32,
    /// The peer windows this series feeds are `peers[peer_first..peer_first + peer_len]`
    /// (module `peers`).
    peer_first: u32,
    peer_len: u32,
    /// The groups this series feeds are `fwd[fwd_first..fwd_first + fwd_len]`.
    fwd_first: u32,
    fwd_len: u32,
    /// A group series: `device` names the group, `metric` the rule's metric pattern.
    group: bool,
    /// Changed since the last checkpoint (module `snapshot`), and so in `Engine::dirty`.
    dirty: bool,
    /// The newest timestamp pushed to this series (`i64::MIN`: none).
    newest: i64,
    /// After a restore with [`Engine::guard_redeliveries`]: samples at or before `newest`
    /// are redeliveries of samples already in the restored state, dropped; cleared by the
    /// first newer sample. A flag, not a time: `newest` is the guard's time, since no sample
    /// moves it while the guard holds (8 bytes of every series).
    guarded: bool,
}

impl Series {
    fn slots(&self) -> std::ops::Range<usize> {
        self.first as usize..(self.first + self.len) as usize
    }

    fn fwd(&self) -> std::ops::Range<usize> {
        self.fwd_first as usize..(self.fwd_first + self.fwd_len) as usize
    }

    fn peers(&self) -> std::ops::Range<usize> {
        self.peer_first as usize..(self.peer_first + self.peer_len) as usize
    }
}

/// Runs a [`RuleSet`] over samples. See the crate docs for the model.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    limits: Limits,
    /// `(device, metric)` → series, 4 bytes each (module `index`).
    index: index::SeriesIndex,
    /// Every device and metric name interned, once each: a gateway's series repeat a handful
    /// of metric names over many devices (and a device's name over its metrics), so the
    /// series table and the index point into this set rather than each holding a copy (three
    /// allocations per series before: about 100 bytes).
    names: HashSet<Name>,
    series: Vec<Series>,
    slots: Vec<Slot>,
    /// The parts of slots only some rules keep, by slot index (see [`More`]). Empty for a
    /// rule set that reads no `prev`, keeps no `let` and has no storm control.
    mores: Mores,
    /// Group series ids, a run per real series (see `Series::fwd`).
    fwd: Vec<u32>,
    /// `(rule index, group name)` → its group series. Read only when interning.
    groups: HashMap<(u32, Box<str>), SeriesId>,
    /// Detector states, in slot order. Beside the slots rather than boxed per slot: a
    /// per-sample detector is then read sequentially like the slots, where a box per slot
    /// cost a cache miss per sample (measured: 90% of the per-sample time).
    dets: Vec<Detector>,
    /// Window states, in slot order (a restore appends the ones it separates), beside the
    /// slots like `dets`; direct slots have none, and slots that share one (module `share`)
    /// point at the same entry.
    wins: Vec<Win>,
    /// What a shared window state's first slot hands the others, per sample or advance
    /// (module `share`); empty between calls, kept for its capacity.
    handed: share::Handed,
    /// Peer windows (module `peers`), a run per series.
    peers: Vec<peers::PeerWin>,
    /// No open window ends before this, so `advance` below it has nothing to do.
    next_deadline: i64,
    /// The newest sample timestamp pushed: where [`Engine::finish`] says the input ended.
    newest: i64,
    labels: DeviceLabels,
    stats: EngineStats,
    /// Each rule's worst case per series (module `budget`), in rule order.
    costs: Vec<usize>,
    /// `fuse:` and `incidents:` state, and what it needs (module `device`).
    alerts: device::AlertLayer,
    /// Series changed since the last checkpoint, each once (module `snapshot`).
    dirty: Vec<u32>,
    /// The next checkpoint holds every series (first one, after a reload or a restore).
    full_checkpoint: bool,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        Engine::with_limits(rules, Limits::default())
    }

    pub fn with_limits(rules: RuleSet, limits: Limits) -> Engine {
        Engine {
            costs: slot_costs(&rules),
            rules,
            limits,
            index: index::SeriesIndex::default(),
            names: HashSet::new(),
            series: Vec::new(),
            slots: Vec::new(),
            mores: HashMap::new(),
            fwd: Vec::new(),
            groups: HashMap::new(),
            dets: Vec::new(),
            wins: Vec::new(),
            handed: share::Handed::default(),
            peers: Vec::new(),
            next_deadline: i64::MAX,
            newest: i64::MIN,
            labels: DeviceLabels::default(),
            stats: EngineStats::default(),
            alerts: device::AlertLayer::default(),
            dirty: Vec::new(),
            full_checkpoint: true,
        }
        .with_alert_layer()
    }

    /// Interns `(device, metric)`. A known pair is looked up without allocating; a new one
    /// is matched against every rule once, here, so `push` never has to.
    pub fn series(&mut self, device: &str, metric: &str) -> Result<SeriesId, EngineError> {
        if let Some(id) = self.index.get(&self.series, device, metric) {
            return Ok(id);
        }
        let limit = self.limits.max_series;
        let too_many = EngineError::TooManySeries { limit };
        if self.series.len() >= limit {
            return Err(too_many);
        }
        let id = SeriesId(u32::try_from(self.series.len()).map_err(|_| too_many.clone())?);
        let first = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())?;
        let labels = self.labels.of(device);
        let mut grouped = Vec::new();
        for (i, rule) in self.rules.rules.iter().enumerate() {
            if rule.selects(device, metric, &labels) {
                let i = u32::try_from(i).map_err(|_| too_many.clone())?;
                if let Some(g) = &rule.group {
                    grouped.extend(g.key(device, &labels).map(|key| (i, key)));
                    continue;
                }
                if !admit(&mut self.stats, &self.costs, i, self.limits.max_state_bytes) {
                    continue;
                }
                let shared = share::fresh_window(&self.rules, &self.slots[first as usize..], rule);
                let tables = (&mut self.dets, &mut self.wins);
                let slot = Slot::new(i, rule, tables, (device, metric), shared)
                    .ok_or_else(|| too_many.clone())?;
                if let Some(more) = Slot::fresh_more(rule) {
                    let at = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())?;
                    self.mores.insert(at, more);
                }
                self.slots.push(slot);
            }
        }
        share::set_roles(&mut self.slots[first as usize..]);
        let len = u32::try_from(self.slots.len()).map_err(|_| too_many.clone())? - first;
        let fwd_first = u32::try_from(self.fwd.len()).map_err(|_| too_many.clone())?;
        let (device, metric) = (self.name(device), self.name(metric));
        self.series.push(Series {
            device,
            metric: metric.clone(),
            first,
            len,
            peer_first: 0,
            peer_len: 0,
            fwd_first,
            fwd_len: 0,
            group: false,
            dirty: false,
            newest: i64::MIN,
            guarded: false,
        });
        self.index.insert(&self.series, id);
        // New state: the next checkpoint holds it even if no sample ever reaches it.
        self.touch(id.0);
        // After the series' own slots, so its range stays contiguous.
        for (rule, key) in grouped {
            match self.join_group(rule, key) {
                Some(g) => {
                    self.register_member(g, id, &metric);
                    self.fwd.push(g.0);
                    self.series[id.0 as usize].fwd_len += 1;
                }
                None => self.stats.groups_refused += 1,
            }
        }
        self.intern_peers(id.0 as usize, &mut |_| None);
        // Counted, not derived from the table: it also holds groups, and after a reload
        // that regrouped a rule, groups no rule uses any more.
        self.stats.series += 1;
        self.stats.groups = self.groups.len();
        Ok(id)
    }

    /// `name`, interned (see [`intern`]).
    fn name(&mut self, name: &str) -> Name {
        intern(&mut self.names, name)
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

    /// Bytes of per-series window state: the slots (inline state) plus what they own on
    /// the heap. Excludes the series index and names, which do not depend on the rules.
    pub fn state_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self.fwd.capacity() * size_of::<u32>()
            + self.dets.capacity() * size_of::<Detector>()
            + self.wins.capacity() * size_of::<Win>()
            + self.wins.iter().map(Win::heap_bytes).sum::<usize>()
            + self.peers.capacity() * size_of::<peers::PeerWin>()
            + self
                .peers
                .iter()
                .map(peers::PeerWin::heap_bytes)
                .sum::<usize>()
            + self.mores.capacity() * (size_of::<u32>() + size_of::<More>())
            + self
                .mores
                .values()
                .map(|m| {
                    m.prev
                        .as_ref()
                        .map_or(0, |p| size_of::<Closed>() + p.acc.heap_bytes())
                        + m.lets.as_ref().map_or(0, |l| {
                            size_of::<crate::expr::LetMemory>() + l.0.capacity() * size_of::<f64>()
                        })
                        + m.life.as_ref().map_or(0, |_| size_of::<Lifecycle>())
                })
                .sum::<usize>()
            + self
                .slots
                .iter()
                .map(|s| {
                    self.dets
                        .get(s.det as usize)
                        .map_or(0, Detector::heap_bytes)
                })
                .sum::<usize>()
            + self.alerts.heap_bytes()
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Each rule's worst-case state per series, in bytes, in rule order (for `weir check`:
    /// rules × series against `max_state_bytes`).
    pub fn state_costs(rules: &RuleSet) -> Vec<(std::sync::Arc<str>, usize)> {
        crate::budget::costs(&rules.rules, size_of::<Slot>())
    }

    /// The worst case of all rules' state on one series, in bytes: the rules that may select
    /// the same series (by their device and metric patterns), summed, at the most costly series.
    pub fn state_per_series(rules: &RuleSet) -> usize {
        crate::budget::per_series(&rules.rules, size_of::<Slot>())
    }

    /// The rules this engine runs.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// What the recording detectors of a [`RuleSet::for_learning`] engine saw: one entry per
    /// (rule, series) that judged at least one value, in series then rule order.
    pub fn learned_baselines(&self) -> crate::learned::BaselineFile {
        let mut baselines = Vec::new();
        for s in &self.series {
            for slot in &self.slots[s.slots()] {
                let (Some(Detector::Record(r)), Some(rule)) = (
                    self.dets.get(slot.det as usize),
                    self.rules.rules.get(slot.rule as usize),
                ) else {
                    continue;
                };
                let stats = r.stats();
                if stats.n == 0 {
                    continue;
                }
                baselines.push(crate::learned::Entry {
                    rule: rule.name.to_string(),
                    device: s.device.to_string(),
                    metric: s.metric.to_string(),
                    stats,
                });
            }
        }
        crate::learned::BaselineFile { baselines }
    }
}

/// Each rule's worst case per series, in rule order.
fn slot_costs(rules: &RuleSet) -> Vec<usize> {
    rules
        .rules
        .iter()
        .map(|r| crate::budget::slot_cost(r, size_of::<Slot>()))
        .collect()
}

/// Reserves rule `rule`'s worst case if it fits under `budget`; counts a refusal otherwise.
fn admit(stats: &mut EngineStats, costs: &[usize], rule: u32, budget: usize) -> bool {
    let cost = costs.get(rule as usize).copied().unwrap_or(usize::MAX);
    match stats.state_reserved.checked_add(cost) {
        Some(total) if total <= budget => {
            stats.state_reserved = total;
            true
        }
        _ => {
            stats.budget_refused += 1;
            false
        }
    }
}

mod device;
mod feed;
mod group;
mod index;
mod more;
mod names;
mod peers;
mod reload;
mod runtime;
mod share;
mod snapshot;
pub use reload::ReloadReport;
pub use runtime::RuntimeCounter;
pub use snapshot::CheckpointChunks;

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod layout_tests;
#[cfg(test)]
mod lets_tests;
#[cfg(test)]
mod peers_tests;
#[cfg(test)]
mod share_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_kinds_tests;
