//! `weir check`: validate a config and its rule files without running anything.

use std::process::ExitCode;

use crate::cli::ConfigArgs;
use crate::run::load_config;

pub fn main(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(args.config.as_deref())?;
    // `weir run` refuses to start without its outbox: refuse here first.
    if let Err(problem) = loaded.config.outbox.check_path() {
        eprintln!("{}: {problem}", loaded.origin.name());
        return Ok(ExitCode::from(2));
    }
    let outcome = crate::rules::load(&loaded);
    if !outcome.rejected.is_empty() {
        for rejected in &outcome.rejected {
            for problem in &rejected.problems {
                eprintln!("{problem}");
            }
        }
        let files = outcome.rejected.len();
        eprintln!("weir check: {files} rule file(s) rejected");
        return Ok(ExitCode::from(2));
    }
    println!(
        "{}: ok ({} sources, {} rules in {} files)",
        loaded.origin.name(),
        loaded.config.sources.len(),
        outcome.rules.len(),
        outcome.files_loaded
    );
    Ok(ExitCode::SUCCESS)
}
