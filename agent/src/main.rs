//! `weir`: the Weir edge agent.
//!
//! `main` only parses the command line, dispatches, and turns errors into exit codes:
//! 0 success, 1 runtime failure, 2 invalid config or rules (so a deploy script or systemd's
//! `ExecStartPre=weir check` can tell a typo from a crash). The whole error chain is printed.

mod check;
mod cli;
mod config;
mod encode;
mod logging;
mod outbox;
mod outbox_cmd;
mod pipeline;
mod rules;
mod run;
mod uplink;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command.unwrap_or_default() {
        cli::Command::Run(args) => run::main(args),
        cli::Command::Check(args) => check::main(args),
        cli::Command::Outbox(args) => outbox_cmd::main(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(config) = err.downcast_ref::<config::ConfigError>() {
                eprintln!("weir: invalid configuration:\n{config}");
                return ExitCode::from(2);
            }
            eprintln!("weir: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
