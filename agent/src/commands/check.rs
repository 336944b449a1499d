//! `weir check`: validate a config and its rule files without running anything, and with
//! `--diff`, say what a reload would change.
//!
//! Exit codes: 0 the config is valid (and, with `--diff`, every change a reload applies
//! live, or nothing changed); 2 the config or a rule file is refused (or, with `--diff`, the
//! config compared with is); 3 with `--diff`, valid, but at least one change needs a restart
//! (a reload would apply the rest and name those in its log); 1 any other failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::diff::{Applies, diff};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The agent's YAML config (default: as for `weir run`).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also compare the config with the one the running agent started with (the copy
    /// `weir run` keeps beside its outbox, `running-config.yaml`) and print, per changed
    /// setting, whether a reload (SIGHUP) applies it live or it needs a restart. Exit 3 when
    /// one needs a restart.
    #[arg(long)]
    pub diff: bool,
    /// With `--diff`: compare with this config file instead of the running agent's.
    #[arg(long, value_name = "OLD", requires = "diff")]
    pub against: Option<PathBuf>,
}

/// `weir check [--diff [--against OLD]]`.
pub fn main(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let code = check(args.config.as_deref())?;
    if code != ExitCode::SUCCESS || !args.diff {
        return Ok(code);
    }
    let new = crate::config::load(args.config.as_deref())?;
    let old = match &args.against {
        Some(path) => crate::config::Loaded::from_path(path),
        None => crate::config::running::load(&new),
    };
    let old = match old {
        Ok(old) => old,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let changes = diff(&old.config, &new.config);
    println!(
        "{} against {}: {} change(s)",
        new.origin.name(),
        old.origin.name(),
        changes.len()
    );
    for change in &changes {
        println!("  {change}");
    }
    println!("  rule files: reloaded by every reload (unchanged rules keep their state)");
    if changes.iter().any(|c| c.applies == Applies::Restart) {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks the config at `config` (default: as for `weir run`) and its rule files.
fn check(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    // `config::load` refuses what every command would (an outbox path that is a directory
    // among them); the probe below writes a file, so only `weir check` makes it.
    let loaded = crate::config::load(config)?;
    // `weir run` refuses to start without its outbox (a read-only mount): refuse here first.
    match loaded.config.outbox.check_path() {
        Ok(None) => {}
        Ok(Some(warning)) => eprintln!("{}: warning: {warning}", loaded.origin.name()),
        Err(problem) => {
            eprintln!("{}: {problem}", loaded.origin.name());
            return Ok(ExitCode::from(2));
        }
    }
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
    budget_warnings(&loaded, &outcome.rules);
    actions_warnings(&loaded, &outcome.rules);
    println!(
        "{}: ok ({} sources, {} rules in {} files)",
        loaded.origin.name(),
        loaded.config.sources.len(),
        outcome.rules.len(),
        outcome.files_loaded
    );
    Ok(ExitCode::SUCCESS)
}

/// Warns (without failing) about rules with an `alert.local_topic` when the config has no
/// `actions:` broker: their local actions would all be dropped (counted in
/// `weir_engine_actions_dropped_total`); the uplink still gets every alert.
fn actions_warnings(loaded: &crate::config::Loaded, rules: &weir_rules::RuleSet) {
    if loaded.config.actions.is_some() {
        return;
    }
    let named: Vec<&str> = rules
        .names()
        .filter(|name| rules.local_topic(name).is_some())
        .collect();
    if named.is_empty() {
        return;
    }
    eprintln!(
        "{}: warning: rule(s) {} publish local actions (`alert.local_topic`) but the config has \
         no `actions:` broker: those actions will be dropped and counted",
        loaded.origin.name(),
        named
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Warns (without failing) when the rules could need more state than `engine.max_state_bytes`
/// at `engine.max_series` series: which rules cost most per series, and how many series fit.
fn budget_warnings(loaded: &crate::config::Loaded, rules: &weir_rules::RuleSet) {
    let engine = &loaded.config.engine;
    let budget = engine.max_state_bytes;
    let series = engine.max_series.get();
    let costs = weir_rules::Engine::state_costs(rules);
    let per_series = weir_rules::Engine::state_per_series(rules);
    let worst = per_series.saturating_mul(series);
    if worst <= budget {
        return;
    }
    let mb = |b: usize| b as f64 / f64::from(1u32 << 20);
    eprintln!(
        "{}: warning: the rules may need up to {:.1} MiB of state at engine.max_series = {series} \
         (worst case {:.1} KiB per series), over engine.max_state_bytes = {:.1} MiB: past it, \
         rules skip new series (counted in weir_engine_budget_refused_total); about {} series \
         fit all rules",
        loaded.origin.name(),
        mb(worst),
        per_series as f64 / 1024.0,
        mb(budget),
        budget / per_series.max(1)
    );
    let mut heavy: Vec<_> = costs
        .iter()
        .filter(|(_, c)| c.saturating_mul(series) > budget / 4)
        .collect();
    heavy.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (name, cost) in heavy {
        eprintln!(
            "  rule `{name}`: up to {:.1} KiB per series ({:.1} MiB at {series} series)",
            *cost as f64 / 1024.0,
            mb(cost.saturating_mul(series))
        );
    }
}
