//! SIGHUP: re-read the config, recompile every rule file, swap the engine's rules and labels,
//! and restart the sources whose settings changed.
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
//! What else is applied live, and what waits for a restart, is the table in
//! [`crate::config::diff`] (the one `weir check --diff` prints): device labels go to the
//! engine with the rules, in the same swap (with `engine.idle_close` and
//! `engine.clock_guard`); a source whose settings changed is stopped and started again with
//! them while the others keep running ([`crate::daemon::sources`]); the uplink and the local
//! actions publisher are restarted when their connection settings change. Every
//! restart-only change is named in the log, at every reload until the agent restarts (it is
//! compared with the config the agent started with).

use std::path::PathBuf;

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use weir_rules::{DeviceLabels, ReloadReport, RuleSet};

use crate::config::Config;
use crate::config::diff::{Applies, diff};
use crate::outbox::LiveSettings;

/// A new rule set for the engine task, and where to say what became of the old one.
pub struct Request {
    pub rules: RuleSet,
    /// New device labels, set before the rules are matched again (`None`: unchanged).
    pub labels: Option<DeviceLabels>,
    /// A new local actions publisher (`None`: unchanged).
    pub actions: Option<crate::daemon::actions::Actions>,
    /// New `engine.idle_close` / `engine.clock_guard` (`None`: unchanged).
    pub idle_close: Option<std::time::Duration>,
    pub clock_guard: Option<crate::config::ClockGuard>,
    pub done: oneshot::Sender<ReloadReport>,
}

/// See [`Reloader::on_rule_files`].
pub type RuleFilesHook =
    Box<dyn Fn(&crate::config::Loaded, &crate::config::rule_files::Outcome) + Send + Sync>;

/// See [`Reloader::on_metrics`].
pub type MetricsHook = Box<
    dyn Fn(
            &crate::config::MetricsConfig,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// What a reload needs to remember from start-up.
pub struct Reloader {
    /// The `--config` argument, resolved again on every reload exactly as at start.
    pub config_path: Option<PathBuf>,
    /// The config the agent started with: restart-only changes are named against it.
    pub started: Config,
    /// The config of the last applied reload (at first, the one started with): live changes
    /// are found against it. Locked for a whole reload, so two never interleave.
    pub applied: Mutex<Config>,
    pub engine: mpsc::Sender<Request>,
    /// The running sources, restarted one by one when their settings change.
    pub sources: Arc<crate::daemon::sources::Running>,
    /// The uplink (set once it is started), restarted when its connection settings change.
    pub uplink: std::sync::OnceLock<crate::daemon::uplink_task::Uplink>,
    /// Given the new `metrics:` settings when they changed (set once the listener is
    /// started): the status page takes them in place and the listener moves to a new
    /// address. A hook, as `on_rule_files`: the page and the listener read the metrics, whose
    /// sources include the fleet's counters, and the fleet task holds this reloader.
    pub on_metrics: std::sync::OnceLock<MetricsHook>,
    /// The outbox, given new bounds, overflow policy and batching.
    pub outbox: crate::outbox::Outbox,
    /// The local actions publisher, replaced when `actions:` changes.
    pub actions: Mutex<crate::daemon::actions::Publisher>,
    /// Told what each reload found in the rule files, before it is applied or refused (the
    /// status page lists them).
    pub on_rule_files: Option<RuleFilesHook>,
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
                tracing::error!("reload rejected; the old rules and settings keep running");
                for problem in &problems {
                    tracing::error!("  {problem}");
                }
                Outcome::Rejected(problems)
            }
        }
    }

    async fn try_reload(&self) -> Result<ReloadReport, Vec<String>> {
        let mut applied = self.applied.lock().await;
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
        let new = loaded.config;
        for change in diff(&self.started, &new)
            .iter()
            .filter(|c| c.applies == Applies::Restart)
        {
            tracing::warn!(
                config = %loaded.origin.name(),
                setting = %change.setting,
                change = change.what,
                "not applied by a reload: takes effect when the agent restarts"
            );
        }
        let live = diff(&applied, &new);
        let changed = |setting: &str| live.iter().any(|c| c.setting == setting);
        let labels_changed = changed("labels");
        let labels = match labels_changed {
            // Validated with the config.
            true => Some(
                new.device_labels()
                    .map_err(|e| vec![format!("labels: {e}")])?,
            ),
            false => None,
        };
        // Last before the swap: nothing below can refuse the reload.
        let mut publisher = self.actions.lock().await;
        let (actions, old_actions) = match changed("actions") {
            true => {
                let (actions, old) = publisher.replace(new.actions.as_ref());
                (Some(actions), Some(old))
            }
            false => (None, None),
        };
        let (done, report) = oneshot::channel();
        let request = Request {
            rules: outcome.rules,
            labels,
            actions,
            idle_close: changed("engine.idle_close").then_some(new.engine.idle_close),
            clock_guard: changed("engine.clock_guard").then(|| new.engine.clock_guard.clone()),
            done,
        };
        let stopped = || vec!["the engine is stopping; reload skipped".to_owned()];
        self.engine.send(request).await.map_err(|_| stopped())?;
        let report = report.await.map_err(|_| stopped())?;
        if labels_changed {
            tracing::info!("device labels reloaded");
        }
        if let Some(old) = old_actions {
            // The engine publishes through the new one now.
            old.cancel();
            tracing::info!("local actions broker reloaded");
        }
        if live
            .iter()
            .any(|c| c.setting.starts_with("uplink.") && c.applies == Applies::Live)
            && let (Some(uplink), Some(cfg)) = (self.uplink.get(), &new.uplink)
        {
            uplink.restart(cfg.clone()).await;
        }
        let live_in = |prefix: &str| {
            live.iter()
                .any(|c| c.setting.starts_with(prefix) && c.applies == Applies::Live)
        };
        if live_in("outbox.") {
            match self.outbox.set(LiveSettings::of(&new.outbox)).await {
                Ok(applied) => tracing::info!(
                    evicted = applied.evicted,
                    evicted_bytes = applied.evicted_bytes,
                    "outbox bounds reloaded"
                ),
                Err(e) => tracing::error!("outbox bounds not reloaded: {e}"),
            }
        }
        if live_in("metrics.")
            && let Some(hook) = self.on_metrics.get()
        {
            hook(&new.metrics).await;
            tracing::info!("metrics settings reloaded");
        }
        for change in &live {
            let Some(name) = change.setting.strip_prefix("sources.") else {
                continue;
            };
            let cfg = new.sources.iter().find(|s| s.value.name() == name);
            match (change.what, cfg) {
                ("removed", _) => {
                    self.sources.remove(name).await;
                }
                ("added", Some(cfg)) => {
                    self.sources.add(vec![cfg.value.clone()]).await;
                    tracing::info!(source = %name, "source added");
                }
                (_, Some(cfg)) => {
                    self.sources.restart(cfg.value.clone()).await;
                }
                (_, None) => {}
            }
        }
        *applied = new;
        Ok(report)
    }
}

fn names(list: &[std::sync::Arc<str>]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter().map(|n| &**n).collect::<Vec<_>>().join(",")
}
