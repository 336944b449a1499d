//! `changepoint`: the moments a series' level shifts, as instantaneous events.
//!
//! An alert is a state (raised, then cleared); a changepoint is a moment: "the level moved
//! from 50.1 to 53.0 around 10:42:07". This detector reports each as one
//! [`crate::EventKind::Changepoint`] — an `onset` when the level leaves the series' home
//! level, a `return` when it comes back to it — and never raises the rule's alert.
//!
//! Method: a two-sided CUSUM (Page 1954) against the current segment's level, restarted at
//! every change (the piecewise-constant model behind change detection):
//!
//! 1. The first `baseline` values (default 200) give the *home* level μ₀ and σ (exact mean and variance,
//!    σ floored like every spread, see `baseline`); nothing is reported meanwhile.
//! 2. Each value is standardised against the current segment, `s = (x − μ) / σ`, and
//!    accumulated as `S⁺ = max(0, S⁺ + s − k)`, `S⁻ = max(0, S⁻ − s − k)` with `k = shift / 2`
//!    (`shift`: the smallest shift worth reporting, in σ).
//! 3. When a sum passes `h` the level has changed. The onset is Page's estimate — the last
//!    time that sum left zero — and the new level the mean of the values since then; the
//!    event carries both, the level before, and the shift in σ.
//! 4. The detector restarts: sums at zero, a new segment whose level is learned from the
//!    values that follow (detection resumes after 30 of them, against their running mean and
//!    the home σ; the segment's own σ is used once `baseline` values are in).
//!
//! A change that takes the level more than halfway back from where it was to home is a
//! `return`; any other an `onset` (home → A is an onset; A → home a return; A → B further
//! away, another onset).
//!
//! Detection delay is about `h / (δ − k)` values for a shift of δ σ (a 1σ shift with the
//! defaults `shift: 1`, `h: 8`: 12–16 values; 3σ: 3–4). False changes on stationary
//! Gaussian noise with the defaults: 3 per 100,000 values in `changepoint_tests`, 8 in the
//! detectors bench (`cusum` there: 7); `h: 5` about two per thousand values. A reference
//! learned from 100 values instead of 200 doubled the bench figure (17): an estimated level
//! and σ are part of the noise a CUSUM accumulates.
//!
//! Memory: 120 bytes per series, fixed (no buffer: the onset and the new level come from
//! two running sums per side). O(1) per value.

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec, finite_score};

/// Values a new segment learns before detection resumes against its running mean (fewer
/// when `baseline` is smaller). Its mean is then within about σ/√30 ≈ 0.18σ, well inside
/// the allowance `k` (0.5σ by default): with 5, a mean 0.45σ off fed the sums almost as fast
/// as `k` drained them, and one false change set off the next.
const MIN_SEGMENT: u32 = 30;

/// Validated parameters of `changepoint`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    /// The smallest shift worth reporting, in σ; `k = shift / 2`.
    pub shift: f64,
    /// Decision interval, in σ.
    pub h: f64,
    /// Warm-up of the home level and of each segment; `learn` is unused (segments are
    /// frozen once learned: the model is piecewise constant).
    pub baseline: BaselineSpec,
}

/// Whether a change left home or came back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Onset,
    Return,
}

impl ChangeKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Onset => "onset",
            ChangeKind::Return => "return",
        }
    }
}

/// A detected change, carried by its verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    pub kind: ChangeKind,
    /// Page's estimate of when the level moved, µs (the verdict's `ts` is when it was
    /// detected).
    pub onset: i64,
    pub before: f64,
    pub after: f64,
}

/// One side of the two-sided CUSUM: the sum, when it last left zero, and the values since.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Side {
    sum: f64,
    from: i64,
    total: f64,
    n: u32,
}

impl Side {
    fn add(&mut self, step: f64, ts: i64, x: f64) {
        if self.sum == 0.0 {
            self.from = ts;
            self.total = 0.0;
            self.n = 0;
        }
        self.sum = (self.sum + step).max(0.0);
        if self.sum > 0.0 {
            self.total += x;
            self.n += 1;
        }
    }

    fn level(&self) -> f64 {
        self.total / f64::from(self.n.max(1))
    }
}

/// 120 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// The home level (learned first, kept for good) and its σ; `home_sigma` is 0 until then.
    home: f64,
    home_sigma: f64,
    seg: Baseline,
    up: Side,
    down: Side,
}

impl State {
    pub fn seed(&mut self, spec: BaselineSpec, st: &crate::learned::Stats) {
        self.seg = Baseline::seed(spec, st);
        self.home = st.mean;
        self.home_sigma = self.seg.sigma(spec);
    }

    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        let b = spec.baseline;
        if self.home_sigma == 0.0 {
            self.seg.learn(b, x, false);
            if self.seg.ready(b) {
                self.home = self.seg.mean();
                self.home_sigma = self.seg.sigma(b);
            }
            return None;
        }
        let ready = self.seg.ready(b);
        if !ready && self.seg.count() < MIN_SEGMENT.min(b.warmup) {
            self.seg.learn(b, x, false);
            return None;
        }
        let (mu, sigma) = if ready {
            (self.seg.mean(), self.seg.sigma(b))
        } else {
            (self.seg.mean(), self.home_sigma)
        };
        let s = finite_score((x - mu) / sigma);
        let k = spec.shift / 2.0;
        self.up.add(s - k, ts, x);
        self.down.add(-s - k, ts, x);
        if !ready {
            self.seg.learn(b, x, false);
        }
        let side = if self.up.sum > spec.h {
            self.up
        } else if self.down.sum > spec.h {
            self.down
        } else {
            return None;
        };
        let after = side.level();
        // Back more than halfway from where it was to home: a return (a segment at home
        // cannot return).
        let kind = if (after - self.home).abs() < (mu - self.home).abs() / 2.0 {
            ChangeKind::Return
        } else {
            ChangeKind::Onset
        };
        self.seg.restart();
        self.up = Side::default();
        self.down = Side::default();
        Some(Verdict {
            ts,
            anomalous: false,
            value: x,
            score: finite_score((after - mu) / sigma),
            forecast: Some(super::Note::Change(Change {
                kind,
                onset: side.from,
                before: mu,
                after,
            })),
        })
    }
}
