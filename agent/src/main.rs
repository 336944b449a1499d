//! `weir`: the Weir edge agent.
//!
//! `main` only parses the command line, dispatches, and turns errors into exit codes:
//! 0 success, 1 runtime failure, 2 invalid config or rules (so a deploy script or systemd's
//! `ExecStartPre=weir check` can tell a typo from a crash). The whole error chain is printed.

use std::process::ExitCode;

use clap::Parser;
use weir_agent::{cli, commands, config, daemon};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command.unwrap_or_default() {
        cli::Command::Run(args) => daemon::run::main(args.config),
        cli::Command::Check(args) => commands::check::main(&args),
        cli::Command::Replay(args) => commands::replay::main(args),
        cli::Command::Eval(args) => commands::eval::main(args),
        cli::Command::Learn(args) => commands::learn::main(args),
        cli::Command::Status(args) => commands::status::main(args),
        cli::Command::Outbox(args) => commands::outbox::main(args),
        cli::Command::Push(args) => commands::push::main(args),
        cli::Command::Keygen(args) => commands::keygen::main(args),
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
