//! The online baseline the statistical detectors compare against: what "normal" looks like.
//!
//! It learns in two phases. The first `warmup` values give an exact mean and variance
//! (Welford), and no verdict is given meanwhile: a detector that alerted on its third sample
//! would be judging against noise. After that the baseline follows the signal with an
//! exponentially weighted mean and variance (`alpha = 2 / (warmup + 1)`, the EWMA whose
//! centre of mass matches a `warmup`-sample moving average), so it adapts to slow drift in
//! O(1) memory and O(1) work per value.
//!
//! What it learns from after warm-up is the rule's choice (`learn:`):
//! * `all`: every value, so a lasting shift becomes the new normal after a few `warmup`s;
//! * `exclude_anomalies` (default): values the detector called anomalous are left out, so a
//!   spike does not inflate the variance it is judged by (`zscore` then keeps alerting on a
//!   lasting shift until the signal comes back; the control charts restart after an alarm
//!   instead, see `chart`);
//! * `frozen`: the warm-up figures are kept for good (a fixed reference, as in textbook
//!   control charts), or the figures of a baseline file (`baseline: <file>`, module
//!   `learned`), which makes a detector start ready and frozen.
//!
//! ## Noise floor
//!
//! A spread learned from a quantised or constant sensor can be zero (a flow meter with 1 l/min
//! steps that sat on one step through its warm-up), and a z-score against it is 1000σ or ∞ at
//! the first step. Every statistical detector therefore divides by `max(σ̂, floor)`, where the
//! floor ([`Floor`]) is the larger of:
//! * `min_sigma`, in the sensor's units, when the rule gives it;
//! * `resolution / √12` when the rule gives the sensor's `resolution` (its smallest step):
//!   rounding to a step `q` adds an error uniform on `[−q/2, q/2]`, whose standard deviation
//!   is `q/√12 ≈ 0.29 q`. That is the noise a quantised sensor has and hides, so one step
//!   scores `√12 ≈ 3.5` — under every default limit — and two steps about 7;
//! * without `resolution`, the same bound from the *learned* step: the smallest non-zero
//!   difference between consecutive values the baseline learned from (8 bytes more), so a
//!   sensor that dithered between two steps while learning gets the same floor as if its
//!   resolution had been written down;
//! * for a sensor that never moved while learning (no step to learn from),
//!   `0.001 · max(|μ|, 1)`: a tenth of a percent of its level, the accuracy class of a good
//!   industrial transmitter. Its first move then scores high (0.1 on a level of 3 is 33σ)
//!   but finite; give `resolution` or `min_sigma` to say what a step of that sensor means.
//!
//! Scores are finally clamped to ±[`MAX_SCORE`], and values beyond ±[`MAX_LEARNED`] are judged
//! but never learned (their squares would overflow the variance): every score in every record
//! is a finite number.

/// Which values the baseline learns from after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learn {
    All,
    ExcludeAnomalies,
    Frozen,
}

impl Learn {
    pub const ALL: [Learn; 3] = [Learn::All, Learn::ExcludeAnomalies, Learn::Frozen];

    pub const fn as_str(self) -> &'static str {
        match self {
            Learn::All => "all",
            Learn::ExcludeAnomalies => "exclude_anomalies",
            Learn::Frozen => "frozen",
        }
    }
}

/// Scores saturate here: far beyond any limit a rule sets, and finite in every record.
pub(crate) const MAX_SCORE: f64 = 1e9;

/// Values beyond this magnitude are judged but not learned: their squares would overflow.
pub(crate) const MAX_LEARNED: f64 = 1e150;

/// The floor of a never-moving sensor, relative to its level (see the module docs).
const FALLBACK_REL: f64 = 1e-3;

/// `√12`: the standard deviation of rounding to a step `q` is `q / √12`.
const SQRT_12: f64 = 3.464_101_615_137_754_6;

/// Clamps a score into ±[`MAX_SCORE`]; NaN (only from an input that is itself not a
/// number, which detectors skip before scoring) becomes 0.
pub(crate) fn finite_score(score: f64) -> f64 {
    if score.is_nan() {
        0.0
    } else {
        score.clamp(-MAX_SCORE, MAX_SCORE)
    }
}

/// The spread floor a rule sets (`min_sigma`, `resolution`); 0 means not given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Floor {
    pub min_sigma: f64,
    pub resolution: f64,
}

impl Floor {
    /// The floor for a series whose learned step is `step` (∞ when it never moved) and whose
    /// level is `level`.
    pub fn sigma(self, step: f64, level: f64) -> f64 {
        let q = if self.resolution > 0.0 {
            self.resolution
        } else {
            step
        };
        let from_q = if q.is_finite() {
            q / SQRT_12
        } else if self.min_sigma > 0.0 {
            0.0
        } else {
            FALLBACK_REL * level.abs().max(1.0)
        };
        from_q.max(self.min_sigma)
    }
}

/// The smallest non-zero step between consecutive learned values: a sensor's resolution as
/// its data shows it. 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Step {
    last: f64,
    /// ∞ until two different values were learned.
    pub min: f64,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            last: f64::NAN,
            min: f64::INFINITY,
        }
    }
}

impl Step {
    pub fn observe(&mut self, x: f64) {
        let d = (x - self.last).abs();
        if d > 0.0 && d < self.min {
            self.min = d;
        }
        self.last = x;
    }
}

/// How a baseline learns, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BaselineSpec {
    /// Values learned before the first verdict; ≥ 2.
    pub warmup: u32,
    pub learn: Learn,
    pub floor: Floor,
}

impl BaselineSpec {
    fn alpha(self) -> f64 {
        2.0 / (f64::from(self.warmup) + 1.0)
    }
}

/// Mean and variance of what has been learned, and the smallest step. 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Baseline {
    n: u32,
    mean: f64,
    /// During warm-up Welford's sum of squared deviations; after it, the variance.
    var: f64,
    step: Step,
}

impl Baseline {
    pub fn ready(&self, spec: BaselineSpec) -> bool {
        self.n >= spec.warmup
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Values learned so far in the warm-up (it stops counting once ready).
    pub fn count(&self) -> u32 {
        self.n
    }

    /// The standard deviation, never below the rule's noise floor (module docs).
    pub fn sigma(&self, spec: BaselineSpec) -> f64 {
        let floor = spec.floor.sigma(self.step.min, self.mean);
        self.var.max(0.0).sqrt().max(floor)
    }

    /// Starts ready, from figures learned elsewhere (module `learned`).
    pub fn seed(spec: BaselineSpec, st: &crate::learned::Stats) -> Baseline {
        Baseline {
            n: spec.warmup,
            mean: st.mean,
            var: st.sigma * st.sigma,
            step: Step {
                last: f64::NAN,
                min: st.step.unwrap_or(f64::INFINITY),
            },
        }
    }

    /// Starts learning afresh (warm-up included), keeping the learned step: the sensor's
    /// resolution does not change with the process level.
    pub fn restart(&mut self) {
        *self = Baseline {
            step: self.step,
            ..Baseline::default()
        };
    }

    /// Learns `x` (finite) unless the rule's `learn` mode leaves it out.
    pub fn learn(&mut self, spec: BaselineSpec, x: f64, anomalous: bool) {
        if x.abs() > MAX_LEARNED {
            return;
        }
        let learns = match spec.learn {
            Learn::All => true,
            Learn::ExcludeAnomalies => !anomalous,
            Learn::Frozen => false,
        };
        if self.n < spec.warmup || learns {
            self.step.observe(x);
        }
        if self.n < spec.warmup {
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / f64::from(self.n);
            self.var += d * (x - self.mean);
            if self.n == spec.warmup {
                self.var /= f64::from(self.n);
            }
            return;
        }
        match spec.learn {
            Learn::Frozen => {}
            Learn::ExcludeAnomalies if anomalous => {}
            Learn::All | Learn::ExcludeAnomalies => {
                // West's incremental EWMA of mean and variance.
                let a = spec.alpha();
                let d = x - self.mean;
                let inc = a * d;
                self.mean += inc;
                self.var = (1.0 - a) * (self.var + d * inc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_exact_then_frozen_stays() {
        let spec = BaselineSpec {
            warmup: 4,
            learn: Learn::Frozen,
            floor: Floor::default(),
        };
        let mut b = Baseline::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            assert!(!b.ready(spec));
            b.learn(spec, x, false);
        }
        assert!(b.ready(spec));
        assert!((b.mean() - 2.5).abs() < 1e-12);
        assert!((b.sigma(spec) - 1.25f64.sqrt()).abs() < 1e-12);
        b.learn(spec, 100.0, false);
        assert!((b.mean() - 2.5).abs() < 1e-12);
    }

    #[test]
    fn exclude_anomalies_skips_only_anomalies() {
        let spec = BaselineSpec {
            warmup: 2,
            learn: Learn::ExcludeAnomalies,
            floor: Floor::default(),
        };
        let mut b = Baseline::default();
        b.learn(spec, 0.0, false);
        b.learn(spec, 2.0, false);
        b.learn(spec, 1000.0, true);
        assert_eq!(b.mean(), 1.0);
        b.learn(spec, 4.0, false);
        assert!(b.mean() > 1.0);
    }

    fn spec(warmup: u32, floor: Floor) -> BaselineSpec {
        BaselineSpec {
            warmup,
            learn: Learn::All,
            floor,
        }
    }

    #[test]
    fn a_flat_warmup_falls_back_to_a_tenth_of_a_percent_of_the_level() {
        let spec = spec(3, Floor::default());
        let mut b = Baseline::default();
        for _ in 0..3 {
            b.learn(spec, 5.0, false);
        }
        assert_eq!(b.sigma(spec), 0.005);
        let given = BaselineSpec {
            floor: Floor {
                min_sigma: 0.5,
                resolution: 0.0,
            },
            ..spec
        };
        assert_eq!(b.sigma(given), 0.5);
    }

    #[test]
    fn a_quantised_warmup_floors_sigma_at_its_step_over_root_12() {
        let spec = spec(20, Floor::default());
        let mut b = Baseline::default();
        // 19 values on one step, one on the next: σ̂ = 0.22 but the step says 1/√12.
        for i in 0..20 {
            b.learn(spec, if i == 4 { 51.0 } else { 50.0 }, false);
        }
        assert!((b.sigma(spec) - 1.0 / 12f64.sqrt()).abs() < 1e-12);
        let res = BaselineSpec {
            floor: Floor {
                min_sigma: 0.0,
                resolution: 2.0,
            },
            ..spec
        };
        assert!((b.sigma(res) - 2.0 / 12f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn huge_values_are_not_learned_and_scores_stay_finite() {
        let spec = spec(2, Floor::default());
        let mut b = Baseline::default();
        for x in [1.0, 2.0, 1e300, -1e300] {
            b.learn(spec, x, false);
        }
        assert!(b.mean().is_finite() && b.sigma(spec).is_finite());
        assert_eq!(finite_score(1e300 / b.sigma(spec)), MAX_SCORE);
        assert_eq!(finite_score(f64::NEG_INFINITY), -MAX_SCORE);
    }
}
