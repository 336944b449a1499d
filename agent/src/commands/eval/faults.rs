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
//! Scored per fault interval, on the rules' raised alerts:
//!
//! * **detected**: some alert was raised within the interval; its **delay** is the first such
//!   raise minus the interval's start;
//! * **false alarm**: a raise outside every interval, counted per hour of recording.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use weir_rules::{AlertState, Engine, EventKind, Limits, RuleSet, Sample};

use super::corpus;
use crate::commands::replay::input::parse_timestamp;

/// One recording: its timestamps and, per metric column, its values (NaN: missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    pub metrics: Vec<String>,
    pub rows: Vec<(i64, Vec<f64>)>,
}

/// Reads a `timestamp,<metric>,<metric>,...` file with a header. Rows with an unreadable
/// timestamp or the wrong width are skipped and counted.
pub fn read_recording(path: &Path) -> anyhow::Result<(Recording, u64)> {
    let (header, lines) = corpus::open_with_header(path)?;
    let names: Vec<String> = header.split(',').map(|n| n.trim().to_owned()).collect();
    if names.len() < 2 {
        anyhow::bail!(
            "{}: the header must be `timestamp,<metric>,...`",
            path.display()
        );
    }
    let mut out = Recording {
        metrics: names[1..].to_vec(),
        rows: Vec::new(),
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
}

impl FaultScore {
    pub fn add(&mut self, other: &FaultScore) {
        self.faults += other.faults;
        self.detected += other.detected;
        self.delays.extend(&other.delays);
        self.false_alarms += other.false_alarms;
        self.hours += other.hours;
    }

    pub fn median_delay(&self) -> Option<i64> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

/// Scores raise times against fault intervals over a recording spanning `span` (µs).
pub fn score(raises: &[i64], faults: &[(i64, i64)], span: (i64, i64)) -> FaultScore {
    let mut out = FaultScore {
        faults: faults.len() as u64,
        hours: (span.1 - span.0).max(0) as f64 / 3.6e9,
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

/// Runs the rules over every labelled recording in `data` and prints the figures.
pub fn run(
    out: &mut impl Write,
    rules: &RuleSet,
    data: &Path,
    faults: &Path,
    max_series: usize,
) -> anyhow::Result<()> {
    let labels = corpus::read_windows(faults)?;
    let mut all = FaultScore::default();
    let mut per_file: BTreeMap<String, FaultScore> = BTreeMap::new();
    for (key, path) in corpus::list_csv(data)? {
        let Some(intervals) = labels.get(&key) else {
            eprintln!("{}: not in the fault labels, skipped", path.display());
            continue;
        };
        let (recording, skipped) = read_recording(&path)?;
        if skipped > 0 {
            eprintln!("{}: {skipped} unreadable rows skipped", path.display());
        }
        let device = path
            .file_stem()
            .map_or_else(|| "device".to_owned(), |s| s.to_string_lossy().into_owned());
        let times = raises(rules, &device, &recording, max_series)?;
        let first = recording.rows.iter().map(|r| r.0).min().unwrap_or(0);
        let last = recording.rows.iter().map(|r| r.0).max().unwrap_or(0);
        let s = score(&times, intervals, (first, last));
        all.add(&s);
        per_file.insert(key, s);
    }
    writeln!(out, "faults (event-wise, every raised alert):")?;
    for (key, s) in per_file.iter().chain([(&"all".to_owned(), &all)]) {
        let delay = s
            .median_delay()
            .map_or("-".to_owned(), |d| format!("{:.0} s", d as f64 / 1e6));
        writeln!(
            out,
            "  {key:<40} faults {:>3} detected {:>3} median delay {delay:>9} false alarms {:>4} ({:.4} per hour over {:.1} h)",
            s.faults,
            s.detected,
            s.false_alarms,
            if s.hours > 0.0 {
                s.false_alarms as f64 / s.hours
            } else {
                f64::NAN
            },
            s.hours
        )?;
    }
    Ok(())
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
