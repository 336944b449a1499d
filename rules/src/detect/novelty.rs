//! `novelty`: an online learning detector for a series nobody has described — "has this series
//! ever done this before?" — asked four cheap ways at once.
//!
//! The other detectors need a user who knows the signal (a limit, a z that suits its noise,
//! a window that suits its period). `novelty` learns what is usual from the series itself,
//! each value once, in order, in fixed memory, and flags the first value of something new:
//!
//! 1. **A new extreme.** The value leaves the range of the last `range` values by more than
//!    `margin` of that range. The range is kept as the maxima and minima of blocks of 256
//!    values (`range / 256` of them), so it forgets in steps of a block (16 bytes per block,
//!    no buffer of values), and it is scale-free: a noisy series' range already holds its
//!    noise. The block size is fixed rather than a fraction of `range` so that the tests
//!    start after the same 256 values whatever the `range` (with a fraction, a longer range
//!    started later and lost NAB's early windows: a 4.5-point cliff for `range` × 1.5).
//! 2. **A surprising prediction error** (after Numenta's *anomaly likelihood*). A fast EWMA
//!    (`1 / recent`) predicts the next value; the error's recent average (the same EWMA
//!    constant) is compared with the distribution of that average over the last `memory`
//!    values (an exponentially weighted mean and variance). A recent error `z` standard
//!    deviations above what is usual means the series moves in a way it has not for a long
//!    time: a level shift, a burst of noise, a change of shape.
//! 3. **A novel context** (after CAD OSE's contextual novelty). Each value is quantised into
//!    `bins` levels of the current range, and the last `context` levels form a context. A
//!    bitset remembers the contexts seen in the current and the previous generation (one
//!    generation is `range` values, so what the series has not done for two ranges is
//!    forgotten). The rate of never-seen contexts, averaged like the error, is judged the same
//!    way as the error: `z` deviations above its usual rate. This catches what neither of the
//!    others can: a daily pattern that flattens, skips a peak or changes its shape while staying
//!    inside the usual range at its usual noise.
//! 4. **A stuck value.** The value has repeated itself exactly for longer than any run of
//!    repeats in the range (each block keeps its longest run, 2 bytes), and for at least
//!    `recent` values. A frozen sensor, a dead process whose last reading is re-sent, a
//!    gateway filling gaps with the last value: the commonest fault of machine telemetry, and
//!    invisible to the others (inside the range, a smaller error than usual, one context
//!    repeated). Scale-free like the extreme: a series read at a coarse resolution already
//!    has long runs in its range, and one that has never moved (no range width) is not judged.
//!
//! Nothing is judged in the first `warmup` values (the statistics are learned meanwhile). The
//! verdict is anomalous while any of the four says so; the rule's alert is raised on the
//! first such value and cleared when all four are quiet again, so one episode raises once.
//! The score is the largest of the four statistics, in "how far past its limit" units
//! (1 = at the limit): finite always.
//!
//! No look-ahead: nothing depends on the series' length, its overall minimum or maximum, or
//! a value not yet seen (a unit test checks that a prefix gets the same verdicts whatever
//! follows). Deterministic: the same values in the same order give the same verdicts. State
//! per (rule, series), allocated once and fixed for good: [`State::BYTES`] (248) plus 18
//! bytes per block of the range (360 with the default 20 blocks) plus two bitsets of
//! `bins^context` bits (128 bytes with the defaults, at most 1 KiB): 736 bytes with the
//! defaults on 64-bit targets (672 on armv7).
//!
//! The first days are young: with `warmup: 200` a daily series can raise at its second day's
//! noise, past a one-day range. NAB's short files need that early start; a gateway that can
//! wait sets `warmup` to two periods of its series.
use serde::Deserialize;

use super::Verdict;

/// Values per block of the range: it forgets in steps of a block, and the extreme and context
/// tests start once the first block is full, whatever the `range` (a bit under a day of
/// 5-minute values).
pub(crate) const BLOCK: u32 = 256;
/// The most blocks (`range` up to 256 × 256 = 65536 values, 4 KiB of block extremes).
pub(crate) const MAX_BLOCKS: u32 = 256;
/// The most context bits per generation: `bins^context` must not exceed it.
pub(crate) const MAX_CONTEXTS: usize = 4096;

/// Validated parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    /// Values learned before any verdict can be anomalous.
    pub warmup: u32,
    /// Values the range (and a context generation) spans; rounded up to whole [`BLOCK`]s.
    pub range: u32,
    /// How far past the range, as a fraction of it, is a new extreme.
    pub margin: f64,
    /// Values that make "recent": the predictor's and the recent averages' EWMA is `1/recent`.
    pub recent: f64,
    /// Values the usual error and novelty rates are learned over (EWMA `1/memory`).
    pub memory: f64,
    /// Standard deviations above usual that make a recent error or novelty rate surprising.
    pub z: f64,
    /// Levels a value is quantised into, and values per context.
    pub bins: u32,
    pub context: u32,
}

impl Spec {
    /// Distinct contexts: `bins^context` (validated to be at most [`MAX_CONTEXTS`]).
    pub fn contexts(&self) -> usize {
        (self.bins as usize).saturating_pow(self.context)
    }

    /// Blocks the range is kept in.
    pub fn blocks(&self) -> usize {
        self.range.div_ceil(BLOCK).clamp(1, MAX_BLOCKS) as usize
    }
}

/// `detect: { novelty: { ... } }` as written; every key has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    #[serde(default)]
    warmup: Option<u64>,
    #[serde(default)]
    range: Option<u64>,
    #[serde(default)]
    margin: Option<f64>,
    #[serde(default)]
    recent: Option<f64>,
    #[serde(default)]
    memory: Option<f64>,
    #[serde(default)]
    z: Option<f64>,
    #[serde(default)]
    bins: Option<u64>,
    #[serde(default)]
    context: Option<u64>,
}

/// Defaults, each argued in `examples/rules/nab-novelty.yaml`, which spells them all out:
/// `warmup` under the shortest useful history, `range` 20 blocks whose 19 full ones always
/// hold two weekly cycles of 5-minute values, `margin` 2 % of the range, `recent` HTM's ten-value
/// average, `memory` a week of 5-minute values, `z` 6, `bins` 8, `context` 3.
pub(crate) const DEFAULT: Spec = Spec {
    warmup: 200,
    range: 5120,
    margin: 0.02,
    recent: 10.0,
    memory: 2000.0,
    z: 6.0,
    bins: 8,
    context: 3,
};

/// Validates `raw`; each problem goes to `bad(key, message)`.
pub(crate) fn compile(raw: &RawSpec, bad: &mut dyn FnMut(&str, String)) -> Option<(Spec, String)> {
    let mut ok = true;
    let mut check = |good: bool, key: &str, msg: String| {
        if !good {
            ok = false;
            bad(key, msg);
        }
    };
    let warmup = raw.warmup.unwrap_or(u64::from(DEFAULT.warmup));
    check(
        warmup <= 10_000_000,
        "warmup",
        "`warmup` (values learned before judging) must be at most 10000000".into(),
    );
    let range = raw.range.unwrap_or(u64::from(DEFAULT.range));
    check(
        (u64::from(BLOCK)..=u64::from(BLOCK * MAX_BLOCKS)).contains(&range),
        "range",
        format!(
            "`range` (values the usual range spans) must be between {BLOCK} and {}",
            BLOCK * MAX_BLOCKS
        ),
    );
    let margin = raw.margin.unwrap_or(DEFAULT.margin);
    check(
        margin >= 0.0 && margin.is_finite(),
        "margin",
        "`margin` (a fraction of the range) must be ≥ 0".into(),
    );
    let recent = raw.recent.unwrap_or(DEFAULT.recent);
    check(
        (1.0..=1e7).contains(&recent),
        "recent",
        "`recent` (values that make the recent average) must be between 1 and 10000000".into(),
    );
    let memory = raw.memory.unwrap_or(DEFAULT.memory);
    check(
        (2.0..=1e9).contains(&memory) && memory > recent,
        "memory",
        "`memory` (values the usual is learned over) must be between 2 and 1e9 and above `recent`"
            .into(),
    );
    let z = raw.z.unwrap_or(DEFAULT.z);
    check(
        z > 0.0 && z.is_finite(),
        "z",
        "`z` must be a positive number".into(),
    );
    let bins = raw.bins.unwrap_or(u64::from(DEFAULT.bins));
    let context = raw.context.unwrap_or(u64::from(DEFAULT.context));
    check(
        (2..=64).contains(&bins),
        "bins",
        "`bins` (levels a value is quantised into) must be between 2 and 64".into(),
    );
    let contexts = bins.checked_pow(u32::try_from(context).unwrap_or(u32::MAX));
    check(
        context >= 1 && contexts.is_some_and(|c| c <= MAX_CONTEXTS as u64),
        "context",
        format!("`context` must be at least 1, with `bins` ^ `context` at most {MAX_CONTEXTS}"),
    );
    if !ok {
        return None;
    }
    let spec = Spec {
        warmup: u32::try_from(warmup).ok()?,
        range: u32::try_from(range).ok()?,
        margin,
        recent,
        memory,
        z,
        bins: u32::try_from(bins).ok()?,
        context: u32::try_from(context).ok()?,
    };
    let text = format!(
        "novelty(new extreme past {margin} of the last {range} values' range, recent error or \
         new contexts {z} sigma above usual, or a value stuck longer than any run in the range)"
    );
    Some((spec, text))
}

/// A running mean and variance with exponential forgetting (West's update).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Usual {
    mean: f64,
    var: f64,
}

impl Usual {
    /// How many deviations `x` is above the usual, with `floor` as the least deviation.
    fn z(&self, x: f64, floor: f64) -> f64 {
        (x - self.mean) / self.var.sqrt().max(floor)
    }

    fn learn(&mut self, x: f64, alpha: f64) {
        let d = x - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
    }
}

/// The learned state of one series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// Values seen (finite ones).
    n: u64,
    /// Maxima and minima of the last full blocks, a ring; `full` of them are valid.
    block_max: Vec<f64>,
    block_min: Vec<f64>,
    full: usize,
    next: usize,
    /// The block being filled.
    cur_max: f64,
    cur_min: f64,
    cur_n: u32,
    /// The fast predictor and the recent mean error, and what is usual for it.
    predictor: f64,
    recent_error: f64,
    error: Usual,
    /// The last `context` levels, newest in the lowest digit (base `bins`).
    levels: u32,
    /// Contexts seen in this generation and the previous one; values into this generation.
    seen: Vec<u64>,
    seen_before: Vec<u64>,
    generation_n: u32,
    /// Values quantised since the range exists (saturating).
    in_range: u32,
    /// The recent rate of never-seen contexts, and what is usual for it.
    recent_novelty: f64,
    novelty: Usual,
    /// The last value (NaN before the first), and how many values in a row have equalled the
    /// one before them.
    last: f64,
    run: u32,
    /// The longest such run in each full block (a ring beside `block_max`), and in the block
    /// being filled; saturating (a run of 65535 repeats is longer than any range).
    block_run: Vec<u16>,
    cur_run: u16,
}

impl State {
    /// Bytes of the state besides its context bitsets.
    pub const BYTES: usize = size_of::<State>();

    pub fn new(spec: &Spec) -> State {
        let words = spec.contexts().div_ceil(64);
        State {
            n: 0,
            block_max: vec![f64::NEG_INFINITY; spec.blocks()],
            block_min: vec![f64::INFINITY; spec.blocks()],
            full: 0,
            next: 0,
            cur_max: f64::NEG_INFINITY,
            cur_min: f64::INFINITY,
            cur_n: 0,
            predictor: 0.0,
            recent_error: 0.0,
            error: Usual::default(),
            levels: 0,
            seen: vec![0; words],
            seen_before: vec![0; words],
            generation_n: 0,
            in_range: 0,
            recent_novelty: 0.0,
            novelty: Usual::default(),
            last: f64::NAN,
            run: 0,
            block_run: vec![0; spec.blocks()],
            cur_run: 0,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.seen.capacity() + self.seen_before.capacity()) * size_of::<u64>()
            + (self.block_max.capacity() + self.block_min.capacity()) * size_of::<f64>()
            + self.block_run.capacity() * size_of::<u16>()
    }

    /// The range of the full blocks and the one being filled; `None` before a block is full.
    fn range(&self) -> Option<(f64, f64)> {
        if self.full == 0 {
            return None;
        }
        let blocks = 0..self.full;
        let hi = blocks
            .clone()
            .map(|i| self.block_max[i])
            .fold(self.cur_max, f64::max);
        let lo = blocks
            .map(|i| self.block_min[i])
            .fold(self.cur_min, f64::min);
        Some((lo, hi))
    }

    fn extend_range(&mut self, x: f64) {
        self.cur_max = self.cur_max.max(x);
        self.cur_min = self.cur_min.min(x);
        self.cur_n += 1;
        if self.cur_n >= BLOCK {
            self.block_max[self.next] = self.cur_max;
            self.block_min[self.next] = self.cur_min;
            self.block_run[self.next] = self.cur_run;
            self.cur_run = 0;
            self.next = (self.next + 1) % self.block_max.len();
            self.full = (self.full + 1).min(self.block_max.len());
            self.cur_max = f64::NEG_INFINITY;
            self.cur_min = f64::INFINITY;
            self.cur_n = 0;
        }
    }

    /// How far past the range `x` is, in units of the margin (> 1: a new extreme).
    fn extreme(spec: &Spec, range: Option<(f64, f64)>, x: f64) -> f64 {
        match range {
            Some((lo, hi)) if hi > lo => {
                let past = (x - hi).max(lo - x) / (hi - lo);
                past / spec.margin
            }
            _ => 0.0,
        }
    }

    /// Learns whether `x` repeats the value before it; how far the current run of repeats is
    /// past the longest in the range (> 1: stuck). A run is judged once it is at least
    /// `recent` values long (an episode, not a coincidence) and only on a series whose range
    /// has width: a series that has never moved has no usual run to be stuck against.
    fn stuck(&mut self, spec: &Spec, range: Option<(f64, f64)>, x: f64) -> f64 {
        self.run = if x == self.last { self.run + 1 } else { 0 };
        self.last = x;
        let longest = (0..self.full)
            .map(|i| self.block_run[i])
            .fold(self.cur_run, u16::max);
        self.cur_run = self
            .cur_run
            .max(u16::try_from(self.run).unwrap_or(u16::MAX));
        match range {
            Some((lo, hi)) if hi > lo => {
                let limit = f64::from(longest).max(spec.recent - 1.0).max(0.5);
                f64::from(self.run) / limit
            }
            _ => 0.0,
        }
    }

    /// Learns the error of the predictor on `x`; how surprising the recent error now is.
    fn surprise(&mut self, spec: &Spec, x: f64) -> f64 {
        let fast = 1.0 / spec.recent;
        let error = if self.n == 0 {
            self.predictor = x;
            0.0
        } else {
            (x - self.predictor).abs()
        };
        self.predictor += fast * (x - self.predictor);
        self.recent_error += fast * (error - self.recent_error);
        // A deviation floor relative to the usual error keeps z finite on a flat series; any
        // movement after a long flat stretch is then surprising, as it should be.
        let floor = 1e-9 * self.error.mean.abs() + 1e-12;
        let z = self.error.z(self.recent_error, floor);
        self.error.learn(self.recent_error, 1.0 / spec.memory);
        z
    }

    /// Learns the context `x` completes; how surprising the recent rate of new contexts is.
    fn novel_context(&mut self, spec: &Spec, range: Option<(f64, f64)>, x: f64) -> f64 {
        let bins = spec.bins;
        // Levels mean nothing before the first block gives a range: neither judged nor
        // learned until then, so the first real contexts are not a "burst" of novelty.
        let Some((lo, hi)) = range else {
            return 0.0;
        };
        let (lo, hi) = (lo.min(x), hi.max(x));
        let level = if hi > lo {
            ((f64::from(bins) * (x - lo) / (hi - lo)) as u32).min(bins - 1)
        } else {
            0
        };
        let contexts = spec.contexts() as u32;
        self.levels = (self.levels * bins + level) % contexts;
        self.generation_n += 1;
        if self.generation_n > spec.range {
            std::mem::swap(&mut self.seen, &mut self.seen_before);
            self.seen.iter_mut().for_each(|w| *w = 0);
            self.generation_n = 1;
        }
        self.in_range = self.in_range.saturating_add(1);
        let novel = if self.in_range < spec.context {
            0.0 // the first context is not complete yet
        } else {
            let (word, bit) = (self.levels as usize / 64, 1u64 << (self.levels % 64));
            let known = (self.seen[word] | self.seen_before[word]) & bit != 0;
            self.seen[word] |= bit;
            if known { 0.0 } else { 1.0 }
        };
        self.recent_novelty += (novel - self.recent_novelty) / spec.recent;
        let z = self.novelty.z(self.recent_novelty, 1e-6);
        self.novelty.learn(self.recent_novelty, 1.0 / spec.memory);
        z
    }

    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        // The range before `x`, once for the three tests that read it.
        let range = self.range();
        let extreme = Self::extreme(spec, range, x);
        let novelty = self.novel_context(spec, range, x);
        let stuck = self.stuck(spec, range, x);
        self.extend_range(x);
        let surprise = self.surprise(spec, x);
        self.n += 1;
        // Each statistic in units of its own limit: > 1 is anomalous.
        let score = extreme
            .max(surprise / spec.z)
            .max(novelty / spec.z)
            .max(stuck);
        let judged = self.n > u64::from(spec.warmup);
        Some(Verdict {
            ts,
            anomalous: judged && score > 1.0,
            value: x,
            score: if score.is_finite() { score } else { f64::MAX },
            forecast: None,
        })
    }
}

#[cfg(test)]
#[path = "novelty_tests.rs"]
mod tests;
