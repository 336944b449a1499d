//! The `detect:` section's validation into [`DetectKind`] (the serde structs as written are in
//! `raw`).
//!
//! Like the rest of the rule schema, unknown keys are errors and every bad parameter is
//! reported with the location of the value at fault, all at once.

use super::baseline::{BaselineSpec, Floor, Learn};
use super::degradation::Model;
use super::trend::ActOn;
use super::{
    DetectKind, changepoint, chart, missing, novelty, runtime, signal, threshold, trend, zscore,
};
use crate::schema::parse_duration;
use crate::tree::{Loc, Node};

mod raw;

pub(crate) use raw::{RawBaseline, RawDetect};
use raw::{RawChangepoint, RawCusum, RawEwma, RawRobust, RawRuntime, RawThreshold, RawTrend, RawZ};

/// Defaults, documented in docs/rules.md. The limits are wider than the textbook 3σ on purpose:
/// a gateway judges each series every second, and at 3σ Gaussian noise alone raises an
/// alert every few hundred values. Measured false raises and step delays are printed by
/// `cargo bench -p weir-rules --bench detectors` and quoted in docs/figures.md.
const DEFAULT_Z: f64 = 4.5;
const DEFAULT_ROBUST_Z: f64 = 5.0;
const DEFAULT_BASELINE: u64 = 30;
/// The shift detectors learn slowly: a fast baseline absorbs the very shift they are there
/// to find (with 30, CUSUM missed most 1σ steps in our measurement).
const DEFAULT_CHART_BASELINE: u64 = 200;
const MAX_BASELINE: u64 = 1_000_000;
const DEFAULT_ROBUST_WINDOW: u64 = 64;
/// The robust window is kept sorted: one shift of up to `window` values per input (see
/// `zscore`).
pub(crate) const MAX_ROBUST_WINDOW: u64 = 4_096;
const DEFAULT_LAMBDA: f64 = 0.1;
const DEFAULT_LIMIT: f64 = 3.5;
const DEFAULT_K: f64 = 0.5;
const DEFAULT_H: f64 = 8.0;

const ONE_OF: &str = "`threshold`, `zscore`, `robust_zscore`, `ewma_chart`, `cusum`, `rate`, \
                      `flatline`, `range`, `missing`, `trend`, `runtime`, `changepoint`, `multivariate` or `novelty`";
/// `changepoint`: a 1σ shift is the smallest worth an event; `h` as `cusum`'s; the home
/// level from 200 values like the charts' (3 to 8 false changes per 100,000 values of
/// Gaussian noise, measured; with 100, 17).
const DEFAULT_SHIFT: f64 = 1.0;
const DEFAULT_CHANGE_H: f64 = 8.0;
const DEFAULT_CHANGE_BASELINE: u64 = 200;
const DEFAULT_TREND_POINTS: u64 = 256;
const MAX_TREND_POINTS: u64 = 4_096;
const DEFAULT_MIN_R2: f64 = 0.5;

/// Validates `raw` (the `detect` value of the rule at `rule`); reports each problem through
/// `report` and returns the detector and its one-line description when there is none.
pub(crate) fn compile(
    rule: &Node,
    raw: &RawDetect,
    report: &mut dyn FnMut(Loc, String),
) -> Option<(DetectKind, String)> {
    let mut cx = Cx {
        rule,
        report,
        ok: true,
    };
    let given = [
        raw.threshold.is_some(),
        raw.zscore.is_some(),
        raw.robust_zscore.is_some(),
        raw.ewma_chart.is_some(),
        raw.cusum.is_some(),
        raw.rate.is_some(),
        raw.flatline.is_some(),
        raw.range.is_some(),
        raw.missing.is_some(),
        raw.runtime.is_some(),
        raw.trend.is_some(),
        raw.changepoint.is_some(),
        raw.multivariate.is_some(),
        raw.novelty.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        1 => {}
        0 => {
            cx.bad(&["detect"], format!("`detect` needs one of {ONE_OF}"));
            return None;
        }
        _ => {
            let msg = format!("`detect` takes exactly one of {ONE_OF} (one detector per rule)");
            cx.bad(&["detect"], msg);
            return None;
        }
    }
    let out = if let Some(t) = &raw.threshold {
        cx.threshold(t)
    } else if let Some(z) = &raw.zscore {
        cx.zscore(z)
    } else if let Some(r) = &raw.robust_zscore {
        cx.robust(r)
    } else if let Some(e) = &raw.ewma_chart {
        cx.ewma(e)
    } else if let Some(c) = &raw.cusum {
        cx.cusum(c)
    } else if let Some(r) = &raw.rate {
        let p = ["detect", "rate", "max"];
        cx.check(
            r.max > 0.0 && r.max.is_finite(),
            &p,
            "`max` must be a positive number",
        );
        let text = format!("rate > {}/s", r.max);
        Some((DetectKind::Rate(signal::RateSpec { max: r.max }), text))
    } else if let Some(f) = &raw.flatline {
        let hold = cx.duration(&["detect", "flatline", "for"], &f.hold);
        let epsilon = f.epsilon.unwrap_or(0.0);
        let p = ["detect", "flatline", "epsilon"];
        cx.check(
            epsilon >= 0.0 && epsilon.is_finite(),
            &p,
            "`epsilon` must be ≥ 0",
        );
        let text = format!("flatline(within {epsilon} for {})", f.hold.trim());
        hold.map(|hold| {
            (
                DetectKind::Flatline(signal::FlatSpec { epsilon, hold }),
                text,
            )
        })
    } else if let Some(t) = &raw.trend {
        cx.trend(t)
    } else if let Some(n) = &raw.novelty {
        let mut bad = |key: &str, msg| cx.bad(&["detect", "novelty", key], msg);
        novelty::compile(n, &mut bad).map(|(spec, text)| (DetectKind::Novelty(spec), text))
    } else if let Some(r) = &raw.range {
        let (min, max) = (
            r.min.unwrap_or(f64::NEG_INFINITY),
            r.max.unwrap_or(f64::INFINITY),
        );
        let p = ["detect", "range", "max"];
        cx.check(min <= max, &p, "`max` must not be below `min`");
        let text = match (r.min, r.max) {
            (Some(a), Some(b)) => format!("range(NaN or outside [{a}, {b}])"),
            (Some(a), None) => format!("range(NaN or below {a})"),
            (None, Some(b)) => format!("range(NaN or above {b})"),
            (None, None) => "range(NaN or infinite)".to_owned(),
        };
        Some((DetectKind::Range(signal::RangeSpec { min, max }), text))
    } else if let Some(r) = &raw.runtime {
        cx.runtime(r)
    } else if let Some(c) = &raw.changepoint {
        cx.changepoint(c)
    } else if let Some(m) = &raw.multivariate {
        let out = super::multivariate::spec::compile(cx.rule, m, cx.report);
        cx.ok &= out.is_some();
        out
    } else {
        let text = raw.missing.as_deref().unwrap_or_default();
        let after = cx.duration(&["detect", "missing"], text);
        let desc = format!("missing(no sample for {})", text.trim());
        after.map(|after| (DetectKind::Missing(missing::Spec { after }), desc))
    };
    if cx.ok { out } else { None }
}

struct Cx<'a> {
    rule: &'a Node,
    report: &'a mut dyn FnMut(Loc, String),
    ok: bool,
}

impl Cx<'_> {
    fn runtime(&mut self, r: &RawRuntime) -> Option<(DetectKind, String)> {
        let at = |key: &'static str| ["detect", "runtime", key];
        self.check(
            r.running_above.is_finite(),
            &at("running_above"),
            "`running_above` must be a number",
        );
        let max_gap = match &r.max_gap {
            Some(t) => self.duration(&at("max_gap"), t)?,
            None => 5 * 60 * 1_000_000,
        };
        if let Some(h) = r.hours {
            self.positive("runtime", "hours", h);
        }
        if r.starts == Some(0) {
            self.bad(&at("starts"), "`starts` must be at least 1");
        }
        let due_run = r.hours.map(|h| (h * 3.6e9).min(i64::MAX as f64) as i64);
        let mut text = format!("runtime(running above {})", r.running_above);
        match (r.hours, r.starts) {
            (Some(h), Some(n)) => text.push_str(&format!(": due at {h} h or {n} starts")),
            (Some(h), None) => text.push_str(&format!(": due at {h} h")),
            (None, Some(n)) => text.push_str(&format!(": due at {n} starts")),
            (None, None) => {}
        }
        let spec = runtime::Spec {
            running_above: r.running_above,
            max_gap,
            due_run,
            due_starts: r.starts,
        };
        Some((DetectKind::Runtime(spec), text))
    }

    /// One of a fixed set of names; `None` (reported) when it is none of them.
    fn named<T: Copy>(
        &mut self,
        path: &[&str],
        text: Option<&str>,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let text = text?;
        let found = all.iter().copied().find(|v| name(*v) == text);
        if found.is_none() {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            let key = path.last().copied().unwrap_or_default();
            self.bad(
                path,
                format!("unknown `{key}` `{text}` (expected {})", names.join(", ")),
            );
        }
        found
    }

    fn bad(&mut self, path: &[&str], msg: impl Into<String>) {
        self.ok = false;
        (self.report)(self.rule.locate(path), msg.into());
    }

    fn check(&mut self, ok: bool, path: &[&str], msg: &str) {
        if !ok {
            self.bad(path, msg);
        }
    }

    fn duration(&mut self, path: &[&str], text: &str) -> Option<i64> {
        parse_duration(text).map_err(|m| self.bad(path, m)).ok()
    }

    /// `min_sigma` and `resolution`: both optional, both ≥ 0.
    fn floor(&mut self, family: &str, min_sigma: Option<f64>, resolution: Option<f64>) -> Floor {
        let mut get = |key: &str, v: Option<f64>| {
            let v = v.unwrap_or(0.0);
            let ok = v >= 0.0 && v.is_finite();
            let msg = format!("`{key}` must be a number ≥ 0 (in the sensor's units)");
            self.check(ok, &["detect", family, key], &msg);
            if ok { v } else { 0.0 }
        };
        Floor {
            min_sigma: get("min_sigma", min_sigma),
            resolution: get("resolution", resolution),
        }
    }

    fn baseline(
        &mut self,
        family: &str,
        n: Option<&RawBaseline>,
        default: u64,
        learn: Option<&str>,
        floor: Floor,
    ) -> BaselineSpec {
        if let Some(RawBaseline::File(_)) = n {
            // Learned from a file (attached by `RuleSet::attach_baselines`): a fixed reference. Series
            // the file does not name learn online over the default warm-up, frozen after.
            if learn.is_some_and(|l| l != Learn::Frozen.as_str()) {
                let msg = "a baseline from a file is frozen: `learn` can only be `frozen`";
                self.bad(&["detect", family, "learn"], msg);
            }
            return BaselineSpec {
                warmup: u32::try_from(default).unwrap_or(2),
                learn: Learn::Frozen,
                floor,
            };
        }
        let n = match n {
            Some(RawBaseline::Values(n)) => *n,
            _ => default,
        };
        let ok = (2..=MAX_BASELINE).contains(&n);
        let msg = format!(
            "`baseline` (values to learn before judging) must be between 2 and {MAX_BASELINE}"
        );
        self.check(ok, &["detect", family, "baseline"], &msg);
        BaselineSpec {
            warmup: u32::try_from(n).unwrap_or(2),
            learn: self.learn(family, learn),
            floor,
        }
    }

    fn learn(&mut self, family: &str, learn: Option<&str>) -> Learn {
        let Some(text) = learn else {
            return Learn::ExcludeAnomalies;
        };
        match Learn::ALL.into_iter().find(|l| l.as_str() == text) {
            Some(l) => l,
            None => {
                let msg = format!(
                    "unknown `learn` mode `{text}` (expected all, exclude_anomalies or frozen)"
                );
                self.bad(&["detect", family, "learn"], msg);
                Learn::ExcludeAnomalies
            }
        }
    }

    fn positive(&mut self, family: &str, key: &str, v: f64) {
        let ok = v > 0.0 && v.is_finite();
        self.check(
            ok,
            &["detect", family, key],
            &format!("`{key}` must be a positive number"),
        );
    }

    fn threshold(&mut self, t: &RawThreshold) -> Option<(DetectKind, String)> {
        let clear = t.clear.unwrap_or(t.raise);
        let p = ["detect", "threshold", "raise"];
        self.check(t.raise.is_finite(), &p, "`raise` must be a finite number");
        let p = ["detect", "threshold", "clear"];
        self.check(clear.is_finite(), &p, "`clear` must be a finite number");
        let hold = match &t.hold {
            Some(h) => self.duration(&["detect", "threshold", "for"], h)?,
            None => 0,
        };
        let op = if t.raise >= clear { ">" } else { "<" };
        let mut text = format!("threshold({op} {}, clear at {clear}", t.raise);
        if let Some(h) = &t.hold {
            text.push_str(&format!(", for {}", h.trim()));
        }
        text.push(')');
        let spec = threshold::Spec {
            raise: t.raise,
            clear,
            hold,
        };
        Some((DetectKind::Threshold(spec), text))
    }

    fn trend(&mut self, t: &RawTrend) -> Option<(DetectKind, String)> {
        let (threshold, rising) = match (t.above, t.below) {
            (Some(a), None) => (a, true),
            (None, Some(b)) => (b, false),
            _ => {
                let msg = "`trend` takes one limit: `above: X` (must stay under X) or `below: X`";
                self.bad(&["detect", "trend"], msg);
                return None;
            }
        };
        let key = if rising { "above" } else { "below" };
        let p = ["detect", "trend", key];
        self.check(
            threshold.is_finite(),
            &p,
            &format!("`{key}` must be a finite number"),
        );
        let over = self.duration(&["detect", "trend", "over"], &t.over);
        let horizon = self.duration(&["detect", "trend", "horizon"], &t.horizon);
        let points = t.points.unwrap_or(DEFAULT_TREND_POINTS);
        let ok = (trend::MIN_POINTS as u64..=MAX_TREND_POINTS).contains(&points);
        let msg = format!(
            "`points` must be between {} and {MAX_TREND_POINTS}",
            trend::MIN_POINTS
        );
        self.check(ok, &["detect", "trend", "points"], &msg);
        let min_r2 = t.min_r2.unwrap_or(DEFAULT_MIN_R2);
        let p = ["detect", "trend", "min_r2"];
        self.check(
            (0.0..=1.0).contains(&min_r2),
            &p,
            "`min_r2` must be between 0 and 1",
        );
        let model = self
            .named(
                &["detect", "trend", "model"],
                t.model.as_deref(),
                &Model::ALL,
                Model::as_str,
            )
            .unwrap_or(Model::Line);
        let act_on = self
            .named(
                &["detect", "trend", "act_on"],
                t.act_on.as_deref(),
                &ActOn::ALL,
                ActOn::as_str,
            )
            .unwrap_or(ActOn::Estimate);
        // Unless given, the default, or every point the rule keeps when that is fewer.
        let min_points = t
            .min_points
            .unwrap_or((trend::DEFAULT_MIN_POINTS as u64).min(points));
        let ok =
            (trend::MIN_POINTS as u64..=points.max(trend::MIN_POINTS as u64)).contains(&min_points);
        let msg = format!(
            "`min_points` must be between {} and `points` ({points})",
            trend::MIN_POINTS
        );
        self.check(
            ok || t.min_points.is_none(),
            &["detect", "trend", "min_points"],
            &msg,
        );
        let mut text = format!(
            "trend({key} {threshold} within {}, fit over {}",
            t.horizon.trim(),
            t.over.trim()
        );
        if model != Model::Line {
            text.push_str(&format!(", {}", model.as_str()));
        }
        if act_on != ActOn::Estimate {
            text.push_str(&format!(", act on the {} end", act_on.as_str()));
        }
        text.push(')');
        let spec = trend::Spec {
            threshold,
            rising,
            over: over?,
            points: usize::try_from(points).unwrap_or(trend::MIN_POINTS),
            horizon: horizon?,
            min_r2,
            model,
            min_points: usize::try_from(min_points).unwrap_or(trend::DEFAULT_MIN_POINTS),
            act_on,
        };
        Some((DetectKind::Trend(spec), text))
    }

    fn zscore(&mut self, z: &RawZ) -> Option<(DetectKind, String)> {
        let limit = z.z.unwrap_or(DEFAULT_Z);
        self.positive("zscore", "z", limit);
        let floor = self.floor("zscore", z.min_sigma, z.resolution);
        let baseline = self.baseline(
            "zscore",
            z.baseline.as_ref(),
            DEFAULT_BASELINE,
            z.learn.as_deref(),
            floor,
        );
        let text = format!("zscore(|z| > {limit}, baseline {})", baseline.warmup);
        Some((
            DetectKind::ZScore(zscore::ZSpec { z: limit, baseline }),
            text,
        ))
    }

    fn robust(&mut self, r: &RawRobust) -> Option<(DetectKind, String)> {
        let limit = r.z.unwrap_or(DEFAULT_ROBUST_Z);
        self.positive("robust_zscore", "z", limit);
        let window = r.window.unwrap_or(DEFAULT_ROBUST_WINDOW);
        let ok = (5..=MAX_ROBUST_WINDOW).contains(&window);
        let msg = format!("`window` (values kept) must be between 5 and {MAX_ROBUST_WINDOW}");
        self.check(ok, &["detect", "robust_zscore", "window"], &msg);
        let learn = self.learn("robust_zscore", r.learn.as_deref());
        let floor = self.floor("robust_zscore", r.min_sigma, r.resolution);
        let text = format!("robust_zscore(|z| > {limit}, window {window})");
        let spec = zscore::RobustSpec {
            z: limit,
            window: usize::try_from(window).unwrap_or(5),
            learn,
            floor,
        };
        Some((DetectKind::Robust(spec), text))
    }

    fn ewma(&mut self, e: &RawEwma) -> Option<(DetectKind, String)> {
        let lambda = e.lambda.unwrap_or(DEFAULT_LAMBDA);
        let p = ["detect", "ewma_chart", "lambda"];
        self.check(
            lambda > 0.0 && lambda <= 1.0,
            &p,
            "`lambda` must be in (0, 1]",
        );
        let limit = e.limit.unwrap_or(DEFAULT_LIMIT);
        self.positive("ewma_chart", "limit", limit);
        let floor = self.floor("ewma_chart", e.min_sigma, e.resolution);
        let baseline = self.baseline(
            "ewma_chart",
            e.baseline.as_ref(),
            DEFAULT_CHART_BASELINE,
            e.learn.as_deref(),
            floor,
        );
        let text = format!("ewma_chart(lambda {lambda}, limit {limit} sigma)");
        let spec = chart::EwmaSpec {
            lambda,
            limit,
            baseline,
        };
        Some((DetectKind::EwmaChart(spec), text))
    }

    fn changepoint(&mut self, c: &RawChangepoint) -> Option<(DetectKind, String)> {
        let shift = c.shift.unwrap_or(DEFAULT_SHIFT);
        self.positive("changepoint", "shift", shift);
        let h = c.h.unwrap_or(DEFAULT_CHANGE_H);
        self.positive("changepoint", "h", h);
        let floor = self.floor("changepoint", c.min_sigma, c.resolution);
        let baseline = self.baseline(
            "changepoint",
            c.baseline.as_ref(),
            DEFAULT_CHANGE_BASELINE,
            None,
            floor,
        );
        let text = format!("changepoint(shift {shift} sigma, h {h})");
        let spec = changepoint::Spec { shift, h, baseline };
        Some((DetectKind::Changepoint(spec), text))
    }

    fn cusum(&mut self, c: &RawCusum) -> Option<(DetectKind, String)> {
        let k = c.k.unwrap_or(DEFAULT_K);
        let p = ["detect", "cusum", "k"];
        self.check(
            k >= 0.0 && k.is_finite(),
            &p,
            "`k` must be ≥ 0 (in standard deviations)",
        );
        let h = c.h.unwrap_or(DEFAULT_H);
        self.positive("cusum", "h", h);
        let floor = self.floor("cusum", c.min_sigma, c.resolution);
        let baseline = self.baseline(
            "cusum",
            c.baseline.as_ref(),
            DEFAULT_CHART_BASELINE,
            c.learn.as_deref(),
            floor,
        );
        let text = format!("cusum(k {k}, h {h})");
        Some((DetectKind::Cusum(chart::CusumSpec { k, h, baseline }), text))
    }
}
