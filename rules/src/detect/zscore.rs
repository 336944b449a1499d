//! z-scores: how unusual is this value, measured against what the series normally does.
//!
//! * `zscore`: `(x − mean) / σ` against the online [`Baseline`] (EWMA mean and variance after
//!   an exact warm-up). Cheap (24 bytes, O(1)) and good for roughly Gaussian noise.
//! * `robust_zscore`: `0.6745 · (x − median) / MAD` over the last `window` values (Iglewicz
//!   and Hoaglin's modified z-score). A median and a median absolute deviation are not
//!   dragged by the outliers they are meant to find, so one spike does not hide the next,
//!   at the price of a bounded buffer (sorted, with each value's arrival number: 3 bytes per
//!   value for decimal telemetry that fits `i16` at its scale, 5 for `i32`, 9 for arbitrary
//!   floats; module [`window`]) and, per value, a rank count, a scan for the leaving value and
//!   one shift (of the values between where the leaving value was and where the new one
//!   goes), then a binary search over the two runs of distances either side of the median for
//!   the MAD (no copy, no selection: O(log window)).
//!
//! Both flag `|score| > z`; NaN inputs are skipped (neither judged nor learned). Both divide
//! by a spread floored as `baseline`'s module docs describe (`min_sigma`, `resolution`, or
//! the learned step / √12), so a quantised sensor whose MAD is 0 scores one step at about
//! 3.5, never 1000 or ∞.

mod window;

use super::Verdict;
use super::baseline::{Baseline, BaselineSpec, Floor, Learn, MAX_LEARNED, Step, finite_score};
use window::{Sorted, SortedFn, Values};

/// Validated parameters of `zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ZSpec {
    pub z: f64,
    pub baseline: BaselineSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ZState {
    base: Baseline,
}

impl ZState {
    pub fn seed(&mut self, spec: BaselineSpec, st: &crate::learned::Stats) {
        self.base = Baseline::seed(spec, st);
    }

    pub fn feed(&mut self, spec: &ZSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if !self.base.ready(spec.baseline) {
            self.base.learn(spec.baseline, x, false);
            return None;
        }
        let score = finite_score((x - self.base.mean()) / self.base.sigma(spec.baseline));
        let anomalous = score.abs() > spec.z;
        self.base.learn(spec.baseline, x, anomalous);
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }
}

/// Validated parameters of `robust_zscore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RobustSpec {
    pub z: f64,
    /// Values kept; verdicts start once the buffer is full.
    pub window: usize,
    pub learn: Learn,
    pub floor: Floor,
}

/// The consistency constant that makes the MAD of normal data estimate σ.
const MAD_SCALE: f64 = 0.6745;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RobustState {
    /// The window's values, sorted: the median is read off the middle, and the MAD found
    /// by a binary search outwards from it, with no copy and no selection per input. Kept
    /// in the narrowest exact encoding (module [`window`]); a sequence of `f64` on the wire.
    sorted: Values,
    /// `age[i]` is the arrival number of `sorted[i]`, to find the value that leaves next:
    /// 1 byte per value (mod 2⁸) for windows of at most 256 values, 2 bytes (mod 2¹⁶;
    /// windows hold at most 4,096) above, instead of a second copy of the window in arrival
    /// order (8 bytes per value).
    age: Ages,
    /// The arrival number of the oldest value in the window (mod 2¹⁶; its low byte is the
    /// number mod 2⁸).
    oldest: u16,
    /// The smallest step between consecutive values learned, for the noise floor.
    step: Step,
}

/// Arrival numbers, as narrow as the window allows: distinct within a window of at most 256
/// values mod 2⁸, of at most 65,536 mod 2¹⁶.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Ages {
    Narrow(Vec<u8>),
    Wide(Vec<u16>),
}

impl Default for Ages {
    fn default() -> Self {
        Ages::Narrow(Vec::new())
    }
}

/// The most values [`Ages::Narrow`] tells apart.
const NARROW: usize = 256;

/// The most values a window's buffers are sized for before its first value (a larger window
/// grows from there as its values come).
const RESERVE: usize = 256;

impl Ages {
    fn heap_bytes(&self) -> usize {
        match self {
            Ages::Narrow(a) => a.capacity(),
            Ages::Wide(a) => a.capacity() * size_of::<u16>(),
        }
    }

    fn insert(&mut self, at: usize, n: u16) {
        match self {
            Ages::Narrow(a) => a.insert(at, n as u8),
            Ages::Wide(a) => a.insert(at, n),
        }
    }
}

impl RobustState {
    pub fn heap_bytes(&self) -> usize {
        self.sorted.heap_bytes() + self.age.heap_bytes()
    }

    pub fn feed(&mut self, spec: &RobustSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if x.abs() > MAX_LEARNED {
            // Judged against the window, never kept in it (see `baseline`).
            let score = self.score(spec, x);
            return (self.sorted.len() >= spec.window).then_some(Verdict {
                ts,
                anomalous: score.abs() > spec.z,
                value: x,
                score,
                forecast: None,
            });
        }
        if self.sorted.len() < spec.window {
            if self.sorted.len() == 0 {
                // The window's buffers at their full size at once (up to `RESERVE` values), not
                // grown by doubling: on a gateway whose series fill their windows together,
                // the outgrown 4-, 8-, 16- and 32-value buffers of every series were left as
                // free holes between live ones, which the allocator cannot hand back (about
                // 50 bytes per series).
                let n = spec.window.min(RESERVE);
                self.age = if spec.window > NARROW {
                    Ages::Wide(Vec::with_capacity(n))
                } else {
                    Ages::Narrow(Vec::with_capacity(n))
                };
                self.sorted.reserve_exact(n);
            }
            self.insert(x);
            return None;
        }
        let score = self.score(spec, x);
        let anomalous = score.abs() > spec.z;
        let learn = match spec.learn {
            Learn::All => true,
            Learn::ExcludeAnomalies => !anomalous,
            Learn::Frozen => false,
        };
        if learn {
            self.replace(x);
        }
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }

    /// The oldest value leaves the window and `x` enters: one shift of the values between
    /// their two places, not a removal and an insertion that each shift half the window.
    fn replace(&mut self, x: f64) {
        self.step.observe(x);
        let age = self.oldest.wrapping_add(self.sorted.len() as u16);
        let oldest = self.oldest;
        let v = &mut self.sorted;
        // One dispatch per value, then the loops of the values' and the arrival numbers' own
        // widths.
        let replaced = match &mut self.age {
            Ages::Narrow(a) => v.replace(a, oldest as u8, age as u8, x),
            Ages::Wide(a) => v.replace(a, oldest, age, x),
        };
        if replaced {
            self.oldest = self.oldest.wrapping_add(1);
            // Once per window length of replacements, back to the narrowest encoding the
            // values allow (after a value that widened the window has left it).
            if usize::from(self.oldest) % v.len() == 0 && !v.is_narrowest() {
                v.narrow();
            }
        } else {
            // Cannot happen (every arrival number in the window is in `age`); stay sorted.
            self.insert(x);
        }
    }

    /// Adds `x` to a window that is not full.
    fn insert(&mut self, x: f64) {
        self.step.observe(x);
        let age = self.oldest.wrapping_add(self.sorted.len() as u16);
        let at = self.sorted.insert(x);
        self.age.insert(at, age);
    }

    /// `(x − median) / σ̂` with `σ̂ = MAD / 0.6745`, floored like every spread (see
    /// `baseline`'s noise floor).
    fn score(&self, spec: &RobustSpec, x: f64) -> f64 {
        let (med, mad) = self.sorted.with_sorted(MedianSpread);
        let sigma = (mad / MAD_SCALE).max(spec.floor.sigma(self.step.min, med));
        finite_score((x - med) / sigma)
    }
}

/// The median of sorted values and their spread: the MAD or, when that is 0, the scaled mean
/// absolute deviation.
struct MedianSpread;

impl SortedFn<(f64, f64)> for MedianSpread {
    fn call<S: Sorted + ?Sized>(self, v: &S) -> (f64, f64) {
        let n = v.len();
        let med = median_sorted(v);
        let mut mad = mad_sorted(v, med);
        if mad == 0.0 {
            // More than half the window is one value (a quantised sensor at rest): fall back
            // to the mean absolute deviation, scaled to estimate σ the same way.
            let mean_ad = (0..n).map(|i| (v.at(i) - med).abs()).sum::<f64>() / n as f64;
            mad = mean_ad * 1.2533 * MAD_SCALE;
        }
        (med, mad)
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median_sorted<S: Sorted + ?Sized>(v: &S) -> f64 {
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v.at(n / 2),
        _ => (v.at(n / 2 - 1) + v.at(n / 2)) / 2.0,
    }
}

/// The median of `|v - med|` for sorted `v`: the distances on each side of `med` are
/// themselves sorted (growing outwards from the split), so the k-th smallest distance is the
/// k-th smallest of two sorted runs, found by a binary search over how many come from the
/// lower run: O(log n), no allocation, and only a few cache lines of the window touched.
fn mad_sorted<S: Sorted + ?Sized>(v: &S, med: f64) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let split = v.rank(med);
    let below = |i: usize| med - v.at(split - 1 - i);
    let above = |j: usize| v.at(split + j) - med;
    let (nb, na) = (split, n - split);
    let (previous, kth) = kth_of_two(&below, nb, &above, na, n / 2);
    if n % 2 == 1 {
        kth
    } else {
        (previous + kth) / 2.0
    }
}

/// The `k`-th smallest (from 0) of the union of two ascending runs `a` (`na` long) and `b`,
/// `k < na + nb`, and the `k − 1`-th (−∞ for `k` = 0): one search for both, as the even
/// windows' MAD needs the two middle distances (each value read costs a division when the
/// window is kept as decimal integers, module [`window`]).
fn kth_of_two(
    a: &impl Fn(usize) -> f64,
    na: usize,
    b: &impl Fn(usize) -> f64,
    nb: usize,
    k: usize,
) -> (f64, f64) {
    // The k + 1 smallest hold `i` values of `a` and `k + 1 - i` of `b`.
    let take = k + 1;
    let (mut lo, mut hi) = (take.saturating_sub(nb), take.min(na));
    loop {
        let i = lo + (hi - lo) / 2;
        let j = take - i;
        if i > 0 && j < nb && a(i - 1) > b(j) {
            hi = i - 1; // too many from `a`
        } else if j > 0 && i < na && b(j - 1) > a(i) {
            lo = i + 1; // too few from `a`
        } else {
            // The k + 1 smallest are a[..i] and b[..j]: the k-th is their largest, the
            // (k − 1)-th the largest once that one is set aside.
            let from_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
            let from_b = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
            let previous = if from_a >= from_b {
                let next_a = if i > 1 { a(i - 2) } else { f64::NEG_INFINITY };
                next_a.max(from_b)
            } else {
                let next_b = if j > 1 { b(j - 2) } else { f64::NEG_INFINITY };
                from_a.max(next_b)
            };
            return (previous, from_a.max(from_b));
        }
        if lo > hi {
            // Unreachable for ascending runs; answer something finite-safe.
            return (f64::NAN, f64::NAN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious way: sort, take the middle; the same for the distances.
    fn brute(v: &[f64]) -> (f64, f64) {
        let med = |mut w: Vec<f64>| {
            w.sort_by(f64::total_cmp);
            let n = w.len();
            if n % 2 == 1 {
                w[n / 2]
            } else {
                (w[n / 2 - 1] + w[n / 2]) / 2.0
            }
        };
        let m = med(v.to_vec());
        (m, med(v.iter().map(|x| (x - m).abs()).collect()))
    }

    #[test]
    fn median_and_mad_of_sorted_windows_match_sorting() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for n in 1..60 {
            for _ in 0..20 {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Few distinct values, so ties and a zero MAD are common.
                        (x % 7) as f64 - (x % 3) as f64 * 0.5
                    })
                    .collect();
                let (m, mad) = brute(&v);
                v.sort_by(f64::total_cmp);
                assert_eq!(median_sorted(&v[..]), m, "{v:?}");
                assert_eq!(mad_sorted(&v[..], m), mad, "{v:?}");
            }
        }
        assert!(median_sorted::<[f64]>(&[]).is_nan());
    }

    /// The one-shift replacement keeps the sorted copy equal to sorting the window (kept
    /// here in arrival order), with ties, repeats and values leaving from either side of the
    /// one entering, across the wrap of the arrival numbers: 8-bit ones for windows of up to
    /// 256 values (at 255 and 256, the edge), 16-bit ones above and, forced, below (the
    /// layout before the narrow one, so both give the same window).
    #[test]
    fn replacing_keeps_the_sorted_copy_sorted() {
        for (window, wide, steps, every) in [
            (16, false, 70_000, 1),
            (255, false, 3_000, 1),
            (256, false, 3_000, 1),
            (16, true, 70_000, 1),
            (256, true, 3_000, 1),
            (257, true, 70_000, 97),
        ] {
            let mut st = RobustState::default();
            if wide {
                st.age = Ages::Wide(Vec::new());
            }
            let mut queue = std::collections::VecDeque::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..steps {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x % 11) as f64 - 5.0;
                if queue.len() < window {
                    st.insert(v);
                } else {
                    queue.pop_front();
                    st.replace(v);
                }
                queue.push_back(v);
                if i % every == 0 || i + 1 == steps {
                    let mut want: Vec<f64> = queue.iter().copied().collect();
                    want.sort_by(f64::total_cmp);
                    assert_eq!(
                        st.sorted.to_f64(),
                        want,
                        "window {window}, wide {wide}, step {i}"
                    );
                }
            }
            assert_eq!(matches!(st.age, Ages::Wide(_)), wide);
        }
    }

    /// `robust_zscore` at z 5 over `window` values, learning everything, with no noise floor.
    fn spec(window: usize) -> RobustSpec {
        RobustSpec {
            z: 5.0,
            window,
            learn: Learn::All,
            floor: Floor {
                min_sigma: 0.0,
                resolution: 0.0,
            },
        }
    }

    /// A window above 256 values switches to 16-bit arrival numbers at its first value; one
    /// of up to 256 keeps 8-bit ones (1 byte per value).
    #[test]
    fn arrival_numbers_are_as_narrow_as_the_window_allows() {
        for (window, wide) in [(64, false), (256, false), (257, true), (4096, true)] {
            let mut st = RobustState::default();
            for i in 0..window + 10 {
                st.feed(&spec(window), i as i64, (i % 7) as f64);
            }
            assert_eq!(matches!(st.age, Ages::Wide(_)), wide, "window {window}");
            assert_eq!(st.sorted.len(), window);
        }
    }

    /// A window of up to 256 values gets its buffers at full size with its first value and
    /// never reallocates them while it fills (a 2-decimal stream: `i16` values, 8-bit
    /// arrival numbers); a larger one starts at 256 values and grows from there.
    #[test]
    fn a_window_is_sized_once_with_its_first_value() {
        for window in [1, 64, 256] {
            let mut st = RobustState::default();
            st.feed(&spec(window), 0, 21.37);
            assert_eq!(st.heap_bytes(), window * 3, "window {window}, first value");
            for i in 1..window + 10 {
                st.feed(&spec(window), i as i64, 20.0 + (i % 13) as f64 * 0.01);
            }
            assert_eq!(st.heap_bytes(), window * 3, "window {window}, full");
        }
        let mut st = RobustState::default();
        st.feed(&spec(1000), 0, 21.37);
        assert_eq!(
            st.heap_bytes(),
            RESERVE * 4,
            "2-byte values, 2-byte arrival numbers"
        );
        for i in 1..1000 {
            st.feed(&spec(1000), i as i64, 20.0 + (i % 13) as f64 * 0.01);
        }
        assert!(st.heap_bytes() >= 1000 * 4);
    }
}

#[cfg(test)]
mod proptests;
