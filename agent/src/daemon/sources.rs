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

/// Each running source's name and counters, in config order, as the metrics endpoint, the
/// status page and the status line read them: it changes when a reload adds or removes a
/// source. The lock is never held across an await.
#[derive(Clone, Default)]
pub struct SourceList(Arc<std::sync::RwLock<Named>>);

/// Source names with their counters.
type Named = Vec<(String, Arc<SourceCounters>)>;

impl SourceList {
    /// The list now.
    pub fn get(&self) -> Named {
        // A panic while holding it cannot leave the list half written: every write is one
        // assignment.
        match self.0.read() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, list: Named) {
        match self.0.write() {
            Ok(mut l) => *l = list,
            Err(poisoned) => *poisoned.into_inner() = list,
        }
    }
}

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
    list: SourceList,
}

impl Running {
    /// No source yet; `tx` is the engine's input, `shutdown` stops every source.
    pub fn new(tx: mpsc::Sender<Delivery>, shutdown: CancellationToken) -> Running {
        Running {
            sources: Mutex::new(Vec::new()),
            tx: Mutex::new(Some(tx)),
            shutdown,
            list: SourceList::default(),
        }
    }

    /// The names and counters of the running sources, kept current.
    pub fn list(&self) -> SourceList {
        self.list.clone()
    }

    fn publish(&self, sources: &[Source]) {
        self.list.set(
            sources
                .iter()
                .map(|s| (s.name.clone(), s.counters.clone()))
                .collect(),
        );
    }

    /// Stops the source `name` and forgets it; `false` when there is none.
    pub async fn remove(&self, name: &str) -> bool {
        let mut sources = self.sources.lock().await;
        let Some(i) = sources.iter().position(|s| s.name == name) else {
            return false;
        };
        let source = sources.remove(i);
        self.publish(&sources);
        drop(sources);
        source.stop.cancel();
        if tokio::time::timeout(STOP_WITHIN, source.task)
            .await
            .is_err()
        {
            tracing::warn!(source = %name, "source did not stop within 5 s");
        }
        tracing::info!(source = %name, "source removed");
        true
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
        self.publish(&sources);
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
        self.publish(&[]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_drivers::simulator::SimulatorConfig;

    fn simulator(name: &str) -> SourceConfig {
        let yaml = format!("name: {name}\ninterval: 1h\n");
        SourceConfig::Simulator(serde_saphyr::from_str::<SimulatorConfig>(&yaml).expect("valid"))
    }

    #[tokio::test]
    async fn the_list_follows_sources_added_restarted_and_removed() {
        let (tx, _rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let running = Running::new(tx, shutdown.clone());
        let list = running.list();
        running.add(vec![simulator("a"), simulator("b")]).await;
        let names = |l: &SourceList| l.get().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(&list), ["a", "b"]);
        let before = list.get()[1].1.clone();
        assert!(running.restart(simulator("b")).await);
        // Same counters after a restart, so the metrics keep counting.
        assert!(Arc::ptr_eq(&before, &list.get()[1].1));
        assert!(running.remove("a").await);
        assert!(!running.remove("a").await);
        assert_eq!(names(&list), ["b"]);
        shutdown.cancel();
        running.stop_all().await;
        assert!(names(&list).is_empty());
        assert!(
            !running.restart(simulator("b")).await,
            "nothing starts once stopping"
        );
    }
}
