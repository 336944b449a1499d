//! What a source hands to the agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// One decoded value. `device` and `metric` are shared strings so a source that sends the
/// same names again (the simulator, a serial device) does not allocate per reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device: Arc<str>,
    pub metric: Arc<str>,
    /// Event time, µs since the Unix epoch.
    pub ts: i64,
    pub value: f64,
}

/// One unit received by a source, with its readings and how to acknowledge it.
#[derive(Debug)]
pub struct Delivery {
    pub readings: Vec<Reading>,
    /// `Some` when the transport needs an acknowledgement once the readings' effects are
    /// durable (MQTT QoS 1 with manual acks). Dropping it without calling [`Ack::ack`]
    /// leaves the message unacknowledged, so the broker redelivers it after a reconnect.
    pub ack: Option<Ack>,
}

/// A pending transport acknowledgement.
pub struct Ack {
    inner: AckInner,
}

enum AckInner {
    Mqtt {
        client: rumqttc::AsyncClient,
        publish: rumqttc::Publish,
    },
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            AckInner::Mqtt { publish, .. } => f
                .debug_struct("Ack")
                .field("topic", &publish.topic)
                .field("pkid", &publish.pkid)
                .finish(),
        }
    }
}

impl Ack {
    pub(crate) fn mqtt(client: rumqttc::AsyncClient, publish: rumqttc::Publish) -> Self {
        Ack {
            inner: AckInner::Mqtt { client, publish },
        }
    }

    /// Acknowledges without waiting. Fails only when the source's request queue is full or
    /// closed; the message is then redelivered by the broker, which is safe (at least once).
    pub fn ack(self) -> Result<(), AckError> {
        match self.inner {
            AckInner::Mqtt { client, publish } => client
                .try_ack(&publish)
                .map_err(|e| AckError::Mqtt(e.to_string())),
        }
    }
}

/// Why an acknowledgement could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    #[error("MQTT acknowledgement not queued: {0}")]
    Mqtt(String),
}

/// Counters a source keeps for metrics and `weir status`. Shared with the agent by `Arc`.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Units received (MQTT messages, simulator ticks).
    pub received: AtomicU64,
    /// Readings decoded and sent on.
    pub readings: AtomicU64,
    /// Units that could not be decoded (malformed payload, unmapped topic).
    pub decode_errors: AtomicU64,
    /// Times the source (re)connected to its transport.
    pub connects: AtomicU64,
    /// Of `decode_errors`: binary frames whose CRC did not match (line noise, a bad cable).
    pub crc_errors: AtomicU64,
    /// Of `decode_errors`: messages larger than the source's payload limit (MQTT
    /// `max_payload`), read and skipped; and deliveries of messages larger than `max_message`,
    /// which the client cannot read (counted once per delivery attempt).
    pub oversized: AtomicU64,
    /// Transport failures: a port that would not open, a read that failed, a lost device.
    pub transport_errors: AtomicU64,
    /// Requests that got no answer in time (Modbus).
    pub timeouts: AtomicU64,
    /// Requests a device answered with an exception (Modbus).
    pub exceptions: AtomicU64,
    /// Whether the transport is up now (a port open, a connection established).
    pub connected: AtomicBool,
    /// Whether the source cannot make progress: its connections keep coming up and failing
    /// before a single message gets through (e.g. a message it cannot read, redelivered on
    /// every reconnect). Reported by `/healthz`, `weir status`, systemd and a metric.
    pub stalled: AtomicBool,
    /// Receive time of the last reading sent on, µs since the Unix epoch; 0 = none yet.
    pub last_reading_us: AtomicI64,
}

impl SourceCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records that the transport went up or down.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records whether the source can make progress (see [`SourceCounters::stalled`]).
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Counts `n` readings sent on at `now_us`.
    pub fn sent(&self, n: u64, now_us: i64) {
        Self::add(&self.readings, n);
        self.last_reading_us.store(now_us, Ordering::Relaxed);
    }
}

/// How handing a delivery to the engine ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handed {
    Sent,
    Shutdown,
    /// The engine's input closed while the agent was not shutting down.
    Closed,
}

/// Sends `delivery` to the engine, waiting while its channel is full (that wait is the
/// back-pressure on the source), and counts its readings once sent — unless shutdown comes
/// first, which drops the delivery (an MQTT message is then unacknowledged and redelivered).
pub(crate) async fn hand_over(
    tx: &tokio::sync::mpsc::Sender<Delivery>,
    delivery: Delivery,
    counters: &SourceCounters,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Handed {
    let n = delivery.readings.len() as u64;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Handed::Shutdown,
        sent = tx.send(delivery) => match sent {
            Ok(()) => {
                counters.sent(n, crate::now_us());
                Handed::Sent
            }
            Err(_) if shutdown.is_cancelled() => Handed::Shutdown,
            Err(_) => Handed::Closed,
        },
    }
}
