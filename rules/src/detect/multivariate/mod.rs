//! `multivariate`: one detector over several metrics of one device (`group_by: device`),
//! scoring the *joint* state: are these sensors still related the way this machine relates
//! them?
//!
//! A pump that speeds up draws more current, moves more water and shakes a little more: every
//! sensor moves, and a per-sensor detector raises on each of them. What is abnormal is a
//! sensor leaving the others behind — current up without flow, vibration up at the same
//! speed. This detector learns how the metrics co-vary over the machine's operating range and
//! scores how far each window's state lies from it.
//!
//! # The method, and why this one
//!
//! Each closed window gives a vector `x` of per-metric window means. Each metric is
//! standardised online and robustly: `z_i = (x_i − loc_i) / max(σ_i, min_sigma_i)`, where
//! `loc` and `σ` (1.2533 × the mean absolute deviation) are exponentially weighted, the
//! update of each is clipped at 3σ (a Huber-type step, so one wild window cannot drag them),
//! and `min_sigma` is the sensor's noise floor in its own unit, so a quantised or stuck
//! sensor can never give an infinite or 1000σ score. The score is the **Mahalanobis distance
//! with a shrinkage covariance**:
//!
//! ```text
//! C = (1 − λ)·S + λ·diag(S) + diag(f²),  f_i = min_sigma_i / σ_i,   D² = zᵀ C⁻¹ z
//! ```
//!
//! with `S` the exponentially weighted covariance of `z`. The contribution of metric `i` is
//! reconstruction-based (Alcala & Qin, 2009): `c_i = (C⁻¹z)_i² / (C⁻¹)_ii`, how much `D²`
//! would fall if that metric alone were replaced by the value the others imply. It is never
//! negative, and when one sensor alone moved its contribution is the whole `D²` — unlike the
//! additive split `z_i·(C⁻¹z)_i`, which on correlated sensors often blames a bystander (we
//! measured exactly that: a current fault blamed on flow).
//!
//! Chosen over Hotelling T² plus the SPE/Q residual of an online PCA because, for the
//! handful of metrics a machine has (m ≤ 8), the full covariance is small (m² numbers) and a
//! Cholesky solve per window is ~m³/6 ≈ 90 multiply-adds, while PCA needs an online
//! eigen-decomposition (more code, more numerical care) *and* a number of retained
//! components — one more constant with no physical meaning. With all components kept, T²
//! and SPE together are this D²: directions the learned data barely spans (the
//! decorrelations) get a large weight 1/eigenvalue. Shrinkage bounds that weight: λ pulls
//! the correlations toward zero so a direction never seen during learning is not
//! infinitely sensitive, and `f²` says no direction can be quieter than the sensors' own
//! noise floor. Both keep `C` positive definite, so the solve cannot fail and every
//! score is finite. The noise floor is the regulariser that carries meaning (D² of a
//! deviation of k floors in one sensor, against everything learned, is k²), so `shrink`
//! defaults to 0: shrinking toward the diagonal adds λ to every eigenvalue of a covariance
//! whose decorrelation directions are ~10⁻³, and with λ = 0.1 a 3 A current fault on a pump
//! whose current spans 10 A of operating range went unseen.
//!
//! # Learning
//!
//! The first `warmup` windows only learn — the exact mean and covariance, equal weights —
//! and no verdict is given. After that,
//! `learn:` decides: `exclude_anomalies` (default) keeps learning with weight `1/horizon`
//! from windows not judged anomalous (so a slow fault cannot teach the detector that it is
//! normal), `all` learns from every window, `frozen` stops learning after the warm-up (a
//! reference learned from a known-good period). A window missing any metric is skipped (no
//! verdict, no learning): the `missing` detector is the one that reports a silent sensor.
//!
//! # Memory
//!
//! Per device: the window sums and counts, `loc`, `σ`, the last contributions and an 8×8
//! covariance, in one boxed [`State`] of a fixed size (at most [`MAX_METRICS`] metrics):
//! `size_of::<State>()` = 848 bytes, whatever m is (asserted by a test); with the group's
//! window and slot, 1,151 bytes per 6-metric device (`cargo bench -p weir-rules --bench device`).

#![expect(
    clippy::needless_range_loop,
    reason = "index loops read like the matrix formulas they implement"
)]

mod linalg;
pub(crate) mod spec;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use super::Verdict;
use super::baseline::Learn;
use crate::event::SeriesId;

/// The most metrics one multivariate rule may name (the state is sized for it).
pub(crate) const MAX_METRICS: usize = 8;

/// Clip of the standardised step when learning (a Huber-type update).
const CLIP: f64 = 3.0;
/// σ of a Gaussian from its mean absolute deviation: √(π/2).
const MAD_TO_SIGMA: f64 = 1.253_314_137_315_500_3;
/// No score above this is reported (a window 10⁶ noise floors off is "very far" already).
const MAX_SCORE: f64 = 1e12;

/// A validated `multivariate:` section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    /// The metrics, in the order written (that of contributions in events).
    pub metrics: Box<[Arc<str>]>,
    /// Each metric's noise floor for σ, in its unit.
    pub min_sigma: Box<[f64]>,
    /// Raise when D² exceeds this, clear when it falls to `clear` or below.
    pub raise: f64,
    pub clear: f64,
    /// Windows learned before the first verdict.
    pub warmup: u32,
    /// After warm-up, each learned window weighs `1/horizon` (the memory, in windows).
    pub horizon: u32,
    /// Shrinkage of the correlations toward zero, in [0, 1).
    pub shrink: f64,
    pub learn: Learn,
}

/// One device's state. Fixed size, boxed in [`super::Detector`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// Series of the device feeding each metric (`u32::MAX`: none yet), by metric index.
    members: [u32; MAX_METRICS],
    /// The open window's per-metric sums and counts.
    sum: [f64; MAX_METRICS],
    count: [u32; MAX_METRICS],
    loc: [f64; MAX_METRICS],
    /// Mean absolute deviation (σ / 1.2533).
    mad: [f64; MAX_METRICS],
    /// Covariance of the standardised vector, row-major `MAX_METRICS²`.
    #[serde(with = "crate::snapshot::array")]
    cov: [f64; MAX_METRICS * MAX_METRICS],
    /// The last judged window's contributions.
    contrib: [f64; MAX_METRICS],
    /// Windows learned.
    learned: u32,
    /// Windows skipped because a metric had no sample.
    pub incomplete: u32,
    alarm: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            members: [u32::MAX; MAX_METRICS],
            sum: [0.0; MAX_METRICS],
            count: [0; MAX_METRICS],
            loc: [0.0; MAX_METRICS],
            mad: [0.0; MAX_METRICS],
            cov: [0.0; MAX_METRICS * MAX_METRICS],
            contrib: [0.0; MAX_METRICS],
            learned: 0,
            incomplete: 0,
            alarm: false,
        }
    }
}

impl State {
    /// Tells the state that `series` carries `metric`; ignored unless the rule names it.
    pub fn register(&mut self, spec: &Spec, series: SeriesId, metric: &str) {
        if let Some(i) = spec.metrics.iter().position(|m| &**m == metric) {
            self.members[i] = series.0;
        }
    }

    /// One sample accepted by the group's open window.
    #[inline]
    pub fn observe(&mut self, series: SeriesId, value: f64) {
        if let Some(i) = self.members.iter().position(|&m| m == series.0)
            && value.is_finite()
        {
            self.sum[i] += value;
            self.count[i] += 1;
        }
    }

    /// The window closed at `ts`: judge and learn from its per-metric means.
    pub fn close(&mut self, spec: &Spec, ts: i64) -> Option<Verdict> {
        let m = spec.metrics.len();
        let complete = self.count[..m].iter().all(|&c| c > 0);
        let mut x = [0.0; MAX_METRICS];
        for i in 0..m {
            x[i] = self.sum[i] / f64::from(self.count[i].max(1));
        }
        self.sum = [0.0; MAX_METRICS];
        self.count = [0; MAX_METRICS];
        if !complete {
            self.incomplete = self.incomplete.saturating_add(1);
            return None;
        }
        if self.learned < spec.warmup {
            self.warm(spec, &x);
            return None;
        }
        let (z, sigma) = self.standardise(spec, &x);
        let c = self.shrunk(spec, &sigma);
        let chol = linalg::Cholesky::new(&c, m);
        let y = chol.solve(&z);
        let inv = chol.inverse_diagonal();
        let mut d2 = 0.0;
        for i in 0..m {
            d2 += z[i] * y[i];
            // Reconstruction-based: how much D² falls if metric i alone is replaced by the
            // value the others imply, y_i² / (C⁻¹)_ii.
            self.contrib[i] = clamp(y[i] * y[i] / inv[i].max(f64::MIN_POSITIVE));
        }
        let d2 = clamp(d2);
        self.alarm = if self.alarm {
            d2 > spec.clear
        } else {
            d2 > spec.raise
        };
        let learn = match spec.learn {
            Learn::All => true,
            Learn::ExcludeAnomalies => !self.alarm,
            Learn::Frozen => false,
        };
        if learn {
            self.learn(spec, &x, 1.0 / f64::from(spec.horizon));
        }
        Some(Verdict {
            ts,
            anomalous: self.alarm,
            value: d2,
            score: d2,
            forecast: None,
        })
    }

    /// The last judged window's contributions, named, in the rule's metric order.
    pub fn contributions(&self, spec: &Spec) -> Vec<(Arc<str>, f64)> {
        spec.metrics
            .iter()
            .zip(self.contrib)
            .map(|(name, c)| (Arc::clone(name), c))
            .collect()
    }

    /// `z` and the floored σ of each metric for the window means `x`.
    fn standardise(
        &self,
        spec: &Spec,
        x: &[f64; MAX_METRICS],
    ) -> ([f64; MAX_METRICS], [f64; MAX_METRICS]) {
        let mut z = [0.0; MAX_METRICS];
        let mut sigma = [1.0; MAX_METRICS];
        for i in 0..spec.metrics.len() {
            sigma[i] = (self.mad[i] * MAD_TO_SIGMA).max(spec.min_sigma[i]);
            z[i] = (x[i] - self.loc[i]) / sigma[i];
        }
        (z, sigma)
    }

    /// `C = (1 − λ)·S + λ·diag(S) + diag(f²)`.
    fn shrunk(&self, spec: &Spec, sigma: &[f64; MAX_METRICS]) -> [f64; MAX_METRICS * MAX_METRICS] {
        let m = spec.metrics.len();
        let mut c = [0.0; MAX_METRICS * MAX_METRICS];
        for i in 0..m {
            for j in 0..m {
                let s = self.cov[i * MAX_METRICS + j];
                c[i * MAX_METRICS + j] = if i == j {
                    let f = spec.min_sigma[i] / sigma[i];
                    s + f * f
                } else {
                    (1.0 - spec.shrink) * s
                };
            }
        }
        c
    }

    /// Warm-up: exact running mean and co-moments (Welford) of the raw means; at its last
    /// window they become `loc`, `σ` and the covariance of `z`.
    fn warm(&mut self, spec: &Spec, x: &[f64; MAX_METRICS]) {
        let m = spec.metrics.len();
        self.learned += 1;
        let n = f64::from(self.learned);
        let mut delta = [0.0; MAX_METRICS];
        for i in 0..m {
            delta[i] = x[i] - self.loc[i];
            self.loc[i] += delta[i] / n;
        }
        for i in 0..m {
            for j in 0..m {
                self.cov[i * MAX_METRICS + j] += delta[i] * (x[j] - self.loc[j]);
            }
        }
        if self.learned < spec.warmup {
            return;
        }
        let mut sigma = [1.0; MAX_METRICS];
        for i in 0..m {
            let sd = (self.cov[i * MAX_METRICS + i] / n).max(0.0).sqrt();
            self.mad[i] = sd / MAD_TO_SIGMA;
            sigma[i] = sd.max(spec.min_sigma[i]);
        }
        for i in 0..m {
            for j in 0..m {
                self.cov[i * MAX_METRICS + j] /= n * sigma[i] * sigma[j];
            }
        }
    }

    /// After warm-up: moves `loc`, `mad` and `cov` toward the window `x` with weight `w`,
    /// each step clipped at 3σ.
    fn learn(&mut self, spec: &Spec, x: &[f64; MAX_METRICS], w: f64) {
        let m = spec.metrics.len();
        // Standardised by the σ before this window, so one window cannot blow up its own
        // yardstick.
        let (z, sigma) = self.standardise(spec, x);
        let mut zc = [0.0; MAX_METRICS];
        for i in 0..m {
            zc[i] = z[i].clamp(-CLIP, CLIP);
            let dev = (x[i] - self.loc[i]).abs().min(CLIP * sigma[i]);
            self.mad[i] += w * (dev - self.mad[i]);
            self.loc[i] += w * zc[i] * sigma[i];
        }
        for i in 0..m {
            for j in 0..m {
                let k = i * MAX_METRICS + j;
                self.cov[k] += w * (zc[i] * zc[j] - self.cov[k]);
            }
        }
        self.learned = self.learned.saturating_add(1);
    }
}

fn clamp(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-MAX_SCORE, MAX_SCORE)
    }
}
