//! Degradation models for `trend`: the curve a wearing part follows, fitted to its recent
//! history, extrapolated to its limit, with an interval for when it gets there.
//!
//! Three models, chosen per rule (`model:`):
//!
//! * `line`: `y = a + b·t`. Wear at a constant rate (abrasion, a filter loading steadily).
//! * `quadratic`: `y = a + b·t + c·t²`. Wear that speeds up or slows down smoothly; the usual
//!   choice when the law is unknown, since it bends without assuming a form.
//! * `exponential`: `ln y = a + b·t` (log-linear). Damage that grows in proportion to itself
//!   (crack growth, bearing spall, insulation breakdown); values must be positive.
//!
//! All three are ordinary least squares (in `ln y` for the exponential), with time measured
//! back from the newest input and scaled by the history's span so that `t²` stays well
//! conditioned. The fit gives:
//!
//! * the **level**: the fitted value now, less noisy than the last reading;
//! * the **time to threshold**: the first time ahead at which the curve reaches the limit
//!   (0 when the level is already past it, infinity when it never does);
//! * a **prediction interval** for that time: the ordinary least-squares prediction band,
//!   the curve ± [`Z_INTERVAL`] · `s` · √(1 + xᵀ(XᵀX)⁻¹x) (`s` the residual standard
//!   deviation, `x` the powers of the future time), reaches the limit at the interval's near
//!   and far ends. The band holds both the noise around the curve and the uncertainty of the
//!   fitted coefficients, so it widens the further ahead it reaches. It assumes the model is
//!   the right one: a wrong model's interval is too narrow (measured in `docs/degradation.md`).
//!   A band that does not reach the limit within [`MAX_SPANS`] times the history's span
//!   gives "never" (infinity);
//! * the **fit quality**: R² in the model's space.

/// Residual standard deviations either side of the curve: the 5 % and 95 % points of a
/// normal error, so the interval is a 90 % one when the residuals are normal.
pub(crate) const Z_INTERVAL: f64 = 1.645;
/// How far ahead the interval's ends are looked for, in spans of the fitted history.
pub(crate) const MAX_SPANS: f64 = 10.0;

/// The curve a rule's `trend` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    Line,
    Quadratic,
    Exponential,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Line, Model::Quadratic, Model::Exponential];

    pub const fn as_str(self) -> &'static str {
        match self {
            Model::Line => "line",
            Model::Quadratic => "quadratic",
            Model::Exponential => "exponential",
        }
    }

    /// Coefficients fitted.
    pub const fn parameters(self) -> usize {
        match self {
            Model::Quadratic => 3,
            Model::Line | Model::Exponential => 2,
        }
    }
}

/// A fitted curve: `g(u) = c[0] + c[1]·u + c[2]·u²` in the model's space, with
/// `u = seconds from now / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Curve {
    pub model: Model,
    coef: [f64; 3],
    /// `(XᵀX)⁻¹` of the fit, for the prediction band.
    cov: [[f64; 3]; 3],
    scale: f64,
    /// Residual standard deviation in the model's space (`ln y` for the exponential).
    pub residual_sd: f64,
    pub r2: f64,
}

/// When the curve reaches a limit, with its interval, in seconds from now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Crossing {
    pub seconds: f64,
    /// The interval's near and far ends (`early ≤ seconds ≤ late`).
    pub early: f64,
    pub late: f64,
}

impl Curve {
    fn g(&self, u: f64) -> f64 {
        self.coef[0] + self.coef[1] * u + self.coef[2] * u * u
    }

    fn back(&self, g: f64) -> f64 {
        match self.model {
            Model::Exponential => g.exp(),
            Model::Line | Model::Quadratic => g,
        }
    }

    /// The fitted value now.
    pub fn level(&self) -> f64 {
        self.back(self.g(0.0))
    }

    /// The fitted rate of change now, per second, in the value's units.
    pub fn slope(&self) -> f64 {
        let dg = self.coef[1] / self.scale;
        match self.model {
            Model::Exponential => self.level() * dg,
            Model::Line | Model::Quadratic => dg,
        }
    }

    /// Half-width of the prediction band at `u`, in the model's space.
    fn band(&self, u: f64) -> f64 {
        let x = [1.0, u, u * u];
        let p = self.model.parameters();
        let q: f64 = (0..p)
            .flat_map(|i| (0..p).map(move |j| (i, j)))
            .map(|(i, j)| x[i] * self.cov[i][j] * x[j])
            .sum();
        Z_INTERVAL * self.residual_sd * (1.0 + q.max(0.0)).sqrt()
    }

    /// When the curve reaches `threshold` from below (`rising`) or above, and the interval.
    pub fn crossing(&self, threshold: f64, rising: bool) -> Crossing {
        let seconds = self.time_to(threshold, rising, 0.0);
        let target = match self.model {
            Model::Exponential if threshold <= 0.0 => {
                let at = if rising { 0.0 } else { f64::INFINITY };
                return Crossing {
                    seconds: at,
                    early: at,
                    late: at,
                };
            }
            Model::Exponential => threshold.ln(),
            Model::Line | Model::Quadratic => threshold,
        };
        let dir = if rising { 1.0 } else { -1.0 };
        let u0 = seconds / self.scale;
        // Rising to a high limit: the upper band gets there first, the lower one last.
        let near = |u: f64| dir * (self.g(u) - target) + self.band(u);
        let far = |u: f64| dir * (self.g(u) - target) - self.band(u);
        let early = first_crossing(near, 0.0, u0.min(MAX_SPANS));
        let late = if u0.is_finite() {
            first_crossing(far, u0, MAX_SPANS.max(u0))
        } else {
            f64::INFINITY
        };
        Crossing {
            seconds,
            early: (early * self.scale).min(seconds),
            late: (late * self.scale).max(seconds),
        }
    }

    /// Seconds until `g + shift` reaches the threshold: 0 when already at or past it,
    /// infinity when it never does.
    fn time_to(&self, threshold: f64, rising: bool, shift: f64) -> f64 {
        let target = match self.model {
            Model::Exponential if threshold <= 0.0 => {
                // A positive curve is always above a limit at or below zero.
                return if rising { 0.0 } else { f64::INFINITY };
            }
            Model::Exponential => threshold.ln(),
            Model::Line | Model::Quadratic => threshold,
        };
        let c0 = self.coef[0] + shift - target;
        let past = if rising { c0 >= 0.0 } else { c0 <= 0.0 };
        if past {
            return 0.0;
        }
        let (b, c) = (self.coef[1], self.coef[2]);
        // The first u > 0 with c0 + b·u + c·u² = 0; since c0 is not past the limit, the
        // first root ahead is the first crossing.
        let u = if c.abs() <= 1e-12 * (b.abs() + c0.abs()) {
            if b != 0.0 { -c0 / b } else { f64::INFINITY }
        } else {
            let disc = b * b - 4.0 * c * c0;
            if disc < 0.0 {
                f64::INFINITY
            } else {
                let r = disc.sqrt();
                let (r1, r2) = ((-b - r) / (2.0 * c), (-b + r) / (2.0 * c));
                [r1, r2]
                    .into_iter()
                    .filter(|u| *u > 0.0)
                    .fold(f64::INFINITY, f64::min)
            }
        };
        if u > 0.0 && u.is_finite() {
            u * self.scale
        } else {
            f64::INFINITY
        }
    }
}

/// Fits `model` to `(seconds from now, value)` points (seconds ≤ 0). `None` when the points
/// cannot determine it: fewer than its parameters, all at one time, or (exponential) a value
/// that is not positive.
pub(crate) fn fit(model: Model, points: &[(f64, f64)]) -> Option<Curve> {
    let p = model.parameters();
    if points.len() < p {
        return None;
    }
    let scale = points
        .iter()
        .map(|&(t, _)| t.abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let y = |v: f64| match model {
        Model::Exponential => v.ln(),
        Model::Line | Model::Quadratic => v,
    };
    if model == Model::Exponential && points.iter().any(|&(_, v)| v <= 0.0) {
        return None;
    }
    // Normal equations for the powers 0..p of u.
    let mut m = [[0.0f64; 4]; 3];
    for &(t, v) in points {
        let u = t / scale;
        let powers = [1.0, u, u * u];
        let yv = y(v);
        for i in 0..p {
            for j in 0..p {
                m[i][j] += powers[i] * powers[j];
            }
            m[i][3] += powers[i] * yv;
        }
    }
    let normal = m;
    let solved = solve(&mut m, p)?;
    let mut coef = [0.0; 3];
    coef[..p].copy_from_slice(&solved[..p]);
    // (XᵀX)⁻¹, column by column, for the prediction band.
    let mut cov = [[0.0; 3]; 3];
    for (k, column) in cov.iter_mut().enumerate().take(p) {
        let mut a = [[0.0f64; 4]; 3];
        for (i, row) in a.iter_mut().enumerate().take(p) {
            row[..p].copy_from_slice(&normal[i][..p]);
            row[3] = if i == k { 1.0 } else { 0.0 };
        }
        // (XᵀX)⁻¹ is symmetric: its k-th column is its k-th row.
        *column = solve(&mut a, p)?;
    }
    let mut curve = Curve {
        model,
        coef,
        cov,
        scale,
        residual_sd: 0.0,
        r2: 1.0,
    };
    let n = points.len() as f64;
    let mean = points.iter().map(|&(_, v)| y(v)).sum::<f64>() / n;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for &(t, v) in points {
        let e = y(v) - curve.g(t / scale);
        ss_res += e * e;
        ss_tot += (y(v) - mean) * (y(v) - mean);
    }
    curve.residual_sd = if points.len() > p {
        (ss_res / (points.len() - p) as f64).sqrt()
    } else {
        0.0
    };
    // A perfectly flat history is perfectly explained by its (flat) curve.
    curve.r2 = if ss_tot > 0.0 {
        (1.0 - ss_res / ss_tot).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(curve)
}

/// The first `u` in `[from, to]` where `f(u) ≥ 0` (`f` continuous): `from` when it already
/// is, infinity when it never is. A grid of 256 steps finds the first bracket, bisection
/// narrows it to a millionth of the range (or to adjacent floats, whichever comes first).
fn first_crossing(f: impl Fn(f64) -> f64, from: f64, to: f64) -> f64 {
    if !(from.is_finite() && to.is_finite()) {
        return f64::INFINITY;
    }
    if f(from) >= 0.0 {
        return from;
    }
    const STEPS: usize = 256;
    let step = (to - from) / STEPS as f64;
    let mut lo = from;
    for i in 1..=STEPS {
        let hi = from + step * i as f64;
        if f(hi) >= 0.0 {
            let mut lo = lo;
            let mut hi = hi;
            // At most 40 halvings (a 10^-12 of the bracket); never loops on adjacent floats.
            for _ in 0..40 {
                let mid = 0.5 * (lo + hi);
                if mid <= lo || mid >= hi || hi - lo <= (to - from) * 1e-6 {
                    break;
                }
                if f(mid) >= 0.0 {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            return hi;
        }
        lo = hi;
    }
    f64::INFINITY
}

/// Gaussian elimination with partial pivoting on the `p × (p+1)` augmented system.
fn solve(m: &mut [[f64; 4]; 3], p: usize) -> Option<[f64; 3]> {
    for col in 0..p {
        let pivot = (col..p).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None; // singular: every point at one time, or too few distinct times
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for row in m.iter_mut().take(p).skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (r, q) in row.iter_mut().zip(pivot_row).skip(col) {
                *r -= f * q;
            }
        }
    }
    let mut x = [0.0; 3];
    for row in (0..p).rev() {
        let mut s = m[row][3];
        for k in row + 1..p {
            s -= m[row][k] * x[k];
        }
        x[row] = s / m[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64) -> f64, n: usize, step: f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let t = -((n - 1 - i) as f64) * step;
                (t, f(t))
            })
            .collect()
    }

    #[test]
    fn each_model_recovers_its_own_law_exactly() {
        // Now at t = 0; the limit 100 is reached at t = 50 by each law.
        let line = points(|t| 50.0 + t, 40, 1.0);
        let c = fit(Model::Line, &line).unwrap();
        assert!((c.level() - 50.0).abs() < 1e-9);
        assert!((c.crossing(100.0, true).seconds - 50.0).abs() < 1e-6);
        assert!((c.slope() - 1.0).abs() < 1e-9);

        let quad = points(|t| 75.0 + 0.5 * t + 0.005 * t * t, 40, 1.0);
        let c = fit(Model::Quadratic, &quad).unwrap();
        let x = c.crossing(100.0, true);
        assert!((x.seconds - 36.6025).abs() < 1e-3, "{x:?}");
        assert!(c.r2 > 0.999_999);

        let exp = points(|t| 100.0 * (0.02 * (t - 50.0)).exp(), 40, 1.0);
        let c = fit(Model::Exponential, &exp).unwrap();
        assert!((c.crossing(100.0, true).seconds - 50.0).abs() < 1e-6);
        assert!((c.level() - 100.0 * (-1.0f64).exp()).abs() < 1e-9);
        // The line misses a curve's crossing: that is why the models exist.
        let c = fit(Model::Line, &exp).unwrap();
        assert!(c.crossing(100.0, true).seconds > 60.0);
    }

    #[test]
    fn the_interval_holds_the_estimate_and_widens_with_noise() {
        let noise = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -1.0 };
        let quiet = points(|t| 50.0 + t, 40, 1.0);
        let noisy: Vec<(f64, f64)> = quiet
            .iter()
            .enumerate()
            .map(|(i, &(t, v))| (t, v + 3.0 * noise(i)))
            .collect();
        let a = fit(Model::Line, &quiet).unwrap().crossing(100.0, true);
        let b = fit(Model::Line, &noisy).unwrap().crossing(100.0, true);
        assert!(a.late - a.early < 1e-2, "{a:?}");
        assert!(b.early < b.seconds && b.seconds < b.late, "{b:?}");
        assert!(b.late - b.early > 8.0, "{b:?}");
        // Falling towards a low limit: the near end is the curve shifted down.
        let falling: Vec<(f64, f64)> = noisy.iter().map(|&(t, v)| (t, 200.0 - v)).collect();
        let c = fit(Model::Line, &falling).unwrap().crossing(100.0, false);
        assert!(c.early < c.seconds && c.seconds < c.late, "{c:?}");
    }

    #[test]
    fn past_never_and_undetermined() {
        let c = fit(Model::Quadratic, &points(|t| 120.0 + t, 10, 1.0)).unwrap();
        assert_eq!(c.crossing(100.0, true).seconds, 0.0);
        let c = fit(Model::Quadratic, &points(|t| 50.0 - 0.01 * t * t, 10, 1.0)).unwrap();
        assert_eq!(c.crossing(100.0, true).seconds, f64::INFINITY);
        assert!(fit(Model::Exponential, &[(-1.0, 1.0), (0.0, -1.0)]).is_none());
        assert!(fit(Model::Quadratic, &[(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)]).is_none());
        assert!(fit(Model::Line, &[(0.0, 1.0)]).is_none());
        let c = fit(Model::Exponential, &points(|t| 5.0 + 0.0 * t, 10, 1.0)).unwrap();
        assert_eq!(c.crossing(0.0, true).seconds, 0.0);
        assert_eq!(c.crossing(-1.0, false).seconds, f64::INFINITY);
    }

    #[test]
    fn a_trend_rule_picks_its_model_and_its_predictions_carry_level_interval_and_model() {
        use crate::{Engine, EventKind, RuleSet, Sample};
        let yaml = "rules:\n  - name: r\n    detect: { trend: { above: 100, over: 1h, horizon: 10m, \
                    model: quadratic, act_on: late } }\n    alert: { severity: warning }\n";
        let mut e = Engine::new(RuleSet::parse_str(yaml, "t.yaml").unwrap());
        let id = e.series("d", "m").unwrap();
        let mut out = Vec::new();
        // 20 + 0.0001·t², one value a second: reaches 100 at t ≈ 894 s.
        for t in 0..=600i64 {
            let value = 20.0 + 1e-4 * (t * t) as f64;
            e.push(
                Sample {
                    series: id,
                    ts: t * 1_000_000,
                    value,
                },
                &mut out,
            );
        }
        let predictions: Vec<_> = out
            .iter()
            .filter_map(|ev| match &ev.kind {
                EventKind::Prediction {
                    seconds_to_threshold,
                    level,
                    early_seconds,
                    late_seconds,
                    model,
                    points,
                    ..
                } => Some((
                    *seconds_to_threshold,
                    *level,
                    *early_seconds,
                    *late_seconds,
                    *model,
                    *points,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(predictions.len(), 601 - 29, "none before min_points (30)");
        let last = predictions.last().unwrap();
        assert!((last.0 - (894.427 - 600.0)).abs() < 0.01, "{last:?}");
        assert!((last.1 - 56.0).abs() < 1e-6, "{last:?}");
        assert_eq!(last.4, "quadratic");
        assert!(last.2 <= last.0 && last.0 <= last.3);
        let raised = out
            .iter()
            .filter(|ev| matches!(ev.kind, EventKind::Alert { .. }))
            .count();
        assert_eq!(
            raised, 1,
            "raised once the far end of the interval is within 10 minutes"
        );

        let bad = "rules:\n  - name: r\n    detect: { trend: { above: 1, over: 1h, horizon: 1d, model: cubic } }\n    alert: { severity: warning }\n";
        let err = RuleSet::parse_str(bad, "t.yaml").unwrap_err().to_string();
        assert!(
            err.contains("t.yaml:3:64") && err.contains("unknown `model` `cubic`"),
            "{err}"
        );
    }

    #[test]
    fn the_interval_search_ends_on_a_bracket_narrower_than_its_tolerance() {
        // A crossing just before the search's end: the bracket is a few floats wide and
        // the millionth-of-the-range tolerance is below their spacing (this hung the trend
        // ramp test once).
        let to = 10.0;
        let from = to - 1e-14;
        let u = first_crossing(|u| u - (to - 5e-15), from, to);
        assert!(u > from && u <= to, "{u}");
        assert_eq!(first_crossing(|u| u - 20.0, 0.0, 10.0), f64::INFINITY);
        assert_eq!(first_crossing(|u| u, 0.0, 10.0), 0.0);
    }
}
