//! Reading a labelled corpus: NAB's label files, the data files' timestamps, and a detector's
//! published per-row output.
//!
//! The layout is NAB's: `DIR/<category>/<file>.csv` with labels keyed `"<category>/<file>.csv"`.
//! Labels are read whole (a few kilobytes); data files are read one at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::commands::replay::input::{RowReader, parse_timestamp, split_csv};

/// Labelled windows per file: `[start, end]` in µs since the epoch, in file order.
pub type Labels = BTreeMap<String, Vec<(i64, i64)>>;

/// Reads `combined_windows.json`: `{"cat/file.csv": [["2014-04-10 07:15:00.000000", …], …]}`.
pub fn read_windows(path: &Path) -> anyhow::Result<Labels> {
    let raw: BTreeMap<String, Vec<(String, String)>> = read_json(path)?;
    let mut labels = Labels::new();
    for (file, windows) in raw {
        let mut parsed = Vec::with_capacity(windows.len());
        for (start, end) in windows {
            let start = parse_timestamp(&start)
                .with_context(|| format!("{}: {file}: window start", path.display()))?;
            let end = parse_timestamp(&end)
                .with_context(|| format!("{}: {file}: window end", path.display()))?;
            if end < start {
                bail!("{}: {file}: a window ends before it starts", path.display());
            }
            parsed.push((start, end));
        }
        parsed.sort_unstable();
        labels.insert(file, parsed);
    }
    Ok(labels)
}

/// Reads `combined_labels.json` (the raw anomaly timestamps the windows were built from).
pub fn read_anomalies(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<i64>>> {
    let raw: BTreeMap<String, Vec<String>> = read_json(path)?;
    let mut out = BTreeMap::new();
    for (file, stamps) in raw {
        let mut parsed = stamps
            .iter()
            .map(|s| parse_timestamp(s).with_context(|| format!("{}: {file}", path.display())))
            .collect::<anyhow::Result<Vec<i64>>>()?;
        parsed.sort_unstable();
        out.insert(file, parsed);
    }
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    serde_json::from_reader(BufReader::new(file))
        .with_context(|| format!("{}: not a NAB label file", path.display()))
}

/// The CSV files under `dir` (and its subdirectories), keyed by their path relative to `dir`
/// with `/` separators, in name order.
pub fn list_csv(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot list {}", current.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "csv") {
                let key = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((key, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A data file's rows as the scorer sees them (the rules see the file separately, through
/// `weir replay`'s reader): each row's timestamp and its 1-based line number, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub timestamps: Vec<i64>,
    pub lines: Vec<u64>,
}

/// Reads a data file's rows. Lines `weir replay`'s reader skips (it reports and counts them)
/// are no rows here either.
pub fn read_rows(path: &Path) -> anyhow::Result<Rows> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows = RowReader::new(false);
    let mut out = Rows::default();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(Ok(row)) = rows.line(&line) {
            out.timestamps.push(row.ts);
            out.lines.push(number as u64 + 1);
        }
    }
    Ok(out)
}

/// A CSV file's first line (empty when the file is) and the lines after it.
pub fn open_with_header(path: &Path) -> anyhow::Result<(String, std::io::Lines<BufReader<File>>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut lines = BufReader::new(file).lines();
    let header = lines
        .next()
        .transpose()
        .with_context(|| format!("cannot read {}", path.display()))?
        .unwrap_or_default();
    Ok((header, lines))
}

/// A detector's published NAB output (`timestamp,value,anomaly_score,…` with a header):
/// the rows' timestamps and anomaly scores.
pub fn read_results(path: &Path) -> anyhow::Result<(Vec<i64>, Vec<f64>)> {
    let (header, lines) = open_with_header(path)?;
    let names = split_csv(&header);
    let column = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (ts_col, score_col) = (column("timestamp")?, column("anomaly_score")?);
    let (mut timestamps, mut scores) = (Vec::new(), Vec::new());
    for (number, line) in lines.enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(&line);
        let at = || format!("{}:{}", path.display(), number + 2);
        let ts = fields
            .get(ts_col)
            .with_context(|| format!("{}: too few fields", at()))?;
        let score = fields
            .get(score_col)
            .with_context(|| format!("{}: too few fields", at()))?;
        timestamps.push(parse_timestamp(ts).with_context(at)?);
        scores.push(
            score
                .trim()
                .parse()
                .with_context(|| format!("{}: bad anomaly_score `{score}`", at()))?,
        );
    }
    Ok((timestamps, scores))
}

/// The labels key of a published result file `DIR/<category>/<detector>_<file>.csv`.
pub fn results_key(relative: &str, detector: &str) -> String {
    match relative.rsplit_once('/') {
        Some((category, file)) => {
            let file = file
                .strip_prefix(detector)
                .and_then(|f| f.strip_prefix('_'))
                .unwrap_or(file);
            format!("{category}/{file}")
        }
        None => relative.to_owned(),
    }
}
