//! Other metrics of a device over the *same* window: `mean(metric.pressure)` in a rule on
//! `temp`.
//!
//! A rule reading another metric used to see that metric's latest value when its own window
//! closed, i.e. a value from the next timestamp, so a window was judged against data from
//! after it and the result depended on the order of rows within one timestamp. Now each
//! metric a rule reads gets, on each device the rule selects, a *peer window*: the rule's own
//! window kind (`tumbling` or `hopping`, aligned to the epoch, so every metric's windows
//! share their bounds) fed by that metric's samples, keeping only the fixed-size totals.
//! When the rule's window `[start, end)` closes, each `agg(metric.x)` is read from x's peer
//! window with the same `start`: still open, or among the few it closed last.
//!
//! **Alignment.** Windows are aligned by event time, so `mean(metric.x)` over `[start, end)`
//! is exactly the mean of x's samples with `start ≤ ts < end`: nothing after the window
//! enters it. The result is independent of the order of rows *within* a timestamp (any
//! permutation gives the same events), since a window closes only on a sample at or after
//! its end and every sample before that end has then arrived, whichever series it belongs
//! to. Input must be in timestamp order *across* series (within the rule's `lateness`);
//! a sample of x arriving after the rule's window closed is not counted in it.
//!
//! **No sample.** A window with no sample of x gives `count(metric.x) = 0`,
//! `sum(metric.x) = 0` and NaN for every other aggregate, so a comparison with it is false
//! (`mean(metric.running) > 0.5` does not hold when the `running` signal is missing).
//!
//! **Lag and memory.** A rule's window closes on its own series' samples (or `advance`), the
//! peer window on the other metric's, so the peer may have closed several windows by the time
//! the rule's closes (its own series fell silent for a while). Each peer window therefore
//! keeps, for the windows it closed, the values of the aggregates the rule reads of it — up
//! to [`LAG`] (16) windows beyond those that can be open at once: a rule whose series lags
//! the metric it reads by more than 16 windows finds the oldest gone and reads them as "no
//! sample". Memory per (rule, device, metric read): the rule's own window state (one
//! 136-byte accumulator for `tumbling`; up to `ceil(size / hop)` for `hopping`) plus
//! `8 · (1 + aggregates read)` bytes per kept closed window (17 windows, one aggregate:
//! 272 bytes, reached after 17 windows and never exceeded). Measured by
//! `cargo bench -p weir-rules --bench throughput -- peers` (10 rules on 1,000 devices × 10
//! metrics, each reading the next metric's mean): 340 → 887 bytes per series after three
//! windows, i.e. about 550 bytes per peer window, and 73 → 45 M samples/s/core (each sample
//! also feeds one peer window, and each close looks its peer up by name).

use std::collections::VecDeque;

use super::{Engine, Series};
use crate::agg::{Acc, AccSpec, Update};
use crate::event::{Aggregate, SeriesId};
use crate::ruleset::Rule;
use crate::window::{MAX_OPEN, Win, WindowSpec, overlap};

/// How many windows a rule's own series may lag behind another metric it reads and still
/// find that metric's window (see the module docs).
pub(super) const LAG: i64 = 16;

/// One metric's window as seen by a rule on another metric of its device.
#[derive(Debug, Clone)]
pub(super) struct PeerWin {
    /// The reading rule's index.
    pub(super) rule: u32,
    pub(super) win: Win,
    /// The aggregates the rule reads of this metric: what a closed window keeps.
    aggs: Box<[Aggregate]>,
    /// Windows closed, newest last, at most `keep`: their starts, and `aggs.len()` values
    /// each in `values`.
    pub(super) starts: VecDeque<i64>,
    pub(super) values: VecDeque<f64>,
    keep: usize,
    up: Update,
}

impl PeerWin {
    fn new(rule_index: u32, rule: &Rule, metric: &str) -> PeerWin {
        let open = match rule.window {
            WindowSpec::Hopping {
                size,
                hop,
                lateness,
            } => overlap(size.saturating_add(lateness), hop).clamp(1, MAX_OPEN),
            _ => 1,
        };
        let keep = open.saturating_add(LAG);
        let aggs: Box<[Aggregate]> = rule
            .peer_reads
            .iter()
            .filter(|(m, _)| rule.others.get(*m).is_some_and(|o| &**o == metric))
            .map(|(_, a)| *a)
            .collect();
        // Lean when it reads only lean aggregates of this metric (module `agg`): its window
        // then keeps no Welford totals (module `agg::inline`).
        let lean = aggs.iter().all(|a| a.is_lean());
        PeerWin {
            rule: rule_index,
            win: Win::new(
                rule.window,
                Acc::new(&AccSpec {
                    lean,
                    ..AccSpec::default()
                }),
            ),
            aggs,
            starts: VecDeque::new(),
            values: VecDeque::new(),
            keep: usize::try_from(keep).unwrap_or(1),
            up: Update {
                alpha: rule.ewma_alpha,
                lean,
            },
        }
    }

    fn push(&mut self, ts: i64, v: f64) {
        let mut done = Vec::new();
        self.win.push(ts, v, self.up, |d| done.push(d));
        done.into_iter().for_each(|d| self.keep_closed(d));
    }

    /// Whether a window closed (the state changed).
    fn advance(&mut self, watermark: i64) -> bool {
        let mut done = Vec::new();
        self.win.advance(watermark, |d| done.push(d));
        let closed = !done.is_empty();
        done.into_iter().for_each(|d| self.keep_closed(d));
        closed
    }

    /// Keeps what the rule reads of a closed window (its `aggs`), dropping the oldest kept.
    fn keep_closed(&mut self, d: crate::window::Done) {
        if self.starts.len() >= self.keep {
            self.starts.pop_front();
            for _ in 0..self.aggs.len() {
                self.values.pop_front();
            }
        }
        self.starts.push_back(d.start);
        let acc = &d.closed.acc;
        for &a in &self.aggs {
            self.values
                .push_back(peer_value(Some(acc), a, d.closed.secs));
        }
    }

    /// The value of `agg` over the window starting at `start` of length `secs`: from the
    /// open window, or a closed one kept; `None` when neither is there (no sample).
    fn value(&self, start: i64, secs: f64, agg: Aggregate) -> Option<f64> {
        if let Some(acc) = self.win.open_at(start) {
            return Some(peer_value(Some(&acc), agg, secs));
        }
        let i = self.starts.iter().rposition(|s| *s == start)?;
        let k = self.aggs.iter().position(|a| *a == agg)?;
        self.values.get(i * self.aggs.len() + k).copied()
    }

    pub fn heap_bytes(&self) -> usize {
        self.win.heap_bytes()
            + self.aggs.len() * size_of::<Aggregate>()
            + self.starts.capacity() * size_of::<i64>()
            + self.values.capacity() * size_of::<f64>()
    }
}

/// Whether `rule` reads `metric` of `device` over a peer window.
fn reads(rule: &Rule, device: &str, metric: &str, labels: &[(&str, &str)]) -> bool {
    rule.others.iter().any(|m| &**m == metric)
        && rule.device.matches(device)
        && rule.labels.iter().all(|(k, glob)| {
            labels
                .iter()
                .any(|(name, value)| *name == &**k && glob.matches(value))
        })
        && matches!(
            rule.window,
            WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. }
        )
}

impl Engine {
    /// Appends the peer windows series `id` feeds (one per rule reading its metric on its
    /// device), carrying `old` ones over by the rule's new index; sets the series' range.
    pub(super) fn intern_peers(&mut self, id: usize, old: &mut dyn FnMut(u32) -> Option<PeerWin>) {
        let Some(series) = self.series.get(id) else {
            return;
        };
        let first = self.peers.len();
        if !series.group {
            let labels = self.labels.of(&series.device);
            for (i, rule) in self.rules.rules.iter().enumerate() {
                if !reads(rule, &series.device, &series.metric, &labels) {
                    continue;
                }
                let Ok(i) = u32::try_from(i) else { continue };
                self.peers
                    .push(old(i).unwrap_or_else(|| PeerWin::new(i, rule, &series.metric)));
            }
        }
        let series = &mut self.series[id];
        series.peer_first = u32::try_from(first).unwrap_or(u32::MAX);
        series.peer_len = u32::try_from(self.peers.len() - first).unwrap_or(0);
    }

    /// Rebuilds every series' peer windows for a new rule set; `kept` maps an old rule index
    /// to its new one when the rule is unchanged (its peer windows carry over).
    pub(super) fn rebuild_peers(&mut self, kept: &dyn Fn(u32) -> Option<u32>) {
        let old = std::mem::take(&mut self.peers);
        let ranges: Vec<std::ops::Range<usize>> = self.series.iter().map(Series::peers).collect();
        let mut old: Vec<Option<PeerWin>> = old.into_iter().map(Some).collect();
        for (id, range) in ranges.into_iter().enumerate() {
            let mut take = |new_rule: u32| {
                old.get_mut(range.clone())?
                    .iter_mut()
                    .find(|p| p.as_ref().is_some_and(|p| kept(p.rule) == Some(new_rule)))
                    .and_then(Option::take)
                    .map(|p| PeerWin {
                        rule: new_rule,
                        ..p
                    })
            };
            self.intern_peers(id, &mut take);
        }
    }

    /// Feeds a sample to the peer windows of its series.
    #[inline]
    pub(super) fn feed_peers(&mut self, id: SeriesId, ts: i64, v: f64) {
        let Some(series) = self.series.get(id.0 as usize) else {
            return;
        };
        if let Some(peers) = self.peers.get_mut(series.peers()) {
            for p in peers {
                p.push(ts, v);
            }
        }
    }

    /// Advances every peer window; returns the series whose peer windows closed one.
    pub(super) fn advance_peers(&mut self, watermark: i64) -> Vec<u32> {
        let mut touched = Vec::new();
        if self.peers.is_empty() {
            return touched;
        }
        for (id, s) in self.series.iter().enumerate() {
            let mut changed = false;
            for p in self.peers.get_mut(s.peers()).into_iter().flatten() {
                changed |= p.advance(watermark);
            }
            if changed {
                touched.push(u32::try_from(id).unwrap_or(u32::MAX));
            }
        }
        touched
    }
}

/// `agg` of a peer window's totals; a window without a sample gives a count and sum of 0
/// and NaN for the rest.
fn peer_value(acc: Option<&Acc>, agg: Aggregate, secs: f64) -> f64 {
    match acc {
        Some(acc) if acc.count > 0 => acc.get(agg, secs),
        _ if matches!(agg, Aggregate::Count | Aggregate::Sum) => 0.0,
        _ => f64::NAN,
    }
}

/// What a closing window needs to read its rule's peer aggregates.
#[derive(Clone, Copy)]
pub(super) struct PeerView<'a> {
    pub index: &'a super::index::SeriesIndex,
    pub series: &'a [Series],
    pub peers: &'a [PeerWin],
    pub device: &'a str,
}

impl PeerView<'_> {
    /// The values of `rule`'s (at `rule_index`) peer aggregates over the window starting at
    /// `start` of length `secs`, in `Env::others` order.
    pub fn values(&self, rule_index: u32, rule: &Rule, start: i64, secs: f64) -> Vec<f64> {
        rule.peer_reads
            .iter()
            .map(|&(m, agg)| {
                rule.others
                    .get(m)
                    .and_then(|metric| self.index.get(self.series, self.device, metric))
                    .and_then(|id| self.series.get(id.0 as usize))
                    .and_then(|s| self.peers.get(s.peers()))
                    .and_then(|ps| ps.iter().find(|p| p.rule == rule_index))
                    .and_then(|p| p.value(start, secs, agg))
                    .unwrap_or_else(|| peer_value(None, agg, secs))
            })
            .collect()
    }
}
