//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Weir: an edge agent that collects device telemetry, runs anomaly rules on the gateway,
/// and forwards every result through a crash-safe outbox to an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default when no command is given).
    Run(ConfigArgs),
    /// Check a config and its rule files; print every problem as file:line:column.
    Check(ConfigArgs),
    /// Run rule files over a recorded CSV or JSON-lines file; print the events as JSON lines.
    Replay(ReplayArgs),
    /// Score a rule file's alerts on a labelled corpus (NAB's scoring rules and layout).
    Eval(EvalArgs),
    /// Ask a running agent how it is doing (reads its metrics endpoint).
    Status(StatusArgs),
    /// Inspect or trim the outbox named by the config (safe while the agent runs).
    Outbox(OutboxArgs),
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// The agent's YAML config (its `outbox.path` is used); default as for `run`.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Records, bytes and the oldest record's age, per lane.
    Stats,
    /// Every record as JSON lines on stdout, in delivery order (progress on stderr).
    Export,
    /// Delete records for good: of one lane, and/or created before now minus a duration.
    Purge {
        /// Only this lane's records
        #[arg(long, value_enum)]
        lane: Option<crate::outbox_cmd::LaneArg>,
        /// Only records created longer ago than this, e.g. 30m, 2h, 7d
        #[arg(long, value_name = "DURATION", value_parser = crate::outbox_cmd::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

impl Default for Command {
    fn default() -> Self {
        Command::Run(ConfigArgs { config: None })
    }
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The agent's YAML config. Without it: /etc/weir/weir.yaml if present, else the
    /// built-in demo (simulated devices, a local outbox, a broker on localhost if one runs).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

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
    /// `select.labels` and `group_by: label.<name>`); nothing else in it is read.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also draw the series, their windows' results and alerts as an SVG picture (the first
    /// 12 series; memory stays bounded on long recordings).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

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
    #[arg(long, value_name = "FILE", required_unless_present = "faults")]
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
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's config, for the metrics address (default: as for `run`).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The metrics address instead of the config's, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub addr: Option<std::net::SocketAddr>,
}
