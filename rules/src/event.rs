//! The engine's inputs and outputs: `Sample` in, `Event` out.
//!
//! These types are the contract between the three crates. The agent interns a
//! `(device, metric)` pair once through [`crate::Engine::series`] and from then on only a
//! small copyable [`SeriesId`] travels with each sample, so no string is cloned per sample.

use std::fmt;
use std::sync::Arc;

/// An interned `(device, metric)` pair. Only meaningful for the engine that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u32);

/// One measured value of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub series: SeriesId,
    /// Event time: microseconds since the Unix epoch, as the device or driver stamped it.
    pub ts: i64,
    pub value: f64,
}

/// How urgent an alert is. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Raised,
    Cleared,
}

impl AlertState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Cleared => "cleared",
        }
    }
}

/// An aggregate function over a window's values.
///
/// Every aggregate is computed online in O(1) memory per open window (see `agg`).
/// "First" and "last" are by event time (ties: arrival order); `ewma` is by arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggregate {
    Count,
    Mean,
    Min,
    Max,
    Sum,
    /// The value with the earliest timestamp.
    First,
    /// The value with the latest timestamp.
    Last,
    /// `last - first`.
    Delta,
    /// `delta` per second of window length (for count and session windows: of the span
    /// between the first and last timestamps; NaN when that span is zero).
    Rate,
    /// Population variance (divides by n), computed with Welford's method.
    Variance,
    /// Square root of `variance`.
    Stddev,
    /// Root mean square: `sqrt(mean(v²))`.
    Rms,
    /// `max - min`.
    PeakToPeak,
    /// Exponentially weighted moving average over the window in arrival order, seeded with
    /// the first value to arrive: `e = alpha * v + (1 - alpha) * e`. `alpha` is the rule's
    /// `ewma_alpha` (default 0.2).
    Ewma,
    /// Least-squares slope of value against time, per second (NaN when every sample has the
    /// same timestamp). The trend a predictive-maintenance rule watches.
    Slope,
}

impl Aggregate {
    /// Every aggregate, in declaration order.
    pub const ALL: [Aggregate; 15] = [
        Aggregate::Count,
        Aggregate::Mean,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Sum,
        Aggregate::First,
        Aggregate::Last,
        Aggregate::Delta,
        Aggregate::Rate,
        Aggregate::Variance,
        Aggregate::Stddev,
        Aggregate::Rms,
        Aggregate::PeakToPeak,
        Aggregate::Ewma,
        Aggregate::Slope,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
            Aggregate::First => "first",
            Aggregate::Last => "last",
            Aggregate::Delta => "delta",
            Aggregate::Rate => "rate",
            Aggregate::Variance => "variance",
            Aggregate::Stddev => "stddev",
            Aggregate::Rms => "rms",
            Aggregate::PeakToPeak => "peak_to_peak",
            Aggregate::Ewma => "ewma",
            Aggregate::Slope => "slope",
        }
    }

    /// The aggregate spelled `name` in rule files.
    pub fn from_name(name: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// An alert was raised or cleared. `value` is the value of the condition's left-hand
    /// side that decided it (for example the window's mean).
    Alert {
        state: AlertState,
        severity: Severity,
        value: f64,
        /// The condition as written in the rule, e.g. `mean > 80`, or the rule's detector
        /// described, e.g. `cusum(k 0.5, h 5)`.
        condition: Arc<str>,
        /// The detector's statistic behind the transition (z-score, CUSUM sum, rate per
        /// second, seconds flat or silent); NaN for `when` conditions and detectors that
        /// have none.
        score: f64,
        /// The rule's `message:` template filled in for this transition, if it has one.
        message: Option<Arc<str>>,
    },
    /// A `trend` detector's forecast, updated with every input it judges.
    Prediction {
        /// The limit the trend is extrapolated to.
        threshold: f64,
        /// Seconds from `ts` until the fitted line reaches it: 0 when already past it,
        /// infinity when the line is flat or heading away.
        seconds_to_threshold: f64,
        /// Slope of the fitted line, per second.
        slope: f64,
        /// Fit quality: R² of the least-squares line, 0 to 1.
        r2: f64,
        /// Inputs in the fit.
        points: u32,
    },
    /// A window closed; its aggregates, in the order the rule lists them.
    Window {
        /// Window start, inclusive (µs since epoch).
        start: i64,
        /// Window end, exclusive (µs since epoch).
        end: i64,
        values: Vec<(Aggregate, f64)>,
    },
}

/// An engine output. `ts` is the event time it refers to (for windows: the window's end).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub rule: Arc<str>,
    pub series: SeriesId,
    pub ts: i64,
    pub kind: EventKind,
}
