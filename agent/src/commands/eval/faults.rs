//! `weir eval --faults FILE`: rules scored on multi-column recordings with labelled fault
//! intervals, event by event, in the figures a maintenance team reads.
//!
//! NAB's layout is one series per file. A machine's recording is usually one row per
//! timestamp and a column per metric (`timestamp,temperature,vibration,current`), and its
//! labels are intervals when a fault was present. Here each `DIR/<name>.csv` is such a
//! recording of one device (named after the file) and `FILE` maps `"<name>.csv"` to its fault
//! intervals, `[["start", "end"], ...]` (NAB's window format; a recording with `[]` is
//! healthy). Every column but the timestamp is a metric; an empty or unparsable cell is a
//! missing value (skipped, not a zero). Each row's values go to the engine in column order.
//!
//! The simulator corpus's layout is read too (`data/sim`: long-format files,
//! `timestamp,device,metric,value`, and its `labels.json`, where only `fault: true` labels are
//! faults): see `recordings`.
//!
//! Scored per fault, NAB-style: each fault's onset is a labelled changepoint and its window
//! runs from the onset to the fault's end plus `--grace` (an alarm a little after the repair
//! still saw the fault; default 0). On the rules' raised alerts:
//!
//! * **detected**: some alert was raised within the window; its **delay** is the first such
//!   raise minus the onset;
//! * **false alarm**: a raise outside every window, counted per hour of recording outside
//!   the windows (the healthy hours; an alarm during a labelled load or regime change is a
//!   false alarm: the machine was fine).
//!
//! Beside them, random alarms: on each file as many raises as the rules gave it, at uniform
//! times over the recording, scored the same way (mean and spread over `--baselines` seeds).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use weir_rules::{AlertState, Engine, EventKind, Limits, RuleSet, Sample};

use super::corpus;
use super::recordings;
use crate::commands::replay::input::parse_timestamp;
use weir_drivers::simulator::SplitMix64;

/// One recording: its timestamps and, per metric column, its values (NaN: missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    pub metrics: Vec<String>,
    pub rows: Vec<(i64, Vec<f64>)>,
    /// The device, when the file names it (long format).
    pub device: Option<String>,
}

/// Reads a `timestamp,<metric>,<metric>,...` file with a header, or a long-format
/// `timestamp,device,metric,value` one (module `recordings`). Rows with an unreadable
/// timestamp or the wrong width are skipped and counted.
pub fn read_recording(path: &Path) -> anyhow::Result<(Recording, u64)> {
    let (header, lines) = corpus::open_with_header(path)?;
    let names: Vec<String> = header.split(',').map(|n| n.trim().to_owned()).collect();
    if recordings::is_long(&names) {
        let (mut rec, device, skipped) = recordings::read_long(path, lines)?;
        rec.device = device;
        return Ok((rec, skipped));
    }
    if names.len() < 2 {
        anyhow::bail!(
            "{}: the header must be `timestamp,<metric>,...`",
            path.display()
        );
    }
    let mut out = Recording {
        metrics: names[1..].to_vec(),
        ..Recording::default()
    };
    let mut skipped = 0;
    for line in lines {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let fields: Vec<&str> = line.split(',').collect();
        let ts = fields.first().map(|t| parse_timestamp(t.trim()));
        match ts {
            Some(Ok(ts)) if fields.len() == names.len() => {
                let values = fields[1..]
                    .iter()
                    .map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN))
                    .collect();
                out.rows.push((ts, values));
            }
            _ if line.trim().is_empty() => {}
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// The times of every alert the rules raise on a recording of `device`.
pub fn raises(
    rules: &RuleSet,
    device: &str,
    recording: &Recording,
    max_series: usize,
) -> anyhow::Result<Vec<i64>> {
    let mut engine = Engine::with_limits(
        rules.clone(),
        Limits {
            max_series,
            // A measurement of the detectors: the budget must not change what they see.
            max_state_bytes: usize::MAX,
        },
    );
    let ids = recording
        .metrics
        .iter()
        .map(|m| engine.series(device, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    let mut raised = Vec::new();
    for (ts, values) in &recording.rows {
        for (&series, &value) in ids.iter().zip(values) {
            if value.is_nan() {
                continue;
            }
            engine.push(
                Sample {
                    series,
                    ts: *ts,
                    value,
                },
                &mut out,
            );
        }
        raised.extend(out.drain(..).filter_map(|e| match e.kind {
            EventKind::Alert {
                state: AlertState::Raised,
                ..
            } => Some(e.ts),
            _ => None,
        }));
    }
    Ok(raised)
}

/// Event-wise figures of one recording or of all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultScore {
    pub faults: u64,
    pub detected: u64,
    /// First raise minus fault start, µs, per detected fault.
    pub delays: Vec<i64>,
    pub false_alarms: u64,
    pub hours: f64,
    /// Hours of recording outside the fault windows.
    pub healthy_hours: f64,
}

impl FaultScore {
    pub fn add(&mut self, other: &FaultScore) {
        self.faults += other.faults;
        self.detected += other.detected;
        self.delays.extend(&other.delays);
        self.false_alarms += other.false_alarms;
        self.hours += other.hours;
        self.healthy_hours += other.healthy_hours;
    }

    /// False alarms per healthy hour (NaN without one).
    pub fn false_per_hour(&self) -> f64 {
        if self.healthy_hours > 0.0 {
            self.false_alarms as f64 / self.healthy_hours
        } else {
            f64::NAN
        }
    }

    pub fn median_delay(&self) -> Option<i64> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

/// Scores raise times against fault windows over a recording spanning `span` (µs).
pub fn score(raises: &[i64], faults: &[(i64, i64)], span: (i64, i64)) -> FaultScore {
    let inside: i64 = faults
        .iter()
        .map(|&(s, e)| (e.min(span.1) - s.max(span.0)).max(0))
        .sum();
    let total = (span.1 - span.0).max(0);
    let mut out = FaultScore {
        faults: faults.len() as u64,
        hours: total as f64 / 3.6e9,
        healthy_hours: (total - inside).max(0) as f64 / 3.6e9,
        ..FaultScore::default()
    };
    for &(start, end) in faults {
        if let Some(first) = raises.iter().filter(|&&t| t >= start && t <= end).min() {
            out.detected += 1;
            out.delays.push(first - start);
        }
    }
    out.false_alarms = raises
        .iter()
        .filter(|&&t| !faults.iter().any(|&(s, e)| t >= s && t <= e))
        .count() as u64;
    out
}

/// How `weir eval --faults` scores: the fault windows' grace after each fault's end (µs)
/// and the seeds of random alarms.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub grace: i64,
    pub seeds: u64,
    pub max_series: usize,
}

/// One scored file: its windows, span and the rules' raises, kept to score random alarms.
struct Scored {
    windows: Vec<(i64, i64)>,
    span: (i64, i64),
    raises: usize,
}

/// Runs the rules over every labelled recording in `data` and prints the figures.
pub fn run(
    out: &mut impl Write,
    rules: &RuleSet,
    data: &Path,
    faults: &Path,
    how: Scoring,
) -> anyhow::Result<()> {
    let labels = recordings::read_fault_labels(faults)?;
    let mut all = FaultScore::default();
    let mut per_file: BTreeMap<String, FaultScore> = BTreeMap::new();
    let mut scored = Vec::new();
    for (key, path) in corpus::list_csv(data)? {
        let Some(labelled) = labels.get(&key) else {
            eprintln!("{}: not in the fault labels, skipped", path.display());
            continue;
        };
        let (recording, skipped) = read_recording(&path)?;
        if skipped > 0 {
            eprintln!("{}: {skipped} unreadable rows skipped", path.display());
        }
        let device = labelled
            .device
            .clone()
            .or_else(|| recording.device.clone())
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "device".to_owned());
        let times = raises(rules, &device, &recording, how.max_series)?;
        let first = recording.rows.iter().map(|r| r.0).min().unwrap_or(0);
        let last = recording.rows.iter().map(|r| r.0).max().unwrap_or(0);
        let windows: Vec<(i64, i64)> = labelled
            .faults
            .iter()
            .map(|&(s, e)| (s, e.saturating_add(how.grace)))
            .collect();
        let s = score(&times, &windows, (first, last));
        all.add(&s);
        per_file.insert(key, s);
        scored.push(Scored {
            windows,
            span: (first, last),
            raises: times.len(),
        });
    }
    writeln!(
        out,
        "faults (event-wise, every raised alert; window = onset to end + {:.0} s):",
        how.grace as f64 / 1e6
    )?;
    for (key, s) in per_file.iter().chain([(&"all".to_owned(), &all)]) {
        let delay = s
            .median_delay()
            .map_or("-".to_owned(), |d| format!("{:.0} s", d as f64 / 1e6));
        writeln!(
            out,
            "  {key:<40} faults {:>3} detected {:>3} median delay {delay:>9} false alarms {:>4} ({:.3} per healthy hour, {:.1} of {:.1} h)",
            s.faults,
            s.detected,
            s.false_alarms,
            s.false_per_hour(),
            s.healthy_hours,
            s.hours
        )?;
    }
    if how.seeds > 0 {
        let chance = random_alarms(&scored, how.seeds);
        writeln!(
            out,
            "  {:<40} faults {:>3} detected {:>5.2} ± {:.2} median delay {:>9} false alarms {:.3} ± {:.3} per healthy hour",
            format!("random alarms, same count per file ({} seeds)", how.seeds),
            all.faults,
            chance.detected.0,
            chance.detected.1,
            chance
                .median_delay
                .map_or("-".to_owned(), |d| format!("{d:.0} s")),
            chance.false_per_hour.0,
            chance.false_per_hour.1,
        )?;
    }
    Ok(())
}

/// Random alarms' figures: (mean, standard deviation) over seeds.
#[derive(Debug, Clone, PartialEq)]
struct Chance {
    detected: (f64, f64),
    false_per_hour: (f64, f64),
    /// Median over seeds of each seed's median delay, seconds.
    median_delay: Option<f64>,
}

/// Each file gets as many alarms as the rules raised on it, uniform over its span, scored
/// like the rules' (seeds 1..=N through SplitMix64: reproducible).
fn random_alarms(files: &[Scored], seeds: u64) -> Chance {
    let mut detected = Vec::new();
    let mut false_rate = Vec::new();
    let mut delays = Vec::new();
    for seed in 1..=seeds {
        let mut rng = SplitMix64::new(seed);
        let mut total = FaultScore::default();
        for f in files {
            let width = (f.span.1 - f.span.0).max(0) as f64;
            let times: Vec<i64> = (0..f.raises)
                .map(|_| f.span.0 + (rng.uniform() * width) as i64)
                .collect();
            total.add(&score(&times, &f.windows, f.span));
        }
        detected.push(total.detected as f64);
        false_rate.push(total.false_per_hour());
        if let Some(d) = total.median_delay() {
            delays.push(d as f64 / 1e6);
        }
    }
    delays.sort_by(f64::total_cmp);
    Chance {
        detected: mean_sd(&detected),
        false_per_hour: mean_sd(&false_rate),
        median_delay: delays.get(delays.len() / 2).copied(),
    }
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn a_fault_is_detected_by_a_raise_inside_it_and_others_are_false_alarms() {
        let faults = [(100 * S, 200 * S), (500 * S, 600 * S)];
        let raises = [50 * S, 130 * S, 150 * S, 250 * S, 700 * S];
        let s = score(&raises, &faults, (0, 3600 * S));
        assert_eq!((s.faults, s.detected, s.false_alarms), (2, 1, 3));
        assert_eq!(s.delays, [30 * S]);
        assert!((s.hours - 1.0).abs() < 1e-12);
        // 200 s of the hour are inside the faults: 3 false alarms over 3400 s.
        assert!((s.false_per_hour() - 3.0 * 3600.0 / 3400.0).abs() < 1e-9);
    }

    /// The shipped machine rule files on the shipped simulator corpus: the figures in
    /// docs/eval-faults-and-remaining-life.md.
    #[test]
    fn the_machine_rules_on_data_sim_score_as_documented() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sets = ["pump", "motor", "compressor"].map(|m| {
            let path = root.join(format!("examples/rules/{m}.yaml"));
            let text = std::fs::read_to_string(&path).unwrap();
            RuleSet::parse_str(&text, &path.display().to_string()).unwrap()
        });
        let rules = RuleSet::merge(sets.into()).unwrap();
        let how = Scoring {
            grace: 1800 * S,
            seeds: 10,
            max_series: 1000,
        };
        let mut out = Vec::new();
        let sim = root.join("data/sim");
        run(&mut out, &rules, &sim, &sim.join("labels.json"), how).unwrap();
        let text = String::from_utf8(out).unwrap();
        let all = text
            .lines()
            .find(|l| l.trim_start().starts_with("all "))
            .unwrap();
        let words: Vec<&str> = all.split_whitespace().collect();
        assert_eq!(words[1..5], ["faults", "12", "detected", "6"], "{text}");
        assert!(
            all.contains("false alarms    1 (0.034 per healthy hour"),
            "{text}"
        );
        assert!(text.contains("detected  4.60 ± 0.92"), "{text}");
    }

    /// Random alarms at the rules' count: as many raises per file, none of them aimed.
    #[test]
    fn random_alarms_at_the_same_count_rarely_hit_a_short_fault() {
        let files = [Scored {
            windows: vec![(1000 * S, 1100 * S)],
            span: (0, 10_000 * S),
            raises: 2,
        }];
        let c = random_alarms(&files, 200);
        // Each alarm lands in the 1 % window with probability 0.01: about 0.02 detected.
        assert!(c.detected.0 < 0.06, "{c:?}");
        assert!(
            (c.false_per_hour.0 - 2.0 * 3600.0 / 9900.0).abs() < 0.05,
            "{c:?}"
        );
        assert_eq!(
            c,
            random_alarms(&files, 200),
            "the same seeds give the same figures"
        );
    }

    #[test]
    fn reads_a_column_per_metric_and_feeds_each_to_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pump-1.csv");
        let mut csv = String::from("timestamp,temp,current\n");
        for i in 0..120 {
            let temp = if i >= 100 { 95.0 } else { 60.0 };
            let current = if i == 50 {
                String::new()
            } else {
                "3.5".to_owned()
            };
            csv.push_str(&format!("{},{temp},{current}\n", 1_700_000_000 + i * 60));
        }
        csv.push_str("garbage\n");
        std::fs::write(&path, csv).unwrap();
        let (rec, skipped) = read_recording(&path).unwrap();
        assert_eq!(rec.metrics, ["temp", "current"]);
        assert_eq!((rec.rows.len(), skipped), (120, 1));
        assert!(rec.rows[50].1[1].is_nan());
        let rules = RuleSet::parse_str(
            "rules:\n  - name: hot\n    select: { metric: temp }\n    window: { count: 1 }\n    alert: { when: \"max > 90\" }\n",
            "r.yaml",
        )
        .unwrap();
        let times = raises(&rules, "pump-1", &rec, 100).unwrap();
        assert_eq!(times, [(1_700_000_000 + 100 * 60) * S]);
    }
}
