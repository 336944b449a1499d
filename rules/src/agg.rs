//! Online aggregates: one fixed-size accumulator per open window.
//!
//! Every aggregate the language knows is kept by one [`Acc`] of 17 machine words (136 bytes),
//! whatever the window holds: a sample costs a handful of flops and one division (Welford's
//! update), never an allocation. Its layout is the same for every rule, so the readers of a
//! window have one accumulator type; what a rule pays per sample depends on what it reads
//! (*lean* rules, below, skip most of the flops). A window state holding its accumulator
//! inline keeps it as an [`InlineAcc`] instead (module `inline`: 9 words, the 8 that only
//! full rules update behind a pointer), so that what a lean rule never updates costs it
//! nothing per series either. The exception is the boxed [`Extra`] state, kept only
//! by the rules naming what needs it, at the cost of one predictable branch for the others:
//! the third and fourth moment sums (skewness, kurtosis: as many flops again as everything
//! else), the percentile sketch and the FFT frames (memory per window).
//!
//! Variance uses Welford's method because the naive `Σv² - (Σv)²/n` loses all precision on
//! the typical sensor signal (a large offset with a small ripple). The regression slope uses
//! the same co-moment update, with time measured from the window's first arrival so that
//! microsecond epochs (≈ 1.7e15) do not swamp the differences. Skewness and kurtosis extend
//! Welford's update to the third and fourth central moment sums (Pébay 2008, "Formulas for
//! robust, one-pass parallel computation of covariances and arbitrary-order statistical
//! moments"): raw power sums `Σv³`, `Σv⁴` would cancel catastrophically on the same signals.
//!
//! A *lean* rule (one reading only count, sum, mean, min, max, first, last and what derives
//! from them, percentiles or band energies) skips Welford's update, the slope's co-moments,
//! `Σv²` and the EWMA: most of the flops and the division. Sliding windows re-add their whole
//! buffer per sample, so there the skipped work is most of the cost (1.2–1.9× faster in the
//! throughput bench); hopping windows, which add each sample to several accumulators, gain
//! little: they wait on memory more than on arithmetic. The fields it skips hold stale values,
//! never read (the rule reads no aggregate that needs them).

use crate::event::Aggregate;
use std::sync::Arc;

mod inline;
pub(crate) use inline::InlineAcc;

use crate::sketch::{DEFAULT_K, Sketch};
use crate::spectrum::{FftPlan, Frames};

/// The default smoothing factor of the `ewma` aggregate.
pub(crate) const DEFAULT_EWMA_ALPHA: f64 = 0.2;

/// Which state beyond the fixed-size totals a rule's windows keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AccSpec {
    /// The rule names a percentile or the median (in `aggregates`, `let` or `when`).
    pub sketch: bool,
    /// The rule names skewness or kurtosis: the third and fourth moment sums are kept
    /// (about as many flops again as everything else in [`Acc::add`]).
    pub moments: bool,
    /// The rule has an `fft:` section.
    pub fft: Option<Arc<FftPlan>>,
    /// The rule reads only aggregates [`Aggregate::is_lean`] (see the module docs).
    pub lean: bool,
}

/// How a rule's windows update an accumulator: copied from its rule beside each window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Update {
    /// The `ewma` aggregate's smoothing factor.
    pub alpha: f64,
    /// [`AccSpec::lean`].
    pub lean: bool,
}

impl Update {
    /// Every total kept, with the default EWMA factor.
    #[cfg(test)]
    pub const FULL: Update = Update {
        alpha: DEFAULT_EWMA_ALPHA,
        lean: false,
    };
}

impl AccSpec {
    /// Keeps state beyond the fixed-size totals.
    pub(crate) fn any(&self) -> bool {
        self.sketch || self.moments || self.fft.is_some()
    }
}

/// State that only the rules asking for it pay for, boxed beside the totals so the common
/// window stays one fixed-size [`Acc`] and the hot path one predictable branch longer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Extra {
    /// Third and fourth central moment sums (Pébay's update).
    moments: Option<(f64, f64)>,
    sketch: Option<Sketch>,
    frames: Option<Frames>,
    /// The window's values, sorted: a sliding window's exact percentiles (module
    /// `sliding`), in place of the sketch.
    sorted: Option<Vec<f64>>,
}

impl Extra {
    fn new(spec: &AccSpec) -> Extra {
        Extra {
            moments: spec.moments.then_some((0.0, 0.0)),
            sketch: spec.sketch.then(|| Sketch::new(DEFAULT_K)),
            frames: spec.fft.as_ref().map(Frames::new),
            sorted: None,
        }
    }

    fn fresh(&self) -> Extra {
        Extra {
            moments: self.moments.map(|_| (0.0, 0.0)),
            sketch: self.sketch.as_ref().map(Sketch::fresh),
            frames: self.frames.as_ref().map(Frames::fresh),
            sorted: None,
        }
    }

    /// `delta = v - mean` and `delta_n = delta / n` for `n` samples including this one,
    /// `m2` before this sample. Out of line: the hot path of rules without extras stays small.
    #[cold]
    fn add(&mut self, v: f64, n: u64, delta: f64, delta_n: f64, m2: f64) {
        if let Some((m3, m4)) = &mut self.moments {
            // Pébay's one-pass update, highest order first since each uses the lower ones
            // from before this sample (Welford's M2 line in `Acc::add` is its second order).
            let n = n as f64;
            let delta_n2 = delta_n * delta_n;
            let term1 = delta * delta_n * (n - 1.0);
            *m4 += term1 * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * m2
                - 4.0 * delta_n * *m3;
            *m3 += term1 * delta_n * (n - 2.0) - 3.0 * delta_n * m2;
        }
        if let Some(s) = &mut self.sketch {
            s.add(v);
        }
        if let Some(f) = &mut self.frames {
            f.add(v);
        }
    }

    fn heap_bytes(&self) -> usize {
        size_of::<Extra>()
            + self.sketch.as_ref().map_or(0, Sketch::heap_bytes)
            + self.frames.as_ref().map_or(0, Frames::heap_bytes)
            + self
                .sorted
                .as_ref()
                .map_or(0, |s| s.capacity() * size_of::<f64>())
    }
}

/// The totals of a window computed elsewhere (a sliding window keeps its own, see
/// `sliding`), to be read as an [`Acc`] with no extra state. Field meanings are [`Acc`]'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Totals {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub first_ts: i64,
    pub last: f64,
    pub last_ts: i64,
    pub mean: f64,
    pub m2: f64,
    pub sumsq: f64,
    pub ewma: f64,
    pub base: i64,
    pub mean_t: f64,
    pub m2t: f64,
    pub cxy: f64,
}

/// Running totals of one window. Stored through `inline::AccRef`, the one serializer of
/// this form for both accumulators (a derive here would be a second copy of the same code:
/// 2.6 KB of the aarch64 binary).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct Acc {
    pub count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    pub first_ts: i64,
    last: f64,
    pub last_ts: i64,
    /// Welford's running mean and sum of squared deviations.
    mean: f64,
    m2: f64,
    /// Third and fourth central moment sums (Pébay's update), for skewness and kurtosis.
    sumsq: f64,
    ewma: f64,
    /// Time origin for the slope: the first arrival's timestamp.
    base: i64,
    /// Running mean of `t - base` (µs), its sum of squared deviations and the co-moment
    /// of `t` and `v`.
    mean_t: f64,
    m2t: f64,
    cxy: f64,
    /// Percentile sketch and FFT frames, for the rules that use them.
    extra: Option<Box<Extra>>,
}

impl Acc {
    pub const EMPTY: Acc = Acc {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        first: f64::NAN,
        first_ts: i64::MAX,
        last: f64::NAN,
        last_ts: i64::MIN,
        mean: 0.0,
        m2: 0.0,
        sumsq: 0.0,
        ewma: f64::NAN,
        base: 0,
        mean_t: 0.0,
        m2t: 0.0,
        cxy: 0.0,
        extra: None,
    };

    /// An empty accumulator keeping what `spec` asks for beyond the totals.
    pub fn new(spec: &AccSpec) -> Acc {
        Acc {
            extra: spec.any().then(|| Box::new(Extra::new(spec))),
            ..Acc::EMPTY
        }
    }

    /// An accumulator holding `t` and no extra state.
    #[inline]
    pub fn from_totals(t: Totals) -> Acc {
        Acc {
            count: t.count,
            sum: t.sum,
            min: t.min,
            max: t.max,
            first: t.first,
            first_ts: t.first_ts,
            last: t.last,
            last_ts: t.last_ts,
            mean: t.mean,
            m2: t.m2,
            sumsq: t.sumsq,
            ewma: t.ewma,
            base: t.base,
            mean_t: t.mean_t,
            m2t: t.m2t,
            cxy: t.cxy,
            extra: None,
        }
    }

    /// Adds the totals of `b`, a window over a later stretch of time (a later pane of a
    /// hopping window), to this one, as if its samples had been added here: Chan's pairwise
    /// update for the mean, M2 and the time co-moments (after moving `b`'s time origin to
    /// this one's). Neither may keep extra state; the EWMA, which depends on arrival order
    /// across both, is left to the caller.
    pub fn merge(&mut self, b: &Acc) {
        if b.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = b.clone();
            return;
        }
        let (na, nb) = (self.count as f64, b.count as f64);
        let n = na + nb;
        let dv = b.mean - self.mean;
        let shift = b.base.saturating_sub(self.base) as f64;
        let dt = b.mean_t + shift - self.mean_t;
        let w = na * nb / n;
        self.m2 += b.m2 + dv * dv * w;
        self.m2t += b.m2t + dt * dt * w;
        self.cxy += b.cxy + dt * dv * w;
        self.mean += dv * nb / n;
        self.mean_t += dt * nb / n;
        self.count += b.count;
        self.sum += b.sum;
        self.sumsq += b.sumsq;
        self.min = self.min.min(b.min);
        self.max = self.max.max(b.max);
        if b.first_ts < self.first_ts {
            self.first_ts = b.first_ts;
            self.first = b.first;
        }
        if b.last_ts >= self.last_ts {
            self.last_ts = b.last_ts;
            self.last = b.last;
        }
    }

    /// The EWMA so far (stale for a lean rule, which never reads it).
    pub fn ewma(&self) -> f64 {
        self.ewma
    }

    /// Sets the EWMA (kept outside, see [`Acc::merge`]).
    pub fn set_ewma(&mut self, ewma: f64) {
        self.ewma = ewma;
    }

    /// Keeps a sketch, moments or FFT frames beside the totals.
    pub fn has_extra(&self) -> bool {
        self.extra.is_some()
    }

    /// Keeps a percentile sketch and nothing else beside the totals.
    pub fn sketch_only(&self) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.sketch.is_some() && e.moments.is_none() && e.frames.is_none())
    }

    /// This accumulator, answering percentiles exactly from `sorted` (the window's values
    /// in ascending order) instead of a sketch.
    #[inline]
    pub fn with_sorted(mut self, sorted: Vec<f64>) -> Acc {
        self.extra = Some(Box::new(Extra {
            moments: None,
            sketch: None,
            frames: None,
            sorted: Some(sorted),
        }));
        self
    }

    /// An empty accumulator of the same kind (allocates only if this one has extra state).
    pub fn fresh(&self) -> Acc {
        Acc {
            extra: self.extra.as_ref().map(|e| Box::new(e.fresh())),
            ..Acc::EMPTY
        }
    }

    /// Returns the totals so far and starts over, empty (what [`InlineAcc::take`] does for
    /// the windows, checked against this).
    #[cfg(test)]
    pub fn take(&mut self) -> Acc {
        let fresh = self.fresh();
        std::mem::replace(self, fresh)
    }

    /// Bytes owned on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.heap_bytes())
    }

    /// Gives an accumulator read from a snapshot its rule's FFT plan back (module
    /// `snapshot`: the plan is derived from the rule, not state).
    pub fn set_plan(&mut self, plan: Option<&Arc<FftPlan>>) {
        if let (Some(e), Some(plan)) = (&mut self.extra, plan)
            && let Some(f) = &mut e.frames
        {
            f.set_plan(plan);
        }
    }

    /// Always inlined: hopping and sliding windows call it in loops, where a call per sample
    /// (LLVM stops inlining once the extra-state branch makes it bigger) cost them ~25 %.
    #[inline(always)]
    pub fn add(&mut self, ts: i64, v: f64, up: Update) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        // Ties: `first` keeps the earliest arrival, `last` takes the latest.
        if ts < self.first_ts {
            self.first_ts = ts;
            self.first = v;
        }
        if ts >= self.last_ts {
            self.last_ts = ts;
            self.last = v;
        }
        if up.lean {
            // Only sketch and frames can be set: moments make a rule full.
            if let Some(extra) = &mut self.extra {
                extra.add(v, self.count, 0.0, 0.0, 0.0);
            }
            return;
        }
        if self.count == 1 {
            self.base = ts;
        }
        // One division shared by both running means.
        let inv_n = 1.0 / self.count as f64;
        let t = ts.saturating_sub(self.base) as f64;
        let dt = t - self.mean_t;
        self.mean_t += dt * inv_n;
        self.m2t += dt * (t - self.mean_t);
        let delta = v - self.mean;
        let delta_n = delta * inv_n;
        let m2 = self.m2;
        self.mean += delta_n;
        self.m2 += delta * (v - self.mean);
        self.cxy += dt * (v - self.mean);
        self.sumsq += v * v;
        self.ewma = if self.count == 1 {
            v
        } else {
            up.alpha * v + (1.0 - up.alpha) * self.ewma
        };
        // Last, so the straight-line code above stays as the compiler likes it (a branch in
        // its middle measurably slowed hopping and sliding windows).
        if let Some(extra) = &mut self.extra {
            extra.add(v, self.count, delta, delta_n, m2);
        }
    }

    /// The value of `a` for this window; `secs` is the window's length in seconds (used by
    /// `rate`). An empty accumulator gives NaN for the value-based aggregates.
    pub fn get(&self, a: Aggregate, secs: f64) -> f64 {
        let n = self.count as f64;
        match a {
            Aggregate::Count => n,
            Aggregate::Mean => self.sum / n,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Sum => self.sum,
            Aggregate::First => self.first,
            Aggregate::Last => self.last,
            Aggregate::Delta => self.last - self.first,
            // A zero-length span (a count window whose samples share a timestamp) has no rate.
            Aggregate::Rate if secs > 0.0 => (self.last - self.first) / secs,
            Aggregate::Rate => f64::NAN,
            Aggregate::Variance => self.m2.max(0.0) / n,
            Aggregate::Stddev => (self.m2.max(0.0) / n).sqrt(),
            Aggregate::Rms => (self.sumsq / n).sqrt(),
            Aggregate::PeakToPeak => self.max - self.min,
            // Population (biased) moments; NaN when every value is the same.
            Aggregate::Skewness
                if self.m2 > 0.0
                    && let Some((m3, _)) = self.moments() =>
            {
                n.sqrt() * m3 / self.m2.powf(1.5)
            }
            Aggregate::Kurtosis
                if self.m2 > 0.0
                    && let Some((_, m4)) = self.moments() =>
            {
                n * m4 / (self.m2 * self.m2)
            }
            Aggregate::Skewness | Aggregate::Kurtosis => f64::NAN,
            Aggregate::CrestFactor => self.max.abs().max(self.min.abs()) / (self.sumsq / n).sqrt(),
            Aggregate::Ewma => self.ewma,
            // Per second; undefined (NaN) unless the window spans more than one timestamp.
            Aggregate::Slope if self.m2t > 0.0 => self.cxy / self.m2t * 1e6,
            Aggregate::Slope => f64::NAN,
            Aggregate::Median => self.quantile(0.5),
            Aggregate::Percentile(p) => self.quantile(f64::from(p) / 100.0),
            Aggregate::BandEnergy { index, .. } => self
                .extra
                .as_ref()
                .and_then(|e| e.frames.as_ref())
                .map_or(f64::NAN, |f| f.energy(usize::from(index))),
            // Not accumulated: `Env::get` reads it from the rule's computed `let` values.
            Aggregate::Let { .. } => f64::NAN,
        }
    }

    fn moments(&self) -> Option<(f64, f64)> {
        self.extra.as_ref().and_then(|e| e.moments)
    }

    /// NaN when the rule keeps no sketch (validation makes sure it does when it asks).
    fn quantile(&self, q: f64) -> f64 {
        let Some(extra) = self.extra.as_ref() else {
            return f64::NAN;
        };
        if let Some(sorted) = &extra.sorted {
            // Nearest rank, 1-based, as the sketch answers.
            let n = sorted.len();
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
            return sorted.get(rank - 1).copied().unwrap_or(f64::NAN);
        }
        match &extra.sketch {
            Some(s) => s.quantile(q),
            None => f64::NAN,
        }
    }
}

/// A closed window's accumulator with its length, kept for `prev(...)` in expressions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Closed {
    pub acc: Acc,
    pub secs: f64,
}

/// What an expression can see when a window closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub cur: &'a Closed,
    /// The same rule's previous closed window on the same series, if any.
    pub prev: Option<&'a Closed>,
    /// The latest values of the other metrics the rule reads (`metric.<name>`), in the
    /// order of the rule's `others`.
    pub others: &'a [f64],
    /// The rule's `let` values for this window computed so far, in `let:` order (module
    /// `expr::lets`); a value reads only the ones before it.
    pub lets: &'a [f64],
    /// The same values of the previous window on the same series (NaN before the first).
    pub prev_lets: &'a [f64],
}

impl Env<'_> {
    #[inline]
    pub fn get(&self, a: Aggregate) -> f64 {
        if let Aggregate::Let { index, .. } = a {
            return self
                .lets
                .get(usize::from(index))
                .copied()
                .unwrap_or(f64::NAN);
        }
        self.cur.acc.get(a, self.cur.secs)
    }

    /// NaN when there is no previous window, so comparisons with it are false.
    #[inline]
    pub fn prev(&self, a: Aggregate) -> f64 {
        self.prev.map_or(f64::NAN, |p| p.acc.get(a, p.secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(values: impl IntoIterator<Item = f64>) -> Acc {
        let mut acc = Acc::new(&AccSpec {
            moments: true,
            ..AccSpec::default()
        });
        for (i, v) in values.into_iter().enumerate() {
            acc.add(i as i64 * 1_000, v, Update::FULL);
        }
        acc
    }

    /// A sine's samples over whole periods: kurtosis 1.5, skewness 0, crest factor √2.
    fn sine(offset: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| offset + (i as f64 * std::f64::consts::TAU / 40.0).sin())
    }

    #[test]
    fn sine_moments_and_crest_factor() {
        let a = acc(sine(0.0, 5_000));
        assert!((a.get(Aggregate::Kurtosis, 1.0) - 1.5).abs() < 1e-9);
        assert!(a.get(Aggregate::Skewness, 1.0).abs() < 1e-9);
        let crest = a.get(Aggregate::CrestFactor, 1.0);
        assert!((crest - std::f64::consts::SQRT_2).abs() < 1e-6, "{crest}");
    }

    /// The reason for the central-moment update: a small ripple on a large offset (a sensor
    /// reading ≈ 1e9) keeps its shape, where power sums would lose every digit.
    #[test]
    fn moments_survive_a_large_offset() {
        let a = acc(sine(1e9, 5_000));
        assert!((a.get(Aggregate::Kurtosis, 1.0) - 1.5).abs() < 1e-6);
        assert!(a.get(Aggregate::Skewness, 1.0).abs() < 1e-6);
    }

    #[test]
    fn impulses_raise_kurtosis_and_crest_factor() {
        // Gaussian-ish noise stand-in: a sine with one impact every 500 samples.
        let spiky = sine(0.0, 5_000)
            .enumerate()
            .map(|(i, v)| if i % 500 == 7 { v + 8.0 } else { v });
        let a = acc(spiky);
        assert!(a.get(Aggregate::Kurtosis, 1.0) > 10.0);
        assert!(a.get(Aggregate::Skewness, 1.0) > 1.0);
        assert!(a.get(Aggregate::CrestFactor, 1.0) > 5.0);
    }

    #[test]
    fn constant_and_empty_windows_have_no_shape() {
        let a = acc([4.0; 10]);
        assert!(a.get(Aggregate::Kurtosis, 1.0).is_nan());
        assert!(a.get(Aggregate::Skewness, 1.0).is_nan());
        assert_eq!(a.get(Aggregate::CrestFactor, 1.0), 1.0);
        assert!(acc([0.0; 3]).get(Aggregate::CrestFactor, 1.0).is_nan());
        assert!(Acc::EMPTY.get(Aggregate::Kurtosis, 1.0).is_nan());
    }

    /// Rules that do not name skewness or kurtosis skip their update, and read NaN (which
    /// validation makes impossible: naming one turns the update on).
    #[test]
    fn moments_are_kept_only_when_asked() {
        let mut plain = Acc::EMPTY;
        for v in [1.0, 2.0, 7.0] {
            plain.add(0, v, Update::FULL);
        }
        assert!(plain.moments().is_none());
        assert!(plain.get(Aggregate::Kurtosis, 1.0).is_nan());
        assert!(plain.get(Aggregate::Variance, 1.0) > 0.0);
        assert!(acc([1.0, 2.0, 7.0]).moments().is_some_and(|m| m.1 > 0.0));
    }
}
