//! One bundle, from arrival to its outcome (the steps are listed in the parent module).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Fleet;
use super::health::Baseline;
use crate::config::{Loaded, Origin, RuleFile};
use crate::daemon::reload::Outcome as Reload;
use crate::fleet::{Attempt, Bundle, Outcome, Refusal, TrustedKeys, Version};
use crate::uplink::Inbound;

/// How often health is read during the watch.
const HEALTH_EVERY: Duration = Duration::from_millis(250);

impl Fleet {
    pub(super) async fn handle(&mut self, message: Inbound, shutdown: &CancellationToken) {
        let Some(expected) = self
            .topics
            .iter()
            .find(|(t, _)| *t == message.topic)
            .map(|(_, target)| target.clone())
        else {
            return;
        };
        crate::support::fault::inject("fleet");
        if message.payload.is_empty() {
            // A retained bundle cleared by the operator: nothing to do.
            return;
        }
        let bundle = match Bundle::parse(&message.payload) {
            Ok(b) => b,
            Err(refusal) => return self.refuse(0, String::new(), refusal),
        };
        let hash = bundle.hash();
        // The same signed bytes again (a retained bundle after a reconnect): handled already.
        // The signature is part of the key: an unsigned copy of a bundle is another message.
        let seen = format!("{hash}:{}", bundle.signature.as_deref().unwrap_or("-"));
        let running = self.state.current.as_ref().is_some_and(|v| v.hash == hash);
        if running || self.state.seen.contains(&seen) {
            tracing::debug!(version = bundle.version, "fleet: bundle already handled");
            return;
        }
        self.state.seen.push(seen);
        if self.state.seen.len() > super::SEEN {
            self.state.seen.remove(0);
        }
        if bundle.target != expected {
            let refusal = Refusal::WrongTarget {
                target: bundle.target.clone(),
                expected,
            };
            return self.refuse(bundle.version, hash, refusal);
        }
        let trusted = match TrustedKeys::load(&self.cfg.trusted_keys) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!("fleet: cannot read the trusted keys: {e}");
                TrustedKeys::default()
            }
        };
        if let Err(refusal) = bundle.verify(&trusted) {
            return self.refuse(bundle.version, hash, refusal);
        }
        if bundle.version <= self.state.high {
            let refusal = Refusal::Replayed {
                version: bundle.version,
                current: self.state.high,
            };
            return self.refuse(bundle.version, hash, refusal);
        }
        tracing::info!(version = bundle.version, %hash, target = %bundle.target, "fleet: bundle received");
        if let Err(problems) = self.validate(&bundle) {
            tracing::error!(
                version = bundle.version,
                "fleet: bundle rejected; the running version stays"
            );
            for p in &problems {
                tracing::error!("  {p}");
            }
            return self.record(bundle.version, hash, Outcome::Rejected, problems);
        }
        if let Err(e) = self.store.stage(&bundle) {
            self.store.discard(bundle.version);
            let problem = format!("cannot write version {}: {e}", bundle.version);
            tracing::error!("fleet: {problem}");
            return self.record(bundle.version, hash, Outcome::Rejected, vec![problem]);
        }
        let to = Version {
            version: bundle.version,
            hash: hash.clone(),
        };
        // On trial from the moment it is switched to, in the same write: a stop between the
        // switch and the end of the watch rolls it back at the next start (`recover`).
        let before = self.state.last.replace(Attempt {
            version: bundle.version,
            hash: hash.clone(),
            outcome: Outcome::Trial,
            errors: Vec::new(),
            at: weir_drivers::now_us(),
        });
        if let Err(e) = self.store.switch(&mut self.state, to) {
            self.state.last = before;
            let problem = format!("cannot switch to version {}: {e}", bundle.version);
            tracing::error!("fleet: {problem}");
            return self.record(bundle.version, hash, Outcome::Rejected, vec![problem]);
        }
        self.publish_status();
        let started = Instant::now();
        // Before the reload: rules that refuse series do so while they load.
        let base = self.health.baseline();
        match self.reloader.reload().await {
            Reload::Applied(report) => {
                tracing::info!(
                    version = bundle.version,
                    kept = report.kept.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "fleet: switched; watching health"
                );
                if bundle.config.is_some() {
                    tracing::warn!(
                        version = bundle.version,
                        "fleet: the bundle's config takes effect when the agent restarts \
                         (its rules run now)"
                    );
                }
            }
            Reload::Rejected(problems) => {
                let mut why = vec!["rules rejected at load".to_owned()];
                why.extend(problems);
                return self.roll_back(bundle.version, hash, why).await;
            }
        }
        match self.watch(base, shutdown).await {
            Watched::Healthy => {
                tracing::info!(version = bundle.version, "fleet: version applied");
                self.record(bundle.version, hash, Outcome::Applied, Vec::new());
            }
            Watched::Unhealthy(reason) => self.roll_back(bundle.version, hash, vec![reason]).await,
            // Left on trial: the next start rolls back (see `recover`).
            Watched::Stopped => {}
        }
    }

    fn refuse(&mut self, version: u64, hash: String, refusal: Refusal) {
        tracing::warn!(version, "fleet: bundle refused: {refusal}");
        self.counters.refusal(&refusal);
        *self
            .state
            .refused
            .entry(refusal.kind().to_owned())
            .or_default() += 1;
        self.record(version, hash, Outcome::Refused, vec![refusal.to_string()]);
    }

    /// Validates like `weir check`: the bundle's config (or the running one) with the
    /// bundle's rule files, every problem as `file:line:col: message`.
    fn validate(&self, bundle: &Bundle) -> Result<(), Vec<String>> {
        let running = crate::config::load(self.config_path.as_deref())
            .map_err(|e| vec![format!("the running config no longer loads: {e}")])?;
        if let Some(text) = &bundle.config {
            let origin = match &running.origin {
                Origin::File { path, base } => Origin::File {
                    path: path.with_file_name("weir.yaml (bundle)"),
                    base: base.clone(),
                },
                Origin::BuiltinDemo => Origin::BuiltinDemo,
            };
            let loaded = Loaded::from_str(text, origin).map_err(|e| {
                e.problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })?;
            if loaded.config.gateway_id.as_str() != self.gateway_id {
                return Err(vec![format!(
                    "weir.yaml: gateway_id `{}` is not this gateway's (`{}`)",
                    loaded.config.gateway_id, self.gateway_id
                )]);
            }
            match &loaded.config.fleet {
                None => {
                    return Err(vec![
                        "weir.yaml: no `fleet:` section: the gateway would stop taking bundles"
                            .to_owned(),
                    ]);
                }
                Some(fleet) if fleet.dir != self.cfg.dir => {
                    return Err(vec![format!(
                        "weir.yaml: fleet.dir {} is not this gateway's {} (its versions would be lost)",
                        fleet.dir.display(),
                        self.cfg.dir.display()
                    )]);
                }
                Some(_) => {}
            }
        }
        let files = bundle.rules.iter().map(|(name, text)| {
            Ok(RuleFile {
                name: name.clone(),
                text: text.clone(),
            })
        });
        crate::config::rule_files::compile(files)
            .all_or_nothing()
            .map(drop)
    }

    async fn roll_back(&mut self, version: u64, hash: String, why: Vec<String>) {
        tracing::error!(version, reason = %why.join("; "), "fleet: rolling back");
        if let Err(e) = self.store.rollback(&mut self.state) {
            tracing::error!("fleet: cannot roll back on disk: {e}");
        }
        if let Reload::Rejected(_) = self.reloader.reload().await {
            tracing::error!("fleet: the previous version did not reload either (see above)");
        }
        self.record(version, hash, Outcome::RolledBack, why);
    }

    /// Watches health for `fleet.watch`.
    async fn watch(&self, mut base: Baseline, shutdown: &CancellationToken) -> Watched {
        let end = Instant::now() + self.cfg.watch;
        let mut bad_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(HEALTH_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Watched::Stopped,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            match self.health.problem(&mut base, now) {
                Some(reason) => {
                    let since = *bad_since.get_or_insert(now);
                    if now.duration_since(since) >= self.cfg.unhealthy_for {
                        return Watched::Unhealthy(format!(
                            "health bad for {:.1} s: {reason}",
                            now.duration_since(since).as_secs_f64()
                        ));
                    }
                }
                None => bad_since = None,
            }
            if now >= end {
                return Watched::Healthy;
            }
        }
    }
}

enum Watched {
    Healthy,
    Unhealthy(String),
    Stopped,
}
