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
//!   spike does not inflate the variance it is judged by and a lasting shift keeps alerting
//!   until the signal comes back (or the rule is changed);
//! * `frozen`: the warm-up figures are kept for good (a fixed reference, as in textbook
//!   control charts).

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

/// How a baseline learns, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BaselineSpec {
    /// Values learned before the first verdict; ≥ 2.
    pub warmup: u32,
    pub learn: Learn,
}

impl BaselineSpec {
    fn alpha(self) -> f64 {
        2.0 / (f64::from(self.warmup) + 1.0)
    }
}

/// Mean and variance of what has been learned. 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Baseline {
    n: u32,
    mean: f64,
    /// During warm-up Welford's sum of squared deviations; after it, the variance.
    var: f64,
}

impl Baseline {
    pub fn ready(&self, spec: BaselineSpec) -> bool {
        self.n >= spec.warmup
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The standard deviation, never zero: a perfectly flat warm-up would otherwise make
    /// every later value infinitely far off (or 0/0). The floor is far below any sensor's
    /// resolution, so on such a signal the first real change still scores very high.
    pub fn sigma(&self) -> f64 {
        let floor = 1e-9 * self.mean.abs().max(1.0);
        self.var.max(0.0).sqrt().max(floor)
    }

    /// Learns `x` (finite) unless the rule's `learn` mode leaves it out.
    pub fn learn(&mut self, spec: BaselineSpec, x: f64, anomalous: bool) {
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
        };
        let mut b = Baseline::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            assert!(!b.ready(spec));
            b.learn(spec, x, false);
        }
        assert!(b.ready(spec));
        assert!((b.mean() - 2.5).abs() < 1e-12);
        assert!((b.sigma() - 1.25f64.sqrt()).abs() < 1e-12);
        b.learn(spec, 100.0, false);
        assert!((b.mean() - 2.5).abs() < 1e-12);
    }

    #[test]
    fn exclude_anomalies_skips_only_anomalies() {
        let spec = BaselineSpec {
            warmup: 2,
            learn: Learn::ExcludeAnomalies,
        };
        let mut b = Baseline::default();
        b.learn(spec, 0.0, false);
        b.learn(spec, 2.0, false);
        b.learn(spec, 1000.0, true);
        assert_eq!(b.mean(), 1.0);
        b.learn(spec, 4.0, false);
        assert!(b.mean() > 1.0);
    }

    #[test]
    fn flat_warmup_has_a_tiny_nonzero_sigma() {
        let spec = BaselineSpec {
            warmup: 3,
            learn: Learn::All,
        };
        let mut b = Baseline::default();
        for _ in 0..3 {
            b.learn(spec, 5.0, false);
        }
        assert!(b.sigma() > 0.0 && b.sigma() < 1e-6);
    }
}
