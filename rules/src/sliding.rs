//! The sample ring of a sliding window, with its aggregates kept in O(1) amortised per sample.
//!
//! A sliding window emits on every sample, so recomputing its aggregates from the ring costs
//! O(samples in window) per sample: 4,096 additions per value for `examples/rules/nab.yaml`.
//! Instead, each aggregate is kept the way it can be *un-added*:
//!
//! | aggregates | kept as | per sample |
//! |---|---|---|
//! | count, sum, mean | running count and sum | add one, subtract one |
//! | min, max, peak-to-peak, crest factor | monotonic deques of ring positions (the classic sliding-window extremum) | amortised O(1): each position is pushed and popped once |
//! | first, last, delta, rate | the ring's ends (samples are in time order) | O(1) |
//! | variance, stddev, rms | Welford's mean and M2, with the inverse update for the sample that leaves | O(1) |
//! | slope | Welford's co-moments of time and value, same inverse update | O(1) |
//! | ewma | the window's EWMA (seeded by its oldest sample); when `x₁` leaves and `x₂` becomes the oldest, `e ← e − (1−α)^(n−1)·(x₁ − x₂)` | O(1) |
//! | median, percentiles | the window's values kept sorted (exact, nearest rank, where tumbling windows use a sketch) | a binary search and a shift in, the same out, and a copy of the sorted values into each window's totals: O(window) memory moves, no comparisons beyond O(log window) |
//!
//! **Drift.** Subtracting what was added is exact for integers but not for all floats, and a
//! large value leaving a window of small ones leaves its rounding behind (M2 falls from 1e18
//! to 1e-6 and keeps an error of ~1e2). So the totals are recomputed exactly from the ring
//! (in arrival order, as a fresh [`Acc`] would add them) whenever as many samples have left
//! since the last recomputation as the window holds (amortised: at most one extra addition
//! per sample), and at once when M2 or the time co-moment has shrunk below 1/1024 of its
//! peak since the last recomputation, where the residue could matter. That second trigger
//! is amortised too: the sample whose departure shrinks M2 so much entered the window a
//! window's length earlier, so within one turnover of the window it can fire only about
//! once per factor of 1024 in the values' magnitude (≤ 205 times over the whole `f64` range,
//! once or twice for a real spike). Sums and means of integer-valued samples stay exact
//! throughout. The EWMA needs no recomputation: each new sample multiplies its error by
//! `1 − α`.
//!
//! A window holding an infinite value (NaN never arrives: the engine drops it) has infinite
//! or NaN totals that subtraction cannot undo; while one is in the ring, the window's
//! aggregates are recomputed from the ring on each sample, as before, and the totals are
//! rebuilt once the last one has left.
//!
//! Rules reading skewness or kurtosis, or with an FFT (see [`crate::agg`]), still recompute
//! from the ring on every sample, exact and O(samples in window).
//!
//! **Memory.** The ring: 16 bytes per sample, and 8 more for rules reading percentiles (the
//! sorted copy; each window's totals, and the `prev` one, carry a copy too). The extremum
//! deques: 8 bytes per entry, at most
//! one entry per sample in the ring each, and on noisy data about `ln(n)` entries (a value
//! stays in the max deque only while no later value is larger).

use std::collections::VecDeque;

use crate::agg::{Acc, Totals, Update};

/// Exact recomputation when M2 (or the time co-moment) falls below this fraction of its
/// peak since the last one: the residue is at most ~1e-16 of the peak per update, so what
/// is left keeps ~12 significant digits.
const SHRINK: f64 = 1.0 / 1024.0;

/// The samples of one sliding window and what its aggregates need.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ring {
    /// `(ts, value)` in arrival order (which is time order: sliding windows drop late
    /// samples).
    buf: VecDeque<(i64, f64)>,
    /// How the aggregates are found.
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Mode {
    /// Totals updated per sample (rules without extra state).
    Moving(Box<Moving>),
    /// Recomputed from `buf` on every sample into a copy of this empty accumulator (rules
    /// with a sketch, moments or FFT frames).
    Recompute(Box<Acc>),
}

/// The incremental totals of a window (see the module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Moving {
    /// Sequence number of `buf[0]`; `buf[i]` is sample `head + i`.
    head: u64,
    /// Sequence numbers whose values are non-increasing (front: the maximum).
    maxq: VecDeque<u64>,
    /// Sequence numbers whose values are non-decreasing (front: the minimum).
    minq: VecDeque<u64>,
    sum: f64,
    /// Welford's mean and M2 of the values.
    mean: f64,
    m2: f64,
    /// Time origin (µs) for the time co-moments; the oldest sample's at the last rebuild.
    base: i64,
    mean_t: f64,
    m2t: f64,
    cxy: f64,
    /// The window's EWMA and the factor it was computed with.
    ewma: f64,
    alpha: f64,
    /// Samples that left since the last exact recomputation.
    removed: usize,
    /// Peaks of `m2` and `m2t` since then.
    peak_m2: f64,
    peak_m2t: f64,
    /// Infinite values in the ring: while any, the totals are not kept (`stale`).
    infinite: usize,
    /// The ring's values, sorted, for rules reading percentiles (exact, nearest rank); a
    /// binary search and a shift per sample entering or leaving.
    sorted: Option<Vec<f64>>,
    /// The totals do not describe the ring and must be rebuilt before use.
    stale: bool,
}

impl Ring {
    /// The accumulator a recomputing ring copies from (module `snapshot` puts its FFT plan
    /// back); a ring kept by running totals has none.
    pub fn accs_mut(&mut self, f: &mut dyn FnMut(&mut Acc)) {
        if let Mode::Recompute(acc) = &mut self.mode {
            f(acc);
        }
    }

    /// `proto`: an empty accumulator of the rule's kind ([`Acc::new`]).
    pub fn new(proto: Acc) -> Ring {
        let mode = if proto.sketch_only() {
            Mode::Moving(Box::new(Moving {
                sorted: Some(Vec::new()),
                ..Moving::default()
            }))
        } else if proto.has_extra() {
            Mode::Recompute(Box::new(proto))
        } else {
            Mode::Moving(Box::default())
        };
        Ring {
            // Grows with use, never past the cap: a few reallocations per series while
            // warming up, none in steady state.
            buf: VecDeque::new(),
            mode,
        }
    }

    /// Bytes owned on the heap.
    pub fn heap_bytes(&self) -> usize {
        let buf = self.buf.capacity() * size_of::<(i64, f64)>();
        buf + match &self.mode {
            Mode::Moving(m) => {
                size_of::<Moving>()
                    + (m.maxq.capacity() + m.minq.capacity()) * size_of::<u64>()
                    + m.sorted
                        .as_ref()
                        .map_or(0, |s| s.capacity() * size_of::<f64>())
            }
            Mode::Recompute(proto) => size_of::<Acc>() + proto.heap_bytes(),
        }
    }

    /// The most a ring of `cap` samples may own, for the state budget (with `sketch`, the
    /// sorted copy for exact percentiles).
    pub fn worst_bytes(cap: usize, proto_heap: usize, sketch: bool) -> usize {
        let deques = 2 * size_of::<u64>() + if sketch { size_of::<f64>() } else { 0 };
        cap.saturating_mul(size_of::<(i64, f64)>() + deques)
            .saturating_add(size_of::<Moving>().max(size_of::<Acc>() + proto_heap))
    }

    /// Drops the samples at or before `from`, then the oldest if `cap` are held, adds
    /// `(ts, v)` (not older than any held) and returns the window's totals; true as well if
    /// a sample was dropped for the cap.
    pub fn push(&mut self, ts: i64, v: f64, from: i64, cap: usize, up: Update) -> (Acc, bool) {
        while self.buf.front().is_some_and(|&(t, _)| t <= from) {
            self.pop();
        }
        let overflow = self.buf.len() >= cap;
        if overflow {
            self.pop();
        }
        self.buf.push_back((ts, v));
        match &mut self.mode {
            Mode::Moving(m) => {
                m.add(&self.buf, ts, v, up);
                (m.totals(&self.buf, up), overflow)
            }
            Mode::Recompute(proto) => {
                let mut acc = proto.fresh();
                for &(t, x) in &self.buf {
                    acc.add(t, x, up);
                }
                (acc, overflow)
            }
        }
    }

    fn pop(&mut self) {
        let Some((t, x)) = self.buf.pop_front() else {
            return;
        };
        if let Mode::Moving(m) = &mut self.mode {
            m.remove(&self.buf, t, x);
        }
    }
}

impl Default for Moving {
    fn default() -> Moving {
        Moving {
            head: 0,
            maxq: VecDeque::new(),
            minq: VecDeque::new(),
            sum: 0.0,
            mean: 0.0,
            m2: 0.0,
            base: 0,
            mean_t: 0.0,
            m2t: 0.0,
            cxy: 0.0,
            ewma: f64::NAN,
            alpha: f64::NAN,
            removed: 0,
            peak_m2: 0.0,
            peak_m2t: 0.0,
            infinite: 0,
            sorted: None,
            stale: false,
        }
    }
}

impl Moving {
    /// The value of sample `seq`, which is in `buf`.
    fn at(&self, buf: &VecDeque<(i64, f64)>, seq: u64) -> f64 {
        usize::try_from(seq.wrapping_sub(self.head))
            .ok()
            .and_then(|i| buf.get(i))
            .map_or(f64::NAN, |s| s.1)
    }

    /// `(ts, v)` has just been pushed at the back of `buf`.
    #[inline]
    fn add(&mut self, buf: &VecDeque<(i64, f64)>, ts: i64, v: f64, up: Update) {
        let seq = self.head + buf.len() as u64 - 1;
        while self.maxq.back().is_some_and(|&s| self.at(buf, s) <= v) {
            self.maxq.pop_back();
        }
        self.maxq.push_back(seq);
        while self.minq.back().is_some_and(|&s| self.at(buf, s) >= v) {
            self.minq.pop_back();
        }
        self.minq.push_back(seq);
        if let Some(sorted) = &mut self.sorted {
            let at = sorted.partition_point(|y| y.total_cmp(&v).is_lt());
            sorted.insert(at, v);
        }
        if !v.is_finite() {
            self.infinite += 1;
            self.stale = true;
        }
        if self.stale {
            return;
        }
        if up.alpha.to_bits() != self.alpha.to_bits() {
            // A reload changed the factor: the EWMA must be recomputed with the new one.
            self.stale = true;
            return;
        }
        let n = buf.len() as f64;
        if buf.len() == 1 {
            self.base = ts;
            self.ewma = v;
        } else {
            self.ewma = up.alpha * v + (1.0 - up.alpha) * self.ewma;
        }
        let inv_n = 1.0 / n;
        let t = ts.saturating_sub(self.base) as f64;
        let dt = t - self.mean_t;
        self.mean_t += dt * inv_n;
        self.m2t += dt * (t - self.mean_t);
        let delta = v - self.mean;
        self.mean += delta * inv_n;
        self.m2 += delta * (v - self.mean);
        self.cxy += dt * (v - self.mean);
        self.sum += v;
        self.peak_m2 = self.peak_m2.max(self.m2);
        self.peak_m2t = self.peak_m2t.max(self.m2t);
    }

    /// `(ts, v)`, the oldest sample, has just left `buf`.
    #[inline]
    fn remove(&mut self, buf: &VecDeque<(i64, f64)>, ts: i64, v: f64) {
        let seq = self.head;
        self.head += 1;
        if self.maxq.front() == Some(&seq) {
            self.maxq.pop_front();
        }
        if self.minq.front() == Some(&seq) {
            self.minq.pop_front();
        }
        if let Some(sorted) = &mut self.sorted {
            let at = sorted.partition_point(|y| y.total_cmp(&v).is_lt());
            if at < sorted.len() {
                sorted.remove(at);
            }
        }
        if !v.is_finite() {
            self.infinite -= 1;
        }
        self.removed += 1;
        if self.stale {
            return;
        }
        let Some(&(_, next)) = buf.front() else {
            self.clear();
            return;
        };
        // `n` samples before this one left.
        let n = buf.len() + 1;
        self.ewma -= (1.0 - self.alpha).powi(i32::try_from(n - 1).unwrap_or(i32::MAX)) * (v - next);
        let inv = 1.0 / (n - 1) as f64;
        let t = ts.saturating_sub(self.base) as f64;
        let mean_t = self.mean_t - (t - self.mean_t) * inv;
        let mean = self.mean - (v - self.mean) * inv;
        self.m2 -= (v - mean) * (v - self.mean);
        self.m2t -= (t - mean_t) * (t - self.mean_t);
        self.cxy -= (t - mean_t) * (v - self.mean);
        self.mean = mean;
        self.mean_t = mean_t;
        self.sum -= v;
        let shrunk = self.m2 < self.peak_m2 * SHRINK || self.m2t < self.peak_m2t * SHRINK;
        if shrunk || self.removed >= buf.len() {
            self.stale = true;
        }
    }

    /// The ring is empty: start over (the deques are empty too).
    fn clear(&mut self) {
        let (maxq, minq) = (
            std::mem::take(&mut self.maxq),
            std::mem::take(&mut self.minq),
        );
        *self = Moving {
            head: self.head,
            maxq,
            minq,
            alpha: self.alpha,
            sorted: self.sorted.take(),
            ..Moving::default()
        };
    }

    /// Recomputes every total from the ring, in arrival order.
    fn rebuild(&mut self, buf: &VecDeque<(i64, f64)>, up: Update) {
        let (head, maxq, minq) = (
            self.head,
            std::mem::take(&mut self.maxq),
            std::mem::take(&mut self.minq),
        );
        *self = Moving {
            head,
            maxq,
            minq,
            alpha: up.alpha,
            base: buf.front().map_or(0, |s| s.0),
            sorted: self.sorted.take(),
            ..Moving::default()
        };
        let mut n = 0.0;
        for &(ts, v) in buf {
            n += 1.0;
            self.ewma = if n == 1.0 {
                v
            } else {
                up.alpha * v + (1.0 - up.alpha) * self.ewma
            };
            let t = ts.saturating_sub(self.base) as f64;
            let dt = t - self.mean_t;
            self.mean_t += dt / n;
            self.m2t += dt * (t - self.mean_t);
            let delta = v - self.mean;
            self.mean += delta / n;
            self.m2 += delta * (v - self.mean);
            self.cxy += dt * (v - self.mean);
            self.sum += v;
        }
        self.peak_m2 = self.m2;
        self.peak_m2t = self.m2t;
    }

    /// The window's totals, for reading aggregates; `buf` is not empty.
    fn totals(&mut self, buf: &VecDeque<(i64, f64)>, up: Update) -> Acc {
        let (Some(&(first_ts, first)), Some(&(last_ts, last))) = (buf.front(), buf.back()) else {
            return Acc::EMPTY;
        };
        let acc = self.base_totals(buf, up, (first, first_ts), (last, last_ts));
        match &self.sorted {
            Some(sorted) => acc.with_sorted(sorted.clone()),
            None => acc,
        }
    }

    /// [`Moving::totals`] without percentiles; `first` and `last` are the ring's ends.
    fn base_totals(
        &mut self,
        buf: &VecDeque<(i64, f64)>,
        up: Update,
        (first, first_ts): (f64, i64),
        (last, last_ts): (f64, i64),
    ) -> Acc {
        if self.infinite > 0 {
            // Infinite totals cannot be un-added: recompute, exactly as a fresh window.
            let mut acc = Acc::EMPTY;
            for &(t, x) in buf {
                acc.add(t, x, up);
            }
            return acc;
        }
        if self.stale {
            self.rebuild(buf, up);
        }
        let count = buf.len() as u64;
        let m2 = self.m2.max(0.0);
        Acc::from_totals(Totals {
            count,
            sum: self.sum,
            min: self.minq.front().map_or(f64::NAN, |&s| self.at(buf, s)),
            max: self.maxq.front().map_or(f64::NAN, |&s| self.at(buf, s)),
            first,
            first_ts,
            last,
            last_ts,
            mean: self.mean,
            m2,
            // From the sum, exact for integer samples, rather than Welford's mean.
            sumsq: m2 + self.sum * self.sum / count as f64,
            ewma: self.ewma,
            base: self.base,
            mean_t: self.mean_t,
            // One timestamp in the window has no slope, whatever rounding left behind.
            m2t: if first_ts == last_ts { 0.0 } else { self.m2t },
            cxy: self.cxy,
        })
    }
}
