//! Online aggregates: one fixed-size accumulator per open window.
//!
//! Every aggregate the language knows is kept by one [`Acc`] of 16 machine words (128 bytes),
//! whatever the window holds: a sample costs a handful of flops and one division (Welford's
//! update), never an allocation. Keeping all of them, rather than only those a rule names,
//! keeps the per-sample path branch-free; a rule referencing any aggregate in an expression
//! then costs nothing extra.
//!
//! Variance uses Welford's method because the naive `Σv² - (Σv)²/n` loses all precision on
//! the typical sensor signal (a large offset with a small ripple). The regression slope uses
//! the same co-moment update, with time measured from the window's first arrival so that
//! microsecond epochs (≈ 1.7e15) do not swamp the differences.

use crate::event::Aggregate;

/// The default smoothing factor of the `ewma` aggregate.
pub(crate) const DEFAULT_EWMA_ALPHA: f64 = 0.2;

/// Running totals of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    sumsq: f64,
    ewma: f64,
    /// Time origin for the slope: the first arrival's timestamp.
    base: i64,
    /// Running mean of `t - base` (µs), its sum of squared deviations and the co-moment
    /// of `t` and `v`.
    mean_t: f64,
    m2t: f64,
    cxy: f64,
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
    };

    #[inline]
    pub fn add(&mut self, ts: i64, v: f64, alpha: f64) {
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
        self.mean += delta * inv_n;
        self.m2 += delta * (v - self.mean);
        self.cxy += dt * (v - self.mean);
        self.sumsq += v * v;
        self.ewma = if self.count == 1 {
            v
        } else {
            alpha * v + (1.0 - alpha) * self.ewma
        };
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
            Aggregate::Ewma => self.ewma,
            // Per second; undefined (NaN) unless the window spans more than one timestamp.
            Aggregate::Slope if self.m2t > 0.0 => self.cxy / self.m2t * 1e6,
            Aggregate::Slope => f64::NAN,
        }
    }
}

/// A closed window's accumulator with its length, kept for `prev(...)` in expressions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Closed {
    pub acc: Acc,
    pub secs: f64,
}

/// What an expression can see when a window closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub cur: Closed,
    /// The same rule's previous closed window on the same series, if any.
    pub prev: Option<&'a Closed>,
}

impl Env<'_> {
    #[inline]
    pub fn get(&self, a: Aggregate) -> f64 {
        self.cur.acc.get(a, self.cur.secs)
    }

    /// NaN when there is no previous window, so comparisons with it are false.
    #[inline]
    pub fn prev(&self, a: Aggregate) -> f64 {
        self.prev.map_or(f64::NAN, |p| p.acc.get(a, p.secs))
    }
}
