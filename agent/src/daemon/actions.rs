//! Alerts for the gateway itself: each transition of a rule with `alert.local_topic` is also
//! published on a local MQTT broker, where a PLC bridge, a Node-RED flow or a relay script can
//! act on it (stop the pump) without waiting for the cloud.
//!
//! Best effort by design: the durable path is the outbox and the uplink, which every alert
//! takes anyway. Local actions are for now; one that cannot be sent within its queue (the
//! broker is down, the queue of 256 is full) is dropped and counted, never replayed late when
//! it may no longer be right to act on it. QoS 1, not retained.
//!
//! Topics are built from device-chosen strings (`{device}` and `{metric}` come from MQTT topic
//! levels and JSON keys), so a placeholder's value must never add or widen a topic level: a
//! value containing `/`, `+`, `#` or NUL (`{"a/b/../c": 5000}`) is refused, counted in
//! `weir_engine_actions_topic_refused_total` and logged (rate-limited); the alert itself still
//! goes to the uplink through the outbox. Placeholders are filled in one pass, so a value that
//! looks like `{rule}` is not expanded again.
//!
//! The connection reconnects with the shared [`Backoff`]: a CONNACK alone does not start it
//! over (a PUBACK or 10 s up does), so a broker that closes right after CONNACK is not hit
//! in a loop, and the WARN about it comes once, then once a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_drivers::backoff::Backoff;
use weir_drivers::mqtt::Connection;

use crate::config::ActionsConfig;

/// Messages waiting for the local broker, at most.
const QUEUE: usize = 256;
/// The local broker is on the gateway: a dead connection is noticed within a minute.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// While the broker keeps failing, a WARN reminder at most this often.
const DOWN_REMINDER: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct ActionCounters {
    pub published: AtomicU64,
    /// Not sent: no `actions` broker configured, the queue full, or the broker unreachable.
    pub dropped: AtomicU64,
    /// Not sent: a placeholder's value would have added a topic level (see the module docs).
    pub topic_refused: AtomicU64,
}

/// The pipeline's end of the local publisher.
#[derive(Clone)]
pub struct Actions {
    tx: Option<mpsc::Sender<(String, Vec<u8>)>>,
    pub counters: Arc<ActionCounters>,
}

impl Actions {
    /// Without a configured broker every action is dropped and counted
    /// (`weir_engine_actions_dropped_total`).
    pub fn disabled() -> Actions {
        Actions {
            tx: None,
            counters: Arc::default(),
        }
    }

    /// Counts and logs an action whose topic was refused ([`UnsafeTopic`]).
    pub fn refuse(&self, rule: &str, error: &UnsafeTopic) {
        let n = self.counters.topic_refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                rule,
                refused = n,
                "local alert action not published: {error}"
            );
        } else {
            tracing::debug!(
                rule,
                refused = n,
                "local alert action not published: {error}"
            );
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

/// The local publisher as a reload replaces it: a changed `actions:` section starts a new
/// publisher (its own stop signal under the agent's shutdown) counting into the same
/// counters, and the old one is stopped once the engine has switched to the new one. What the
/// old one still had queued is not sent (best effort, as above).
pub struct Publisher {
    gateway_id: String,
    shutdown: CancellationToken,
    stop: CancellationToken,
    counters: Arc<ActionCounters>,
}

impl Publisher {
    /// Starts the publisher for `cfg` (`None`: every action is dropped and counted).
    pub fn start(
        cfg: Option<&ActionsConfig>,
        gateway_id: &str,
        shutdown: CancellationToken,
    ) -> (Publisher, Actions) {
        let mut publisher = Publisher {
            gateway_id: gateway_id.to_owned(),
            stop: shutdown.child_token(),
            shutdown,
            counters: Arc::default(),
        };
        let actions = publisher.begin(cfg);
        (publisher, actions)
    }

    /// Starts a publisher for `cfg`; returns it and the stop signal of the one it replaces,
    /// to cancel once the engine holds the new one.
    pub fn replace(&mut self, cfg: Option<&ActionsConfig>) -> (Actions, CancellationToken) {
        let old = std::mem::replace(&mut self.stop, self.shutdown.child_token());
        (self.begin(cfg), old)
    }

    fn begin(&mut self, cfg: Option<&ActionsConfig>) -> Actions {
        match cfg {
            Some(cfg) => start(
                cfg,
                &self.gateway_id,
                self.stop.clone(),
                self.counters.clone(),
            ),
            None => Actions {
                tx: None,
                counters: self.counters.clone(),
            },
        }
    }
}

/// Starts the local publisher, counting into `counters`; it runs until `shutdown`.
fn start(
    cfg: &ActionsConfig,
    gateway_id: &str,
    shutdown: CancellationToken,
    counters: Arc<ActionCounters>,
) -> Actions {
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("weir-actions-{gateway_id}"));
    let options = Connection {
        client_id,
        host: &cfg.host,
        port: cfg.port,
        keep_alive: KEEP_ALIVE,
    }
    .options();
    let opts = match options {
        Ok(opts) => opts,
        Err(e) => {
            // `actions:` is validated at load, so this is a bug, not an operator's typo:
            // actions are best effort, the uplink keeps the durable copy.
            tracing::error!(error = %e, "actions: cannot configure the local broker's client; every action is dropped and counted");
            return Actions { tx: None, counters };
        }
    };
    let (client, mut eventloop) = AsyncClient::new(opts, QUEUE);
    let (tx, mut rx) = mpsc::channel::<(String, Vec<u8>)>(QUEUE);
    let published = counters.clone();
    let target = format!("{}:{}", cfg.host, cfg.port);
    tokio::spawn(async move {
        let mut connected = false;
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let mut last_warn: Option<std::time::Instant> = None;
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
                        backoff.connected();
                        if backoff.unproven() == 0 {
                            tracing::info!(broker = %target, "actions broker connected");
                        } else {
                            tracing::debug!(broker = %target, unproven = backoff.unproven(), "actions broker connected (on trial)");
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        backoff.proven();
                        published.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        backoff.settle();
                    }
                    Err(e) => {
                        let delay = backoff.failed();
                        let remind = last_warn.is_none_or(|t| t.elapsed() >= DOWN_REMINDER);
                        if (connected && backoff.unproven() == 0) || remind {
                            last_warn = Some(std::time::Instant::now());
                            tracing::warn!(broker = %target, unproven = backoff.unproven(), "actions broker lost or unreachable: {e}");
                        } else {
                            tracing::debug!(broker = %target, unproven = backoff.unproven(), "actions broker connection failed: {e}");
                        }
                        connected = false;
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(delay) => {}
                        }
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

/// A placeholder value that would have changed the topic's levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{{{placeholder}}}` value {value:?} contains `/`, `+`, `#` or NUL; it would change the topic's levels"
)]
pub struct UnsafeTopic {
    pub placeholder: &'static str,
    pub value: String,
}

/// Fills `{device}`, `{metric}` and `{rule}` into a rule's `local_topic`, in one pass. A value
/// that contains a level separator, a wildcard or NUL is refused: a device's name must never
/// add topic levels.
pub fn topic(
    template: &str,
    rule: &str,
    device: &str,
    metric: &str,
) -> Result<String, UnsafeTopic> {
    let mut out = String::with_capacity(template.len() + device.len() + metric.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let filled = [("device", device), ("metric", metric), ("rule", rule)]
            .into_iter()
            .find(|(name, _)| {
                after
                    .strip_prefix('{')
                    .and_then(|a| a.strip_prefix(name))
                    .is_some_and(|a| a.starts_with('}'))
            });
        match filled {
            Some((name, value)) => {
                if value.contains(['/', '+', '#', '\0']) {
                    return Err(UnsafeTopic {
                        placeholder: name,
                        value: value.chars().take(64).collect(),
                    });
                }
                out.push_str(value);
                rest = &after[name.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            topic("plant/actions/{device}/{rule}", "hot", "pump-1", "temp").unwrap(),
            "plant/actions/pump-1/hot"
        );
        assert_eq!(
            topic("a/{metric}/{x}/{", "r", "d", "m").unwrap(),
            "a/m/{x}/{",
            "unknown braces are kept"
        );
    }

    #[test]
    fn placeholder_values_never_add_topic_levels() {
        let t = "actions/{device}/{metric}/x";
        let e = topic(t, "r", "dev1", "a/b/../c").unwrap_err();
        assert_eq!(e.placeholder, "metric");
        for bad in ["a/b", "+", "#", "x\0y"] {
            assert!(topic(t, "r", bad, "m").is_err(), "{bad:?}");
            assert!(topic(t, "r", "d", bad).is_err(), "{bad:?}");
        }
        // A value that spells another placeholder is not expanded again.
        assert_eq!(
            topic("a/{device}/{rule}", "r/x", "{rule}", "m")
                .unwrap_err()
                .placeholder,
            "rule"
        );
        assert_eq!(
            topic("a/{device}/b", "r", "{rule}", "m").unwrap(),
            "a/{rule}/b"
        );
    }

    #[test]
    fn without_a_broker_actions_are_counted_as_dropped() {
        let a = Actions::disabled();
        a.send("t".into(), b"x".to_vec());
        assert_eq!(a.counters.dropped.load(Ordering::Relaxed), 1);
    }
}
