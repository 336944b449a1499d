//! The gateway's side of fleet operations: takes bundles from the uplink, applies them like an
//! operator would, rolls back by itself, and keeps the retained status current.
//!
//! One task, one bundle at a time, in arrival order:
//!
//! 1. refuse what is malformed, unsigned, signed by no trusted key, addressed to another
//!    target, or not newer than the highest version ever switched to (replay) — counted in
//!    the status, never looked at further. A retained bundle delivered again after a
//!    reconnect (same hash as one already handled) is ignored, not counted twice;
//! 2. validate exactly like `weir check` (the same rule compiler, and the same config loader
//!    for a bundle's config): any problem rejects the bundle with every `file:line:col`;
//! 3. write it beside the current version (`fleet::store`), switch, and reload keeping the
//!    state of unchanged rules (the SIGHUP path);
//! 4. watch health for `fleet.watch` ([`health`]); rules refused at load, no progress, or
//!    health bad for `fleet.unhealthy_for` roll back to the previous version, with the reason.
//!
//! A bundle arriving during a watch waits for it to end. If the agent stops during a watch,
//! the next start rolls back before loading rules ([`recover`]): a version that crashes the
//! agent must not keep it in a restart loop.

mod apply;
mod counters;
mod health;

pub use counters::FleetCounters;
pub use health::Health;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use weir_drivers::now_us;

use crate::daemon::reload::Reloader;
use crate::fleet::{Attempt, FleetConfig, Outcome, State, Status, Store, topics};
use crate::uplink::{Control, Inbound, Outbound};

/// Bundles waiting while one is applied (they are retained: one dropped comes again).
const INBOUND: usize = 8;
/// Hashes of handled bundles remembered, so a redelivered retained bundle is not handled twice.
const SEEN: usize = 32;

/// The running fleet task's parts.
pub struct Fleet {
    cfg: FleetConfig,
    gateway_id: String,
    /// Subscribed topic → the target a bundle there must name.
    topics: Vec<(String, String)>,
    status_topic: String,
    store: Store,
    state: State,
    reloader: Arc<Reloader>,
    config_path: Option<PathBuf>,
    health: Health,
    status: watch::Sender<Option<Outbound>>,
    counters: Arc<FleetCounters>,
}

/// Before rules load at start: a version left on trial by a stop or crash is rolled back.
/// True when it was (the config must then be read again).
pub fn recover(cfg: &FleetConfig) -> bool {
    let store = Store::new(&cfg.dir);
    let mut state = store.load();
    let Some(last) = state.last.clone() else {
        return false;
    };
    if last.outcome != Outcome::Trial {
        return false;
    }
    let reason = format!(
        "the agent stopped while version {} was on trial; rolled back at start",
        last.version
    );
    tracing::error!("{reason}");
    if let Err(e) = store.rollback(&mut state) {
        tracing::error!("fleet: cannot roll back ({e}); running the version on disk");
        return false;
    }
    state.last = Some(Attempt {
        outcome: Outcome::RolledBack,
        errors: vec![reason],
        at: now_us(),
        ..last
    });
    if let Err(e) = store.save(&state) {
        tracing::error!("fleet: cannot record the rollback: {e}");
    }
    true
}

impl Fleet {
    /// The task and the uplink control it needs (subscriptions, the status channel).
    pub fn start(
        cfg: FleetConfig,
        gateway_id: &str,
        topic_prefix: &str,
        reloader: Arc<Reloader>,
        health: Health,
        counters: Arc<FleetCounters>,
        shutdown: CancellationToken,
    ) -> (Control, tokio::task::JoinHandle<()>) {
        let topics = topics::subscriptions(topic_prefix, gateway_id, &cfg.labels);
        let store = Store::new(&cfg.dir);
        let state = store.load();
        let (status, retained) = watch::channel(None);
        let (inbound_tx, inbound) = mpsc::channel(INBOUND);
        let control = Control {
            subscriptions: topics.iter().map(|(t, _)| t.clone()).collect(),
            inbound: inbound_tx,
            retained,
        };
        tracing::info!(
            topics = %control.subscriptions.join(","),
            version = state.current.as_ref().map_or(0, |v| v.version),
            "fleet: taking bundles"
        );
        let fleet = Fleet {
            cfg,
            gateway_id: gateway_id.to_owned(),
            topics,
            status_topic: topics::status_topic(topic_prefix, gateway_id),
            config_path: reloader.config_path.clone(),
            store,
            state,
            reloader,
            health,
            status,
            counters,
        };
        (control, tokio::spawn(fleet.run(inbound, shutdown)))
    }

    async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>, shutdown: CancellationToken) {
        self.publish_status();
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = inbound.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            self.handle(message, &shutdown).await;
        }
    }

    /// The status message from the state, published (retained) by the uplink.
    fn publish_status(&self) {
        let running = self.state.current.as_ref().map_or(0, |v| v.version);
        self.counters
            .version
            .store(running, std::sync::atomic::Ordering::Relaxed);
        let status = Status {
            gateway: self.gateway_id.clone(),
            version: self.state.current.as_ref().map_or(0, |v| v.version),
            hash: self.state.current.as_ref().map(|v| v.hash.clone()),
            last: self.state.last.clone(),
            refused: self.state.refused.clone(),
            at: now_us(),
        };
        let payload = serde_json::to_vec(&status).unwrap_or_default();
        self.status.send_replace(Some(Outbound {
            topic: self.status_topic.clone(),
            payload,
        }));
    }

    /// Records the last attempt, saves the state and publishes the status.
    fn record(&mut self, version: u64, hash: String, outcome: Outcome, errors: Vec<String>) {
        self.counters.outcome(outcome);
        self.state.last = Some(Attempt {
            version,
            hash,
            outcome,
            errors,
            at: now_us(),
        });
        if let Err(e) = self.store.save(&self.state) {
            tracing::error!("fleet: cannot save its state: {e}");
        }
        self.publish_status();
    }
}
