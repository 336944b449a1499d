//! Control charts: small sustained shifts that no single value reveals.
//!
//! A z-score judges each value alone, so a pump whose pressure drops by half a standard
//! deviation and stays there never trips it. Both charts here accumulate evidence instead,
//! against the online [`Baseline`] (mean μ, deviation σ):
//!
//! * `ewma_chart` (Roberts 1959): `e = λ·x + (1 − λ)·e`, started at μ when warm-up ends; it
//!   signals when `|e − μ| > L · σ · sqrt(λ / (2 − λ))` (the asymptotic control limits,
//!   UCL/LCL). The score is `(e − μ) / (σ · sqrt(λ / (2 − λ)))`, in units of the limit's σ.
//! * `cusum` (Page 1954), two-sided, on the standardised value `s = (x − μ) / σ`:
//!   `S⁺ = max(0, S⁺ + s − k)`, `S⁻ = max(0, S⁻ − s − k)`; it raises when `S⁺ > h` or
//!   `S⁻ > h` and clears once both are back to 0 (the evidence of a shift is gone). `k` (in σ) is half the shift worth detecting, `h` trades detection delay
//!   against false alarms (k = 0.5 with the textbook h = 5 detects a 1σ shift in about 10
//!   values but raises a false alarm every ~600 values of Gaussian noise; the default h = 8
//!   takes about 16 values and raised 3 per 100,000 in our measurement). The sums are capped at `2h` so that once
//!   the level is back the alert clears within about `2h / k` values instead of paying back
//!   an arbitrarily long excursion. The score is `S⁺`, or `−S⁻` when that is larger.
//!
//! ## Restart after an alarm
//!
//! A chart that keeps learning through a shift absorbs it (`learn: all`: the return to
//! normal is then no event), and one that stops learning at the alarm was already judging
//! against a baseline the early, not-yet-anomalous part of a drift had dragged along
//! (`exclude_anomalies`: the return is then a shift the other way and the alert never
//! clears). Both charts therefore restart the way a control chart is run in practice:
//!
//! 1. While in control the chart keeps a copy of its baseline as of the last value with no
//!    evidence of a shift (CUSUM: both sums 0; EWMA: the statistic within 1σ of its centre).
//!    That is the onset estimate of a shift, Page's "last zero".
//! 2. On the raise it goes back to that copy — the *pre-alarm* baseline — and freezes it as
//!    the reference; nothing learned during the shift leaks into it.
//! 3. Meanwhile it re-learns the current level from scratch over a full warm-up (`baseline`
//!    values, exact mean and variance).
//! 4. The alert clears on whichever comes first:
//!    * **return**: the chart is back within its limits relative to the pre-alarm baseline
//!      (CUSUM: both sums back to 0; EWMA: `|score| ≤ limit / 2`, a hysteresis: an EWMA
//!      under a shift near the limit otherwise raises and clears every few values). The
//!      clear's score is the chart statistic, well inside the limit.
//!    * **new level**: the re-learn warm-up is complete and the shift is still signalled
//!      (CUSUM: a sum past `h`; EWMA: still beyond the limit). The chart adopts the
//!      re-learned baseline, resets its statistic, and clears with the score
//!      `(μ_new − μ_old) / σ_old`: the size of the shift it accepted, in σ, so a consumer
//!      tells "back to normal" (score ≈ 0) from "settled at a new level" (|score| ≫ 1).
//!
//!    After a new level, a later return to the old one is a shift like any other: raised,
//!    then cleared by return or adopted in turn. A continuing drift keeps raising once per
//!    warm-up: each raise is one more step of the drift.
//!
//! Why not reset the sums at the raise, as the textbook does after an investigation: the
//! clear would then come at the first in-control value, and the alert would flap; the cap at
//! `2h` already bounds what the sums remember of the excursion. `learn: frozen` keeps the
//! textbook chart: a fixed reference, no restart (the alert stays up while the shift lasts).
//!
//! NaN inputs are skipped (neither judged nor learned).

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec, Learn, finite_score};

/// Validated parameters of `ewma_chart`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EwmaSpec {
    /// Smoothing, in (0, 1].
    pub lambda: f64,
    /// Limit width `L`, in σ of the chart statistic.
    pub limit: f64,
    pub baseline: BaselineSpec,
}

/// 96 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct EwmaState {
    base: Baseline,
    /// In control: the baseline as of the last value with no evidence of a shift. In alarm:
    /// the level being re-learned (see [`Restart`]).
    other: Baseline,
    e: f64,
    started: bool,
    alarm: bool,
}

impl EwmaState {
    pub fn seed(&mut self, spec: BaselineSpec, st: &crate::learned::Stats) {
        self.base = Baseline::seed(spec, st);
    }

    pub fn feed(&mut self, spec: &EwmaSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        let b = spec.baseline;
        if !self.base.ready(b) {
            self.base.learn(b, x, false);
            return None;
        }
        if !self.started {
            self.e = self.base.mean();
            self.started = true;
        }
        let l = spec.lambda;
        self.e = l * x + (1.0 - l) * self.e;
        let width = (l / (2.0 - l)).sqrt();
        let mut score = finite_score((self.e - self.base.mean()) / (self.base.sigma(b) * width));
        let out = score.abs() > spec.limit;
        let restarts = b.learn != Learn::Frozen;
        if !restarts {
            self.alarm = out;
            self.base.learn(b, x, out);
        } else if !self.alarm {
            if out {
                self.alarm = true;
                Restart::raise(&mut self.base, &mut self.other, b);
            } else {
                self.base.learn(b, x, false);
                if score.abs() <= 1.0 {
                    self.other = self.base;
                }
            }
        } else if score.abs() <= spec.limit / 2.0 {
            // Back well within the limits of the pre-alarm baseline: the return is the clear.
            self.alarm = false;
            self.other = self.base;
        } else if let Some(shift) = Restart::relearn(&mut self.base, &mut self.other, b, x, out) {
            self.alarm = false;
            self.e = self.base.mean();
            score = shift;
        }
        Some(Verdict {
            ts,
            anomalous: self.alarm,
            value: x,
            score,
            forecast: None,
        })
    }
}

/// Restart after an alarm, shared by both charts (module docs): on the raise the chart goes
/// back to the baseline it had before the shift began (`other`, kept while in control) and
/// freezes it as the reference; meanwhile `other` re-learns the current level from scratch.
struct Restart;

impl Restart {
    fn raise(base: &mut Baseline, other: &mut Baseline, spec: BaselineSpec) {
        if other.ready(spec) {
            *base = *other;
        }
        other.restart();
    }

    /// Learns `x` into the new level; once a full warm-up has been learned and the shift is
    /// still `held`, adopts it and returns the shift `(μ_new − μ_old) / σ_old` (the score
    /// of the clear).
    fn relearn(
        base: &mut Baseline,
        other: &mut Baseline,
        spec: BaselineSpec,
        x: f64,
        held: bool,
    ) -> Option<f64> {
        let all = BaselineSpec {
            learn: Learn::All,
            ..spec
        };
        other.learn(all, x, false);
        if !other.ready(spec) || !held {
            return None;
        }
        let shift = finite_score((other.mean() - base.mean()) / base.sigma(spec));
        *base = *other;
        Some(shift)
    }
}
/// Validated parameters of `cusum`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CusumSpec {
    /// Allowance, in σ; ≥ 0.
    pub k: f64,
    /// Decision interval, in σ; > 0.
    pub h: f64,
    pub baseline: BaselineSpec,
}

/// 104 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CusumState {
    base: Baseline,
    /// In control: the baseline as of the last time both sums were 0. In alarm: the level
    /// being re-learned (see [`Restart`]).
    other: Baseline,
    hi: f64,
    lo: f64,
    alarm: bool,
}

impl CusumState {
    pub fn seed(&mut self, spec: BaselineSpec, st: &crate::learned::Stats) {
        self.base = Baseline::seed(spec, st);
    }

    pub fn feed(&mut self, spec: &CusumSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        let b = spec.baseline;
        if !self.base.ready(b) {
            self.base.learn(b, x, false);
            return None;
        }
        let s = finite_score((x - self.base.mean()) / self.base.sigma(b));
        let cap = 2.0 * spec.h;
        self.hi = (self.hi + s - spec.k).clamp(0.0, cap);
        self.lo = (self.lo - s - spec.k).clamp(0.0, cap);
        let mut score = if self.hi >= self.lo {
            self.hi
        } else {
            -self.lo
        };
        let signal = self.hi > spec.h || self.lo > spec.h;
        let zero = self.hi == 0.0 && self.lo == 0.0;
        if b.learn == Learn::Frozen {
            // Raised past `h`, cleared only once both sums are back to zero: a sum hovering
            // around `h` under a lasting shift would otherwise flap.
            if signal {
                self.alarm = true;
            } else if zero {
                self.alarm = false;
            }
        } else if !self.alarm {
            if signal {
                self.alarm = true;
                Restart::raise(&mut self.base, &mut self.other, b);
            } else {
                self.base.learn(b, x, false);
                if zero {
                    self.other = self.base;
                }
            }
        } else if zero {
            // Back to the pre-alarm level: the return is the clear.
            self.alarm = false;
            self.other = self.base;
        } else if let Some(shift) = {
            // Adopt the new level only while the shift is still signalled (a sum past `h`):
            // a sum on its way down to `h` is a return in progress.
            let held = signal;
            Restart::relearn(&mut self.base, &mut self.other, b, x, held)
        } {
            self.alarm = false;
            self.hi = 0.0;
            self.lo = 0.0;
            score = shift;
        }
        Some(Verdict {
            ts,
            anomalous: self.alarm,
            value: x,
            score,
            forecast: None,
        })
    }
}
