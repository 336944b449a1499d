//! The MQTT source's event loop: connect, subscribe, decode, hand over, back off.

use crate::{Handed, hand_over};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{MqttSourceConfig, Subscription};
use crate::backoff::Backoff;
use crate::delivery::LateAcks;
use crate::payload::{self, PayloadError};
use crate::{Ack, Delivery, Reading, SourceCounters, SourceError};

/// Requests the client can queue without the event loop: subscriptions and the agent's acks.
/// Brokers cap unacknowledged QoS 1 deliveries per client (mosquitto: 20) far below this, so
/// `try_ack` does not fail for lack of room while the event loop waits on the pipeline.
const REQUEST_CAPACITY: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Connections in a row that come up and fail before one message gets through, after which
/// the source is reported stalled.
pub(crate) const STALL_AFTER: u32 = 5;
/// While the broker stays unreachable, a WARN reminder at most this often.
const DOWN_REMINDER: Duration = Duration::from_secs(60);
/// How long shutdown waits for the DISCONNECT to be written.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);
/// Distinct device/metric names kept shared; past this the cache starts over (bounded memory
/// against a device that invents a new name per message).
const NAME_CACHE: usize = 4096;
/// `bad payload` WARNs per minute; beyond it they are DEBUG, with a count when the minute ends.
const BAD_PAYLOAD_WARNS: u32 = 20;
const BAD_PAYLOAD_WINDOW: Duration = Duration::from_secs(60);

/// Runs the MQTT source until `shutdown`, then disconnects (the broker keeps the session and
/// any unacknowledged messages for the next start). Returns an error only for an invalid
/// configuration or a closed pipeline; connection problems are retried with backoff forever.
pub async fn run(
    cfg: MqttSourceConfig,
    tx: mpsc::Sender<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    cfg.validate()?;
    let client_id = cfg.effective_client_id();
    let mut opts = super::Connection {
        client_id: client_id.clone(),
        host: &cfg.host,
        port: cfg.port,
        keep_alive: cfg.keep_alive,
    }
    .options()
    .map_err(|super::OptionsError::Invalid { field, reason }| {
        SourceError::config(&cfg.name, field, reason)
    })?;
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(cfg.transport_limit(), cfg.transport_limit());
    let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let mut src = Source::new(cfg, client, Arc::clone(&counters));
    let mut link = Link::Starting;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);

    let result = loop {
        // Acks that found the request queue full, now that polling has made room.
        src.late.flush(&src.client);
        let polled = tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                src.late.connected();
                backoff.connected();
                SourceCounters::add(&counters.connects, 1);
                counters.set_connected(true);
                link.connected(
                    &src.name,
                    &broker,
                    &client_id,
                    ack.session_present,
                    backoff.unproven(),
                );
                src.subscribe_pending = true;
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // A message read, good or bad, is progress: the connection proved itself.
                backoff.proven();
                if counters.is_stalled() {
                    counters.set_stalled(false);
                    tracing::info!(source = %src.name, "mqtt source is making progress again");
                }
                let Some(delivery) = src.handle(publish) else {
                    continue;
                };
                // On shutdown the delivery is dropped unacknowledged: redelivered next start.
                match hand_over(&tx, delivery, &counters, &shutdown).await {
                    Handed::Sent => {}
                    Handed::Shutdown => break Ok(()),
                    Handed::Closed => {
                        break Err(SourceError::PipelineClosed {
                            name: src.name.clone(),
                        });
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    tracing::warn!(source = %src.name, filters = ?src.filters, codes = ?ack.return_codes,
                        "broker refused a subscription; those topics will not be received");
                } else {
                    tracing::debug!(source = %src.name, filters = ?src.filters, "subscribed");
                }
            }
            Ok(_) => {
                // A connection that stays up long enough proves itself without messages.
                if backoff.settle() && counters.is_stalled() {
                    counters.set_stalled(false);
                    tracing::info!(source = %src.name, "mqtt source connection is stable again");
                }
            }
            Err(e) => {
                counters.set_connected(false);
                let delay = backoff.failed();
                if let Some(size) = too_big(&e) {
                    SourceCounters::add(&counters.decode_errors, 1);
                    SourceCounters::add(&counters.oversized, 1);
                    src.oversized_message(size);
                }
                link.failed(&src.name, &broker, &e, backoff.unproven());
                if backoff.unproven() >= STALL_AFTER && !counters.is_stalled() {
                    counters.set_stalled(true);
                    // ERROR: nothing from this source gets through until an operator acts.
                    tracing::error!(source = %src.name, broker = %broker, error = %e,
                        connections = backoff.unproven(),
                        "mqtt source stalled: its connections keep failing before a message gets through");
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        if src.subscribe_pending {
            src.subscribe();
        }
    };
    if counters.is_connected() {
        disconnect(&src.client, &mut eventloop).await;
    }
    tracing::info!(source = %src.name, "mqtt source stopped");
    result
}

/// Queues DISCONNECT (after any acks already queued) and polls until it is written.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let drain = async {
        loop {
            // Publishes arriving now are dropped unacknowledged: the broker keeps them.
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(DISCONNECT_GRACE, drain).await.is_err() {
        tracing::debug!("mqtt disconnect not written in time; closing anyway");
    }
}

/// The declared size of a packet the client refused to read, when that is why `e` happened.
fn too_big(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(size),
        )) => Some(*size),
        _ => None,
    }
}

/// Why a message was rejected (counted, logged, acked).
#[derive(Debug, thiserror::Error)]
enum BadMessage {
    #[error("topic matches no subscription pattern")]
    UnmappedTopic,
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

struct Source {
    name: String,
    client: AsyncClient,
    counters: Arc<SourceCounters>,
    subs: Vec<Subscription>,
    /// Broker filters, deduplicated (two patterns may share one).
    filters: Vec<String>,
    subscribe_pending: bool,
    max_payload: usize,
    max_message: usize,
    /// Whether a message above `max_message` was reported (ERROR once, then DEBUG).
    too_big_logged: bool,
    names: Names,
    bad_log: WarnLimiter,
    /// Acks that found the client's request queue full (see [`LateAcks`]).
    late: Arc<LateAcks>,
}

impl Source {
    fn new(cfg: MqttSourceConfig, client: AsyncClient, counters: Arc<SourceCounters>) -> Self {
        let mut filters: Vec<String> = Vec::new();
        for s in &cfg.subscriptions {
            if !filters.iter().any(|f| f == s.topic.filter()) {
                filters.push(s.topic.filter().to_owned());
            }
        }
        let max_message = cfg.transport_limit();
        Source {
            name: cfg.name,
            client,
            counters,
            subs: cfg.subscriptions,
            filters,
            subscribe_pending: false,
            max_payload: cfg.max_payload,
            max_message,
            too_big_logged: false,
            names: Names::default(),
            bad_log: WarnLimiter::new(),
            late: Arc::default(),
        }
    }

    fn subscribe(&mut self) {
        let filters = self
            .filters
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        match self.client.try_subscribe_many(filters) {
            Ok(()) => self.subscribe_pending = false,
            // Retried after the next event; the request queue drains as the loop polls.
            Err(e) => tracing::debug!(source = %self.name, error = %e, "subscribe not queued yet"),
        }
    }

    /// The client refused a message of `size` bytes: larger than it reads at all.
    fn oversized_message(&mut self, size: usize) {
        if std::mem::replace(&mut self.too_big_logged, true) {
            tracing::debug!(source = %self.name, size, limit = self.max_message, "message above max_message refused again");
        } else {
            // ERROR: at QoS 1 the broker redelivers it on every reconnect; an operator must
            // remove it (or raise max_message). At QoS 0 it was lost (and counted).
            tracing::error!(source = %self.name, size, limit = self.max_message,
                "a message larger than max_message cannot be read; the connection was dropped \
                 (counted in decode_errors and oversized); at QoS 1 the broker redelivers it");
        }
    }

    /// One message: a delivery to hand over, or `None` when it was rejected (and acked).
    fn handle(&mut self, publish: Publish) -> Option<Delivery> {
        SourceCounters::add(&self.counters.received, 1);
        match self.decode(&publish) {
            Ok(readings) => {
                let ack = (publish.qos != QoS::AtMostOnce)
                    .then(|| Ack::mqtt(self.client.clone(), publish, Arc::clone(&self.late)));
                Some(Delivery { readings, ack })
            }
            Err(e) => {
                SourceCounters::add(&self.counters.decode_errors, 1);
                if matches!(e, BadMessage::Payload(PayloadError::TooLarge { .. })) {
                    SourceCounters::add(&self.counters.oversized, 1);
                }
                if let Some(suppressed) = self.bad_log.allow() {
                    if suppressed > 0 {
                        tracing::warn!(source = %self.name, suppressed, "bad payload warnings were suppressed in the last minute");
                    }
                    tracing::warn!(source = %self.name, topic = %publish.topic, error = %e, "bad payload");
                } else {
                    tracing::debug!(source = %self.name, topic = %publish.topic, error = %e, "bad payload");
                }
                // Redelivery cannot fix it. If the ack cannot be queued the broker redelivers
                // after a reconnect and it is rejected again: harmless.
                if let Err(ae) = self.client.try_ack(&publish) {
                    tracing::debug!(source = %self.name, error = %ae, "ack for bad payload not queued");
                }
                None
            }
        }
    }

    fn decode(&mut self, publish: &Publish) -> Result<Vec<Reading>, BadMessage> {
        let (sub, device, metric) = self
            .subs
            .iter()
            .find_map(|s| s.topic.captures(&publish.topic).map(|(d, m)| (s, d, m)))
            .ok_or(BadMessage::UnmappedTopic)?;
        let metric = metric.or(sub.metric.as_deref());
        let decoded = payload::decode(&publish.payload, metric, self.max_payload)?;
        let ts = decoded.ts.unwrap_or_else(crate::now_us);
        let device = self.names.get(device);
        Ok(decoded
            .values
            .into_iter()
            .map(|(m, value)| Reading {
                device: Arc::clone(&device),
                metric: self.names.get(&m),
                ts,
                value,
            })
            .collect())
    }
}

/// Shares name strings across readings so a steady stream of messages does not allocate a
/// new `Arc<str>` per device and metric.
#[derive(Default)]
struct Names(HashSet<Arc<str>>);

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return Arc::clone(a);
        }
        if self.0.len() >= NAME_CACHE {
            self.0.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&a));
        a
    }
}

/// Connection state, so logs report changes rather than every retry. While connections keep
/// failing before they prove themselves (a storm), a connect is DEBUG, not INFO, and failures
/// are WARNed once a minute at most.
enum Link {
    Starting,
    Up,
    Down {
        since: Instant,
        failures: u32,
        last_warn: Instant,
    },
}

impl Link {
    fn connected(
        &mut self,
        source: &str,
        broker: &str,
        client_id: &str,
        session_present: bool,
        unproven: u32,
    ) {
        match self {
            Link::Down {
                since, failures, ..
            } if unproven == 0 => {
                tracing::info!(source, broker, client_id, session_present, failures = *failures,
                    down_for = ?since.elapsed(), "mqtt source connected");
            }
            Link::Down { .. } => {
                // Still in a storm: the Down state (and its reminder clock) is kept.
                tracing::debug!(source, broker, unproven, "mqtt source connected (on trial)");
                return;
            }
            _ => tracing::info!(
                source,
                broker,
                client_id,
                session_present,
                "mqtt source connected"
            ),
        }
        *self = Link::Up;
    }

    fn failed(&mut self, source: &str, broker: &str, error: &ConnectionError, unproven: u32) {
        let now = Instant::now();
        match self {
            Link::Up => {
                tracing::warn!(source, broker, %error, "mqtt source connection lost; reconnecting");
            }
            Link::Starting => {
                tracing::warn!(source, broker, %error, "mqtt source cannot connect; retrying");
            }
            Link::Down {
                since,
                failures,
                last_warn,
            } => {
                *failures += 1;
                if now.duration_since(*last_warn) >= DOWN_REMINDER {
                    *last_warn = now;
                    tracing::warn!(source, broker, %error, failures = *failures, unproven,
                        down_for = ?since.elapsed(), "mqtt source still cannot keep a connection");
                } else {
                    tracing::debug!(source, broker, %error, failures = *failures, unproven, "mqtt connection attempt failed");
                }
                return;
            }
        }
        *self = Link::Down {
            since: now,
            failures: 1,
            last_warn: now,
        };
    }
}

/// Lets a burst of warnings through per window, so a misconfigured device publishing many
/// bad messages per second cannot fill the log (and the flash it is written to).
struct WarnLimiter {
    window_start: Instant,
    in_window: u32,
}

impl WarnLimiter {
    fn new() -> Self {
        WarnLimiter {
            window_start: Instant::now(),
            in_window: 0,
        }
    }

    /// `Some(suppressed in the previous window)` when this one may be logged at WARN.
    fn allow(&mut self) -> Option<u32> {
        let mut suppressed = 0;
        if self.window_start.elapsed() >= BAD_PAYLOAD_WINDOW {
            suppressed = self.in_window.saturating_sub(BAD_PAYLOAD_WARNS);
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        self.in_window = self.in_window.saturating_add(1);
        (self.in_window <= BAD_PAYLOAD_WARNS).then_some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shared_and_bounded() {
        let mut n = Names::default();
        let a = n.get("pump-1");
        let b = n.get("pump-1");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..NAME_CACHE + 10 {
            n.get(&format!("d{i}"));
        }
        assert!(n.0.len() <= NAME_CACHE);
    }

    #[test]
    fn warn_limiter_passes_a_burst_then_suppresses() {
        let mut l = WarnLimiter::new();
        for _ in 0..BAD_PAYLOAD_WARNS {
            assert_eq!(l.allow(), Some(0));
        }
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        l.window_start = l.window_start.checked_sub(BAD_PAYLOAD_WINDOW).unwrap();
        assert_eq!(
            l.allow(),
            Some(2),
            "reports what the last window suppressed"
        );
    }
}
