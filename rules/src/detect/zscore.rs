//! z-scores: how unusual is this value, measured against what the series normally does.
//!
//! * `zscore`: `(x − mean) / σ` against the online [`Baseline`] (EWMA mean and variance after
//!   an exact warm-up). Cheap (24 bytes, O(1)) and good for roughly Gaussian noise.
//! * `robust_zscore`: `0.6745 · (x − median) / MAD` over the last `window` values (Iglewicz
//!   and Hoaglin's modified z-score). A median and a median absolute deviation are not
//!   dragged by the outliers they are meant to find, so one spike does not hide the next,
//!   at the price of a bounded buffer (8 bytes per value, twice: in arrival order and
//!   sorted) and O(window) work per value: a binary search and a shift to keep the sorted
//!   copy, and a walk outwards from the median for the MAD (no copy, no selection).
//!
//! Both flag `|score| > z`; NaN inputs are skipped (neither judged nor learned). Both divide
//! by a spread floored as `baseline`'s module docs describe (`min_sigma`, `resolution`, or
//! the learned step / √12), so a quantised sensor whose MAD is 0 scores one step at about
//! 3.5, never 1000 or ∞.

use std::collections::VecDeque;

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec, Floor, Learn, MAX_LEARNED, Step, finite_score};

/// Validated parameters of `zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ZSpec {
    pub z: f64,
    pub baseline: BaselineSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ZState {
    base: Baseline,
}

impl ZState {
    pub fn seed(&mut self, spec: BaselineSpec, st: &crate::learned::Stats) {
        self.base = Baseline::seed(spec, st);
    }

    pub fn feed(&mut self, spec: &ZSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if !self.base.ready(spec.baseline) {
            self.base.learn(spec.baseline, x, false);
            return None;
        }
        let score = finite_score((x - self.base.mean()) / self.base.sigma(spec.baseline));
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
    pub floor: Floor,
}

/// The consistency constant that makes the MAD of normal data estimate σ.
const MAD_SCALE: f64 = 0.6745;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RobustState {
    /// The window in arrival order, to know which value leaves next.
    buf: VecDeque<f64>,
    /// The same values sorted: the median is read off the middle, and the MAD found by
    /// walking outwards from it, with no copy and no selection per input.
    sorted: Vec<f64>,
    /// The smallest step between consecutive values learned, for the noise floor.
    step: Step,
}

impl RobustState {
    pub fn heap_bytes(&self) -> usize {
        (self.buf.capacity() + self.sorted.capacity()) * size_of::<f64>()
    }

    pub fn feed(&mut self, spec: &RobustSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if x.abs() > MAX_LEARNED {
            // Judged against the window, never kept in it (see `baseline`).
            let score = self.score(spec, x);
            return (self.buf.len() >= spec.window).then_some(Verdict {
                ts,
                anomalous: score.abs() > spec.z,
                value: x,
                score,
                forecast: None,
            });
        }
        if self.buf.len() < spec.window {
            self.insert(x);
            return None;
        }
        let score = self.score(spec, x);
        let anomalous = score.abs() > spec.z;
        let learn = match spec.learn {
            Learn::All => true,
            Learn::ExcludeAnomalies => !anomalous,
            Learn::Frozen => false,
        };
        if learn {
            if let Some(old) = self.buf.pop_front() {
                let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
                self.sorted.remove(at);
            }
            self.insert(x);
        }
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }

    fn insert(&mut self, x: f64) {
        self.step.observe(x);
        self.buf.push_back(x);
        let at = self.sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        self.sorted.insert(at, x);
    }

    /// `(x − median) / σ̂` with `σ̂ = MAD / 0.6745`, floored like every spread (see
    /// `baseline`'s noise floor).
    fn score(&self, spec: &RobustSpec, x: f64) -> f64 {
        let v = &self.sorted;
        let n = v.len();
        let med = median_sorted(v);
        let mut mad = mad_sorted(v, med);
        if mad == 0.0 {
            // More than half the window is one value (a quantised sensor at rest): fall back
            // to the mean absolute deviation, scaled to estimate σ the same way.
            let mean_ad = v.iter().map(|y| (y - med).abs()).sum::<f64>() / n as f64;
            mad = mean_ad * 1.2533 * MAD_SCALE;
        }
        let sigma = (mad / MAD_SCALE).max(spec.floor.sigma(self.step.min, med));
        finite_score((x - med) / sigma)
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of `|v - med|` for sorted `v`: the distances on each side of `med` are
/// themselves sorted (growing outwards), so the k-th smallest is found by merging the two
/// runs from the middle, O(n / 2) with no allocation.
fn mad_sorted(v: &[f64], med: f64) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let split = v.partition_point(|&y| y < med);
    let (mut lo, mut hi) = (split, split); // next candidates: v[lo - 1] below, v[hi] above
    let mut next = || {
        let below = (lo > 0).then(|| med - v[lo - 1]);
        let above = (hi < n).then(|| v[hi] - med);
        match (below, above) {
            (Some(b), Some(a)) if b <= a => {
                lo -= 1;
                b
            }
            (_, Some(a)) => {
                hi += 1;
                a
            }
            (Some(b), None) => {
                lo -= 1;
                b
            }
            (None, None) => f64::NAN,
        }
    };
    let k = n / 2;
    let mut prev = f64::NAN;
    for _ in 0..k {
        prev = next();
    }
    let kth = next();
    if n % 2 == 1 { kth } else { (prev + kth) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious way: sort, take the middle; the same for the distances.
    fn brute(v: &[f64]) -> (f64, f64) {
        let med = |mut w: Vec<f64>| {
            w.sort_by(f64::total_cmp);
            let n = w.len();
            if n % 2 == 1 {
                w[n / 2]
            } else {
                (w[n / 2 - 1] + w[n / 2]) / 2.0
            }
        };
        let m = med(v.to_vec());
        (m, med(v.iter().map(|x| (x - m).abs()).collect()))
    }

    #[test]
    fn median_and_mad_of_sorted_windows_match_sorting() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for n in 1..60 {
            for _ in 0..20 {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Few distinct values, so ties and a zero MAD are common.
                        (x % 7) as f64 - (x % 3) as f64 * 0.5
                    })
                    .collect();
                let (m, mad) = brute(&v);
                v.sort_by(f64::total_cmp);
                assert_eq!(median_sorted(&v), m, "{v:?}");
                assert_eq!(mad_sorted(&v, m), mad, "{v:?}");
            }
        }
        assert!(median_sorted(&[]).is_nan());
    }
}
