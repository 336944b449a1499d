//! `weir check`: validate a config and its rule files without running anything.

use std::path::Path;
use std::process::ExitCode;

/// Checks the config at `config` (default: as for `weir run`) and its rule files.
pub fn main(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(config)?;
    let outcome = crate::config::rule_files::load(&loaded);
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
