//! The uplink as a reload can restart it: under its own stop signal (a child of the agent's
//! shutdown), so a changed connection setting (`uplink.host`, `port`, `tls`, `keep_alive`,
//! `inflight`, `status`, `format`, `batch`) stops this uplink and starts one with the new
//! settings, the same counters and the same fleet control.
//!
//! Nothing is lost by the switch: the outbox is the only source of truth (DESIGN.md), a
//! record is deleted only once the broker acknowledged it, and the new connection starts
//! from the oldest record still stored. A record in flight at the switch may reach the broker
//! twice, under the same id, as after any reconnect.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::daemon::supervise::Running;
use crate::uplink::UplinkConfig;

/// Starts an uplink with these settings, running until the token is cancelled.
pub type Start = Box<dyn Fn(UplinkConfig, CancellationToken) -> JoinHandle<()> + Send + Sync>;

/// The running uplink.
#[derive(Clone)]
pub struct Uplink {
    start: Arc<Start>,
    shutdown: CancellationToken,
    current: Arc<Mutex<Option<Running>>>,
}

impl Uplink {
    pub fn start(cfg: UplinkConfig, shutdown: CancellationToken, start: Start) -> Uplink {
        let stop = shutdown.child_token();
        let task = start(cfg, stop.clone());
        Uplink {
            start: Arc::new(start),
            shutdown,
            current: Arc::new(Mutex::new(Some(Running { stop, task }))),
        }
    }

    /// Stops the running uplink and starts one with `cfg` (not once the agent is stopping).
    pub async fn restart(&self, cfg: UplinkConfig) {
        let mut current = self.current.lock().await;
        if self.shutdown.is_cancelled() {
            return;
        }
        if let Some(old) = current.take()
            && !old.stop(Duration::from_secs(5)).await
        {
            tracing::warn!("the uplink did not stop within 5 s; starting the new one anyway");
        }
        let stop = self.shutdown.child_token();
        let task = (self.start)(cfg, stop.clone());
        *current = Some(Running { stop, task });
        tracing::info!("uplink restarted with its new settings");
    }

    /// Waits (at most `within`) for the uplink to end after shutdown was cancelled.
    pub async fn stopped(&self, within: Duration) {
        let current = self.current.lock().await.take();
        if let Some(current) = current {
            let _ = tokio::time::timeout(within, current.task).await;
        }
    }
}
