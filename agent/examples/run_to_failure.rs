//! A small run-to-failure set with a known degradation law, and how well each `trend` model
//! predicts remaining life on it, beside an oracle that knows the law.
//!
//! ```text
//! cargo run --release -p weir-agent --example run_to_failure -- data/rtf
//! ```
//!
//! writes `DIR/units.csv` (`unit,cycle,value`: each unit's history up to the cycle it is
//! cut at), `DIR/sensors.csv` (`unit,cycle,vibration,bearing_temp,debris`: the same units seen
//! through three sensors instead of the health index) and `DIR/truth.csv`
//! (`unit,cut,rul,life,h0,a,b`), then prints RMSE and the PHM08 score of the predicted
//! remaining life at the cut, per model.
//!
//! The sensors follow the noiseless health index `h` from a new machine's level (`h` = 0)
//! to an alarm limit (`h` = 1), each with its own noise: vibration RMS from 1.0 to 7.1 mm/s
//! (the ISO 10816 zone C/D boundary) with σ = 0.25 mm/s, bearing temperature from 45 to
//! 80 °C with σ = 1.5 °C, iron debris in the oil from 5 to 50 ppm with σ = 4 ppm. (Written
//! with their own seed, so `units.csv` is the same as before they existed.)
//!
//! The law: a health index `h(t) = h0 + a·(e^{b·t} − 1)` plus Gaussian noise (σ = 0.02),
//! failing when the noiseless `h` reaches 1. Per unit, `h0 ~ U(0.05, 0.15)`,
//! `b ~ U(0.004, 0.012)` per cycle, the life `L ~ U(150, 350)` cycles, and `a` follows from
//! `h(L) = 1`. Each unit is cut at `U(0.5, 0.95)·L` (as in PHM08's test set: the history
//! stops before failure, the remaining life is to be predicted). The seed is fixed.
//!
//! Each model runs through the real engine (`RuleSet::parse_str`, `Engine::push`), one
//! value per cycle (1 cycle = 1 s of event time), with the rule
//! `trend: { above: 1, over: 1000000s, horizon: 1d, points: 4096, model: M }` (all the
//! history) and the same with `over: 100s` (the last 100 cycles); the last
//! prediction's `seconds_to_threshold` is the predicted remaining life, capped at 500 cycles
//! (never = 500). The oracle knows the law's form: it fits `h0 + a·(e^{bt} − 1)` by least
//! squares in `(h0, a)` for each `b` of a fine grid and keeps the best.

use std::fmt::Write as _;
use std::path::PathBuf;

use weir_drivers::simulator::SplitMix64;
use weir_rules::{Engine, EventKind, RuleSet, Sample};

const UNITS: usize = 60;
/// Per sensor: the new machine's level, the alarm limit (`h` = 1) and the noise.
const SENSORS: [(&str, f64, f64, f64); 3] = [
    ("vibration", 1.0, 7.1, 0.25),
    ("bearing_temp", 45.0, 80.0, 1.5),
    ("debris", 5.0, 50.0, 4.0),
];
const SIGMA: f64 = 0.02;
const CAP: f64 = 500.0;

struct Unit {
    h0: f64,
    a: f64,
    b: f64,
    life: f64,
    cut: usize,
    values: Vec<f64>,
}

fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.uniform();
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn generate() -> Vec<Unit> {
    let mut rng = SplitMix64::new(2008);
    let mut between = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    let mut units: Vec<Unit> = (0..UNITS)
        .map(|_| {
            let h0 = between(0.05, 0.15);
            let b = between(0.004, 0.012);
            let life = between(150.0, 350.0);
            let a = (1.0 - h0) / ((b * life).exp() - 1.0);
            let cut = (between(0.5, 0.95) * life) as usize;
            Unit {
                h0,
                a,
                b,
                life,
                cut,
                values: Vec::new(),
            }
        })
        .collect();
    let mut rng = SplitMix64::new(2009);
    for u in &mut units {
        u.values = (0..=u.cut)
            .map(|t| u.h0 + u.a * ((u.b * t as f64).exp() - 1.0) + SIGMA * normal(&mut rng))
            .collect();
    }
    units
}

/// The last predicted time to threshold of a `trend` rule with `model` over the values,
/// with its interval's near and far ends.
fn predict(model: &str, over: &str, values: &[f64]) -> anyhow::Result<(f64, f64, f64)> {
    let yaml = format!(
        "rules:\n  - name: rul\n    detect: {{ trend: {{ above: 1, over: {over}, horizon: 1d, \
         points: 4096, model: {model} }} }}\n    alert: {{ severity: info }}\n"
    );
    let rules = RuleSet::parse_str(&yaml, "rul.yaml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut engine = Engine::new(rules);
    let series = engine.series("unit", "health")?;
    let mut out = Vec::new();
    let mut last = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for (t, &value) in values.iter().enumerate() {
        out.clear();
        let ts = t as i64 * 1_000_000;
        engine.push(Sample { series, ts, value }, &mut out);
        for e in &out {
            if let EventKind::Prediction {
                seconds_to_threshold,
                early_seconds,
                late_seconds,
                ..
            } = e.kind
            {
                last = (seconds_to_threshold, early_seconds, late_seconds);
            }
        }
    }
    Ok((last.0.min(CAP), last.1, last.2))
}

/// Least squares of `h0 + a·(e^{bt} − 1)` over a grid of `b`; cycles from the last value
/// until the fitted curve reaches 1.
fn oracle(values: &[f64]) -> f64 {
    let now = (values.len() - 1) as f64;
    let mut best = (f64::INFINITY, CAP);
    for k in 0..=400 {
        let b = 0.002 + 0.0001 * k as f64;
        let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
        let n = values.len() as f64;
        for (t, &y) in values.iter().enumerate() {
            let x = (b * t as f64).exp() - 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        let det = n * sxx - sx * sx;
        if det <= 0.0 {
            continue;
        }
        let a = (n * sxy - sx * sy) / det;
        let h0 = (sy - a * sx) / n;
        let sse: f64 = values
            .iter()
            .enumerate()
            .map(|(t, &y)| {
                let e = y - (h0 + a * ((b * t as f64).exp() - 1.0));
                e * e
            })
            .sum();
        if sse < best.0 && a > 0.0 {
            let fail = ((1.0 - h0) / a + 1.0).ln() / b;
            best = (sse, (fail - now).clamp(0.0, CAP));
        }
    }
    best.1
}

/// PHM08's score of one prediction error `d = predicted − true` (late costs more).
fn phm08(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data/rtf".into()));
    std::fs::create_dir_all(&dir)?;
    let units = generate();
    let mut csv = String::from("unit,cycle,value\n");
    let mut truth = String::from("unit,cut,rul,life,h0,a,b\n");
    for (i, u) in units.iter().enumerate() {
        for (t, v) in u.values.iter().enumerate() {
            writeln!(csv, "{i},{t},{v:.5}")?;
        }
        let rul = u.life - u.cut as f64;
        writeln!(
            truth,
            "{i},{},{rul:.3},{:.3},{:.5},{:.6},{:.6}",
            u.cut, u.life, u.h0, u.a, u.b
        )?;
    }
    std::fs::write(dir.join("units.csv"), csv)?;
    let mut rng = SplitMix64::new(2010);
    let names: Vec<&str> = SENSORS.iter().map(|s| s.0).collect();
    let mut sensors = format!("unit,cycle,{}\n", names.join(","));
    for (i, u) in units.iter().enumerate() {
        for t in 0..=u.cut {
            let h = u.h0 + u.a * ((u.b * t as f64).exp() - 1.0);
            write!(sensors, "{i},{t}")?;
            for (_, new, limit, sigma) in SENSORS {
                let v = new + (limit - new) * h + sigma * normal(&mut rng);
                write!(sensors, ",{v:.3}")?;
            }
            sensors.push('\n');
        }
    }
    std::fs::write(dir.join("sensors.csv"), sensors)?;
    std::fs::write(dir.join("truth.csv"), truth)?;
    println!(
        "{UNITS} units, {} values; remaining life at the cut: RMSE (cycles), PHM08 score (sum), \
         late predictions",
        units.iter().map(|u| u.values.len()).sum::<usize>()
    );
    let runs = [
        ("line", "1000000s"),
        ("quadratic", "1000000s"),
        ("exponential", "1000000s"),
        ("line", "100s"),
        ("quadratic", "100s"),
        ("exponential", "100s"),
        ("oracle", ""),
    ];
    for (model, over) in runs {
        let (mut se, mut score, mut late, mut covered) = (0.0, 0.0, 0, 0);
        for u in &units {
            let truth = u.life - u.cut as f64;
            let predicted = match model {
                "oracle" => (oracle(&u.values), f64::NAN, f64::NAN), // no interval
                m => predict(m, over, &u.values)?,
            };
            covered += usize::from(predicted.1 <= truth && truth <= predicted.2);
            let predicted = predicted.0;
            let d = predicted - truth;
            se += d * d;
            score += phm08(d);
            late += usize::from(d > 0.0);
        }
        let fit = match over {
            "" => "the law's form, all history".to_owned(),
            "100s" => "last 100 cycles".to_owned(),
            _ => "all history".to_owned(),
        };
        println!(
            "  {model:<12} {fit:<28} RMSE {:>7.1}   PHM08 {:>12.4e}   late {late:>2} of {UNITS}   \
             truth inside the 90 % interval {covered:>2}",
            (se / UNITS as f64).sqrt(),
            score
        );
    }
    Ok(())
}
