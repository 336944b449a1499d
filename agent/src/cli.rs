//! The command line: the `weir` binary's front door. Each command's own arguments live
//! with the command (`commands::replay::ReplayArgs`, …); this module only assembles them.

#[cfg(test)]
mod manpage;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::check::CheckArgs;
use crate::commands::eval::EvalArgs;
use crate::commands::keygen::KeygenArgs;
use crate::commands::learn::LearnArgs;
use crate::commands::outbox::OutboxArgs;
use crate::commands::push::PushArgs;
use crate::commands::replay::ReplayArgs;
use crate::commands::status::StatusArgs;

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
    /// Check a config and its rule files; print every problem as file:line:column. With
    /// `--diff`, also say which changes a reload (SIGHUP) applies live and which need a restart.
    Check(CheckArgs),
    /// Run rule files over a recorded CSV or JSON-lines file; print the events as JSON lines.
    Replay(ReplayArgs),
    /// Learn each statistical detector's baseline from a healthy recording, for rules to
    /// reference with `baseline: <file>`.
    Learn(LearnArgs),
    /// Score a rule file's alerts on a labelled corpus (NAB's scoring rules and layout).
    Eval(EvalArgs),
    /// Ask a running agent how it is doing (reads its metrics endpoint).
    Status(StatusArgs),
    /// Inspect or trim the outbox named by the config (safe while the agent runs).
    Outbox(OutboxArgs),
    /// Sign a directory of rule files and push it to a gateway or a group of gateways over
    /// the fleet's broker; print each gateway's outcome.
    Push(PushArgs),
    /// Write an Ed25519 key pair for signing fleet bundles.
    Keygen(KeygenArgs),
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
