//! `detect: { multivariate: … }` as written, and its validation.
//!
//! ```yaml
//! detect:
//!   multivariate:
//!     metrics:            # metric: its noise floor (min_sigma), in the sensor's unit
//!       flow: 1.0
//!       current: 0.3
//!     raise: 25           # D² above this raises (default 25)
//!     clear: 10           # and at or below this clears (default 10)
//!     warmup: 360         # windows learned before the first verdict (default 360)
//!     horizon: 1440       # memory after warm-up, in windows (default 1440)
//!     shrink: 0           # correlations pulled toward 0 by this share (default 0)
//!     learn: exclude_anomalies   # or all, or frozen
//! ```
//!
//! Metrics are listed (and their contributions reported) in name order.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{MAX_METRICS, Spec};
use crate::detect::DetectKind;
use crate::detect::baseline::Learn;
use crate::tree::{Loc, Node};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMultivariate {
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    raise: Option<f64>,
    #[serde(default)]
    clear: Option<f64>,
    #[serde(default)]
    warmup: Option<u64>,
    #[serde(default)]
    horizon: Option<u64>,
    #[serde(default)]
    shrink: Option<f64>,
    #[serde(default)]
    learn: Option<String>,
}

/// D² above which a window is anomalous. For m = 6 Gaussian metrics D² follows χ²₆, whose
/// tail beyond 25 is 3·10⁻⁴ per window; more to the point, 25 is one sensor alone moving
/// five noise floors against the others, which no operating change does.
const DEFAULT_RAISE: f64 = 25.0;
/// About χ²₆'s 88th percentile: back among ordinary windows.
const DEFAULT_CLEAR: f64 = 10.0;
/// Six hours of one-minute windows: a shift, with the setpoints and loads a machine runs
/// at. The joint model cannot judge an operating point it never saw (on the simulator
/// corpus a one-hour warm-up did no better than random alarms).
const DEFAULT_WARMUP: u64 = 360;
/// A day of one-minute windows: the normal state follows seasons and wear, not faults.
const DEFAULT_HORIZON: u64 = 1440;
/// No shrinkage by default: the noise floors regularise (see the module docs).
const DEFAULT_SHRINK: f64 = 0.0;
const MAX_WINDOWS: u64 = 10_000_000;

/// Validates `raw`; problems go to `report` with the location of the value at fault.
pub(crate) fn compile(
    rule: &Node,
    raw: &RawMultivariate,
    report: &mut dyn FnMut(Loc, String),
) -> Option<(DetectKind, String)> {
    let at = |key: &str| rule.locate(&["detect", "multivariate", key]);
    let mut ok = true;
    let mut bad = |loc: Loc, msg: String| {
        ok = false;
        report(loc, msg);
    };
    let m = raw.metrics.len();
    if !(2..=MAX_METRICS).contains(&m) {
        bad(
            at("metrics"),
            format!("`metrics` must name between 2 and {MAX_METRICS} metrics, found {m}"),
        );
    }
    for (name, floor) in &raw.metrics {
        if !(floor.is_finite() && *floor > 0.0) {
            let loc = rule.locate(&["detect", "multivariate", "metrics", name]);
            let msg = format!(
                "the noise floor of `{name}` must be a positive number (its resolution or \
                 noise, in its unit): a zero floor lets a quantised sensor score infinity"
            );
            bad(loc, msg);
        }
    }
    let raise = raw.raise.unwrap_or(DEFAULT_RAISE);
    let clear = raw.clear.unwrap_or(DEFAULT_CLEAR.min(raise));
    if !(raise.is_finite() && raise > 0.0) {
        bad(at("raise"), "`raise` must be a positive number".to_owned());
    }
    if !(clear.is_finite() && clear >= 0.0 && clear <= raise) {
        bad(
            at("clear"),
            "`clear` must be between 0 and `raise`".to_owned(),
        );
    }
    let warmup = raw.warmup.unwrap_or(DEFAULT_WARMUP);
    let min_warmup = 2 * m as u64 + 2;
    if !(min_warmup..=MAX_WINDOWS).contains(&warmup) {
        let msg = format!(
            "`warmup` must be between {min_warmup} (twice the metrics, plus two: fewer \
             windows cannot estimate their covariance) and {MAX_WINDOWS}"
        );
        bad(at("warmup"), msg);
    }
    let horizon = raw.horizon.unwrap_or(DEFAULT_HORIZON);
    if !(2..=MAX_WINDOWS).contains(&horizon) {
        bad(
            at("horizon"),
            format!("`horizon` must be between 2 and {MAX_WINDOWS} windows"),
        );
    }
    let shrink = raw.shrink.unwrap_or(DEFAULT_SHRINK);
    if !(0.0..1.0).contains(&shrink) {
        bad(at("shrink"), "`shrink` must be in [0, 1)".to_owned());
    }
    let learn = match raw.learn.as_deref() {
        None => Learn::ExcludeAnomalies,
        Some(text) => match Learn::ALL.into_iter().find(|l| l.as_str() == text) {
            Some(l) => l,
            None => {
                let msg = format!(
                    "unknown `learn` mode `{text}` (expected all, exclude_anomalies or frozen)"
                );
                bad(at("learn"), msg);
                Learn::ExcludeAnomalies
            }
        },
    };
    if !ok {
        return None;
    }
    let names: Vec<&str> = raw.metrics.keys().map(String::as_str).collect();
    let text = format!(
        "multivariate(D² of {} > {raise}, clear ≤ {clear})",
        names.join(", ")
    );
    let spec = Spec {
        metrics: raw.metrics.keys().map(|k| Arc::from(k.as_str())).collect(),
        min_sigma: raw.metrics.values().copied().collect(),
        raise,
        clear,
        warmup: u32::try_from(warmup).ok()?,
        horizon: u32::try_from(horizon).ok()?,
        shrink,
        learn,
    };
    Some((DetectKind::Multivariate(spec), text))
}
