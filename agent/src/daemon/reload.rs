//! SIGHUP: re-read the config, recompile every rule file, and swap the engine's rules.
//!
//! All-or-nothing, unlike start-up. At start the agent must run *something*, so a broken file
//! is skipped and the others run. On reload a working set is already running: replacing it
//! with a partial one would silently drop rules the engineer never touched. So any problem —
//! an unreadable or invalid config, one bad rule file — keeps the whole old set running, and
//! every problem is logged with `file:line:column`, the text `weir check` prints.
//!
//! The swap happens on the engine's own task (it owns the engine), between two batches, so no
//! sample is seen by half a rule set. Rules whose definition did not change keep their state
//! (see `weir_rules::Engine::reload`).
//!
//! Only rules are reloaded. Sources, outbox, uplink and the other settings are wired once at
//! start; when they changed, the reload says so and they take effect on the next restart.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};
use weir_rules::{ReloadReport, RuleSet};

use crate::config::Config;

/// A new rule set for the engine task, and where to say what became of the old one.
pub struct Request {
    pub rules: RuleSet,
    pub done: oneshot::Sender<ReloadReport>,
}

/// See [`Reloader::on_rule_files`].
pub type RuleFilesHook =
    Box<dyn Fn(&crate::config::Loaded, &crate::config::rule_files::Outcome) + Send + Sync>;

/// What a reload needs to remember from start-up.
pub struct Reloader {
    /// The `--config` argument, resolved again on every reload exactly as at start.
    pub config_path: Option<PathBuf>,
    /// The settings other than `rules:` as they were at start, to tell the operator when a
    /// change to them needs a restart.
    pub settings: String,
    pub engine: mpsc::Sender<Request>,
    /// Told what each reload found in the rule files, before it is applied or refused (the
    /// status page lists them).
    pub on_rule_files: Option<RuleFilesHook>,
}

/// Everything in the config but the rule file list, in a form that compares. Sources are
/// compared without their YAML locations, which move when lines are added above them.
pub fn settings_of(config: &Config) -> String {
    let sources: Vec<_> = config.sources.iter().map(|s| &s.value).collect();
    format!(
        "{:?} {:?} {sources:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        config.gateway_id,
        config.labels,
        config.outbox,
        config.uplink,
        config.actions,
        config.engine,
        config.metrics,
        config.log
    )
}

/// How a reload ended, for the systemd status line.
#[derive(Debug)]
pub enum Outcome {
    Applied(ReloadReport),
    /// The old rules keep running; every problem, one per line.
    Rejected(Vec<String>),
}

impl Reloader {
    pub async fn reload(&self) -> Outcome {
        match self.try_reload().await {
            Ok(report) => {
                tracing::info!(
                    kept = report.kept.len(),
                    restarted = %names(&report.restarted),
                    added = %names(&report.added),
                    removed = %names(&report.removed),
                    "rules reloaded"
                );
                if !report.removed_while_raised.is_empty() {
                    tracing::warn!(
                        rules = %names(&report.removed_while_raised),
                        "removed rules had alerts raised; no clear will follow for them"
                    );
                }
                if !report.orphaned_while_raised.is_empty() {
                    tracing::warn!(
                        rules = %names(&report.orphaned_while_raised),
                        "changed rules had alerts raised on series or groups they no longer \
                         watch (new select or group_by); no clear will follow for them"
                    );
                }
                Outcome::Applied(report)
            }
            Err(problems) => {
                tracing::error!("reload rejected; the old rules keep running");
                for problem in &problems {
                    tracing::error!("  {problem}");
                }
                Outcome::Rejected(problems)
            }
        }
    }

    async fn try_reload(&self) -> Result<ReloadReport, Vec<String>> {
        let loaded = crate::config::load(self.config_path.as_deref()).map_err(|e| {
            // The config error already lists every problem with its location.
            vec![format!("{e:#}")]
        })?;
        let outcome = crate::config::rule_files::load(&loaded);
        if let Some(hook) = &self.on_rule_files {
            hook(&loaded, &outcome);
        }
        if !outcome.rejected.is_empty() {
            return Err(outcome
                .rejected
                .into_iter()
                .flat_map(|r| r.problems)
                .collect());
        }
        if settings_of(&loaded.config) != self.settings {
            tracing::warn!(
                config = %loaded.origin.name(),
                "settings other than `rules` changed; they take effect when the agent restarts"
            );
        }
        let (done, report) = oneshot::channel();
        let request = Request {
            rules: outcome.rules,
            done,
        };
        let stopped = || vec!["the engine is stopping; reload skipped".to_owned()];
        self.engine.send(request).await.map_err(|_| stopped())?;
        report.await.map_err(|_| stopped())
    }
}

fn names(list: &[std::sync::Arc<str>]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter().map(|n| &**n).collect::<Vec<_>>().join(",")
}
