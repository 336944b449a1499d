//! Online anomaly detectors: the `detect:` section of a rule.
//!
//! A rule with `detect:` hands each input to one detector, and the detector's verdict raises
//! and clears the rule's alert through the same path as a `when:` condition (one
//! [`crate::EventKind::Alert`] per transition, now carrying the detector's score). The input
//! is every sample when the rule has no `window` (the engine runs such a rule on a one-sample
//! `count` window, so nothing else changes), or each closed window's `value` expression
//! (default `mean`) when it has one.
//!
//! Every detector is online in the strict sense the engine needs: each input is seen once,
//! in order; state is fixed-size (or bounded by a parameter, for `robust_zscore`) and
//! allocated when the series is interned; no clock is read — time is the inputs' own
//! timestamps and [`crate::Engine::advance`]. The families, one file each:
//!
//! | detector | file | state per (rule, series) |
//! |---|---|---|
//! | `threshold` (hysteresis, `for:` debounce) | `threshold` | 16 B |
//! | `zscore` (EWMA baseline) | `zscore` | 40 B |
//! | `robust_zscore` (median/MAD over a window) | `zscore` | 3 B (decimals in 16 bits), 5 B (32 bits) or 9 B per value of the window |
//! | `ewma_chart`, `cusum` (restart after an alarm) | `chart` | 96 B, 104 B |
//! | `rate`, `flatline`, `range` (NaN, out of range) | `signal` | ≤ 32 B |
//! | `missing` (no sample for a duration) | `missing` | 16 B |
//! | `runtime` (run hours, starts; persisted by the agent) | `runtime` | 32 B |
//! | `trend` (time to a limit, least squares) | `trend` | 16 B per point of the fit |
//! | `changepoint` (level shifts as events: CUSUM with restart) | `changepoint` | 120 B |
//! | `multivariate` (several metrics of one device, `group_by: device`) | `multivariate` | 848 B per device, boxed |
//! | `novelty` (new extreme, surprising error, new context, stuck value; learns, no parameters needed) | `novelty` | 736 B (defaults), boxed |
//!
//! each held in an enum the size of the largest (128 B: the changepoint state and the tag), kept in one vector beside the
//! engine's slots. Measured with `cargo bench -p weir-rules --bench detectors`.
//! The statistical ones learn what is normal with a shared [`baseline::Baseline`], which can
//! leave anomalous values out of what it learns, and divide by a spread that never falls
//! below a noise floor (`min_sigma`, `resolution`, or the learned step; see `baseline`), so
//! every score they report is a finite number.

mod baseline;
pub(crate) mod changepoint;
mod chart;
mod degradation;
mod missing;
pub(crate) mod multivariate;
mod novelty;
pub(crate) mod runtime;
mod signal;
pub(crate) mod spec;
mod threshold;
pub(crate) mod trend;
mod zscore;

use std::sync::Arc;

use crate::expr::Number;

/// What a detector concluded about one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    /// The event time of the verdict: the input's, or when a silence became an alarm.
    pub ts: i64,
    pub anomalous: bool,
    /// The input judged (NaN for `missing`'s raise).
    pub value: f64,
    /// The detector's statistic (z, CUSUM sum, rate, seconds flat...); NaN when it has none.
    pub score: f64,
    /// An event the verdict carries besides the alert state: `trend`'s prediction (with
    /// every input), a `changepoint` (when one is detected).
    pub forecast: Option<Note>,
}

/// What a verdict may carry besides the alert state, each sent as its own event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Note {
    Forecast(trend::Forecast),
    Change(changepoint::Change),
}

/// A rule's `detect:` section, validated.
#[derive(Debug, Clone)]
pub(crate) struct DetectRule {
    pub kind: DetectKind,
    /// What a windowed rule feeds the detector; `None`: the window's mean (for rules without
    /// a window, the sample itself).
    pub value: Option<Number>,
    /// A one-line description, carried in alert events as their `condition`.
    pub text: Arc<str>,
    /// `baseline: <file>`: the file as written and where (resolved by `RuleSet::attach_baselines`).
    pub baseline_file: Option<(Box<str>, crate::tree::Loc)>,
    /// The baselines of this rule from that file, by (device, metric).
    pub learned: Option<Arc<crate::learned::ByName>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DetectKind {
    Threshold(threshold::Spec),
    ZScore(zscore::ZSpec),
    Robust(zscore::RobustSpec),
    EwmaChart(chart::EwmaSpec),
    Cusum(chart::CusumSpec),
    Rate(signal::RateSpec),
    Flatline(signal::FlatSpec),
    Range(signal::RangeSpec),
    Missing(missing::Spec),
    Runtime(runtime::Spec),
    Trend(trend::Spec),
    Changepoint(changepoint::Spec),
    /// `weir learn`: records the input of the statistical detector it replaced (never
    /// written in YAML; see `RuleSet::for_learning`).
    Record,
    Multivariate(multivariate::Spec),
    Novelty(novelty::Spec),
}

impl DetectKind {
    /// Whether `weir learn` learns a baseline for this detector.
    pub fn learns_baseline(&self) -> bool {
        matches!(
            self,
            DetectKind::ZScore(_)
                | DetectKind::EwmaChart(_)
                | DetectKind::Cusum(_)
                | DetectKind::Changepoint(_)
        )
    }

    /// Whether the detector judges raw samples only (and so takes no `window`).
    pub fn per_sample_only(&self) -> bool {
        matches!(
            self,
            DetectKind::Range(_) | DetectKind::Missing(_) | DetectKind::Runtime(_)
        )
    }

    /// A parameter by its YAML name, for `{name}` in alert messages (durations in seconds).
    pub fn param(&self, name: &str) -> Option<f64> {
        let secs = |us: i64| us as f64 / 1e6;
        Some(match (self, name) {
            (DetectKind::Threshold(p), "raise") => p.raise,
            (DetectKind::Threshold(p), "clear") => p.clear,
            (DetectKind::Threshold(p), "for") => secs(p.hold),
            (DetectKind::ZScore(p), "z") => p.z,
            (DetectKind::ZScore(p), "baseline") => f64::from(p.baseline.warmup),
            (DetectKind::Robust(p), "z") => p.z,
            (DetectKind::Robust(p), "window") => p.window as f64,
            (DetectKind::EwmaChart(p), "lambda") => p.lambda,
            (DetectKind::EwmaChart(p), "limit") => p.limit,
            (DetectKind::EwmaChart(p), "baseline") => f64::from(p.baseline.warmup),
            (DetectKind::Cusum(p), "k") => p.k,
            (DetectKind::Cusum(p), "h") => p.h,
            (DetectKind::Cusum(p), "baseline") => f64::from(p.baseline.warmup),
            (DetectKind::Rate(p), "max") => p.max,
            (DetectKind::Flatline(p), "epsilon") => p.epsilon,
            (DetectKind::Flatline(p), "for") => secs(p.hold),
            (DetectKind::Range(p), "min") => p.min,
            (DetectKind::Range(p), "max") => p.max,
            (DetectKind::Missing(p), "missing") => secs(p.after),
            (DetectKind::Trend(p), "above" | "below") => p.threshold,
            (DetectKind::Trend(p), "over") => secs(p.over),
            (DetectKind::Trend(p), "horizon") => secs(p.horizon),
            (DetectKind::Trend(p), "min_r2") => p.min_r2,
            (DetectKind::Changepoint(p), "shift") => p.shift,
            (DetectKind::Changepoint(p), "h") => p.h,
            (DetectKind::Changepoint(p), "baseline") => f64::from(p.baseline.warmup),
            (DetectKind::Multivariate(p), "raise") => p.raise,
            (DetectKind::Multivariate(p), "clear") => p.clear,
            (DetectKind::Multivariate(p), "warmup") => f64::from(p.warmup),
            (DetectKind::Trend(p), "min_points") => p.min_points as f64,
            (DetectKind::Novelty(p), "z") => p.z,
            (DetectKind::Novelty(p), "margin") => p.margin,
            (DetectKind::Novelty(p), "range") => f64::from(p.range),
            _ => return None,
        })
    }
}

/// A detector's state on one series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Detector {
    Threshold(threshold::State),
    ZScore(zscore::ZState),
    Robust(zscore::RobustState),
    EwmaChart(chart::EwmaState),
    Cusum(chart::CusumState),
    Rate(signal::RateState),
    Flatline(signal::FlatState),
    Range,
    Missing(missing::State),
    Runtime(runtime::State),
    Trend(trend::State),
    /// Boxed: at 120 bytes it sized every detector of every rule (128 bytes; 104 now, CUSUM's
    /// size, the tag fitting in its padding).
    Changepoint(Box<changepoint::State>),
    /// Boxed: only `weir learn` uses it, and it would double every other detector's size.
    Record(Box<crate::learned::Running>),
    /// Boxed: its fixed 848 bytes would otherwise size every detector of every rule.
    Multivariate(Box<multivariate::State>),
    /// Boxed: the largest state by far (see [`novelty`]), kept off the enum's size.
    Novelty(Box<novelty::State>),
}

impl Detector {
    /// A fresh state, started from `learned` figures when there are (module `learned`).
    pub fn seeded(kind: &DetectKind, learned: Option<&crate::learned::Stats>) -> Detector {
        let mut d = Detector::new(kind);
        if let Some(st) = learned {
            match (&mut d, kind) {
                (Detector::ZScore(s), DetectKind::ZScore(p)) => s.seed(p.baseline, st),
                (Detector::EwmaChart(s), DetectKind::EwmaChart(p)) => s.seed(p.baseline, st),
                (Detector::Cusum(s), DetectKind::Cusum(p)) => s.seed(p.baseline, st),
                (Detector::Changepoint(s), DetectKind::Changepoint(p)) => s.seed(p.baseline, st),
                _ => {}
            }
        }
        d
    }

    pub fn new(kind: &DetectKind) -> Detector {
        match kind {
            DetectKind::Threshold(_) => Detector::Threshold(Default::default()),
            DetectKind::ZScore(_) => Detector::ZScore(Default::default()),
            DetectKind::Robust(_) => Detector::Robust(Default::default()),
            DetectKind::EwmaChart(_) => Detector::EwmaChart(Default::default()),
            DetectKind::Cusum(_) => Detector::Cusum(Default::default()),
            DetectKind::Rate(_) => Detector::Rate(Default::default()),
            DetectKind::Flatline(_) => Detector::Flatline(Default::default()),
            DetectKind::Range(_) => Detector::Range,
            DetectKind::Missing(_) => Detector::Missing(Default::default()),
            DetectKind::Runtime(_) => Detector::Runtime(Default::default()),
            DetectKind::Trend(_) => Detector::Trend(Default::default()),
            DetectKind::Changepoint(_) => Detector::Changepoint(Default::default()),
            DetectKind::Record => Detector::Record(Box::default()),
            DetectKind::Multivariate(_) => Detector::Multivariate(Box::default()),
            DetectKind::Novelty(spec) => Detector::Novelty(Box::new(novelty::State::new(spec))),
        }
    }

    /// Bytes owned on the heap besides the box itself.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Detector::Robust(s) => s.heap_bytes(),
            Detector::Trend(s) => s.heap_bytes(),
            Detector::Record(r) => size_of::<crate::learned::Running>() + r.heap_bytes(),
            Detector::Changepoint(_) => size_of::<changepoint::State>(),
            Detector::Multivariate(_) => size_of::<multivariate::State>(),
            Detector::Novelty(s) => novelty::State::BYTES + s.heap_bytes(),
            _ => 0,
        }
    }

    /// The earliest watermark at which [`Detector::advance`] has something to do.
    pub fn deadline(&self, kind: &DetectKind) -> i64 {
        match (self, kind) {
            (Detector::Missing(s), DetectKind::Missing(spec)) => s.deadline(spec),
            _ => i64::MAX,
        }
    }

    /// Judges one input (NaN included: each detector decides what NaN means to it).
    pub fn feed(&mut self, kind: &DetectKind, ts: i64, x: f64, emit: &mut impl FnMut(Verdict)) {
        let v = match (self, kind) {
            (Detector::Threshold(s), DetectKind::Threshold(p)) => s.feed(p, ts, x),
            (Detector::ZScore(s), DetectKind::ZScore(p)) => s.feed(p, ts, x),
            (Detector::Robust(s), DetectKind::Robust(p)) => s.feed(p, ts, x),
            (Detector::EwmaChart(s), DetectKind::EwmaChart(p)) => s.feed(p, ts, x),
            (Detector::Cusum(s), DetectKind::Cusum(p)) => s.feed(p, ts, x),
            (Detector::Rate(s), DetectKind::Rate(p)) => s.feed(p, ts, x),
            (Detector::Flatline(s), DetectKind::Flatline(p)) => s.feed(p, ts, x),
            (Detector::Range, DetectKind::Range(p)) => Some(p.feed(ts, x)),
            (Detector::Runtime(s), DetectKind::Runtime(p)) => s.feed(p, ts, x),
            (Detector::Trend(s), DetectKind::Trend(p)) => s.feed(p, ts, x),
            (Detector::Changepoint(s), DetectKind::Changepoint(p)) => s.feed(p, ts, x),
            (Detector::Record(r), DetectKind::Record) => {
                r.add(x);
                None
            }
            // Judges its own per-metric window means (see `observe`), not `x`.
            (Detector::Multivariate(s), DetectKind::Multivariate(p)) => s.close(p, ts),
            (Detector::Novelty(s), DetectKind::Novelty(p)) => s.feed(p, ts, x),
            (Detector::Missing(s), DetectKind::Missing(p)) => {
                s.feed(p, ts, x, emit);
                None
            }
            // A state always matches its rule's kind: both are built from the same spec.
            _ => None,
        };
        if let Some(v) = v {
            emit(v);
        }
    }

    /// A multivariate detector's group learned that `series` carries `metric`.
    pub fn register(&mut self, kind: &DetectKind, series: crate::event::SeriesId, metric: &str) {
        if let (Detector::Multivariate(s), DetectKind::Multivariate(p)) = (self, kind) {
            s.register(p, series, metric);
        }
    }

    /// A sample the rule's open window accepted (only a multivariate detector keeps
    /// per-metric sums; for the others this is a no-op).
    #[inline]
    pub fn observe(&mut self, s: crate::event::Sample) {
        if let Detector::Multivariate(state) = self {
            state.observe(s.series, s.value);
        }
    }

    /// Which metric moved: a multivariate detector's per-metric contributions to its last
    /// score (empty for the others).
    pub fn contributions(&self, kind: &DetectKind) -> Vec<(Arc<str>, f64)> {
        match (self, kind) {
            (Detector::Multivariate(s), DetectKind::Multivariate(p)) => s.contributions(p),
            _ => Vec::new(),
        }
    }

    /// Event time reached `watermark`: silence-based detectors may fire.
    pub fn advance(&mut self, kind: &DetectKind, watermark: i64, emit: &mut impl FnMut(Verdict)) {
        if let (Detector::Missing(s), DetectKind::Missing(p)) = (self, kind) {
            s.advance(p, watermark, emit);
        }
    }
}

#[cfg(test)]
mod changepoint_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod yaml_tests;
