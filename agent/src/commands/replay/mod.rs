//! `weir replay`: run rule files over a recorded file and print the events as JSON lines.
//!
//! This is how an engineer tunes a rule before it reaches a gateway: the engine is
//! deterministic and sees time only through the samples' timestamps, so a replay produces
//! exactly the events the gateway would have produced from the same samples in the same order.
//! Each value is read once, in file order, with bounded memory, like on the gateway. At the end
//! of the file the input ends (`Engine::finish`): windows the data filled are judged, stamped
//! at the last sample; partial ones are not judged and are counted in the summary. No event is
//! stamped after the last sample.

pub(crate) mod input;
mod plot;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use weir_rules::{Engine, EventKind, Limits, Sample};

use input::{Row, RowReader, looks_like_jsonl};

use crate::config::rule_files;
use crate::support::progress::Progress;
pub use plot::Plot;

/// Skipped lines reported one by one before the rest are only counted.
const REPORTED_SKIPS: u64 = 10;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A rule file (repeat for several).
    #[arg(short, long = "rules", value_name = "FILE", required = true)]
    pub rules: Vec<PathBuf>,
    /// The recording: CSV (`timestamp,value` or `timestamp,device,metric,value`, with or
    /// without a header) or JSON lines (`{"ts": …, "device": …, "metric": …, "value": …}`).
    /// Timestamps: epoch s/ms/µs/ns (by magnitude) or ISO 8601 (UTC unless an offset is given).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Write the events here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Device name for rows without one (default: the data file's name without extension).
    #[arg(long)]
    pub device: Option<String>,
    /// Metric name for rows without one (default: `value`).
    #[arg(long)]
    pub metric: Option<String>,
    /// Most series kept; samples of further series are counted and skipped.
    #[arg(long, default_value_t = 100_000)]
    pub max_series: usize,
    /// An agent config whose `labels:` give the devices their labels (for rules'
    /// `select.labels` and `group_by: label.<name>`) and whose `engine.max_state_bytes`
    /// bounds the rules' state (default 64MiB); nothing else in it is read.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also draw the series, their windows' results and alerts as an SVG picture (the first
    /// 12 series; memory stays bounded on long recordings).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

pub fn main(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let rules = match rule_files::load_paths(&args.rules).all_or_nothing() {
        Ok(rules) => rules,
        Err(problems) => {
            eprintln!("{}", problems.join("\n"));
            return Ok(ExitCode::from(2));
        }
    };
    // Before the data is opened: a bad config exits 2 like every config error.
    let (labels, budget) = match args.config.as_deref() {
        Some(path) => {
            let (labels, budget) = crate::config::replay_settings_from_path(path)?;
            (Some(labels), budget)
        }
        None => (None, None),
    };
    let file =
        File::open(&args.data).with_context(|| format!("cannot open {}", args.data.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new(size, std::io::stderr().is_terminal());
    let reader = BufReader::with_capacity(1 << 16, Counting::new(file, progress));
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let defaults = Defaults {
        device: args.device.clone().unwrap_or_else(|| stem(&args.data)),
        metric: args.metric.clone().unwrap_or_else(|| "value".to_owned()),
    };
    let mut engine = Engine::with_limits(
        rules,
        Limits {
            max_series: args.max_series,
            max_state_bytes: budget.unwrap_or(weir_rules::DEFAULT_MAX_STATE_BYTES),
        },
    );
    if let Some(labels) = labels {
        engine.set_labels(labels);
    }
    let mut plot = args.plot.as_ref().map(|_| Plot::default());
    let summary = run(
        &mut engine,
        reader,
        BufWriter::new(out),
        &defaults,
        &args.data,
        plot.as_mut(),
    )?;
    if let (Some(plot), Some(path)) = (plot, &args.plot) {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        plot.write_svg(BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Device and metric names for files that do not carry them.
pub struct Defaults {
    pub device: String,
    pub metric: String,
}

/// What a replay did, printed to stderr at the end.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub samples: u64,
    pub events: u64,
    pub alerts: u64,
    pub skipped: u64,
    pub late_dropped: u64,
    pub rejected_series: u64,
    /// Rule slots refused by the engine's memory budget (`engine.max_state_bytes`).
    pub budget_refused: u64,
    /// Windows still open at the end of the input: partial, not judged.
    pub partial_windows: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay: {} samples, {} events ({} alerts), {} lines skipped, {} late samples dropped, {} samples of series over the limit, {} rule slots over the memory budget, {} partial windows at the end not judged, {:.2} s ({:.0} samples/s)",
            self.samples,
            self.events,
            self.alerts,
            self.skipped,
            self.late_dropped,
            self.rejected_series,
            self.budget_refused,
            self.partial_windows,
            self.seconds,
            self.samples as f64 / self.seconds.max(1e-9)
        )
    }
}

/// Replays `reader` through `engine`, writing one JSON object per event to `out` (and
/// showing samples and events to `plot`, when there is one).
pub fn run(
    engine: &mut Engine,
    mut reader: impl BufRead,
    mut out: impl Write,
    defaults: &Defaults,
    name: &Path,
    mut plot: Option<&mut Plot>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let jsonl = looks_like_jsonl(&mut reader).context("cannot read the data file")?;
    let mut summary = Summary::default();
    let mut rows = RowReader::new(jsonl);
    let mut events = Vec::new();
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("cannot read {} after line {number}", name.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        let Some(row) = rows.line(&line) else {
            continue;
        };
        match row {
            Ok(row) => push(
                engine,
                &row,
                defaults,
                &mut events,
                &mut summary,
                plot.as_deref_mut(),
            ),
            Err(e) => {
                summary.skipped += 1;
                if summary.skipped <= REPORTED_SKIPS {
                    eprintln!("{}:{number}: skipped: {e}", name.display());
                }
            }
        }
        write_events(
            engine,
            &mut events,
            &mut out,
            &mut summary,
            plot.as_deref_mut(),
        )?;
    }
    // Judges the windows the data reached; those still open are partial: dropped and
    // counted, never stamped after the last sample (`Engine::finish`).
    engine.finish(&mut events);
    write_events(engine, &mut events, &mut out, &mut summary, plot)?;
    summary.partial_windows = engine.stats().partial_windows;
    out.flush().context("cannot write the events")?;
    summary.late_dropped = engine.stats().late_dropped;
    summary.budget_refused = engine.stats().budget_refused;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn push(
    engine: &mut Engine,
    row: &Row,
    defaults: &Defaults,
    events: &mut Vec<weir_rules::Event>,
    summary: &mut Summary,
    plot: Option<&mut Plot>,
) {
    let device = row.device.as_deref().unwrap_or(&defaults.device);
    let metric = row.metric.as_deref().unwrap_or(&defaults.metric);
    match engine.series(device, metric) {
        Ok(series) => {
            summary.samples += 1;
            if let Some(plot) = plot {
                plot.sample(engine, series, row.ts, row.value);
            }
            engine.push(
                Sample {
                    series,
                    ts: row.ts,
                    value: row.value,
                },
                events,
            );
        }
        Err(_) => summary.rejected_series += 1,
    }
}

fn write_events(
    engine: &Engine,
    events: &mut Vec<weir_rules::Event>,
    out: &mut impl Write,
    summary: &mut Summary,
    mut plot: Option<&mut Plot>,
) -> anyhow::Result<()> {
    for event in events.drain(..) {
        if let Some(plot) = plot.as_deref_mut() {
            plot.event(engine, &event);
        }
        let (device, metric) = engine.series_name(event.series).unwrap_or(("?", "?"));
        crate::outbox::event_records::write_json(&mut *out, &event, device, metric)
            .context("cannot write an event")?;
        out.write_all(b"\n").context("cannot write an event")?;
        summary.events += 1;
        if matches!(event.kind, EventKind::Alert { .. }) {
            summary.alerts += 1;
        }
    }
    Ok(())
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replay".to_owned())
}

/// Counts bytes read, for the progress line.
struct Counting<R> {
    inner: R,
    read: u64,
    progress: Progress,
}

impl<R> Counting<R> {
    fn new(inner: R, progress: Progress) -> Self {
        Counting {
            inner,
            read: 0,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 {
            self.progress.finish();
        } else {
            self.progress.update(self.read);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
