//! `weir eval --rul TRUTH --data UNITS`: how well the rules' `trend` predictions tell the
//! remaining life of machines run to failure.
//!
//! `UNITS` holds each unit's history up to the cycle it was cut at, before failure
//! (`unit,cycle,<metric>,...`, a header, one row per cycle: the layout of PHM08's test set and
//! of `data/rtf`); `TRUTH` the true remaining life at each cut (`unit,...,rul,...`: the
//! columns named `unit` and `rul` are read, others ignored). Each unit is replayed through a
//! fresh engine as device `unit-<id>`, one cycle as one second of event time (so a rule's
//! `over: 100s` is the last 100 cycles), and its *last* prediction is the forecast:
//! `seconds_to_threshold` in cycles, capped at `--rul-cap` (also the forecast of a unit that
//! got no prediction, or whose curve never reaches the limit).
//!
//! Scored as the PHM08 challenge scored it: RMSE, and the sum over units of
//! `e^{−d/13} − 1` when early and `e^{d/10} − 1` when late (`d` = predicted − true), which
//! punishes a late forecast (the machine fails before the planned repair) far more than an
//! early one. Beside them: how many were late, how often the truth fell inside the
//! prediction's 90 % interval, and the figures of the best constant guess (every unit gets
//! the mean true remaining life, which no gateway knows): a model that does not beat it has
//! learned nothing about the units.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use weir_rules::{Engine, EventKind, Limits, RuleSet, Sample};

use super::corpus;

/// One unit's forecast: remaining life in cycles (capped) and its 90 % interval's ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub cycles: f64,
    pub early: f64,
    pub late: f64,
    /// Whether any prediction came at all.
    pub predicted: bool,
}

/// The scores of forecasts against the truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulScore {
    pub units: usize,
    pub rmse: f64,
    pub phm08: f64,
    pub late: usize,
    pub covered: usize,
    pub unpredicted: usize,
}

/// PHM08's score of one prediction error `d = predicted − true` (late costs more).
pub fn phm08(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// Scores `(forecast, truth)` pairs.
pub fn score(pairs: &[(Forecast, f64)]) -> RulScore {
    let mut s = RulScore {
        units: pairs.len(),
        ..RulScore::default()
    };
    let mut se = 0.0;
    for (f, truth) in pairs {
        let d = f.cycles - truth;
        se += d * d;
        s.phm08 += phm08(d);
        s.late += usize::from(d > 0.0);
        s.covered += usize::from(f.early <= *truth && *truth <= f.late);
        s.unpredicted += usize::from(!f.predicted);
    }
    s.rmse = if pairs.is_empty() {
        f64::NAN
    } else {
        (se / pairs.len() as f64).sqrt()
    };
    s
}

/// Each unit's rows: `(cycle, values per metric)`, units in order of first appearance.
type Units = Vec<(String, Vec<(f64, Vec<f64>)>)>;

/// Reads `unit,cycle,<metric>,...`; rows that do not parse are skipped and counted.
fn read_units(path: &Path) -> anyhow::Result<(Vec<String>, Units, u64)> {
    let (header, lines) = corpus::open_with_header(path)?;
    let names: Vec<String> = header.split(',').map(|n| n.trim().to_owned()).collect();
    if names.len() < 3 || names[0] != "unit" || names[1] != "cycle" {
        anyhow::bail!(
            "{}: the header must be `unit,cycle,<metric>,...`",
            path.display()
        );
    }
    let metrics = names[2..].to_vec();
    let mut units: Units = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped = 0;
    for line in lines {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let cycle = fields.get(1).and_then(|c| c.parse::<f64>().ok());
        let (Some(unit), Some(cycle), true) = (fields.first(), cycle, fields.len() == names.len())
        else {
            if !line.trim().is_empty() {
                skipped += 1;
            }
            continue;
        };
        let values = fields[2..]
            .iter()
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
            .collect();
        let i = *index.entry((*unit).to_owned()).or_insert_with(|| {
            units.push(((*unit).to_owned(), Vec::new()));
            units.len() - 1
        });
        units[i].1.push((cycle, values));
    }
    Ok((metrics, units, skipped))
}

/// Reads the `unit` and `rul` columns of the truth file.
fn read_truth(path: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let (header, lines) = corpus::open_with_header(path)?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (unit_col, rul_col) = (column("unit")?, column("rul")?);
    let mut out = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let rul = fields.get(rul_col).and_then(|r| r.parse::<f64>().ok());
        match (fields.get(unit_col), rul) {
            (Some(unit), Some(rul)) if rul.is_finite() => {
                out.insert((*unit).to_owned(), rul);
            }
            _ => anyhow::bail!("{}:{}: unreadable row", path.display(), i + 2),
        }
    }
    Ok(out)
}

/// The last prediction of the rules on one unit's history.
pub fn forecast(
    rules: &RuleSet,
    unit: &str,
    metrics: &[String],
    rows: &[(f64, Vec<f64>)],
    cap: f64,
) -> anyhow::Result<Forecast> {
    let mut engine = Engine::with_limits(
        rules.clone(),
        Limits {
            max_series: metrics.len().max(1) * 4,
            max_state_bytes: usize::MAX,
        },
    );
    let device = format!("unit-{unit}");
    let ids = metrics
        .iter()
        .map(|m| engine.series(&device, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut last = None;
    let mut out = Vec::new();
    let mut seen = |out: &mut Vec<weir_rules::Event>| {
        for e in out.drain(..) {
            if let EventKind::Prediction {
                seconds_to_threshold,
                early_seconds,
                late_seconds,
                ..
            } = e.kind
            {
                last = Some((seconds_to_threshold, early_seconds, late_seconds));
            }
        }
    };
    for (cycle, values) in rows {
        let ts = (cycle * 1e6) as i64;
        for (&series, &value) in ids.iter().zip(values) {
            if !value.is_nan() {
                engine.push(Sample { series, ts, value }, &mut out);
            }
        }
        seen(&mut out);
    }
    engine.finish(&mut out);
    seen(&mut out);
    let capped = |x: f64| if x.is_finite() { x.min(cap) } else { cap };
    Ok(match last {
        Some((secs, early, late)) => Forecast {
            cycles: capped(secs),
            early,
            late,
            predicted: true,
        },
        None => Forecast {
            cycles: cap,
            early: f64::NAN,
            late: f64::NAN,
            predicted: false,
        },
    })
}

/// Every unit's forecast beside its true remaining life (units without one are skipped).
fn forecasts(
    rules: &RuleSet,
    metrics: &[String],
    units: &Units,
    truth: &BTreeMap<String, f64>,
    cap: f64,
) -> anyhow::Result<Vec<(Forecast, f64)>> {
    let mut pairs = Vec::new();
    for (unit, rows) in units {
        if let Some(&rul) = truth.get(unit) {
            pairs.push((forecast(rules, unit, metrics, rows, cap)?, rul));
        }
    }
    Ok(pairs)
}

/// What `weir eval --rul` reads and how it scores.
pub struct RulArgs<'a> {
    pub data: &'a Path,
    pub truth: &'a Path,
    pub cap: f64,
    /// Also the one-step sensitivity table of these rule files.
    pub sensitivity: Option<&'a [std::path::PathBuf]>,
}

/// Scores the rules' forecasts on every unit of `data` against `truth`, and prints them.
pub fn run(out: &mut impl Write, rules: &RuleSet, args: RulArgs<'_>) -> anyhow::Result<()> {
    let (data, cap) = (args.data, args.cap);
    let (metrics, units, skipped) = read_units(data)?;
    if skipped > 0 {
        eprintln!("{}: {skipped} unreadable rows skipped", data.display());
    }
    let truth = read_truth(args.truth)?;
    for (unit, _) in &units {
        if !truth.contains_key(unit) {
            eprintln!("unit {unit}: no true remaining life, skipped");
        }
    }
    let pairs = forecasts(rules, &metrics, &units, &truth, cap)?;
    let s = score(&pairs);
    let mean = pairs.iter().map(|p| p.1).sum::<f64>() / pairs.len().max(1) as f64;
    let constant: Vec<(Forecast, f64)> = pairs
        .iter()
        .map(|&(_, t)| {
            let f = Forecast {
                cycles: mean,
                early: f64::NAN,
                late: f64::NAN,
                predicted: true,
            };
            (f, t)
        })
        .collect();
    let c = score(&constant);
    writeln!(
        out,
        "remaining life (each unit's last prediction; 1 cycle = 1 s; capped at {cap} cycles):"
    )?;
    writeln!(
        out,
        "  rules            units {:>4}  RMSE {:>7.1}  PHM08 {:>10.3e}  late {:>3}  truth inside the 90 % interval {:>3}  no prediction {:>3}",
        s.units, s.rmse, s.phm08, s.late, s.covered, s.unpredicted
    )?;
    writeln!(
        out,
        "  constant guess   units {:>4}  RMSE {:>7.1}  PHM08 {:>10.3e}  late {:>3}  (every unit: the mean true life left, {mean:.1} cycles, which no gateway knows)",
        c.units, c.rmse, c.phm08, c.late
    )?;
    if let Some(paths) = args.sensitivity {
        writeln!(
            out,
            "\nconstant sensitivity (each constant one step down and up: ±1 for counts, ÷/× 1.5 \
             otherwise; RMSE (change in cycles), PHM08):"
        )?;
        let rows = super::sensitivity::moves(paths, &mut |rules| {
            let s = score(&forecasts(rules, &metrics, &units, &truth, cap)?);
            Ok(vec![s.rmse, s.phm08])
        })?;
        let mut worst: Option<(f64, String)> = None;
        for row in rows {
            let mut cells = Vec::new();
            for (step, scores) in row.cells {
                let [rmse, phm] = match scores.as_deref() {
                    Ok(&[rmse, phm]) => [rmse, phm],
                    Ok(_) => [f64::NAN; 2],
                    Err(problems) => {
                        cells.push(format!("{step}: not valid ({problems})"));
                        continue;
                    }
                };
                let change = rmse - s.rmse;
                if worst.as_ref().is_none_or(|(w, _)| change.abs() > w.abs()) {
                    worst = Some((change, format!("{} -> {step}", row.here)));
                }
                cells.push(format!("{step}: {rmse:.1} ({change:+.1}) {phm:.2e}"));
            }
            writeln!(out, "  {:<56} {}", row.here, cells.join("   "))?;
        }
        if let Some((change, at)) = worst {
            // A cliff: RMSE moves by more than 10 % of itself, and by at least one cycle
            // (a perfect forecast would call every move a cliff).
            writeln!(
                out,
                "worst one-step move: {at}, RMSE {change:+.1} cycles ({:+.0} %){}",
                100.0 * change / s.rmse.max(1e-9),
                if change.abs() > (0.1 * s.rmse).max(1.0) {
                    "  [cliff: more than 10 %]"
                } else {
                    ""
                }
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phm08_punishes_late_more_than_early() {
        assert_eq!(phm08(0.0), 0.0);
        assert!(phm08(10.0) > phm08(-10.0));
        assert!((phm08(10.0) - (1f64.exp() - 1.0)).abs() < 1e-12);
    }

    /// Units wearing along a straight line: a `line` trend forecasts their life exactly,
    /// and far better than the constant guess.
    #[test]
    fn a_line_forecasts_units_that_wear_linearly() {
        let dir = tempfile::tempdir().unwrap();
        let (units_path, truth_path) = (dir.path().join("u.csv"), dir.path().join("t.csv"));
        let mut units = String::from("unit,cycle,health\n");
        let mut truth = String::from("unit,cut,rul\n");
        for u in 0..4 {
            let rate = 0.01 * (u + 1) as f64;
            let cut = 20;
            for c in 0..=cut {
                units.push_str(&format!("{u},{c},{}\n", rate * c as f64));
            }
            truth.push_str(&format!("{u},{cut},{}\n", 1.0 / rate - cut as f64));
        }
        units.push_str("junk\n");
        std::fs::write(&units_path, units).unwrap();
        std::fs::write(&truth_path, truth).unwrap();
        let rules = RuleSet::parse_str(
            "rules:\n  - name: rul\n    detect: { trend: { above: 1, over: 1000s, horizon: 1d, min_points: 5 } }\n    alert: { severity: info }\n",
            "r.yaml",
        )
        .unwrap();
        let (metrics, parsed, skipped) = read_units(&units_path).unwrap();
        assert_eq!((metrics.len(), parsed.len(), skipped), (1, 4, 1));
        let mut out = Vec::new();
        let args = RulArgs {
            data: &units_path,
            truth: &truth_path,
            cap: 500.0,
            sensitivity: None,
        };
        run(&mut out, &rules, args).unwrap();
        let text = String::from_utf8(out).unwrap();
        let truth = read_truth(&truth_path).unwrap();
        let pairs: Vec<(Forecast, f64)> = parsed
            .iter()
            .map(|(u, rows)| {
                (
                    forecast(&rules, u, &metrics, rows, 500.0).unwrap(),
                    truth[u],
                )
            })
            .collect();
        let s = score(&pairs);
        assert!(s.rmse < 0.01, "{s:?}\n{text}");
        assert_eq!(s.unpredicted, 0);
        assert!(text.contains("constant guess"), "{text}");
    }

    /// The shipped run-to-failure rule on `data/rtf`: its figures as documented
    /// (docs/health-index.md), and well ahead of the best constant guess.
    #[test]
    fn the_shipped_run_to_failure_rule_beats_the_constant_guess_on_data_rtf() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text =
            std::fs::read_to_string(root.join("examples/rules/run-to-failure.yaml")).unwrap();
        let rules = RuleSet::parse_str(&text, "run-to-failure.yaml").unwrap();
        let (metrics, units, skipped) = read_units(&root.join("data/rtf/sensors.csv")).unwrap();
        assert_eq!((metrics.len(), units.len(), skipped), (3, 60, 0));
        let truth = read_truth(&root.join("data/rtf/truth.csv")).unwrap();
        let pairs = forecasts(&rules, &metrics, &units, &truth, 500.0).unwrap();
        let s = score(&pairs);
        assert!((s.rmse - 18.3).abs() < 0.05, "{s:?}");
        assert!((s.phm08 - 531.1).abs() < 1.0, "{s:?}");
        assert_eq!((s.late, s.covered, s.unpredicted), (19, 51, 0));
        let mean = pairs.iter().map(|p| p.1).sum::<f64>() / pairs.len() as f64;
        let guess: Vec<(Forecast, f64)> = pairs
            .iter()
            .map(|&(f, t)| (Forecast { cycles: mean, ..f }, t))
            .collect();
        let g = score(&guess);
        assert!(
            s.rmse < 0.6 * g.rmse && s.phm08 < 0.2 * g.phm08,
            "{s:?} vs {g:?}"
        );
    }
}
