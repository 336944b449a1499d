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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
/// Every aggregate is computed online, most in O(1) memory per open window (see `agg`);
/// percentiles keep a sketch of O(log n) memory (`sketch`) and band energies one FFT frame
/// (`spectrum`), and only in the windows of rules that name them.
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
    /// Population skewness `sqrt(n)·M3 / M2^1.5` from the central moment sums (NaN when
    /// every value is the same).
    Skewness,
    /// Population (Pearson, not excess) kurtosis `n·M4 / M2²`: 3 for Gaussian noise, 1.5 for
    /// a pure sine, larger for impulsive signals such as a bearing's spalling (NaN when every
    /// value is the same).
    Kurtosis,
    /// `max(|min|, |max|) / rms`: √2 for a pure sine, larger when peaks stand out of the
    /// signal (impacts); NaN for an all-zero window.
    CrestFactor,
    /// The nearest-rank median (`p50`): the smallest value with at least half the window's
    /// samples at or below it. From a bounded-memory sketch (module `sketch`): exact up to
    /// 255 samples, rank error documented beyond.
    Median,
    /// `pN`, N in 1..=99: the nearest-rank N-th percentile, from the same sketch.
    Percentile(u8),
    /// `band_energy.<name>`: the mean power (value²) per FFT frame in one of the rule's
    /// `fft.bands` (module `spectrum`). `index` is the band's position in the rule; `name`
    /// is the full interned name.
    BandEnergy {
        index: u8,
        name: &'static str,
    },
    /// A `let` value of the rule, published with its window (`aggregates: [hi]`): computed
    /// from the window's aggregates by the rule's expression (and smoothed across windows
    /// when it is an `ewma(x, alpha)`), not accumulated from samples. `index` is its position
    /// in the rule's `let:`; `name` is the interned name.
    Let {
        index: u8,
        name: &'static str,
    },
}

/// `p0` … `p99`, so [`Aggregate::as_str`] can stay `&'static str`.
const PERCENTILE_NAMES: [&str; 100] = [
    "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p12", "p13", "p14",
    "p15", "p16", "p17", "p18", "p19", "p20", "p21", "p22", "p23", "p24", "p25", "p26", "p27",
    "p28", "p29", "p30", "p31", "p32", "p33", "p34", "p35", "p36", "p37", "p38", "p39", "p40",
    "p41", "p42", "p43", "p44", "p45", "p46", "p47", "p48", "p49", "p50", "p51", "p52", "p53",
    "p54", "p55", "p56", "p57", "p58", "p59", "p60", "p61", "p62", "p63", "p64", "p65", "p66",
    "p67", "p68", "p69", "p70", "p71", "p72", "p73", "p74", "p75", "p76", "p77", "p78", "p79",
    "p80", "p81", "p82", "p83", "p84", "p85", "p86", "p87", "p88", "p89", "p90", "p91", "p92",
    "p93", "p94", "p95", "p96", "p97", "p98", "p99",
];

impl Aggregate {
    /// Every aggregate, in declaration order.
    pub const ALL: [Aggregate; 18] = [
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
        Aggregate::Skewness,
        Aggregate::Kurtosis,
        Aggregate::CrestFactor,
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
            Aggregate::Skewness => "skewness",
            Aggregate::Kurtosis => "kurtosis",
            Aggregate::CrestFactor => "crest_factor",
            Aggregate::Median => "median",
            Aggregate::Percentile(p) => PERCENTILE_NAMES[p as usize % 100],
            Aggregate::BandEnergy { name, .. } | Aggregate::Let { name, .. } => name,
        }
    }

    /// The aggregate spelled `name` in rule files: one of [`Aggregate::ALL`], `median`, or
    /// `p1` … `p99`.
    pub fn from_name(name: &str) -> Option<Aggregate> {
        if name == "median" {
            return Some(Aggregate::Median);
        }
        if let Some(digits) = name.strip_prefix('p')
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(p @ 1..=99) = digits.parse::<u8>()
        {
            return Some(Aggregate::Percentile(p));
        }
        Aggregate::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Whether this aggregate needs the window's percentile sketch.
    pub(crate) const fn needs_sketch(self) -> bool {
        matches!(self, Aggregate::Median | Aggregate::Percentile(_))
    }

    /// Whether a lean accumulator (count, sum, min, max, first and last only, plus the
    /// sketch and FFT frames when kept) gives this aggregate. A new aggregate is not lean
    /// until listed here, so forgetting it costs speed, not correctness.
    pub(crate) const fn is_lean(self) -> bool {
        matches!(
            self,
            Aggregate::Count
                | Aggregate::Mean
                | Aggregate::Min
                | Aggregate::Max
                | Aggregate::Sum
                | Aggregate::First
                | Aggregate::Last
                | Aggregate::Delta
                | Aggregate::Rate
                | Aggregate::PeakToPeak
                | Aggregate::Median
                | Aggregate::Percentile(_)
                | Aggregate::BandEnergy { .. }
                // Computed from the others: what it reads is counted where it is compiled.
                | Aggregate::Let { .. }
        )
    }

    /// Whether this aggregate needs the third and fourth central moments.
    pub(crate) const fn needs_moments(self) -> bool {
        matches!(self, Aggregate::Skewness | Aggregate::Kurtosis)
    }

    /// The names accepted besides [`Aggregate::ALL`]'s, for error messages.
    pub(crate) const OTHER_NAMES: &str = "median, p1 … p99, band_energy.<band>";
}

pub use crate::detect::changepoint::ChangeKind;

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
        /// Which sensor moved: for a `multivariate` detector, per metric, how much `score`
        /// would fall if that metric alone were corrected to what the others imply (the
        /// sensor that moved alone scores about the whole `score`), in the rule's metric
        /// order. Empty for every other rule.
        contributions: Vec<(Arc<str>, f64)>,
    },
    /// A `trend` detector's forecast, updated with every input it judges.
    Prediction {
        /// The limit the trend is extrapolated to.
        threshold: f64,
        /// Seconds from `ts` until the fitted line reaches it: 0 when already past it,
        /// infinity when the line is flat or heading away.
        seconds_to_threshold: f64,
        /// Slope of the fitted curve now, per second.
        slope: f64,
        /// Fit quality: R² of the least-squares fit (in `ln` for the exponential), 0 to 1.
        r2: f64,
        /// Inputs in the fit.
        points: u32,
        /// The fitted value at `ts` (the level the prediction starts from).
        level: f64,
        /// The 90 % interval of `seconds_to_threshold` from the fit's residuals: its near
        /// and far ends (infinity when the shifted curve never reaches the limit).
        early_seconds: f64,
        late_seconds: f64,
        /// The degradation model fitted: `line`, `quadratic` or `exponential`.
        model: &'static str,
    },
    /// A window closed; its aggregates, in the order the rule lists them.
    Window {
        /// Window start, inclusive (µs since epoch).
        start: i64,
        /// Window end, exclusive (µs since epoch).
        end: i64,
        values: Vec<(Aggregate, f64)>,
    },
    /// A sample too late for every window of a rule with `late: emit`; `ts` is the sample's.
    Late { value: f64 },
    /// A `changepoint` detector found the level shifted: an instantaneous event, not an
    /// alert state. `ts` is when it was detected.
    Changepoint {
        /// `onset` (the level left its home level) or `return` (it came back to it).
        change: ChangeKind,
        /// When the level moved (Page's estimate, µs since epoch); before `ts`.
        onset: i64,
        /// The level before and after the change.
        before: f64,
        after: f64,
        /// The shift in standard deviations, signed.
        score: f64,
    },
    /// An incident of one device (the `incidents:` section): the alerts that fire together,
    /// raised once and cleared once. The raise lists the contributors raised at its `ts`,
    /// the clear every alert that joined.
    Incident {
        state: AlertState,
        /// The highest severity among its contributors.
        severity: Severity,
        /// Event time of the first contributor's raise (the incident's identity on its
        /// device: raise and clear carry the same value).
        opened: i64,
        contributors: Vec<Contributor>,
    },
}

/// One alert that joined an incident.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contributor {
    pub rule: Arc<str>,
    /// The alert's metric (`*` for device-level rules).
    pub metric: Box<str>,
    /// Event time of its first raise within the incident.
    pub raised: i64,
    pub severity: Severity,
}

/// An engine output. `ts` is the event time it refers to (for windows: the window's end).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub rule: Arc<str>,
    pub series: SeriesId,
    pub ts: i64,
    pub kind: EventKind,
}
