//! `changepoint` on synthetic steps with known onsets: detection delay, the onset estimate,
//! onset then return, and the false-change rate on stationary Gaussian noise.

use crate::{ChangeKind, Engine, EventKind, RuleSet, Sample};

const S: i64 = 1_000_000;

/// `(detected at, kind, onset, before, after, score)`, times in values (1 per second).
type Cp = (i64, ChangeKind, i64, f64, f64, f64);

fn changes(detect: &str, values: &[f64]) -> Vec<Cp> {
    let yaml = format!("rules:\n  - name: r\n    detect: {detect}\n    alert: {{}}\n");
    let mut e = Engine::new(RuleSet::parse_str(&yaml, "c.yaml").unwrap());
    let id = e.series("d", "m").unwrap();
    let mut out = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let ts = i as i64 * S;
        e.push(
            Sample {
                series: id,
                ts,
                value,
            },
            &mut out,
        );
    }
    assert!(
        out.iter()
            .all(|ev| !matches!(ev.kind, EventKind::Alert { .. })),
        "a changepoint is an event, never an alert state"
    );
    out.iter()
        .filter_map(|ev| match ev.kind {
            EventKind::Changepoint {
                change,
                onset,
                before,
                after,
                score,
            } => Some((ev.ts / S, change, onset / S, before, after, score)),
            _ => None,
        })
        .collect()
}

/// Standard Gaussian noise (Box–Muller over xorshift), deterministic per seed.
fn gauss(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

fn steps(levels: &[(f64, usize)], seed: u64) -> Vec<f64> {
    let n = levels.iter().map(|l| l.1).sum();
    let noise = gauss(n, seed);
    let mut v = Vec::with_capacity(n);
    for &(level, len) in levels {
        for _ in 0..len {
            v.push(level + noise[v.len()]);
        }
    }
    v
}

#[test]
fn a_two_sigma_step_is_an_onset_and_the_step_back_a_return() {
    let v = steps(&[(10.0, 500), (12.0, 500), (10.0, 500)], 1);
    let cps = changes("{ changepoint: {} }", &v);
    assert_eq!(cps.len(), 2, "{cps:?}");
    let (at, kind, onset, before, after, score) = cps[0];
    assert_eq!(kind, ChangeKind::Onset);
    // Delay about h / (δ − k) = 8 / 1.5 ≈ 5 values; Page's onset estimate within a few.
    assert!((500..515).contains(&at), "{cps:?}");
    assert!((495..=505).contains(&onset), "{cps:?}");
    assert!(
        (before - 10.0).abs() < 0.3 && (after - 12.0).abs() < 0.8,
        "{cps:?}"
    );
    assert!(score > 1.0 && score.is_finite());
    let (at, kind, onset, _, after, score) = cps[1];
    assert_eq!(kind, ChangeKind::Return);
    assert!((1000..1020).contains(&at), "{cps:?}");
    assert!((990..=1005).contains(&onset), "{cps:?}");
    assert!((after - 10.0).abs() < 0.8 && score < -1.0, "{cps:?}");
}

#[test]
fn detection_delay_on_known_onsets_by_shift_size() {
    // Averaged over seeds: the delay from the true onset to the event.
    for (shift, max_mean_delay) in [(1.0, 30.0), (2.0, 10.0), (4.0, 5.0)] {
        let mut delays = Vec::new();
        for seed in 0..20 {
            let v = steps(&[(0.0, 300), (shift, 200)], 100 + seed);
            let cps = changes("{ changepoint: {} }", &v);
            let first = cps.iter().find(|c| c.0 >= 300).map(|c| c.0 - 300);
            delays.push(first.unwrap_or(200) as f64);
        }
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!(
            mean <= max_mean_delay,
            "{shift}σ: mean delay {mean} ({delays:?})"
        );
    }
}

#[test]
fn a_further_shift_away_from_home_is_another_onset() {
    let v = steps(&[(0.0, 300), (3.0, 300), (6.0, 300)], 7);
    let kinds: Vec<ChangeKind> = changes("{ changepoint: {} }", &v)
        .iter()
        .map(|c| c.1)
        .collect();
    assert_eq!(kinds, [ChangeKind::Onset, ChangeKind::Onset]);
}

/// The documented false-change rate on 100,000 values of Gaussian noise: 3 with the
/// defaults (h = 8; the detectors bench measures 8 on its noise); the textbook h = 5 about
/// two per thousand values.
#[test]
fn stationary_noise_gives_no_changes_at_the_documented_rate() {
    let v: Vec<f64> = gauss(100_000, 99).iter().map(|e| 50.0 + e).collect();
    let quiet = changes("{ changepoint: {} }", &v);
    assert!(quiet.len() <= 5, "{} false changes: {quiet:?}", quiet.len());
    let loose = changes("{ changepoint: { h: 5 } }", &v).len();
    eprintln!(
        "false changes in 100,000: h 8: {}, h 5: {loose}",
        quiet.len()
    );
    assert!((20..500).contains(&loose), "h 5: {loose} in 100,000");
}

#[test]
fn a_constant_or_quantised_sensor_gives_finite_modest_scores() {
    // One step of a sensor that sat on 50 then moved to 51 for good: a change with a
    // finite score, reported once.
    let mut v = vec![50.0; 200];
    v.extend(vec![51.0; 200]);
    let cps = changes("{ changepoint: { resolution: 1 } }", &v);
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert!((cps[0].5 - 12f64.sqrt()).abs() < 1e-9, "{cps:?}");
}

#[test]
fn state_is_120_bytes() {
    assert_eq!(size_of::<super::changepoint::State>(), 120);
}
