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
        /// What an ack needs of its message: not the topic or payload, which would stay
        /// allocated (with the read buffer the payload is a slice of) until the commit.
        pkid: u16,
        qos: rumqttc::QoS,
        late: Arc<LateAcks>,
        /// The connection the message came on ([`LateAcks::connected`] counts them).
        epoch: u64,
    },
}

/// Acknowledgements the client's request queue had no room for, sent by the source's loop
/// as it drains that queue.
///
/// Why: an ack is queued without waiting ([`Ack::ack`] runs on the outbox's thread after a
/// commit, and waiting there for the MQTT event loop could deadlock with a source waiting on
/// the pipeline). Under a burst the queue can be full. A message never acknowledged keeps
/// one of the broker's in-flight slots for this session until the next reconnect, and once
/// all of them are taken the broker sends nothing more: the source is wedged (it happened at
/// 58,211 of 200,000 QoS 1 messages in `cargo bench -p weir-tests --bench e2e`). So no ack
/// is dropped: one that does not fit waits here.
#[derive(Debug, Default)]
pub(crate) struct LateAcks {
    /// `(epoch, packet id, QoS)`, oldest first: what an ack needs of its message, nothing
    /// to drop.
    queue: std::sync::Mutex<Vec<(u64, u16, rumqttc::QoS)>>,
    /// Entries in `queue`: the source's loop reads this, not the lock, per message.
    waiting: AtomicU64,
    epoch: AtomicU64,
}

impl LateAcks {
    /// A new connection: acks for messages of an earlier one are dropped (their packet ids
    /// may name other messages now; the broker redelivers those messages on this one).
    pub(crate) fn connected(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut queue) = self.queue.lock() {
            queue.clear();
            self.waiting.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn defer(&self, epoch: u64, pkid: u16, qos: rumqttc::QoS) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push((epoch, pkid, qos));
            self.waiting.store(queue.len() as u64, Ordering::Relaxed);
        }
    }

    /// Sends what waits, oldest first, until the client's queue is full again. Returns how
    /// many were sent.
    pub(crate) fn flush(&self, client: &rumqttc::AsyncClient) -> usize {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let Ok(mut queue) = self.queue.lock() else {
            return 0;
        };
        let epoch = self.epoch();
        let mut sent = 0;
        for &(e, pkid, qos) in queue.iter() {
            if e == epoch && try_ack(client, pkid, qos).is_err() {
                break;
            }
            sent += 1;
        }
        queue.drain(..sent);
        self.waiting.store(queue.len() as u64, Ordering::Relaxed);
        sent
    }
}

/// Queues the acknowledgement of message `pkid` without waiting; fails when the client's
/// request queue is full or closed. rumqttc acks a `Publish`, of which it reads only these
/// two fields.
fn try_ack(
    client: &rumqttc::AsyncClient,
    pkid: u16,
    qos: rumqttc::QoS,
) -> Result<(), rumqttc::ClientError> {
    let mut message = rumqttc::Publish::from_bytes(String::new(), qos, bytes::Bytes::new());
    message.pkid = pkid;
    client.try_ack(&message)
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            AckInner::Mqtt { pkid, qos, .. } => f
                .debug_struct("Ack")
                .field("pkid", pkid)
                .field("qos", qos)
                .finish(),
        }
    }
}

impl Ack {
    pub(crate) fn mqtt(
        client: rumqttc::AsyncClient,
        publish: rumqttc::Publish,
        late: Arc<LateAcks>,
    ) -> Self {
        let epoch = late.epoch();
        Ack {
            inner: AckInner::Mqtt {
                client,
                pkid: publish.pkid,
                qos: publish.qos,
                late,
                epoch,
            },
        }
    }

    /// Acknowledges without waiting: straight to the client's request queue, or, when that
    /// is full, to the source, which sends it as soon as there is room ([`LateAcks`]).
    pub fn ack(self) {
        match self.inner {
            AckInner::Mqtt {
                client,
                pkid,
                qos,
                late,
                epoch,
            } => {
                if epoch != late.epoch() {
                    // Of an earlier connection: the broker redelivers the message on this one.
                    return;
                }
                if late.waiting.load(Ordering::Relaxed) > 0 || try_ack(&client, pkid, qos).is_err()
                {
                    // Behind the others waiting, so acks leave in order.
                    late.defer(epoch, pkid, qos);
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{AsyncClient, Publish, QoS, Request};

    fn message(pkid: u16) -> Publish {
        let mut p = Publish::new("plant/a/t", QoS::AtLeastOnce, "1");
        p.pkid = pkid;
        p
    }

    fn acked(rx: &flume::Receiver<Request>) -> Vec<u16> {
        rx.try_iter()
            .filter_map(|r| match r {
                Request::PubAck(a) => Some(a.pkid),
                _ => None,
            })
            .collect()
    }

    /// A client whose request queue has room for one request (its event loop busy: here,
    /// never polled), its queue, and the source's late acks after a first connection.
    fn busy_client() -> (AsyncClient, flume::Receiver<Request>, Arc<LateAcks>) {
        let (tx, rx) = flume::bounded(1);
        let late = Arc::new(LateAcks::default());
        late.connected();
        (AsyncClient::from_senders(tx), rx, late)
    }

    #[test]
    fn an_ack_that_finds_the_queue_full_is_sent_later_in_order_not_dropped() {
        let (client, rx, late) = busy_client();
        for pkid in 1..=3 {
            let ack = Ack::mqtt(client.clone(), message(pkid), Arc::clone(&late));
            ack.ack();
        }
        assert_eq!(acked(&rx), [1], "one fitted");
        // The event loop drains a request at a time; the source's loop flushes between polls.
        assert_eq!(late.flush(&client), 1);
        assert_eq!(acked(&rx), [2]);
        // A later ack queues behind the one still waiting, so acks leave in order.
        let ack = Ack::mqtt(client.clone(), message(4), Arc::clone(&late));
        ack.ack();
        assert_eq!(late.flush(&client), 1);
        assert_eq!(acked(&rx), [3]);
        assert_eq!(late.flush(&client), 1);
        assert_eq!(acked(&rx), [4]);
        assert_eq!(late.flush(&client), 0);
    }

    #[test]
    fn acks_waiting_from_an_earlier_connection_are_dropped_on_reconnect() {
        let (client, rx, late) = busy_client();
        for pkid in 1..=2 {
            Ack::mqtt(client.clone(), message(pkid), Arc::clone(&late)).ack();
        }
        // Acked before the reconnect but after it was created: also of the old connection.
        let stale = Ack::mqtt(client.clone(), message(3), Arc::clone(&late));
        assert_eq!(acked(&rx), [1]);
        late.connected();
        stale.ack();
        // Packet id 2 may name another message on the new connection: never sent.
        assert_eq!(late.flush(&client), 0);
        Ack::mqtt(client.clone(), message(2), Arc::clone(&late)).ack();
        assert_eq!(acked(&rx), [2]);
    }
}
