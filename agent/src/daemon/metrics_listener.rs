//! The metrics listener (`/metrics`, `/healthz`, the status page) as a reload can move it: a
//! changed `metrics.listen` stops the listener and starts one on the new address, with the
//! same counters (they live in the pipeline, the sources, the outbox and the uplink, and the
//! listener only reads them) and the same status page (its board, rule files and token live
//! in [`crate::daemon::page::Page`], which a reload updates in place). `metrics.listen: ~`
//! stops it; setting one again starts it.
//!
//! The old listener is stopped before the new one binds, so moving between a wildcard and a
//! specific address on the same port works; scrapes find nothing for that moment. A port
//! that is taken is handled as at start ([`endpoint::bind`]): logged at ERROR, and the
//! supervisor tries again with backoff (1 s doubling to 60 s) while the agent runs on.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::daemon::endpoint;
use crate::daemon::metrics::Sources;
use crate::daemon::page::Page;
use crate::daemon::supervise::{self, Running};

struct Current {
    addr: SocketAddr,
    running: Running,
}

/// The running metrics listener, if `metrics.listen` is set.
pub struct Listener {
    sources: Sources,
    page: Page,
    shutdown: CancellationToken,
    current: Mutex<Option<Current>>,
}

impl Listener {
    /// Listens on `addr` (if any) before returning, so that a health check made as soon as
    /// systemd sees READY finds the endpoint.
    pub async fn start(
        addr: Option<SocketAddr>,
        sources: Sources,
        page: Page,
        shutdown: CancellationToken,
    ) -> Listener {
        let listener = Listener {
            sources,
            page,
            shutdown,
            current: Mutex::new(None),
        };
        if let Some(addr) = addr {
            let current = listener.spawn(addr).await;
            *listener.current.lock().await = Some(current);
        }
        listener
    }

    /// Moves the listener to `addr` (`None`: stops it); nothing when it is there already or
    /// the agent is stopping.
    pub async fn restart(&self, addr: Option<SocketAddr>) {
        let mut current = self.current.lock().await;
        if self.shutdown.is_cancelled() || current.as_ref().map(|c| c.addr) == addr {
            return;
        }
        if let Some(old) = current.take() {
            if !old.running.stop(Duration::from_secs(5)).await {
                tracing::warn!(addr = %old.addr, "the metrics listener did not stop within 5 s");
            }
            tracing::info!(addr = %old.addr, "metrics endpoint closed");
        }
        if let Some(addr) = addr {
            *current = Some(self.spawn(addr).await);
        }
    }

    /// Stops the listener (at shutdown).
    pub async fn stop(&self) {
        if let Some(current) = self.current.lock().await.take() {
            current.running.stop.cancel();
            current.running.task.abort();
        }
    }

    async fn spawn(&self, addr: SocketAddr) -> Current {
        let stop = self.shutdown.child_token();
        let mut first = endpoint::bind(addr).await;
        let (sources, page, serving) = (self.sources.clone(), self.page.clone(), stop.clone());
        let task = supervise::restarting("metrics endpoint".to_owned(), stop.clone(), move || {
            let (listener, sources, stop) = (first.take(), sources.clone(), serving.clone());
            let page = Some(page.clone());
            async move {
                let listener = match listener {
                    Some(listener) => listener,
                    None => endpoint::listen(addr).await?,
                };
                endpoint::serve(listener, sources, page, stop).await;
                Ok::<(), std::io::Error>(())
            }
        });
        Current {
            addr,
            running: Running { stop, task },
        }
    }
}
