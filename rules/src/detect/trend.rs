//! Predictive maintenance: when will this series reach its limit, if the trend goes on?
//!
//! `trend` fits a least-squares line to the inputs of the last `over` (at most `points` of
//! them, oldest dropped first) and extrapolates it to its limit (`above: 90` for a value
//! that must stay under 90, `below: 0.5` for one that must stay over 0.5): the predicted time to
//! threshold, with the fit's R² as its quality, goes out as an [`crate::EventKind::Prediction`]
//! with every input, and the alert is raised while that time is under `horizon` and the fit
//! explains at least `min_r2` of the variance ("bearing temperature reaches 90 °C in less than
//! 48 h"). A line heading away from the limit, or flat, predicts never (infinity); a fitted
//! value already past it predicts 0.
//!
//! `model:` picks the curve (`line`, `quadratic`, `exponential`: see [`super::degradation`]);
//! every prediction carries the fitted level now, the model, its R², and a 90 % interval
//! for the time to threshold from the fit's residuals. `act_on:` says which time the alert
//! compares with `horizon`: the `estimate` (default), the interval's near end (`early`: alarm
//! as soon as failure within the horizon is plausible) or its far end (`late`: only when it is
//! likely even at the slow end of the interval, so noise does not raise it).
//!
//! No prediction before `min_points` inputs (default [`DEFAULT_MIN_POINTS`]): ten per
//! coefficient of the richest model (the quadratic's three), the usual rule of thumb for a
//! regression, and enough that the residual deviation the interval is built on has 27
//! degrees of freedom (its relative error about 1/√54 ≈ 14 %). With 5 points, as before,
//! one noisy reading swung the slope enough to raise alerts hundreds of cycles early.
//!
//! Least squares over a window rather than Holt's method because its fit quality (R²) is a
//! number a maintenance planner can read, and its window is a duration rather than a
//! smoothing constant. The fit is recomputed two-pass from the buffer on each input —
//! O(points), exact, no drift from adding and removing running sums — which is why a
//! windowed rule (one input per window) is the usual way to run it.

use std::collections::VecDeque;

use super::Verdict;
use super::degradation::{self, Model};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    pub threshold: f64,
    /// `above:` (a high limit approached from below) or `below:`.
    pub rising: bool,
    /// Fit window, µs.
    pub over: i64,
    /// Most inputs kept.
    pub points: usize,
    /// Alert when the predicted time is under this, µs.
    pub horizon: i64,
    pub min_r2: f64,
    pub model: Model,
    /// Inputs needed before a prediction is made (≥ [`MIN_POINTS`]).
    pub min_points: usize,
    pub act_on: ActOn,
}

/// Which time to threshold the alert compares with the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActOn {
    Estimate,
    Early,
    Late,
}

impl ActOn {
    pub const ALL: [ActOn; 3] = [ActOn::Estimate, ActOn::Early, ActOn::Late];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActOn::Estimate => "estimate",
            ActOn::Early => "early",
            ActOn::Late => "late",
        }
    }
}

/// The fewest inputs a rule may ask for (`points`, `min_points`).
pub(crate) const MIN_POINTS: usize = 5;
/// Inputs needed before a prediction, unless the rule says otherwise.
pub(crate) const DEFAULT_MIN_POINTS: usize = 30;

/// What a prediction says, carried by its verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Forecast {
    pub threshold: f64,
    /// Seconds from the input's time until the fitted line reaches the threshold.
    pub seconds: f64,
    /// Fitted slope, per second.
    pub slope: f64,
    pub r2: f64,
    pub points: u32,
    /// The fitted value at the input's time.
    pub level: f64,
    /// The 90 % interval of `seconds`: its near and far ends.
    pub early: f64,
    pub late: f64,
    pub model: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    buf: VecDeque<(i64, f64)>,
}

impl State {
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * size_of::<(i64, f64)>()
    }

    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if self.buf.back().is_some_and(|&(t, _)| ts < t) {
            return None; // out of order: the fit needs time to move forward
        }
        let from = ts.saturating_sub(spec.over);
        while self.buf.front().is_some_and(|&(t, _)| t <= from) {
            self.buf.pop_front();
        }
        if self.buf.len() >= spec.points {
            self.buf.pop_front();
        }
        self.buf.push_back((ts, x));
        if self.buf.len() < spec.min_points.max(MIN_POINTS) {
            return None;
        }
        let points: Vec<(f64, f64)> = self
            .buf
            .iter()
            .map(|&(t, x)| (t.saturating_sub(ts) as f64 / 1e6, x))
            .collect();
        let curve = degradation::fit(spec.model, &points)?;
        let at = curve.crossing(spec.threshold, spec.rising);
        let judged = match spec.act_on {
            ActOn::Estimate => at.seconds,
            ActOn::Early => at.early,
            ActOn::Late => at.late,
        };
        let anomalous = judged < spec.horizon as f64 / 1e6 && curve.r2 >= spec.min_r2;
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score: at.seconds,
            forecast: Some(super::Note::Forecast(Forecast {
                threshold: spec.threshold,
                seconds: at.seconds,
                slope: curve.slope(),
                r2: curve.r2,
                points: u32::try_from(self.buf.len()).unwrap_or(u32::MAX),
                level: curve.level(),
                early: at.early,
                late: at.late,
                model: spec.model.as_str(),
            })),
        })
    }
}
