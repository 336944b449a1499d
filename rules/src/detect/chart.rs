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
//! NaN inputs are skipped (neither judged nor learned).

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec};

/// Validated parameters of `ewma_chart`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EwmaSpec {
    /// Smoothing, in (0, 1].
    pub lambda: f64,
    /// Limit width `L`, in σ of the chart statistic.
    pub limit: f64,
    pub baseline: BaselineSpec,
}

/// 40 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct EwmaState {
    base: Baseline,
    e: f64,
    started: bool,
}

impl EwmaState {
    pub fn feed(&mut self, spec: &EwmaSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if !self.base.ready(spec.baseline) {
            self.base.learn(spec.baseline, x, false);
            return None;
        }
        if !self.started {
            self.e = self.base.mean();
            self.started = true;
        }
        let l = spec.lambda;
        self.e = l * x + (1.0 - l) * self.e;
        let sigma_e = self.base.sigma() * (l / (2.0 - l)).sqrt();
        let score = (self.e - self.base.mean()) / sigma_e;
        let anomalous = score.abs() > spec.limit;
        self.base.learn(spec.baseline, x, anomalous);
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
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

/// 48 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CusumState {
    base: Baseline,
    hi: f64,
    lo: f64,
    alarm: bool,
}

impl CusumState {
    pub fn feed(&mut self, spec: &CusumSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if !self.base.ready(spec.baseline) {
            self.base.learn(spec.baseline, x, false);
            return None;
        }
        let s = (x - self.base.mean()) / self.base.sigma();
        let cap = 2.0 * spec.h;
        self.hi = (self.hi + s - spec.k).clamp(0.0, cap);
        self.lo = (self.lo - s - spec.k).clamp(0.0, cap);
        // Raised past `h`, cleared only once both sums are back to zero: a sum hovering
        // around `h` under a lasting shift would otherwise flap.
        if self.hi > spec.h || self.lo > spec.h {
            self.alarm = true;
        } else if self.hi == 0.0 && self.lo == 0.0 {
            self.alarm = false;
        }
        let anomalous = self.alarm;
        let score = if self.hi >= self.lo {
            self.hi
        } else {
            -self.lo
        };
        self.base.learn(spec.baseline, x, anomalous);
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }
}
