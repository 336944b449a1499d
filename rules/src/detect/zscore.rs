//! z-scores: how unusual is this value, measured against what the series normally does.
//!
//! * `zscore`: `(x − mean) / σ` against the online [`Baseline`] (EWMA mean and variance after
//!   an exact warm-up). Cheap (24 bytes, O(1)) and good for roughly Gaussian noise.
//! * `robust_zscore`: `0.6745 · (x − median) / MAD` over the last `window` values (Iglewicz
//!   and Hoaglin's modified z-score). A median and a median absolute deviation are not
//!   dragged by the outliers they are meant to find, so one spike does not hide the next,
//!   at the price of a bounded buffer (8 bytes per value, twice: the ring and a scratch copy
//!   for the selection) and O(window) work per value.
//!
//! Both flag `|score| > z`; NaN inputs are skipped (neither judged nor learned).

use std::collections::VecDeque;

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec, Learn};

/// Validated parameters of `zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ZSpec {
    pub z: f64,
    pub baseline: BaselineSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ZState {
    base: Baseline,
}

impl ZState {
    pub fn feed(&mut self, spec: &ZSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if !self.base.ready(spec.baseline) {
            self.base.learn(spec.baseline, x, false);
            return None;
        }
        let score = (x - self.base.mean()) / self.base.sigma();
        let anomalous = score.abs() > spec.z;
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

/// Validated parameters of `robust_zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RobustSpec {
    pub z: f64,
    /// Values kept; verdicts start once the buffer is full.
    pub window: usize,
    pub learn: Learn,
}

/// The consistency constant that makes the MAD of normal data estimate σ.
const MAD_SCALE: f64 = 0.6745;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RobustState {
    buf: VecDeque<f64>,
    scratch: Vec<f64>,
}

impl RobustState {
    pub fn heap_bytes(&self) -> usize {
        (self.buf.capacity() + self.scratch.capacity()) * size_of::<f64>()
    }

    pub fn feed(&mut self, spec: &RobustSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if self.buf.len() < spec.window {
            self.buf.push_back(x);
            return None;
        }
        let score = self.score(x);
        let anomalous = score.abs() > spec.z;
        let learn = match spec.learn {
            Learn::All => true,
            Learn::ExcludeAnomalies => !anomalous,
            Learn::Frozen => false,
        };
        if learn {
            self.buf.pop_front();
            self.buf.push_back(x);
        }
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }

    fn score(&mut self, x: f64) -> f64 {
        self.scratch.clear();
        self.scratch.extend(self.buf.iter().copied());
        let med = median(&mut self.scratch);
        for v in &mut self.scratch {
            *v = (*v - med).abs();
        }
        let mut mad = median(&mut self.scratch);
        if mad == 0.0 {
            // More than half the window is one value (a quantised sensor at rest): fall back
            // to the mean absolute deviation, scaled to estimate σ the same way.
            let n = self.scratch.len() as f64;
            mad = self.scratch.iter().sum::<f64>() / n * 1.2533 * MAD_SCALE;
        }
        let d = x - med;
        if mad == 0.0 {
            // A perfectly constant window: any change at all is infinitely unusual.
            return if d == 0.0 {
                0.0
            } else {
                d.signum() * f64::INFINITY
            };
        }
        MAD_SCALE * d / mad
    }
}

/// The median of finite values (the mean of the middle two for an even count); reorders `v`.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, &mut hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return hi;
    }
    // The lower middle is the largest of the values left of the upper one.
    let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
