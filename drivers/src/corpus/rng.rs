//! The corpus' random numbers: the simulator's SplitMix64 with a normal deviate that needs
//! no `ln` or `cos`, so a seed gives the same bytes on every platform.

use crate::simulator::SplitMix64;

#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64(seed))
    }

    /// A fresh, independent stream derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(SplitMix64(self.0.next_u64()))
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Approximately standard normal: the Irwin–Hall sum of twelve uniforms, minus 6 (mean
    /// 0, variance 1, tails cut at ±6σ). Only additions: exactly rounded everywhere.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}
