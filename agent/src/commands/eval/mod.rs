//! `weir eval`: how good are a rule file's alerts? Scored on a labelled corpus the way the
//! Numenta Anomaly Benchmark scores published detectors, so the figure stands beside theirs.
//!
//! Each data file goes through `weir replay`'s own path (the same reader, a fresh engine, each
//! value once, in order, with the engine's bounded state) and every *raised* alert is a
//! detection on the row whose reading produced it. The scorer reads the file's timestamps
//! separately: the rules never learn a file's length, minimum or maximum.
//!
//! `--results DIR` scores a detector's published NAB output instead of running rules, which
//! is how the scorer is checked against NAB's own numbers.

mod chance;
mod corpus;
mod faults;
mod nab;
mod recordings;
mod remaining_life;
mod report;
mod sensitivity;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use clap::Args;
use weir_rules::{Engine, Limits, RuleSet};

use crate::commands::replay::{self, Defaults};
use crate::config::rule_files;
#[cfg(test)]
use nab::Costs;
pub use nab::{Best, PROFILES, Profile, Series, Tally};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A rule file (repeat for several); each raised alert is a detection.
    #[arg(short, long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// The corpus: `<category>/<file>.csv` files (`timestamp,value`), as in NAB's `data/`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The labelled windows, NAB's `combined_windows.json` (`combined_labels.json` beside it,
    /// when present, gives the anomaly times the detection lead is measured from).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["faults", "rul"])]
    pub labels: Option<PathBuf>,
    /// Instead of rules: a detector's published NAB output,
    /// `DIR/<category>/<detector>_<file>.csv` with an `anomaly_score` column.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["rules", "data"])]
    pub results: Option<PathBuf>,
    /// Most series kept per file; samples of further series are counted and skipped.
    #[arg(long, default_value_t = 100_000)]
    pub max_series: usize,
    /// Also print each file's windows, detections, false alarms and raw score.
    #[arg(long)]
    pub per_file: bool,
    /// Seeds of random alarms at the detector's own rate per file, scored beside it.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub baselines: u64,
    /// Also rerun the corpus with each numeric constant of the rule files moved one step
    /// down and up (±1 for counts and `z`, ÷/× 1.5 otherwise) and print the scores.
    #[arg(long, requires = "rules")]
    pub sensitivity: bool,
    /// Instead of NAB's layout: `--data DIR` holds multi-column recordings (one row per
    /// timestamp, a column per metric, one device per file) and FILE their fault intervals
    /// (`{"<file>.csv": [["start", "end"], ...]}`); scored event-wise.
    #[arg(long, value_name = "FILE", requires = "rules")]
    pub faults: Option<PathBuf>,
    /// With `--faults`: a fault's window runs on this long after its end (an alarm just
    /// after the repair still saw the fault), e.g. `30m`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0s",
        requires = "faults"
    )]
    pub grace: String,
    /// Remaining life instead: `--data FILE` holds run-to-failure histories
    /// (`unit,cycle,<metric>,...`, one row per cycle, cut before failure) and FILE the true
    /// remaining life at each cut (`unit,...,rul,...`); the last `trend` prediction of each
    /// unit is scored (RMSE, PHM08). One cycle is one second of event time.
    #[arg(
        long,
        value_name = "FILE",
        requires = "rules",
        conflicts_with = "faults"
    )]
    pub rul: Option<PathBuf>,
    /// With `--rul`: a unit with no prediction, or one that never reaches the limit, is
    /// predicted this many cycles.
    #[arg(long, value_name = "CYCLES", default_value_t = 500.0, requires = "rul")]
    pub rul_cap: f64,
}

pub fn main(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if let Some(faults) = &args.faults {
        let Some(rules) = load_rules(&args.rules) else {
            return Ok(ExitCode::from(2));
        };
        let data = args
            .data
            .as_deref()
            .context("--data DIR is needed with --faults")?;
        let grace = weir_rules::duration::parse(&args.grace)
            .map_err(|e| anyhow::anyhow!("--grace {}: {e}", args.grace))?;
        let how = faults::Scoring {
            grace: i64::try_from(grace.as_micros()).unwrap_or(i64::MAX),
            seeds: args.baselines,
            max_series: args.max_series,
        };
        let mut out = std::io::stdout().lock();
        faults::run(&mut out, &rules, data, faults, how)?;
        out.flush().context("cannot write the report")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(truth) = &args.rul {
        let Some(rules) = load_rules(&args.rules) else {
            return Ok(ExitCode::from(2));
        };
        let data = args
            .data
            .as_deref()
            .context("--data FILE (the units' histories) is needed with --rul")?;
        let mut out = std::io::stdout().lock();
        let how = remaining_life::RulArgs {
            data,
            truth,
            cap: args.rul_cap,
            sensitivity: args.sensitivity.then_some(args.rules.as_slice()),
        };
        remaining_life::run(&mut out, &rules, how)?;
        out.flush().context("cannot write the report")?;
        return Ok(ExitCode::SUCCESS);
    }
    let labels_path = args
        .labels
        .as_deref()
        .context("--labels FILE is needed (or --faults FILE)")?;
    let labels = corpus::read_windows(labels_path)?;
    // NAB keeps the raw anomaly times beside the windows; the lead is measured from them.
    let anomalies = match labels_path.parent().map(|d| d.join("combined_labels.json")) {
        Some(path) if path.is_file() => Some(corpus::read_anomalies(&path)?),
        _ => None,
    };
    let (series, throughput) = match (&args.rules, &args.results) {
        (rules, Some(results)) if rules.is_empty() => (load_results(results, &labels)?, None),
        (rules, None) if !rules.is_empty() => {
            let Some(rules) = load_rules(rules) else {
                return Ok(ExitCode::from(2));
            };
            let data = args
                .data
                .as_deref()
                .context("--data DIR is needed with --rules")?;
            let (series, throughput) = run_rules(&rules, data, &labels, args.max_series)?;
            (series, Some(throughput))
        }
        _ => anyhow::bail!("give either --rules FILE (with --data DIR) or --results DIR"),
    };
    let total_windows = series.iter().map(|s| s.windows.len()).sum();
    let evaluation = evaluate(&series, total_windows);
    let mut out = std::io::stdout().lock();
    report::write(
        &mut out,
        &series,
        &evaluation,
        anomalies.as_ref(),
        throughput.as_ref(),
        throughput.map(|_| 1.0),
        args.per_file,
    )
    .context("cannot write the report")?;
    let chance = chance::random_alarms(&series, &evaluation, args.baselines);
    let healthy = evaluation
        .profiles
        .first()
        .map(|p| chance::healthy(&series, p.best.threshold));
    report::write_chance(&mut out, &evaluation, &chance, healthy.as_ref())
        .context("cannot write the report")?;
    out.flush().context("cannot write the report")?;
    if args.sensitivity {
        let data = args
            .data
            .as_deref()
            .context("--data DIR is needed with --rules")?;
        let base: Vec<f64> = evaluation.profiles.iter().map(|p| p.normalised).collect();
        sensitivity::table(&mut out, &args.rules, data, &labels, args.max_series, &base)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The rule files, or `None` once their problems are printed (the caller exits 2).
/// The rule files through the one loader (`config::rule_files`); every problem printed.
fn load_rules(paths: &[std::path::PathBuf]) -> Option<RuleSet> {
    rule_files::load_paths(paths)
        .all_or_nothing()
        .map_err(|problems| eprintln!("{}", problems.join("\n")))
        .ok()
}

/// The rules' speed over the corpus: every value read, pushed through the engine, and every
/// event encoded, as `weir replay` does.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    pub values: u64,
    pub seconds: f64,
    /// CPU time of the replays (Linux: the thread's schedstat), when the system tells it: on
    /// a shared machine the honest speed figure, since wall time counts the other processes.
    pub cpu_seconds: Option<f64>,
    /// Lines the replay reader skipped, late samples dropped, alerts after the last row.
    pub skipped: u64,
    pub late: u64,
    pub after_end: u64,
}

/// One profile's outcome over the corpus.
#[derive(Debug, Clone)]
pub struct ProfileScore {
    pub profile: Profile,
    pub best: Best,
    pub null: f64,
    pub perfect: f64,
    pub normalised: f64,
    /// Each file's tally at the chosen threshold, in corpus order.
    pub files: Vec<Tally>,
}

/// All three profiles, each at its own corpus-wide threshold.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub profiles: Vec<ProfileScore>,
    pub total_windows: usize,
}

/// Scores a corpus under NAB's three profiles. `total_windows` is the number of labelled
/// windows (the perfect detector finds every one of them).
pub fn evaluate(series: &[Series], total_windows: usize) -> Evaluation {
    let profiles = PROFILES
        .iter()
        .map(|profile| {
            let best = nab::optimise(series, profile.costs);
            let null = nab::null_score(series, profile.costs);
            let perfect = nab::perfect_score(total_windows, profile.costs);
            let files = series
                .iter()
                .map(|s| nab::score(s, profile.costs, best.threshold))
                .collect();
            ProfileScore {
                profile: *profile,
                best,
                null,
                perfect,
                normalised: nab::normalise(best.score, null, perfect),
                files,
            }
        })
        .collect();
    Evaluation {
        profiles,
        total_windows,
    }
}

/// Runs the rules over every labelled CSV file under `data`.
fn run_rules(
    rules: &RuleSet,
    data: &Path,
    labels: &corpus::Labels,
    max_series: usize,
) -> anyhow::Result<(Vec<Series>, Throughput)> {
    let mut series = Vec::new();
    let mut throughput = Throughput::default();
    let mut cpu = Some(0.0);
    for (key, path) in corpus::list_csv(data)? {
        let Some(windows) = labels.get(&key) else {
            eprintln!("{}: not in the labels, skipped", path.display());
            continue;
        };
        let rows = corpus::read_rows(&path)?;
        let cpu_before = thread_cpu_seconds();
        let (scores, stats) = detect(rules, &path, &rows, max_series)?;
        cpu = match (cpu, cpu_before, thread_cpu_seconds()) {
            (Some(sum), Some(before), Some(after)) => Some(sum + (after - before)),
            _ => None,
        };
        throughput.values += stats.values;
        throughput.seconds += stats.seconds;
        throughput.skipped += stats.skipped;
        throughput.late += stats.late;
        throughput.after_end += stats.after_end;
        series.push(Series::new(key, rows.timestamps, windows, scores)?);
    }
    throughput.cpu_seconds = cpu;
    warn_unmatched(labels, &series);
    Ok((series, throughput))
}

/// CPU time this thread has used (Linux `/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// One file through `weir replay`'s path: a score of 1 on each row where an alert was raised.
/// The row is the one whose line the replay had just read when the alert came out (the reader
/// hands replay one line at a time and counts them), so a detection is never credited to an
/// earlier row, whatever the timestamps do.
pub fn detect(
    rules: &RuleSet,
    path: &Path,
    rows: &corpus::Rows,
    max_series: usize,
) -> anyhow::Result<(Vec<f64>, Throughput)> {
    let mut engine = Engine::with_limits(
        rules.clone(),
        Limits {
            max_series,
            // A measurement of the detectors: the budget must not change what they see.
            max_state_bytes: usize::MAX,
        },
    );
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let defaults = Defaults {
        device: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "series".to_owned()),
        metric: "value".to_owned(),
    };
    let lines = Rc::new(Cell::new(0));
    let mut sink = AlertSink {
        lines: Rc::clone(&lines),
        ..AlertSink::default()
    };
    let reader = LineByLine {
        inner: BufReader::with_capacity(1 << 16, file),
        lines,
        offered: 0,
        whole_line: false,
        at_line_start: true,
    };
    let summary = replay::run(&mut engine, reader, &mut sink, &defaults, path, None)?;
    sink.flush()?;
    let mut scores = vec![0.0; rows.timestamps.len()];
    let last_ts = rows.timestamps.iter().copied().max().unwrap_or(i64::MIN);
    let mut after_end = 0;
    for (line, ts) in sink.raised {
        // Raised when the file was over (the windows the end of the file closed), or
        // before the first row (cannot happen with CSV): no row to credit.
        let row = rows.lines.partition_point(|&l| l <= line).checked_sub(1);
        match row.and_then(|r| scores.get_mut(r)) {
            Some(score) if ts <= last_ts => *score = 1.0,
            _ => after_end += 1,
        }
    }
    Ok((
        scores,
        Throughput {
            values: summary.samples,
            seconds: summary.seconds,
            skipped: summary.skipped,
            late: summary.late_dropped,
            after_end,
            cpu_seconds: None,
        },
    ))
}

/// Hands its reader's bytes out one line at a time and counts the lines begun, so that
/// whoever sees replay's output knows which line produced it (the last line counts even
/// without a final newline).
struct LineByLine<R> {
    inner: R,
    lines: Rc<Cell<u64>>,
    /// Length of the slice `fill_buf` last returned, and whether it ends a line.
    offered: usize,
    whole_line: bool,
    /// The next byte consumed begins a line.
    at_line_start: bool,
}

impl<R: BufRead> Read for LineByLine<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineByLine<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        let end = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |p| p + 1);
        self.offered = end;
        self.whole_line = end > 0 && buf[end - 1] == b'\n';
        Ok(&buf[..end])
    }

    fn consume(&mut self, amount: usize) {
        if amount == 0 {
            return;
        }
        if self.at_line_start {
            self.lines.set(self.lines.get() + 1);
        }
        self.at_line_start = amount == self.offered && self.whole_line;
        self.offered = self.offered.saturating_sub(amount);
        self.inner.consume(amount);
    }
}

/// Scores published NAB results: `DIR/<category>/<detector>_<file>.csv`.
fn load_results(dir: &Path, labels: &corpus::Labels) -> anyhow::Result<Vec<Series>> {
    let detector = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut series = Vec::new();
    for (relative, path) in corpus::list_csv(dir)? {
        if !relative.contains('/') {
            continue; // the detector's own score tables sit at the top
        }
        let key = corpus::results_key(&relative, &detector);
        let Some(windows) = labels.get(&key) else {
            eprintln!("{}: not in the labels, skipped", path.display());
            continue;
        };
        let (timestamps, scores) = corpus::read_results(&path)?;
        series.push(Series::new(key, timestamps, windows, scores)?);
    }
    warn_unmatched(labels, &series);
    Ok(series)
}

fn warn_unmatched(labels: &corpus::Labels, series: &[Series]) {
    let seen: BTreeMap<&str, ()> = series.iter().map(|s| (s.name.as_str(), ())).collect();
    for key in labels.keys().filter(|k| !seen.contains_key(k.as_str())) {
        eprintln!("{key}: labelled but no data file found; its windows are not scored");
    }
}

/// Keeps the time of each raised alert from `weir replay`'s JSON lines; window records pass
/// through with a substring test.
#[derive(Debug, Default)]
struct AlertSink {
    line: Vec<u8>,
    /// Lines the replay has read so far (shared with its reader).
    lines: Rc<Cell<u64>>,
    /// (line being read when the alert came out, alert time)
    raised: Vec<(u64, i64)>,
}

impl AlertSink {
    fn take_line(&mut self) -> std::io::Result<()> {
        let line = std::mem::take(&mut self.line);
        if contains(&line, br#""kind":"alert""#) {
            let event: serde_json::Value = serde_json::from_slice(&line)?;
            if event["state"] == "raised" {
                let ts = event["ts"].as_i64().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "alert without ts")
                })?;
                self.raised.push((self.lines.get(), ts));
            }
        }
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

impl Write for AlertSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for part in buf.split_inclusive(|&b| b == b'\n') {
            match part.strip_suffix(b"\n") {
                Some(rest) => {
                    self.line.extend_from_slice(rest);
                    self.take_line()?;
                }
                None => self.line.extend_from_slice(part),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.line.is_empty() {
            self.take_line()?;
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
