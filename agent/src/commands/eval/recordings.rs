//! What `weir eval --faults` reads besides NAB's layout: the simulator corpus's label file
//! and long-format recordings (`timestamp,device,metric,value`, what `weir replay` reads and
//! `data/sim` ships), turned into the column-per-metric [`Recording`] the fault scorer runs.
//!
//! Two label layouts are accepted in one file, per entry:
//!
//! * NAB's windows, `"<file>.csv": [["start", "end"], ...]`: each window is a fault;
//! * the simulator's, `"<file>.csv": {"device": "pump-1", "labels": [{"kind": ..., "fault":
//!   true, "start": <epoch s>, "end": <epoch s, exclusive>, ...}]}`: the labels with
//!   `fault: true` are faults; the others (load and regime changes) are normal operation, so
//!   an alarm during one is a false alarm. `device` names the recording's device.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::faults::Recording;
use crate::commands::replay::input::parse_timestamp;

/// One recording's labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labelled {
    /// The device the recording is of, when the labels say (else the file's name).
    pub device: Option<String>,
    /// Fault intervals `[start, end]`, µs since the epoch, sorted.
    pub faults: Vec<(i64, i64)>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFile {
    Windows(Vec<(String, String)>),
    Sim {
        device: String,
        labels: Vec<RawLabel>,
    },
}

#[derive(Deserialize)]
struct RawLabel {
    fault: bool,
    start: i64,
    end: i64,
}

/// Reads a fault label file in either layout (see the module docs).
pub fn read_fault_labels(path: &Path) -> anyhow::Result<BTreeMap<String, Labelled>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot open {}", path.display()))?;
    let raw: BTreeMap<String, RawFile> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"<file>.csv\": [[\"start\", \"end\"], ...]}} or the simulator's \
             {{\"<file>.csv\": {{\"device\": ..., \"labels\": [...]}}}}",
            path.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for (file, entry) in raw {
        let labelled = match entry {
            RawFile::Windows(windows) => {
                let mut faults = Vec::with_capacity(windows.len());
                for (start, end) in windows {
                    let at = || format!("{}: {file}", path.display());
                    let start = parse_timestamp(&start).with_context(at)?;
                    let end = parse_timestamp(&end).with_context(at)?;
                    faults.push((start, end));
                }
                Labelled {
                    device: None,
                    faults,
                }
            }
            RawFile::Sim { device, labels } => Labelled {
                device: Some(device),
                faults: labels
                    .iter()
                    .filter(|l| l.fault)
                    .map(|l| {
                        (
                            l.start.saturating_mul(1_000_000),
                            l.end.saturating_mul(1_000_000),
                        )
                    })
                    .collect(),
            },
        };
        if let Some((s, e)) = labelled.faults.iter().find(|(s, e)| e < s) {
            anyhow::bail!(
                "{}: {file}: a fault ends ({e}) before it starts ({s})",
                path.display()
            );
        }
        let mut labelled = labelled;
        labelled.faults.sort_unstable();
        out.insert(file, labelled);
    }
    Ok(out)
}

/// Whether a header is the long format `timestamp,device,metric,value`.
pub fn is_long(names: &[String]) -> bool {
    names == ["timestamp", "device", "metric", "value"]
}

/// Reads the rows of a long-format recording of one device into a column per metric (in
/// order of first appearance): consecutive rows with the same timestamp make one row, a
/// metric missing from it is NaN. Returns the recording, its device, and how many rows were
/// skipped (unreadable, or of a second device).
pub fn read_long(
    path: &Path,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<(Recording, Option<String>, u64)> {
    let mut rec = Recording::default();
    let mut device: Option<String> = None;
    let mut skipped = 0;
    for line in lines {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [ts, dev, metric, value] = fields.as_slice() else {
            skipped += 1;
            continue;
        };
        let Ok(ts) = parse_timestamp(ts) else {
            skipped += 1;
            continue;
        };
        match &device {
            Some(d) if d != dev => {
                skipped += 1;
                continue;
            }
            Some(_) => {}
            None => device = Some((*dev).to_owned()),
        }
        let column = match rec.metrics.iter().position(|m| m == metric) {
            Some(i) => i,
            None => {
                rec.metrics.push((*metric).to_owned());
                for (_, row) in &mut rec.rows {
                    row.push(f64::NAN);
                }
                rec.metrics.len() - 1
            }
        };
        let width = rec.metrics.len();
        let value = value.parse::<f64>().unwrap_or(f64::NAN);
        match rec.rows.last_mut() {
            Some((t, row)) if *t == ts && row[column].is_nan() => row[column] = value,
            _ => {
                let mut row = vec![f64::NAN; width];
                row[column] = value;
                rec.rows.push((ts, row));
            }
        }
    }
    Ok((rec, device, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_label_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.json");
        std::fs::write(
            &path,
            r#"{"a.csv": [["2026-01-01 00:10:00", "2026-01-01 00:20:00"]],
                "b.csv": {"device": "pump-1", "machine": "pump", "labels": [
                  {"kind": "load_change", "fault": false, "start": 100, "end": 130, "sensors": []},
                  {"kind": "bearing_wear", "fault": true, "start": 600, "end": 900, "sensors": ["x"]}]}}"#,
        )
        .unwrap();
        let labels = read_fault_labels(&path).unwrap();
        assert_eq!(labels["a.csv"].faults.len(), 1);
        assert_eq!(labels["a.csv"].device, None);
        let b = &labels["b.csv"];
        assert_eq!(b.device.as_deref(), Some("pump-1"));
        assert_eq!(b.faults, [(600_000_000, 900_000_000)]);
    }

    #[test]
    fn a_long_recording_becomes_a_column_per_metric() {
        let text = "1,pump-1,flow,5\n1,pump-1,temp,60\n2,pump-1,flow,6\n2,pump-1,vib,0.5\n\
                    2,pump-9,flow,1\nbad\n3,pump-1,temp,61\n";
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let (rec, device, skipped) = read_long(Path::new("x.csv"), lines).unwrap();
        assert_eq!(device.as_deref(), Some("pump-1"));
        assert_eq!(skipped, 2);
        assert_eq!(rec.metrics, ["flow", "temp", "vib"]);
        assert_eq!(rec.rows.len(), 3);
        assert_eq!(rec.rows[0].1[..2], [5.0, 60.0]);
        assert!(rec.rows[0].1[2].is_nan());
        assert!(rec.rows[1].1[1].is_nan());
        assert_eq!(rec.rows[1].1[2], 0.5);
        assert_eq!(rec.rows[2].0, 3_000_000);
    }
}
