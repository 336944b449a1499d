//! The Numenta Anomaly Benchmark's scoring rules, reimplemented to the letter.
//!
//! NAB rewards a detector for flagging each labelled anomaly window once and early, and charges
//! it for every flag outside a window, more the further the flag is from the last window. The
//! published scoreboard is only comparable if the arithmetic is NAB's own (its `sweeper.py`),
//! including its quirks, so this module follows it step by step:
//!
//! * the first `min(floor(0.15 n), 750)` rows of a file are probation: never scored, neither as
//!   detections nor as missed windows;
//! * a row at relative position `y` in its window (−1 at the first row, `-1/width` at the last)
//!   is worth `tp · σ(y) / σ(−1)` with `σ(y) = 2 / (1 + e^{5y}) − 1`; a window keeps only its
//!   best (that is, earliest) detection, and one with none costs `−fn`;
//! * a row outside every window is worth `fp · σ(d / (w − 1))`, `d` rows past the end of the
//!   previous window of `w` rows (`−fp` with no previous window, or when `d / (w − 1) > 3`);
//!   every such detection counts;
//! * one threshold per profile for the whole corpus: every distinct score is tried, from the
//!   highest down, and the best total wins (the highest threshold among equals);
//! * normalised = `100 (S − S_null) / (S_perfect − S_null)`.
//!
//! Windows arrive as timestamps. Like NAB, a window runs from the first row (in file order)
//! whose timestamp is its start to the first row whose timestamp is its end, so a file with a
//! step back in time or duplicate timestamps is scored as NAB scores it; when a limit is no
//! row's timestamp, the nearest rows inside the window are used instead.

use thiserror::Error;

/// Weights of one application profile (NAB's `CostMatrix`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    pub tp: f64,
    pub fn_: f64,
    pub fp: f64,
}

/// A named profile, as in NAB's `profiles.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub costs: Costs,
}

/// NAB's three application profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        costs: Costs {
            tp: 1.0,
            fn_: 1.0,
            fp: 0.11,
        },
    },
    Profile {
        name: "reward_low_FP_rate",
        costs: Costs {
            tp: 1.0,
            fn_: 1.0,
            fp: 0.22,
        },
    },
    Profile {
        name: "reward_low_FN_rate",
        costs: Costs {
            tp: 1.0,
            fn_: 2.0,
            fp: 0.11,
        },
    },
];

/// Why a labelled file cannot be scored.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum LabelError {
    #[error("{file}: window {start}..{end} holds no row of the file")]
    EmptyWindow { file: String, start: i64, end: i64 },
    #[error("{file}: windows overlap or are out of order at {start}")]
    Overlap { file: String, start: i64 },
}

/// An anomaly window as rows of its file, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: usize,
    pub last: usize,
}

impl Window {
    fn rows(&self) -> usize {
        self.last - self.first + 1
    }
}

/// One labelled file with a detector's score for each of its rows.
#[derive(Debug, Clone)]
pub struct Series {
    /// `category/file.csv`, the labels' key.
    pub name: String,
    pub timestamps: Vec<i64>,
    pub windows: Vec<Window>,
    /// One anomaly score per row; a detection is a score at or above the threshold.
    pub scores: Vec<f64>,
}

impl Series {
    /// Places the labelled windows (`[start, end]` timestamps, µs) on the file's rows.
    pub fn new(
        name: String,
        timestamps: Vec<i64>,
        labels: &[(i64, i64)],
        scores: Vec<f64>,
    ) -> Result<Series, LabelError> {
        let mut windows: Vec<Window> = Vec::with_capacity(labels.len());
        for &(start, end) in labels {
            let empty = || LabelError::EmptyWindow {
                file: name.clone(),
                start,
                end,
            };
            let first = timestamps
                .iter()
                .position(|&t| t == start)
                .unwrap_or_else(|| first_at_or_after(&timestamps, start));
            let last = match timestamps.iter().skip(first).position(|&t| t == end) {
                Some(offset) => first + offset,
                None => first_at_or_after(&timestamps, end.saturating_add(1))
                    .checked_sub(1)
                    .ok_or_else(empty)?,
            };
            if first > last || first >= timestamps.len() {
                return Err(empty());
            }
            if windows.last().is_some_and(|w| w.last >= first) {
                return Err(LabelError::Overlap { file: name, start });
            }
            windows.push(Window { first, last });
        }
        Ok(Series {
            name,
            timestamps,
            windows,
            scores,
        })
    }

    /// Rows of probation at the start of the file (NAB: 15 %, at most 750).
    pub fn probation(&self) -> usize {
        probation(self.timestamps.len())
    }

    /// What each scored row is and what a detection there is worth, in row order.
    fn rows(&self, costs: Costs) -> impl Iterator<Item = Row> + '_ {
        let max_tp = scaled_sigmoid(-1.0);
        let mut next = 0usize; // the first window not yet passed
        (self.probation()..self.timestamps.len()).map(move |i| {
            while next < self.windows.len() && self.windows[next].last < i {
                next += 1;
            }
            let (slot, weight) = match self.windows.get(next) {
                Some(w) if w.first <= i => {
                    let position = -((w.last - i + 1) as f64) / w.rows() as f64;
                    (
                        Slot::Window(next),
                        costs.tp * scaled_sigmoid(position) / max_tp,
                    )
                }
                _ => match next.checked_sub(1).map(|p| self.windows[p]) {
                    None => (Slot::Outside, -costs.fp),
                    Some(prev) if prev.rows() <= 1 => (Slot::Outside, -costs.fp),
                    Some(prev) => {
                        let past = (i - prev.last) as f64 / (prev.rows() - 1) as f64;
                        (Slot::Outside, costs.fp * scaled_sigmoid(past))
                    }
                },
            };
            Row {
                index: i,
                score: self.scores.get(i).copied().unwrap_or(0.0),
                slot,
                weight,
            }
        })
    }

    /// Windows with at least one row after probation: the ones that can be missed.
    fn scored_windows(&self) -> usize {
        let probation = self.probation();
        self.windows.iter().filter(|w| w.last >= probation).count()
    }
}

/// The first row (in file order) at or after `ts`; `timestamps.len()` when there is none.
/// Recordings are not always in order (NAB's own have a few steps back), so this is not a
/// binary search on the raw timestamps.
fn first_at_or_after(timestamps: &[i64], ts: i64) -> usize {
    timestamps
        .iter()
        .position(|&t| t >= ts)
        .unwrap_or(timestamps.len())
}

/// Probation rows of a file of `n` rows.
pub fn probation(n: usize) -> usize {
    (n * 15 / 100).min(750)
}

/// NAB's `scaledSigmoid`: 1 at −∞-ish, 0 at 0, −1 far past it.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Window(usize),
    Outside,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    index: usize,
    score: f64,
    slot: Slot,
    weight: f64,
}

/// One file (or the corpus) scored at one threshold. Counts are NAB's: rows after probation,
/// `tp`/`fn_` inside windows, `fp`/`tn` outside.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub score: f64,
    pub tp: u64,
    pub tn: u64,
    pub fp: u64,
    pub fn_: u64,
    /// Windows that can be scored (not wholly in probation), and those detected.
    pub windows: u64,
    pub detected: u64,
    /// For each window of the file, its first detection's row (None: missed or in probation).
    pub first_detections: Vec<Option<usize>>,
}

impl Tally {
    /// Adds another file's tally (the per-window detail is not kept).
    pub fn add(&mut self, other: &Tally) {
        self.score += other.score;
        self.tp += other.tp;
        self.tn += other.tn;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.windows += other.windows;
        self.detected += other.detected;
    }
}

/// Scores one file: every row with a score at or above `threshold` is a detection.
pub fn score(series: &Series, costs: Costs, threshold: f64) -> Tally {
    let probation = series.probation();
    let mut best: Vec<Option<(usize, f64)>> = vec![None; series.windows.len()];
    let mut tally = Tally::default();
    let mut fp_sum = 0.0;
    for row in series.rows(costs) {
        let hit = row.score >= threshold;
        match (row.slot, hit) {
            (Slot::Window(k), true) => {
                tally.tp += 1;
                // Earlier rows are worth more, so the first detection is the best one.
                if best[k].is_none() {
                    best[k] = Some((row.index, row.weight));
                }
            }
            (Slot::Window(_), false) => tally.fn_ += 1,
            (Slot::Outside, true) => {
                tally.fp += 1;
                fp_sum += row.weight;
            }
            (Slot::Outside, false) => tally.tn += 1,
        }
    }
    let mut window_sum = 0.0;
    for (k, w) in series.windows.iter().enumerate() {
        if w.last < probation {
            continue;
        }
        tally.windows += 1;
        match best[k] {
            Some((_, weight)) => {
                tally.detected += 1;
                window_sum += weight.max(-costs.fn_);
            }
            None => window_sum -= costs.fn_,
        }
    }
    tally.score = fp_sum + window_sum;
    tally.first_detections = best.iter().map(|b| b.map(|(row, _)| row)).collect();
    tally
}

/// The corpus-wide threshold NAB's optimiser picks and the total raw score it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Best {
    /// `f64::INFINITY` when no threshold beats never detecting anything.
    pub threshold: f64,
    pub score: f64,
}

/// Tries every distinct score of the corpus as the threshold, highest first (NAB's
/// `calcScoreByThreshold` over all files at once), and keeps the best total.
pub fn optimise(corpus: &[Series], costs: Costs) -> Best {
    let mut rows: Vec<(f64, f64, Option<usize>)> = Vec::new(); // score, weight, global window
    let mut windows = 0usize;
    let mut missed = 0usize;
    for series in corpus {
        rows.extend(series.rows(costs).filter(|r| !r.score.is_nan()).map(|r| {
            let window = match r.slot {
                Slot::Window(k) => Some(windows + k),
                Slot::Outside => None,
            };
            (r.score, r.weight, window)
        }));
        windows += series.windows.len();
        missed += series.scored_windows();
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut window_best: Vec<Option<f64>> = vec![None; windows];
    let mut window_sum = -(missed as f64) * costs.fn_;
    let mut fp_sum = 0.0;
    let mut best = Best {
        threshold: f64::INFINITY,
        score: window_sum,
    };
    let mut i = 0;
    while i < rows.len() {
        let threshold = rows[i].0;
        while i < rows.len() && rows[i].0 == threshold {
            let (_, weight, window) = rows[i];
            match window {
                None => fp_sum += weight,
                Some(k) => {
                    let old = window_best[k].unwrap_or(-costs.fn_);
                    if weight > old {
                        window_sum += weight - old;
                        window_best[k] = Some(weight);
                    }
                }
            }
            i += 1;
        }
        let total = fp_sum + window_sum;
        if total > best.score {
            best = Best {
                threshold,
                score: total,
            };
        }
    }
    best
}

/// NAB's normalised score: 0 for the null detector, 100 for the perfect one.
pub fn normalise(score: f64, null: f64, perfect: f64) -> f64 {
    if perfect == null {
        return f64::NAN;
    }
    100.0 * (score - null) / (perfect - null)
}

/// The null detector's raw score: every scorable window missed.
pub fn null_score(corpus: &[Series], costs: Costs) -> f64 {
    -(corpus.iter().map(Series::scored_windows).sum::<usize>() as f64) * costs.fn_
}

/// The perfect detector's raw score: every window detected at its first row.
pub fn perfect_score(windows: usize, costs: Costs) -> f64 {
    windows as f64 * costs.tp
}
