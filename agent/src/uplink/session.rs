//! The poll task and the state it shares with the feeder.
//!
//! The mutex is what makes packet-id matching sound: the feeder queues a publish and records
//! its id in `issued` under the lock, and on a connection error the poll task, under the same
//! lock, marks the connection down, forgets `issued`/`inflight` and empties everything
//! rumqttc holds (its state, its pending list, its request channel). No publish from an old
//! connection can therefore surface as an `Outgoing::Publish` after a reconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::{Event, EventLoop, MqttState, Outgoing, Packet};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weir_drivers::backoff::Backoff;

use super::counters::UplinkCounters;

/// Reconnect delays: from 100 ms to 10 s, with jitter ([`Backoff`]).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// While the uplink keeps failing, a WARN reminder at most this often.
const DOWN_REMINDER: Duration = Duration::from_secs(60);

/// What a publish carried: a record or a batch of records (deleted once acknowledged), or a
/// presence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    Record(u64),
    Batch(Vec<u64>),
    Presence,
}

impl Sent {
    /// Records carried.
    fn records(&self) -> u64 {
        match self {
            Sent::Record(_) => 1,
            Sent::Batch(ids) => ids.len() as u64,
            Sent::Presence => 0,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// Up since the last CONNACK.
    pub connected: bool,
    /// Bumped on every CONNACK: the feeder restarts from the oldest record.
    pub generation: u64,
    /// Publishes queued with `try_publish`, not yet seen as `Outgoing::Publish`, in order.
    pub issued: VecDeque<Sent>,
    /// Packet id -> what was published and when, awaiting PUBACK.
    pub inflight: HashMap<u16, (Sent, Instant)>,
    /// Acknowledged by the broker, to be deleted from the outbox.
    pub acked: Vec<u64>,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Cancelled when the poll task has returned.
    done: CancellationToken,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every early return, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (connected, generation, publishes awaiting a PUBACK)
    pub fn link(&self) -> (bool, u64, usize) {
        let s = self.lock();
        (s.connected, s.generation, s.issued.len() + s.inflight.len())
    }

    /// Acknowledged, not yet deleted.
    pub fn acked(&self) -> usize {
        self.lock().acked.len()
    }

    pub fn take_acked(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().acked)
    }

    pub async fn closed(&self) {
        self.done.cancelled().await
    }
}

/// Polls the event loop until `stop`, reconnecting with backoff after errors. A CONNACK does
/// not start the backoff over: the connection must prove itself with a PUBACK (or by staying
/// up 10 s), so a broker that closes right after CONNACK sees growing delays and a few log
/// lines, not a reconnect (and a re-sent backlog) every 100 ms.
pub(super) async fn poll(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    counters: Arc<UplinkCounters>,
    inbound: Option<tokio::sync::mpsc::Sender<super::Inbound>>,
) {
    let _done = shared.done.clone().drop_guard();
    let max_inflight = eventloop.mqtt_options.inflight();
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut ever_connected = false;
    // Some while an outage is under way (and has been logged); the last WARN about it.
    let mut down_since: Option<Instant> = None;
    let mut last_warn = Instant::now();
    // The last TLS failure logged at ERROR: a changed reason is logged again, a repeat is not.
    let mut tls_reason: Option<String> = None;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                {
                    let mut s = shared.lock();
                    s.connected = true;
                    s.generation += 1;
                    s.issued.clear();
                    s.inflight.clear();
                }
                counters.connected.store(true, Ordering::Relaxed);
                UplinkCounters::bump(&counters.connects);
                tls_reason = None;
                backoff.connected();
                ever_connected = true;
                if backoff.unproven() > 0 {
                    // Connections keep failing before a PUBACK: one line a minute, not each.
                    tracing::debug!(unproven = backoff.unproven(), "uplink connected (on trial)");
                } else {
                    match down_since.take() {
                        Some(t) => tracing::info!(
                            outage_ms = t.elapsed().as_millis() as u64,
                            "uplink connected"
                        ),
                        None => tracing::info!("uplink connected"),
                    }
                }
                wake.notify_one();
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if backoff.on_trial() {
                    backoff.proven();
                    if let Some(t) = down_since.take() {
                        tracing::info!(
                            outage_ms = t.elapsed().as_millis() as u64,
                            "uplink connection stable again"
                        );
                    }
                }
                {
                    let mut s = shared.lock();
                    if let Some((sent, sent_at)) = s.inflight.remove(&ack.pkid) {
                        let n = sent.records();
                        match sent {
                            Sent::Record(id) => s.acked.push(id),
                            Sent::Batch(ids) => s.acked.extend(ids),
                            Sent::Presence => {}
                        }
                        if n > 0 {
                            counters.observe_ack(n, sent_at.elapsed());
                        }
                    }
                }
                wake.notify_one();
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut s = shared.lock();
                match s.issued.pop_front() {
                    Some(sent) => {
                        counters
                            .published
                            .fetch_add(sent.records(), Ordering::Relaxed);
                        s.inflight.insert(pkid, (sent, Instant::now()));
                    }
                    None => tracing::debug!(pkid, "publish not issued by the feeder"),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Only the control's subscriptions deliver here.
                if let Some(inbound) = &inbound {
                    let message = super::Inbound {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                    };
                    if let Err(e) = inbound.try_send(message) {
                        tracing::warn!(topic = %p.topic, "uplink dropped an incoming message ({e}); a retained one comes again on reconnect");
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                shared.lock().connected = false;
                counters.connected.store(false, Ordering::Relaxed);
                return;
            }
            Ok(_) => {
                // Up long enough without a PUBACK (nothing to send) is proof as well.
                if backoff.on_trial() && backoff.settle() {
                    down_since = None;
                }
            }
            Err(e) => {
                {
                    let mut s = shared.lock();
                    s.connected = false;
                    s.issued.clear();
                    s.inflight.clear();
                    // clean_session: drop whatever rumqttc would otherwise replay.
                    eventloop.clean();
                    eventloop.pending.clear();
                    eventloop.state = MqttState::new(max_inflight, false);
                }
                counters.connected.store(false, Ordering::Relaxed);
                UplinkCounters::bump(&counters.connection_errors);
                wake.notify_one();
                let delay = backoff.failed();
                if let Some(reason) = super::tls::describe(&e) {
                    UplinkCounters::bump(&counters.tls_errors);
                    if tls_reason.as_ref() != Some(&reason) {
                        // ERROR: nothing gets through until an operator fixes certificates.
                        tracing::error!("uplink TLS failed, records stay in the outbox: {reason}");
                        tls_reason = Some(reason);
                    }
                }
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    last_warn = Instant::now();
                    let what = if ever_connected {
                        "uplink connection lost; reconnecting with backoff"
                    } else {
                        "uplink cannot connect to the broker; retrying with backoff"
                    };
                    tracing::warn!(error = %e, "{what}");
                } else if last_warn.elapsed() >= DOWN_REMINDER {
                    last_warn = Instant::now();
                    tracing::warn!(error = %e, unproven = backoff.unproven(),
                        down_ms = down_since.map_or(0, |t| t.elapsed().as_millis() as u64),
                        "uplink still cannot keep a connection; records stay in the outbox");
                } else {
                    tracing::debug!(error = %e, delay_ms = delay.as_millis() as u64, "uplink reconnect failed");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
