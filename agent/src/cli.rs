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
        #[arg(long, value_enum)]
        lane: Option<crate::outbox_cmd::LaneArg>,
        /// e.g. 30m, 2h, 7d
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
