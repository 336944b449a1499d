//! `weir learn`: baselines from a healthy recording, for rules to reference.
//!
//! Runs the rule files over the recording exactly as `weir replay` would, with each
//! statistical detector (`zscore`, `ewma_chart`, `cusum`, `changepoint`) replaced by one that
//! records its input, and writes per (rule, device, metric) the count, mean, σ, median, MAD
//! and smallest step of what that detector would have judged. A rule then says
//! `baseline: <file>` (relative to the rule file) and starts ready and frozen on those
//! figures (see the rules crate's `learned` module).

use std::fs::File;
use std::io::{BufReader, Write};
use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weir_rules::Engine;

use crate::commands::replay::{self, Defaults};
use crate::config::rule_files;

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// A rule file (repeat for several): its `zscore`, `ewma_chart`, `cusum` and
    /// `changepoint` detectors get a baseline per series.
    #[arg(short, long = "rules", value_name = "FILE", required = true)]
    pub rules: Vec<PathBuf>,
    /// A recording of the machine known to be healthy (the formats `replay` reads).
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Write the baselines here (YAML) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Device name for rows without one (default: the data file's name without extension).
    #[arg(long)]
    pub device: Option<String>,
    /// Metric name for rows without one (default: `value`).
    #[arg(long)]
    pub metric: Option<String>,
}

pub fn main(args: LearnArgs) -> anyhow::Result<ExitCode> {
    let rules = match rule_files::load_paths(&args.rules).all_or_nothing() {
        Ok(rules) => rules,
        Err(problems) => {
            eprintln!("{}", problems.join("\n"));
            return Ok(ExitCode::from(2));
        }
    };
    let learning = rules.for_learning();
    if learning.is_empty() {
        eprintln!(
            "learn: no rule has a zscore, ewma_chart, cusum or changepoint detector: nothing to learn"
        );
        return Ok(ExitCode::from(2));
    }
    let file =
        File::open(&args.data).with_context(|| format!("cannot open {}", args.data.display()))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let defaults = Defaults {
        device: args
            .device
            .clone()
            .unwrap_or_else(|| replay::stem(&args.data)),
        metric: args.metric.clone().unwrap_or_else(|| "value".to_owned()),
    };
    let mut engine = Engine::new(learning);
    let summary = replay::run(
        &mut engine,
        reader,
        std::io::sink(),
        &defaults,
        &args.data,
        None,
    )?;
    let learned = engine.learned_baselines();
    let rule_files: Vec<String> = args.rules.iter().map(|p| p.display().to_string()).collect();
    let comment = format!(
        "Learned by `weir learn` from {} ({} samples) with {}.\n\
         Per rule, device and metric: the values its detector judged (n), their mean, sigma,\n\
         median, MAD and smallest step. Reference with `baseline: <this file>`.",
        args.data.display(),
        summary.samples,
        rule_files.join(", ")
    );
    let text = learned.to_yaml(&comment);
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("cannot write the baselines")?,
    }
    eprintln!(
        "learn: {} samples, {} baselines ({} lines skipped)",
        summary.samples,
        learned.baselines.len(),
        summary.skipped
    );
    Ok(ExitCode::SUCCESS)
}
