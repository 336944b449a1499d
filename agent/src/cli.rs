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
