//! Plausibility checks on the signal itself: too fast, not moving, impossible.
//!
//! * `rate`: `|Δvalue / Δt|` between consecutive inputs, per second, above `max` (a tank
//!   cannot fill at 50 %/s; a jump like that is a sensor or wiring fault). The score is the
//!   signed rate. Two inputs with the same timestamp give no verdict.
//! * `flatline`: the input has stayed within a band of `epsilon` (max − min of the run) for
//!   at least `for`: a stuck sensor or a frozen register repeats its last value forever.
//!   The score is how long, in seconds. `epsilon: 0` means exactly the same value.
//! * `range`: the value is NaN, infinite, or outside `[min, max]` (either bound optional).
//!   This is the one detector that sees NaN samples, which the engine otherwise drops before
//!   any window (and counts): a device reporting NaN is itself a fault worth an alert.

use super::Verdict;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateSpec {
    /// Per second; > 0.
    pub max: f64,
}

/// 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RateState {
    /// The previous input; `ts == i64::MIN` before the first.
    ts: i64,
    x: f64,
}

impl Default for RateState {
    fn default() -> Self {
        RateState {
            ts: i64::MIN,
            x: f64::NAN,
        }
    }
}

impl RateState {
    pub fn feed(&mut self, spec: &RateSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        let (pts, px) = (self.ts, self.x);
        self.ts = ts;
        self.x = x;
        if pts == i64::MIN || ts <= pts {
            return None;
        }
        let rate = (x - px) / (ts.saturating_sub(pts) as f64 / 1e6);
        Some(Verdict {
            ts,
            anomalous: rate.abs() > spec.max,
            value: x,
            score: rate,
            forecast: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FlatSpec {
    /// ≥ 0.
    pub epsilon: f64,
    /// µs; > 0.
    pub hold: i64,
}

/// 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FlatState {
    /// When the current run started; `i64::MIN` before the first input.
    since: i64,
    lo: f64,
    hi: f64,
}

impl Default for FlatState {
    fn default() -> Self {
        FlatState {
            since: i64::MIN,
            lo: f64::NAN,
            hi: f64::NAN,
        }
    }
}

impl FlatState {
    pub fn feed(&mut self, spec: &FlatSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        let (lo, hi) = (self.lo.min(x), self.hi.max(x));
        if self.since == i64::MIN || hi - lo > spec.epsilon {
            self.since = ts;
            self.lo = x;
            self.hi = x;
        } else {
            self.lo = lo;
            self.hi = hi;
        }
        let flat_for = ts.saturating_sub(self.since);
        Some(Verdict {
            ts,
            anomalous: flat_for >= spec.hold,
            value: x,
            score: flat_for as f64 / 1e6,
            forecast: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RangeSpec {
    /// `-inf` / `+inf` when not given.
    pub min: f64,
    pub max: f64,
}

impl RangeSpec {
    pub fn feed(&self, ts: i64, x: f64) -> Verdict {
        Verdict {
            ts,
            anomalous: !x.is_finite() || x < self.min || x > self.max,
            value: x,
            score: f64::NAN,
            forecast: None,
        }
    }
}
