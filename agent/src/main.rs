//! `weir`: the Weir edge agent.
//!
//! `main` only parses the command line, dispatches, and turns errors into exit codes:
//! 0 success, 1 runtime failure, 2 invalid config or rules (so a deploy script or systemd's
//! `ExecStartPre=weir check` can tell a typo from a crash). The whole error chain is printed.

mod actions;
mod check;
mod cli;
mod clock_guard;
mod config;
mod encode;
mod eval;
mod learn;
mod logging;
#[cfg(test)]
mod manpage;
mod metrics;
mod notify;
mod outbox;
mod outbox_cmd;
mod pipeline;
mod reload;
mod replay;
mod rules;
mod run;
mod runtime_store;
mod signals;
mod status;
mod uplink;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command.unwrap_or_default() {
        cli::Command::Run(args) => run::main(args),
        cli::Command::Check(args) => check::main(args),
        cli::Command::Replay(args) => replay::main(args),
        cli::Command::Eval(args) => eval::main(args),
        cli::Command::Learn(args) => learn::main(args),
        cli::Command::Status(args) => status::main(args),
        cli::Command::Outbox(args) => outbox_cmd::main(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // `weir replay … | head` closing the pipe early is not an error.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || e.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
            }) {
                return ExitCode::SUCCESS;
            }
            if let Some(config) = err.downcast_ref::<config::ConfigError>() {
                eprintln!("weir: invalid configuration:\n{config}");
                return ExitCode::from(2);
            }
            eprintln!("weir: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
