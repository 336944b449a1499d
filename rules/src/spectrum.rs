//! Band energy from an FFT over vibration frames.
//!
//! A rule with `fft: { size: N, sample_rate: FS, bands: { name: [lo, hi] } }` collects each
//! window's samples, in arrival order, into frames of `N` (a buffer of `N` complex values,
//! 16·N bytes, allocated once per open window of that rule only). Each full frame is Hann
//! windowed and transformed; the power of every bin whose frequency `k·FS/N` lies in
//! `[lo, hi]` is added to that band. When the window closes, `band_energy.<name>` is the mean
//! over its complete frames (a trailing partial frame is dropped; NaN without one).
//!
//! Power is one-sided and normalised by the window: bin `k` contributes
//! `c_k·|X_k|² / (N·Σw²)` with `c_k = 2` except for DC and Nyquist, so the bins of a frame sum
//! to `Σ(w·x)² / Σw²` (Parseval) — the mean square of the signal, in value² — and a sine of
//! amplitude A puts about A²/2 into the band around its frequency. Samples are taken to be
//! evenly spaced at `sample_rate`; their timestamps are not used.
//!
//! A hand-written radix-2 FFT rather than `rustfft`: frames are small powers of two and run
//! once per `N` samples, so a 40-line iterative transform with a precomputed twiddle table
//! costs a few microseconds per frame, is easy to check against Parseval, and keeps the rules
//! crate free of `rustfft`'s dependency tree and its per-architecture SIMD paths (the engine
//! is cross-built for armv7 and aarch64).

use std::f64::consts::PI;
use std::sync::Arc;

/// Frame sizes: powers of two in this range.
pub(crate) const MIN_SIZE: usize = 8;
pub(crate) const MAX_SIZE: usize = 8_192;
/// Bands per rule.
pub(crate) const MAX_BANDS: usize = 16;

/// A rule's transform: frame size, window, twiddles and the bins of each band.
#[derive(Debug, PartialEq)]
pub(crate) struct FftPlan {
    size: usize,
    hann: Box<[f64]>,
    /// `e^{-2πik/N}` for `k < N/2`.
    twiddle: Box<[(f64, f64)]>,
    /// `1 / (N·Σw²)`.
    norm: f64,
    /// Inclusive bin ranges, one per band.
    bands: Box<[(usize, usize)]>,
}

impl FftPlan {
    /// The plan of a buffer just read from a snapshot, replaced by the rule's own before use.
    fn placeholder() -> Arc<FftPlan> {
        Arc::new(FftPlan {
            size: 0,
            hann: Box::default(),
            twiddle: Box::default(),
            norm: 0.0,
            bands: Box::default(),
        })
    }

    /// `size` a power of two in `MIN_SIZE..=MAX_SIZE`, `sample_rate > 0`, each band
    /// `0 ≤ lo ≤ hi ≤ sample_rate / 2`; returns the message for the first band that holds no
    /// bin (`Err(index, message)`).
    pub fn new(
        size: usize,
        sample_rate: f64,
        bands: &[(f64, f64)],
    ) -> Result<FftPlan, (usize, String)> {
        let n = size as f64;
        let hann: Box<[f64]> = (0..size)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos())
            .collect();
        let twiddle = (0..size / 2)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n;
                (a.cos(), a.sin())
            })
            .collect();
        let sum_w2: f64 = hann.iter().map(|w| w * w).sum();
        let spacing = sample_rate / n;
        let mut ranges = Vec::with_capacity(bands.len());
        for (i, &(lo, hi)) in bands.iter().enumerate() {
            let first = (lo / spacing).ceil().max(0.0) as usize;
            let last = ((hi / spacing).floor() as usize).min(size / 2);
            if first > last {
                return Err((
                    i,
                    format!(
                        "band [{lo}, {hi}] holds no FFT bin (bins are sample_rate / size = \
                         {spacing} Hz apart); widen it or raise `size`"
                    ),
                ));
            }
            ranges.push((first, last));
        }
        Ok(FftPlan {
            size,
            hann,
            twiddle,
            norm: 1.0 / (n * sum_w2),
            bands: ranges.into(),
        })
    }

    /// In-place iterative radix-2 decimation-in-time FFT of `buf` (length `size`).
    fn transform(&self, buf: &mut [(f64, f64)]) {
        let n = buf.len();
        let mut j = 0;
        for i in 1..n {
            let mut bit = n >> 1;
            while j & bit != 0 {
                j ^= bit;
                bit >>= 1;
            }
            j |= bit;
            if i < j {
                buf.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for chunk in buf.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(len / 2);
                for (k, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                    let (wr, wi) = self.twiddle[k * step];
                    let t = (b.0 * wr - b.1 * wi, b.0 * wi + b.1 * wr);
                    *b = (a.0 - t.0, a.1 - t.1);
                    *a = (a.0 + t.0, a.1 + t.1);
                }
            }
            len <<= 1;
        }
    }

    /// One-sided, normalised power of bin `k` of a transformed frame.
    fn power(&self, spectrum: &[(f64, f64)], k: usize) -> f64 {
        let (re, im) = spectrum[k];
        let one_sided = if k == 0 || k == self.size / 2 {
            1.0
        } else {
            2.0
        };
        one_sided * (re * re + im * im) * self.norm
    }
}

/// One open window's frame buffer and band sums.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Frames {
    /// Not in a snapshot: derived from the rule, put back by [`Frames::set_plan`].
    #[serde(skip, default = "FftPlan::placeholder")]
    plan: Arc<FftPlan>,
    /// The current frame, filling; transformed in place when full.
    buf: Vec<(f64, f64)>,
    /// Per band, the sum over complete frames of its power.
    energy: Box<[f64]>,
    frames: u64,
}

impl Frames {
    pub fn new(plan: &Arc<FftPlan>) -> Frames {
        Frames {
            plan: plan.clone(),
            buf: Vec::with_capacity(plan.size),
            energy: vec![0.0; plan.bands.len()].into(),
            frames: 0,
        }
    }

    /// Gives a buffer read from a snapshot (which holds no plan) its rule's plan back.
    pub fn set_plan(&mut self, plan: &Arc<FftPlan>) {
        self.plan = plan.clone();
    }

    /// An empty buffer for the same plan.
    pub fn fresh(&self) -> Frames {
        Frames::new(&self.plan)
    }

    #[inline]
    pub fn add(&mut self, v: f64) {
        let i = self.buf.len();
        self.buf.push((v * self.plan.hann[i], 0.0));
        if self.buf.len() == self.plan.size {
            self.plan.transform(&mut self.buf);
            for (e, &(first, last)) in self.energy.iter_mut().zip(self.plan.bands.iter()) {
                *e += (first..=last)
                    .map(|k| self.plan.power(&self.buf, k))
                    .sum::<f64>();
            }
            self.frames += 1;
            self.buf.clear();
        }
    }

    /// Mean power per complete frame in band `index`; NaN before the first complete frame.
    pub fn energy(&self, index: usize) -> f64 {
        match self.energy.get(index) {
            Some(e) if self.frames > 0 => e / self.frames as f64,
            _ => f64::NAN,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * size_of::<(f64, f64)>() + self.energy.len() * size_of::<f64>()
    }
}

/// `band_energy.<name>` as a `&'static str`, so an [`crate::Aggregate`] stays `Copy` and its
/// name a static string like every other aggregate's (see [`crate::interned`]); `None` past
/// the process's limit of distinct names.
pub(crate) fn band_name(name: &str) -> Option<&'static str> {
    crate::interned::name(format!("band_energy.{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 1_000.0;

    fn sines(parts: &[(f64, f64)], n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64 / FS;
                parts
                    .iter()
                    .map(|&(amp, f)| amp * (2.0 * PI * f * t).sin())
                    .sum()
            })
            .collect()
    }

    fn frames(bands: &[(f64, f64)], xs: &[f64]) -> Frames {
        let plan = Arc::new(FftPlan::new(256, FS, bands).unwrap());
        let mut f = Frames::new(&plan);
        for &x in xs {
            f.add(x);
        }
        f
    }

    #[test]
    fn fft_matches_the_direct_dft() {
        let plan = FftPlan::new(16, FS, &[]).unwrap();
        let xs: Vec<f64> = (0..16).map(|i| ((i * 7) % 5) as f64 - 1.5).collect();
        let mut buf: Vec<(f64, f64)> = xs.iter().map(|&x| (x, 0.0)).collect();
        plan.transform(&mut buf);
        for (k, got) in buf.iter().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, x) in xs.iter().enumerate() {
                let a = -2.0 * PI * (k * i) as f64 / 16.0;
                re += x * a.cos();
                im += x * a.sin();
            }
            assert!(
                (got.0 - re).abs() < 1e-9 && (got.1 - im).abs() < 1e-9,
                "bin {k}"
            );
        }
    }

    #[test]
    fn parseval_holds_for_every_frame() {
        let xs: Vec<f64> = (0..256)
            .map(|i| ((i * 7_919) % 101) as f64 / 10.0 - 3.0)
            .collect();
        let f = frames(&[(0.0, FS / 2.0)], &xs);
        let plan = &f.plan;
        let windowed: f64 = xs
            .iter()
            .zip(plan.hann.iter())
            .map(|(x, w)| (x * w).powi(2))
            .sum();
        let sum_w2: f64 = plan.hann.iter().map(|w| w * w).sum();
        let want = windowed / sum_w2;
        assert!(
            (f.energy(0) - want).abs() < 1e-9 * want,
            "{} vs {want}",
            f.energy(0)
        );
    }

    #[test]
    fn sines_land_in_their_bands() {
        // 100 Hz at amplitude 2 (power 2) and 25 Hz at amplitude 1 (power 0.5), 8 frames.
        let xs = sines(&[(2.0, 100.0), (1.0, 25.0)], 8 * 256);
        let f = frames(&[(80.0, 120.0), (20.0, 30.0), (300.0, 400.0)], &xs);
        let (bearing, imbalance, high) = (f.energy(0), f.energy(1), f.energy(2));
        assert!((bearing - 2.0).abs() < 0.05 * 2.0, "bearing {bearing}");
        assert!(
            (imbalance - 0.5).abs() < 0.05 * 0.5,
            "imbalance {imbalance}"
        );
        assert!(high < 1e-3, "high {high}");
    }

    #[test]
    fn no_complete_frame_means_no_energy() {
        let f = frames(&[(80.0, 120.0)], &sines(&[(1.0, 100.0)], 255));
        assert!(f.energy(0).is_nan());
        assert!(f.energy(7).is_nan());
    }

    #[test]
    fn a_band_between_bins_is_refused() {
        // Bins are 1000 / 256 ≈ 3.9 Hz apart.
        let e = FftPlan::new(256, FS, &[(10.0, 100.0), (100.1, 101.0)]).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("no FFT bin"), "{}", e.1);
    }

    #[test]
    fn band_names_are_interned_once() {
        let a = band_name("bearing").unwrap();
        let b = band_name("bearing").unwrap();
        assert_eq!(a, "band_energy.bearing");
        assert!(std::ptr::eq(a, b));
    }
}
