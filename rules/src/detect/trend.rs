//! Predictive maintenance: when will this series reach its limit, if the trend goes on?
//!
//! `trend` fits a least-squares line to the inputs of the last `over` (at most `points` of
//! them, oldest dropped first) and extrapolates it to its limit (`above: 90` for a value
//! that must stay under 90, `below: 0.5` for one that must stay over 0.5): the predicted time to
//! threshold, with the fit's R² as its quality, goes out as an [`crate::EventKind::Prediction`]
//! with every input, and the alert is raised while that time is under `horizon` and the fit
//! explains at least `min_r2` of the variance ("bearing temperature reaches 90 °C in less than
//! 48 h"). A line heading away from the limit, or flat, predicts never (infinity); a fitted
//! value already past it predicts 0. At least 5 inputs are needed for a prediction.
//!
//! Least squares over a window rather than Holt's method because its fit quality (R²) is a
//! number a maintenance planner can read, and its window is a duration rather than a
//! smoothing constant. The fit is recomputed two-pass from the buffer on each input —
//! O(points), exact, no drift from adding and removing running sums — which is why a
//! windowed rule (one input per window) is the usual way to run it.

use std::collections::VecDeque;

use super::Verdict;

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
}

/// Inputs needed before a prediction is made.
pub(crate) const MIN_POINTS: usize = 5;

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
}

#[derive(Debug, Clone, Default, PartialEq)]
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
        if self.buf.len() < MIN_POINTS {
            return None;
        }
        let f = fit(&self.buf, ts)?;
        let seconds = time_to(f.now, f.slope, spec.threshold, spec.rising);
        let anomalous = seconds < spec.horizon as f64 / 1e6 && f.r2 >= spec.min_r2;
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score: seconds,
            forecast: Some(super::Note::Forecast(Forecast {
                threshold: spec.threshold,
                seconds,
                slope: f.slope,
                r2: f.r2,
                points: u32::try_from(self.buf.len()).unwrap_or(u32::MAX),
            })),
        })
    }
}

struct Fit {
    slope: f64,
    /// The fitted value at the newest input's time.
    now: f64,
    r2: f64,
}

/// Two-pass least squares of value on time (seconds from the newest input, so the numbers
/// stay small). `None` when every input has the same timestamp.
fn fit(buf: &VecDeque<(i64, f64)>, now: i64) -> Option<Fit> {
    let n = buf.len() as f64;
    let t = |ts: i64| ts.saturating_sub(now) as f64 / 1e6;
    let mt = buf.iter().map(|&(ts, _)| t(ts)).sum::<f64>() / n;
    let mx = buf.iter().map(|&(_, x)| x).sum::<f64>() / n;
    let (mut stt, mut stx, mut sxx) = (0.0, 0.0, 0.0);
    for &(ts, x) in buf {
        let (dt, dx) = (t(ts) - mt, x - mx);
        stt += dt * dt;
        stx += dt * dx;
        sxx += dx * dx;
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = stx / stt;
    // A perfectly flat series is perfectly explained by its (flat) line.
    let r2 = if sxx > 0.0 {
        (stx * stx / (stt * sxx)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(Fit {
        slope,
        now: mx + slope * (0.0 - mt),
        r2,
    })
}

/// Seconds until the line `now + slope · s` reaches `threshold` from below (`rising`) or
/// from above: 0 when already there or past it, infinity when flat or heading away.
fn time_to(now: f64, slope: f64, threshold: f64, rising: bool) -> f64 {
    let (past, towards) = if rising {
        (now >= threshold, slope > 0.0)
    } else {
        (now <= threshold, slope < 0.0)
    };
    if past {
        0.0
    } else if towards {
        (threshold - now) / slope
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_threshold() {
        assert_eq!(time_to(80.0, 0.5, 90.0, true), 20.0);
        assert_eq!(time_to(80.0, -0.5, 70.0, false), 20.0);
        assert_eq!(time_to(80.0, -0.5, 90.0, true), f64::INFINITY);
        assert_eq!(time_to(80.0, 0.0, 90.0, true), f64::INFINITY);
        assert_eq!(
            time_to(95.0, -0.5, 90.0, true),
            0.0,
            "past a high limit, even falling"
        );
        assert_eq!(time_to(65.0, 0.5, 70.0, false), 0.0, "below a low limit");
        assert_eq!(time_to(95.0, -0.5, 90.0, false), 10.0);
    }
}
