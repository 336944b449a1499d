//! The running sources, each under its own supervisor and its own stop signal, so a reload
//! can restart one whose settings changed while the others keep running.
//!
//! Each source gets a child of the agent's shutdown token: shutdown stops them all, a reload
//! cancels one child. A source stopped for a reload ends the way it does at shutdown (an
//! MQTT source disconnects; what it had not acknowledged is redelivered by its broker to
//! the new connection), then starts again with the new settings and the same counters, so
//! its metrics keep counting.
//!
//! The set holds a sender into the engine's channel, to start replacements with; [`stop_all`]
//! drops it with the sources' own, so the engine's input closes when they have stopped.
//!
//! [`stop_all`]: Running::stop_all

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_drivers::{Delivery, SourceCounters, modbus, mqtt, serial, simulator};

use crate::config::SourceConfig;
use crate::daemon::supervise;
use crate::support::fault;

/// How long a source may take to stop (at shutdown or for a restart).
const STOP_WITHIN: Duration = Duration::from_secs(5);

struct Source {
    name: String,
    counters: Arc<SourceCounters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The sources of a running agent.
pub struct Running {
    sources: Mutex<Vec<Source>>,
    /// `None` once stopping: no source is started after that.
    tx: Mutex<Option<mpsc::Sender<Delivery>>>,
    shutdown: CancellationToken,
}

impl Running {
    /// No source yet; `tx` is the engine's input, `shutdown` stops every source.
    pub fn new(tx: mpsc::Sender<Delivery>, shutdown: CancellationToken) -> Running {
        Running {
            sources: Mutex::new(Vec::new()),
            tx: Mutex::new(Some(tx)),
            shutdown,
        }
    }

    /// Starts every source in `configs` (none once stopping).
    pub async fn add(&self, configs: Vec<SourceConfig>) {
        let Some(tx) = self.tx.lock().await.clone() else {
            return;
        };
        let mut sources = self.sources.lock().await;
        for cfg in configs {
            sources.push(spawn(cfg, Arc::default(), tx.clone(), &self.shutdown));
        }
    }

    /// Each source's name and counters, in config order.
    pub async fn counters(&self) -> Vec<(String, Arc<SourceCounters>)> {
        let sources = self.sources.lock().await;
        sources
            .iter()
            .map(|s| (s.name.clone(), s.counters.clone()))
            .collect()
    }

    pub async fn count(&self) -> usize {
        self.sources.lock().await.len()
    }

    /// Stops the source named like `cfg` and starts it again with `cfg`; `false` when no
    /// source has that name or the agent is stopping.
    pub async fn restart(&self, cfg: SourceConfig) -> bool {
        let Some(tx) = self.tx.lock().await.clone() else {
            return false;
        };
        let mut sources = self.sources.lock().await;
        let Some(source) = sources.iter_mut().find(|s| s.name == cfg.name()) else {
            return false;
        };
        source.stop.cancel();
        let task = std::mem::replace(&mut source.task, tokio::spawn(async {}));
        if tokio::time::timeout(STOP_WITHIN, task).await.is_err() {
            tracing::warn!(source = %source.name, "source did not stop within 5 s; starting the new one anyway");
        }
        *source = spawn(cfg, source.counters.clone(), tx, &self.shutdown);
        tracing::info!(source = %source.name, "source restarted with its new settings");
        true
    }

    /// Stops every source (the shutdown token must be cancelled) and drops the set's sender.
    pub async fn stop_all(&self) {
        self.tx.lock().await.take();
        let sources = std::mem::take(&mut *self.sources.lock().await);
        for source in sources {
            source.stop.cancel();
            if tokio::time::timeout(STOP_WITHIN, source.task)
                .await
                .is_err()
            {
                tracing::warn!(source = %source.name, "source did not stop within 5 s");
            }
        }
    }
}

/// Starts `cfg` under its supervisor, with a stop signal of its own under `shutdown`.
fn spawn(
    cfg: SourceConfig,
    counters: Arc<SourceCounters>,
    tx: mpsc::Sender<Delivery>,
    shutdown: &CancellationToken,
) -> Source {
    let name = cfg.name().to_owned();
    let stop = shutdown.child_token();
    let task = supervise::restarting(format!("source {name}"), stop.clone(), {
        let (counters, stop) = (counters.clone(), stop.clone());
        move || {
            let (cfg, tx, counters, stop) =
                (cfg.clone(), tx.clone(), counters.clone(), stop.clone());
            async move {
                fault::inject("source");
                match cfg {
                    SourceConfig::Simulator(cfg) => simulator::run(cfg, tx, counters, stop).await,
                    SourceConfig::Mqtt(cfg) => mqtt::run(cfg, tx, counters, stop).await,
                    SourceConfig::Serial(cfg) => serial::run(cfg, tx, counters, stop).await,
                    SourceConfig::Modbus(cfg) => modbus::run(cfg, tx, counters, stop).await,
                }
            }
        }
    });
    Source {
        name,
        counters,
        stop,
        task,
    }
}
