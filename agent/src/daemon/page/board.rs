//! What the status page remembers between two looks, in memory bounded whatever the number
//! of series or the rate of events.
//!
//! Per series ([`Track`], [`BYTES_PER_SERIES`] at most): the last [`BUCKETS`] time buckets of
//! [`BUCKET_US`] each (count, min, max, sum as `f32`: a picture, not a record), its last value,
//! the last [`WINDOW_POINTS`] window results and the last [`MARKS`] alert transitions. At most
//! `max_series` series are tracked (`metrics.page.max_series`); later ones are counted and
//! left out of the page (the engine still runs their rules). Alerts: the raised ones (at most
//! [`MAX_ACTIVE`]) and the last [`RECENT_CLEARED`] cleared ones. Predictions: the latest per
//! rule and series, at most [`MAX_PREDICTIONS`].
//!
//! The pipeline writes here once per delivery and once per batch of events (one lock each);
//! a page request reads a copy of what it shows under the same lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use weir_rules::{AlertState, Event, EventKind, SeriesId};

use crate::support::plot;

/// Time buckets kept per series: with [`BUCKET_US`], the last 5 minutes.
pub const BUCKETS: usize = 60;
/// Width of a bucket, µs.
pub const BUCKET_US: i64 = 5_000_000;
/// Window results kept per series (all rules together).
pub const WINDOW_POINTS: usize = 60;
/// Alert transitions kept per series, for the plot's marks.
pub const MARKS: usize = 8;
/// Raised alerts listed; further raises are counted.
pub const MAX_ACTIVE: usize = 1_000;
/// Cleared alerts listed, most recent first.
pub const RECENT_CLEARED: usize = 50;
/// (rule, series) pairs whose latest prediction is kept.
pub const MAX_PREDICTIONS: usize = 500;
/// The most one tracked series can hold: its fixed parts, a full window and mark ring, and a
/// 64-byte name (checked by a test against the real sizes).
pub const BYTES_PER_SERIES: usize = size_of::<Track>()
    + BUCKETS * size_of::<SmallBucket>()
    + WINDOW_POINTS * size_of::<WindowPoint>()
    + MARKS * size_of::<MarkPoint>()
    + 64;

/// A bucket in `f32`: half the size of the replay's, precise enough for pixels.
#[derive(Debug, Clone, Copy)]
struct SmallBucket {
    n: u32,
    min: f32,
    max: f32,
    sum: f32,
}

impl SmallBucket {
    const EMPTY: SmallBucket = SmallBucket {
        n: 0,
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        sum: 0.0,
    };
}

#[derive(Debug, Clone, Copy)]
struct WindowPoint {
    /// The window's end, µs.
    ts: i64,
    value: f32,
    /// Index into [`Board::rules`].
    rule: u16,
}

#[derive(Debug, Clone, Copy)]
struct MarkPoint {
    ts: i64,
    raised: bool,
    rule: u16,
}

/// One series' recent past.
#[derive(Debug)]
struct Track {
    /// `device/metric`.
    name: Box<str>,
    buckets: Box<[SmallBucket; BUCKETS]>,
    /// Index (`ts / BUCKET_US`) of the newest bucket; the ring holds `head - BUCKETS + 1 ..=
    /// head`, bucket `k` in slot `k % BUCKETS`.
    head: i64,
    last_ts: i64,
    last_value: f64,
    windows: VecDeque<WindowPoint>,
    marks: VecDeque<MarkPoint>,
}

impl Track {
    fn new(name: Box<str>) -> Track {
        Track {
            name,
            buckets: Box::new([SmallBucket::EMPTY; BUCKETS]),
            head: i64::MIN,
            last_ts: i64::MIN,
            last_value: f64::NAN,
            windows: VecDeque::new(),
            marks: VecDeque::new(),
        }
    }

    fn add(&mut self, ts: i64, value: f64) {
        if ts >= self.last_ts {
            self.last_ts = ts;
            self.last_value = value;
        }
        if !value.is_finite() {
            return;
        }
        let k = ts.div_euclid(BUCKET_US);
        if self.head == i64::MIN || k > self.head {
            // Empty the slots between the old head and the new one (at most all of them).
            let from = if self.head == i64::MIN {
                k - BUCKETS as i64 + 1
            } else {
                (self.head + 1).max(k - BUCKETS as i64 + 1)
            };
            for j in from..=k {
                self.buckets[slot(j)] = SmallBucket::EMPTY;
            }
            self.head = k;
        } else if k <= self.head - BUCKETS as i64 {
            return; // older than the ring
        }
        let b = &mut self.buckets[slot(k)];
        let v = value as f32;
        b.n += 1;
        b.min = b.min.min(v);
        b.max = b.max.max(v);
        b.sum += v;
    }

    /// `(bucket midpoint, bucket)` of the non-empty buckets from `since` on, in time order.
    fn points(&self, since: i64) -> Vec<(i64, plot::Bucket)> {
        if self.head == i64::MIN {
            return Vec::new();
        }
        (self.head - BUCKETS as i64 + 1..=self.head)
            .filter_map(|k| {
                let b = self.buckets[slot(k)];
                let mid = k * BUCKET_US + BUCKET_US / 2;
                (b.n > 0 && mid >= since).then_some((
                    mid.min(self.last_ts),
                    plot::Bucket {
                        n: b.n,
                        min: f64::from(b.min),
                        max: f64::from(b.max),
                        sum: f64::from(b.sum),
                    },
                ))
            })
            .collect()
    }
}

fn slot(k: i64) -> usize {
    k.rem_euclid(BUCKETS as i64) as usize
}

/// Pushes onto a ring of at most `cap` items, allocated once at its full size (doubling
/// growth would overshoot the bound).
fn push_capped<T>(ring: &mut VecDeque<T>, cap: usize, item: T) {
    if ring.capacity() == 0 {
        ring.reserve_exact(cap);
    }
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// A series' name (`device/metric`) by id.
pub type SeriesNames<'a> = dyn Fn(SeriesId) -> String + 'a;

/// An alert's lifecycle as the page lists it.
#[derive(Debug, Clone)]
pub struct AlertEntry {
    pub rule: Arc<str>,
    pub series: String,
    pub severity: String,
    pub condition: Arc<str>,
    pub message: Option<Arc<str>>,
    /// The value that decided the raise, and the latest transition's.
    pub value: f64,
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
}

/// The latest forecast of one `trend` rule on one series.
#[derive(Debug, Clone)]
pub struct PredictionEntry {
    pub rule: Arc<str>,
    pub series: String,
    /// When it was made (event time, µs) and when the threshold is reached (µs; `None`:
    /// never, the line is flat or heading away), with the 90 % interval's ends.
    pub ts: i64,
    pub eta: Option<i64>,
    pub early: Option<i64>,
    pub late: Option<i64>,
    pub threshold: f64,
    pub level: f64,
    pub r2: f64,
    pub model: &'static str,
}

/// A page's copy of one series.
#[derive(Debug)]
pub struct SeriesView {
    pub name: String,
    pub last_ts: i64,
    pub last_value: f64,
    pub samples: Vec<(i64, plot::Bucket)>,
    pub lines: Vec<plot::Line>,
    pub marks: Vec<plot::Mark>,
}

/// Everything the page shows that the pipeline produces.
#[derive(Debug)]
pub struct Board {
    max_series: usize,
    /// Indexed by `SeriesId` (dense, issued in order by the engine).
    tracks: Vec<Track>,
    /// Series beyond `max_series`, not tracked.
    pub series_untracked: u64,
    /// Rule names seen in window results and marks (interned, indexed by `u16`).
    rules: Vec<Arc<str>>,
    active: BTreeMap<(Arc<str>, u32), AlertEntry>,
    /// Raises not listed: [`MAX_ACTIVE`] were already raised.
    pub active_untracked: u64,
    cleared: VecDeque<AlertEntry>,
    predictions: BTreeMap<(Arc<str>, u32), PredictionEntry>,
    pub predictions_untracked: u64,
}

impl Board {
    pub fn new(max_series: usize) -> Board {
        Board {
            max_series,
            tracks: Vec::new(),
            series_untracked: 0,
            rules: Vec::new(),
            active: BTreeMap::new(),
            active_untracked: 0,
            cleared: VecDeque::new(),
            predictions: BTreeMap::new(),
            predictions_untracked: 0,
        }
    }

    /// A new bound (a reload): lowered, the tracks above it are dropped at once (their
    /// memory with them) and counted as untracked from their next sample; raised, series
    /// above the old bound are tracked from their next sample.
    pub fn set_max_series(&mut self, max_series: usize) {
        self.max_series = max_series;
        if self.tracks.len() > max_series {
            self.tracks.truncate(max_series);
            self.tracks.shrink_to_fit();
        }
        self.series_untracked = 0;
    }

    /// The track of `series`, created (with any before it not seen yet, as series ids are
    /// dense: the engine may know series from before the page) when there is room.
    fn track(&mut self, series: SeriesId, names: &SeriesNames) -> Option<&mut Track> {
        let i = series.0 as usize;
        while self.tracks.len() <= i && self.tracks.len() < self.max_series {
            let id = SeriesId(self.tracks.len() as u32);
            self.tracks.push(Track::new(names(id).into_boxed_str()));
        }
        if i >= self.max_series {
            self.series_untracked = self
                .series_untracked
                .max(u64::from(series.0) + 1 - self.max_series as u64);
        }
        self.tracks.get_mut(i)
    }

    pub fn sample(&mut self, series: SeriesId, ts: i64, v: f64, names: &SeriesNames) {
        if let Some(track) = self.track(series, names) {
            track.add(ts, v);
        }
    }

    fn rule_index(&mut self, rule: &Arc<str>) -> u16 {
        match self.rules.iter().position(|r| r == rule) {
            Some(i) => i as u16,
            None if self.rules.len() < usize::from(u16::MAX) => {
                self.rules.push(Arc::clone(rule));
                (self.rules.len() - 1) as u16
            }
            None => u16::MAX,
        }
    }

    /// Records what the page shows of `event`.
    pub fn event(&mut self, event: &Event, names: &SeriesNames) {
        let name = || names(event.series);
        match &event.kind {
            EventKind::Window { end, values, .. } => {
                let Some((_, value)) = values.first() else {
                    return;
                };
                let rule = self.rule_index(&event.rule);
                if let Some(track) = self.track(event.series, names) {
                    let point = WindowPoint {
                        ts: end.saturating_sub(1),
                        value: *value as f32,
                        rule,
                    };
                    push_capped(&mut track.windows, WINDOW_POINTS, point);
                }
            }
            EventKind::Alert {
                state,
                severity,
                value,
                condition,
                message,
                ..
            } => {
                let raised = *state == AlertState::Raised;
                let rule = self.rule_index(&event.rule);
                if let Some(track) = self.track(event.series, names) {
                    let mark = MarkPoint {
                        ts: event.ts,
                        raised,
                        rule,
                    };
                    push_capped(&mut track.marks, MARKS, mark);
                }
                let key = (Arc::clone(&event.rule), event.series.0);
                if raised {
                    if self.active.len() >= MAX_ACTIVE && !self.active.contains_key(&key) {
                        self.active_untracked += 1;
                        return;
                    }
                    self.active.insert(
                        key,
                        AlertEntry {
                            rule: Arc::clone(&event.rule),
                            series: name(),
                            severity: severity.to_string(),
                            condition: Arc::clone(condition),
                            message: message.clone(),
                            value: *value,
                            raised_at: event.ts,
                            cleared_at: None,
                        },
                    );
                } else if let Some(mut entry) = self.active.remove(&key) {
                    entry.cleared_at = Some(event.ts);
                    entry.value = *value;
                    if self.cleared.len() == RECENT_CLEARED {
                        self.cleared.pop_back();
                    }
                    self.cleared.push_front(entry);
                }
            }
            EventKind::Prediction {
                threshold,
                seconds_to_threshold,
                r2,
                level,
                early_seconds,
                late_seconds,
                model,
                ..
            } => {
                let key = (Arc::clone(&event.rule), event.series.0);
                if self.predictions.len() >= MAX_PREDICTIONS && !self.predictions.contains_key(&key)
                {
                    self.predictions_untracked += 1;
                    return;
                }
                let at = |s: f64| {
                    (s.is_finite() && s >= 0.0).then(|| event.ts.saturating_add((s * 1e6) as i64))
                };
                self.predictions.insert(
                    key,
                    PredictionEntry {
                        rule: Arc::clone(&event.rule),
                        series: name(),
                        ts: event.ts,
                        eta: at(*seconds_to_threshold),
                        early: at(*early_seconds),
                        late: at(*late_seconds),
                        threshold: *threshold,
                        level: *level,
                        r2: *r2,
                        model,
                    },
                );
            }
            _ => {}
        }
    }

    /// Bytes held by the tracked series (fixed parts, rings as allocated, names), not
    /// counting the series vector's spare capacity (below one `Track`, 112 bytes, per series).
    pub fn series_bytes(&self) -> usize {
        self.tracks.len() * size_of::<Track>()
            + self
                .tracks
                .iter()
                .map(|t| {
                    size_of::<[SmallBucket; BUCKETS]>()
                        + t.windows.capacity() * size_of::<WindowPoint>()
                        + t.marks.capacity() * size_of::<MarkPoint>()
                        + t.name.len()
                })
                .sum::<usize>()
    }

    pub fn series_count(&self) -> usize {
        self.tracks.len()
    }

    /// Names of the tracked series containing `query` (all when empty): how many match, and
    /// the indices of matches `skip .. skip + take`.
    pub fn find(&self, query: &str, skip: usize, take: usize) -> (usize, Vec<usize>) {
        let query = query.to_lowercase();
        let mut total = 0;
        let mut page = Vec::new();
        for (i, t) in self.tracks.iter().enumerate() {
            if query.is_empty() || t.name.to_lowercase().contains(&query) {
                if total >= skip && page.len() < take {
                    page.push(i);
                }
                total += 1;
            }
        }
        (total, page)
    }

    /// A copy of series `i` from time `since` on (µs).
    pub fn view(&self, i: usize, since: i64) -> Option<SeriesView> {
        let t = self.tracks.get(i)?;
        let rule_name = |r: u16| {
            self.rules
                .get(usize::from(r))
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        };
        let mut lines: Vec<(u16, plot::Line)> = Vec::new();
        for w in t.windows.iter().filter(|w| w.ts >= since) {
            let at = match lines.iter().position(|(r, _)| *r == w.rule) {
                Some(at) => at,
                None => {
                    lines.push((
                        w.rule,
                        plot::Line {
                            label: rule_name(w.rule),
                            points: Vec::new(),
                        },
                    ));
                    lines.len() - 1
                }
            };
            lines[at].1.points.push((w.ts, f64::from(w.value)));
        }
        Some(SeriesView {
            name: t.name.to_string(),
            last_ts: t.last_ts,
            last_value: t.last_value,
            samples: t.points(since),
            lines: lines.into_iter().map(|(_, l)| l).collect(),
            marks: t
                .marks
                .iter()
                .map(|m| plot::Mark {
                    ts: m.ts,
                    raised: m.raised,
                    rule: rule_name(m.rule).into_boxed_str(),
                })
                .collect(),
        })
    }

    /// Raised alerts, newest first.
    pub fn active(&self) -> Vec<AlertEntry> {
        let mut v: Vec<AlertEntry> = self.active.values().cloned().collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.raised_at));
        v
    }

    /// The last cleared alerts, newest first.
    pub fn cleared(&self) -> impl Iterator<Item = &AlertEntry> {
        self.cleared.iter()
    }

    /// Latest predictions, soonest threshold first.
    pub fn predictions(&self) -> Vec<PredictionEntry> {
        let mut v: Vec<PredictionEntry> = self.predictions.values().cloned().collect();
        v.sort_by_key(|p| p.eta.unwrap_or(i64::MAX));
        v
    }
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;
