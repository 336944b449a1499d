//! Scores beside chance: what random alarms at the detector's own rate would score, and how
//! often the detector raises on recordings with nothing wrong in them.
//!
//! A NAB score means little alone: a detector that fires often catches windows by luck, and
//! NAB's windows cover a tenth of each file. So `weir eval --baselines N` places, in each
//! file, as many alarms as the detector raised there (after probation, at each profile's
//! threshold) on rows drawn uniformly at random among the scored rows, scores them at that
//! fixed rate (the optimiser may not switch chance off), and prints the mean and spread over
//! `N` seeds. The seeds are 1..=N through SplitMix64, so the figures are reproducible.
//!
//! Files with no labelled window are the healthy ones: the detector's raises there (after
//! probation) per hour of recording are its false-alarm rate when all is well.

use weir_drivers::simulator::SplitMix64;

use super::nab::{self, Series};
use super::{Evaluation, ProfileScore};

/// One profile's random-alarm scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Chance {
    pub profile: &'static str,
    /// Normalised score per seed.
    pub scores: Vec<f64>,
}

impl Chance {
    pub fn mean(&self) -> f64 {
        self.scores.iter().sum::<f64>() / self.scores.len().max(1) as f64
    }

    /// Sample standard deviation (0 with fewer than two seeds).
    pub fn spread(&self) -> f64 {
        let n = self.scores.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        let ss: f64 = self.scores.iter().map(|s| (s - m) * (s - m)).sum();
        (ss / (n - 1) as f64).sqrt()
    }
}

/// Random alarms at each profile's own per-file rate, `seeds` times.
pub fn random_alarms(series: &[Series], evaluation: &Evaluation, seeds: u64) -> Vec<Chance> {
    evaluation
        .profiles
        .iter()
        .map(|p| Chance {
            profile: p.profile.name,
            scores: (1..=seeds)
                .map(|seed| random_score(series, p, seed))
                .collect(),
        })
        .collect()
}

fn random_score(series: &[Series], p: &ProfileScore, seed: u64) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let mut total = 0.0;
    for s in series {
        let from = s.probation();
        let alarms = s.scores[from.min(s.scores.len())..]
            .iter()
            .filter(|&&x| x >= p.best.threshold)
            .count();
        let random = Series {
            scores: draw(&mut rng, s.scores.len(), from, alarms),
            ..s.clone()
        };
        total += nab::score(&random, p.profile.costs, 1.0).score;
    }
    nab::normalise(total, p.null, p.perfect)
}

/// `k` distinct rows of `from..n` drawn uniformly (Floyd's algorithm), as 0/1 scores.
fn draw(rng: &mut SplitMix64, n: usize, from: usize, k: usize) -> Vec<f64> {
    let mut scores = vec![0.0; n];
    let span = n.saturating_sub(from);
    let k = k.min(span);
    for j in span - k..span {
        let t = (rng.uniform() * (j + 1) as f64) as usize;
        let t = t.min(j);
        let row = if scores[from + t] == 0.0 {
            from + t
        } else {
            from + j
        };
        scores[row] = 1.0;
    }
    scores
}

/// False alarms on the healthy files (no labelled window): raises after probation, hours.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Healthy {
    pub files: usize,
    pub alarms: u64,
    pub hours: f64,
}

impl Healthy {
    pub fn per_hour(&self) -> f64 {
        if self.hours > 0.0 {
            self.alarms as f64 / self.hours
        } else {
            f64::NAN
        }
    }
}

/// Counts raises (rows at or above `threshold`, after probation) on files with no window.
pub fn healthy(series: &[Series], threshold: f64) -> Healthy {
    let mut out = Healthy::default();
    for s in series.iter().filter(|s| s.windows.is_empty()) {
        let from = s.probation();
        let (Some(&first), Some(&last)) = (s.timestamps.get(from), s.timestamps.last()) else {
            continue;
        };
        out.files += 1;
        out.hours += (last - first).max(0) as f64 / 3.6e9;
        out.alarms += s.scores[from.min(s.scores.len())..]
            .iter()
            .filter(|&&x| x >= threshold)
            .count() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::eval::evaluate;

    const MIN5: i64 = 300_000_000;

    fn series(name: &str, n: usize, windows: &[(usize, usize)], hits: &[usize]) -> Series {
        let ts: Vec<i64> = (0..n as i64).map(|i| i * MIN5).collect();
        let labels: Vec<(i64, i64)> = windows.iter().map(|&(a, b)| (ts[a], ts[b])).collect();
        let mut scores = vec![0.0; n];
        for &h in hits {
            scores[h] = 1.0;
        }
        Series::new(name.to_owned(), ts, &labels, scores).unwrap()
    }

    #[test]
    fn draws_k_distinct_rows_after_probation_and_the_same_for_a_seed() {
        let mut rng = SplitMix64::new(7);
        let a = draw(&mut rng, 1000, 150, 40);
        assert_eq!(a.iter().filter(|&&x| x == 1.0).count(), 40);
        assert!(a[..150].iter().all(|&x| x == 0.0));
        assert_eq!(a, draw(&mut SplitMix64::new(7), 1000, 150, 40));
        assert_ne!(a, draw(&mut SplitMix64::new(8), 1000, 150, 40));
        // Asking for more rows than there are takes them all.
        let all = draw(&mut rng, 10, 2, 50);
        assert_eq!(all.iter().filter(|&&x| x == 1.0).count(), 8);
    }

    #[test]
    fn a_detector_that_finds_every_window_early_beats_chance_at_its_rate() {
        // Each file: 2000 rows, one window of 200 rows, one detection at the window's start.
        let corpus: Vec<Series> = (0..20)
            .map(|i| series(&format!("c/f{i}.csv"), 2000, &[(1000, 1199)], &[1000]))
            .collect();
        let evaluation = evaluate(&corpus, 20);
        assert!((evaluation.profiles[0].normalised - 100.0).abs() < 1e-9);
        let chance = random_alarms(&corpus, &evaluation, 10);
        assert_eq!(chance[0].scores.len(), 10);
        // One random row in 1700 hits a 200-row window about one time in 8.5.
        let m = chance[0].mean();
        assert!(m > -5.0 && m < 30.0, "chance {m}");
        assert!(chance[0].spread() > 0.0);
    }

    #[test]
    fn healthy_files_count_raises_per_hour_after_probation() {
        // 1200 rows of 5 minutes: probation 180 rows; 85 hours after it.
        let quiet = series("c/quiet.csv", 1200, &[], &[10, 500, 900]);
        let labelled = series("c/fault.csv", 1200, &[(600, 700)], &[650, 800]);
        let h = healthy(&[quiet, labelled], 1.0);
        assert_eq!(h.files, 1);
        assert_eq!(h.alarms, 2, "the raise in probation does not count");
        assert!((h.hours - 1019.0 * 5.0 / 60.0).abs() < 1e-9);
        assert!((h.per_hour() - 2.0 / h.hours).abs() < 1e-12);
    }
}
