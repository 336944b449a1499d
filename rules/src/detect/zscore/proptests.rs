//! `robust_zscore` on its compact window (module `window`) against the plain window it
//! replaced: the code before the compact encoding, kept here as the reference (values sorted
//! as `f64`, the same one-shift replacement, so ties, `-0.0` among them, sit in the same
//! order) with the median and MAD found by sorting. Same stream, same verdicts, scores
//! compared as bits, for decimal streams at every scale, streams whose odd values widen the
//! window mid-way, non-decimal values, `-0.0`, huge values, windows of 1 to 300 (narrow and
//! wide arrival numbers), every learning mode, and a checkpoint round trip mid-stream (whose
//! bytes must be the reference's).

use proptest::prelude::*;

use super::*;

/// The window before the compact encoding: `sorted` as `f64`.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Plain {
    sorted: Vec<f64>,
    age: Ages,
    oldest: u16,
    step: Step,
}

impl Plain {
    fn feed(&mut self, spec: &RobustSpec, ts: i64, x: f64) -> Option<Verdict> {
        if !x.is_finite() {
            return None;
        }
        if x.abs() > MAX_LEARNED {
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
            if self.sorted.is_empty() && spec.window > NARROW {
                self.age = Ages::Wide(Vec::new());
            }
            self.step.observe(x);
            let age = self.oldest.wrapping_add(self.sorted.len() as u16);
            let at = plain_rank(&self.sorted, x);
            self.sorted.insert(at, x);
            self.age.insert(at, age);
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
            self.step.observe(x);
            let age = self.oldest.wrapping_add(self.sorted.len() as u16);
            let oldest = self.oldest;
            let replaced = match &mut self.age {
                Ages::Narrow(a) => plain_shift(&mut self.sorted, a, oldest as u8, age as u8, x),
                Ages::Wide(a) => plain_shift(&mut self.sorted, a, oldest, age, x),
            };
            assert!(replaced);
            self.oldest = self.oldest.wrapping_add(1);
        }
        Some(Verdict {
            ts,
            anomalous,
            value: x,
            score,
            forecast: None,
        })
    }

    fn score(&self, spec: &RobustSpec, x: f64) -> f64 {
        let v = &self.sorted;
        let n = v.len();
        let median = |w: &[f64]| match w.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => w[n / 2],
            n => (w[n / 2 - 1] + w[n / 2]) / 2.0,
        };
        let med = median(v);
        let mut dist: Vec<f64> = v.iter().map(|y| (y - med).abs()).collect();
        dist.sort_by(f64::total_cmp);
        let mut mad = median(&dist);
        if mad == 0.0 {
            let mean_ad = v.iter().map(|y| (y - med).abs()).sum::<f64>() / n as f64;
            mad = mean_ad * 1.2533 * MAD_SCALE;
        }
        let sigma = (mad / MAD_SCALE).max(spec.floor.sigma(self.step.min, med));
        finite_score((x - med) / sigma)
    }
}

fn plain_rank(v: &[f64], x: f64) -> usize {
    v.iter().filter(|&&y| y < x).count()
}

fn plain_shift<T: Copy + PartialEq>(v: &mut [f64], a: &mut [T], oldest: T, age: T, x: f64) -> bool {
    let Some(at_old) = a.iter().position(|&n| n == oldest) else {
        return false;
    };
    let at_new = plain_rank(v, x);
    if at_new <= at_old {
        v.copy_within(at_new..at_old, at_new + 1);
        a.copy_within(at_new..at_old, at_new + 1);
        v[at_new] = x;
        a[at_new] = age;
    } else {
        v.copy_within(at_old + 1..at_new, at_old);
        a.copy_within(at_old + 1..at_new, at_old);
        v[at_new - 1] = x;
        a[at_new - 1] = age;
    }
    true
}

const P10: [f64; 13] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];

/// Values that sit on an edge of some encoding, or beyond every one.
const EDGES: [f64; 24] = [
    -0.0,
    0.0,
    32767.0,
    -32768.0,
    32768.0,
    -32769.0,
    3276.7,
    3276.8,
    2147483647.0,
    -2147483648.0,
    2147483648.0,
    2.147483647,
    2.147483648,
    0.000000001,
    0.0000000001,
    1e150,
    -1e150,
    2e150,
    1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
    f64::NAN,
    f64::INFINITY,
    0.30000000000000004,
];

/// A stream: mostly `k / 10^scale` with `|k| ≤ amplitude` around `level` (every value when
/// `mix` is 100), the rest decimals at other scales and of other sizes, arbitrary bit
/// patterns, noise with 53 random bits, and the edges.
fn stream(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
    (
        0usize..=12,
        prop_oneof![Just(5i64), Just(300), Just(40_000), Just(3_000_000_000)],
        -40_000i64..40_000,
        prop_oneof![3 => Just(100u8), 2 => 60u8..100],
        prop::collection::vec((0u8..100, any::<i64>(), any::<u64>()), len),
    )
        .prop_map(|(scale, amplitude, level, mix, raw)| {
            raw.into_iter()
                .map(|(pick, k, bits)| {
                    if pick < mix {
                        let k = level + k.rem_euclid(2 * amplitude + 1) - amplitude;
                        return k as f64 / P10[scale];
                    }
                    match pick % 5 {
                        0 => (k % 3_000_000_000) as f64 / P10[(bits % 13) as usize],
                        1 => f64::from_bits(bits),
                        2 => 20.0 + (bits >> 11) as f64 / (1u64 << 53) as f64,
                        3 => EDGES[(bits % EDGES.len() as u64) as usize],
                        _ => (k % 100) as f64 / P10[(bits % 4) as usize],
                    }
                })
                .collect()
        })
}

fn spec() -> impl Strategy<Value = RobustSpec> {
    (
        prop_oneof![1usize..=70, 250usize..=300],
        0.5f64..6.0,
        prop_oneof![
            Just(Learn::All),
            Just(Learn::ExcludeAnomalies),
            Just(Learn::Frozen)
        ],
        prop_oneof![Just(0.0), Just(0.01)],
    )
        .prop_map(|(window, z, learn, resolution)| RobustSpec {
            z,
            window,
            learn,
            floor: Floor {
                min_sigma: 0.0,
                resolution,
            },
        })
}

fn same(a: &Option<Verdict>, b: &Option<Verdict>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.ts == b.ts
                && a.anomalous == b.anomalous
                && a.value.to_bits() == b.value.to_bits()
                && a.score.to_bits() == b.score.to_bits()
                && a.forecast.is_none()
                && b.forecast.is_none()
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_compact_window_judges_exactly_as_the_plain_one(
        spec in spec(),
        xs in stream(1..900),
        restore_at in 0usize..900,
    ) {
        // Long enough to fill the window and replace it a few times over.
        let xs: Vec<f64> = xs.iter().cycle().take(spec.window * 3 + xs.len()).copied().collect();
        let mut compact = RobustState::default();
        let mut plain = Plain::default();
        for (i, &x) in xs.iter().enumerate() {
            if i == restore_at {
                let bytes = postcard::to_allocvec(&compact).unwrap();
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&plain).unwrap());
                compact = postcard::from_bytes(&bytes).unwrap();
            }
            let got = compact.feed(&spec, i as i64, x);
            let want = plain.feed(&spec, i as i64, x);
            prop_assert!(same(&got, &want), "input {i} ({x:e}): {got:?} vs {want:?}");
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&compact.sorted.to_f64()), bits(&plain.sorted));
        prop_assert_eq!(&compact.age, &plain.age);
        prop_assert_eq!(compact.oldest, plain.oldest);
    }
}

/// A decimal stream stays in 2-byte integers, and after one value that widened it to `f64`
/// left the window, narrows back (not only: the verdicts stay the reference's).
#[test]
fn a_window_widened_by_one_value_narrows_back_after_it_left() {
    let spec = RobustSpec {
        z: 3.5,
        window: 64,
        learn: Learn::All,
        floor: Floor {
            min_sigma: 0.0,
            resolution: 0.0,
        },
    };
    let mut compact = RobustState::default();
    let mut plain = Plain::default();
    let mut widest = 0;
    for i in 0..1_000i64 {
        let x = if i == 300 {
            std::f64::consts::PI
        } else {
            20.0 + (i * 37 % 101) as f64 / 100.0
        };
        let got = compact.feed(&spec, i, x);
        assert!(same(&got, &plain.feed(&spec, i, x)), "input {i}");
        widest = widest.max(compact.heap_bytes());
        if i == 299 {
            assert!(matches!(compact.sorted, Values::I16 { scale: 2, .. }));
            assert_eq!(compact.heap_bytes(), 64 * 2 + 64);
        }
        if i == 300 {
            assert!(matches!(compact.sorted, Values::F64(_)));
        }
    }
    assert!(matches!(compact.sorted, Values::I16 { scale: 2, .. }));
    assert_eq!(compact.heap_bytes(), 64 * 2 + 64);
    assert_eq!(widest, 64 * 8 + 64);
}
