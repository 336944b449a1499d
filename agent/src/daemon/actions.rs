//! Alerts for the gateway itself: each transition of a rule with `alert.local_topic` is also
//! published on a local MQTT broker, where a PLC bridge, a Node-RED flow or a relay script can
//! act on it (stop the pump) without waiting for the cloud.
//!
//! Best effort by design: the durable path is the outbox and the uplink, which every alert
//! takes anyway. Local actions are for now; one that cannot be sent within its queue (the
//! broker is down, the queue of 256 is full) is dropped and counted, never replayed late when
//! it may no longer be right to act on it. QoS 1, not retained.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ActionsConfig;

/// Messages waiting for the local broker, at most.
const QUEUE: usize = 256;

#[derive(Debug, Default)]
pub struct ActionCounters {
    pub published: AtomicU64,
    /// Not sent: no `actions` broker configured, the queue full, or the broker unreachable.
    pub dropped: AtomicU64,
}

/// The pipeline's end of the local publisher.
#[derive(Clone)]
pub struct Actions {
    tx: Option<mpsc::Sender<(String, Vec<u8>)>>,
    pub counters: Arc<ActionCounters>,
}

impl Actions {
    /// Without a configured broker every action is dropped and counted (the config check
    /// warns about rules that name a local topic then).
    pub fn disabled() -> Actions {
        Actions {
            tx: None,
            counters: Arc::default(),
        }
    }

    /// Queues a publication; never waits.
    pub fn send(&self, topic: String, payload: Vec<u8>) {
        let queued = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send((topic, payload)).is_ok());
        if !queued {
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "local alert action dropped (no actions broker, or it is not keeping up)"
                );
            }
        }
    }
}

/// Starts the local publisher; it runs until `shutdown`.
pub fn start(cfg: &ActionsConfig, gateway_id: &str, shutdown: CancellationToken) -> Actions {
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("weir-actions-{gateway_id}"));
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, QUEUE);
    let (tx, mut rx) = mpsc::channel::<(String, Vec<u8>)>(QUEUE);
    let counters = Arc::new(ActionCounters::default());
    let published = counters.clone();
    let target = format!("{}:{}", cfg.host, cfg.port);
    tokio::spawn(async move {
        let mut connected = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                next = rx.recv() => {
                    let Some((topic, payload)) = next else { break };
                    if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                        published.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        tracing::info!(broker = %target, "actions broker connected");
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        published.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if connected {
                            tracing::warn!(broker = %target, "actions broker lost: {e}");
                        }
                        connected = false;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
        let _ = client.try_disconnect();
    });
    Actions {
        tx: Some(tx),
        counters,
    }
}

/// Fills `{device}`, `{metric}` and `{rule}` into a rule's `local_topic`.
pub fn topic(template: &str, rule: &str, device: &str, metric: &str) -> String {
    template
        .replace("{device}", device)
        .replace("{metric}", metric)
        .replace("{rule}", rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            topic("plant/actions/{device}/{rule}", "hot", "pump-1", "temp"),
            "plant/actions/pump-1/hot"
        );
    }

    #[test]
    fn without_a_broker_actions_are_counted_as_dropped() {
        let a = Actions::disabled();
        a.send("t".into(), b"x".to_vec());
        assert_eq!(a.counters.dropped.load(Ordering::Relaxed), 1);
    }
}
