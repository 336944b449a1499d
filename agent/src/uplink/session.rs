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
use crate::support::record::LaneRange;

/// Reconnect delays: from 100 ms to 10 s, with jitter ([`Backoff`]).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// While the uplink keeps failing, a WARN reminder at most this often.
const DOWN_REMINDER: Duration = Duration::from_secs(60);

/// What a publish carried: records of one lane (deleted once acknowledged), or a presence
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    /// A record alone or a batch: `count` records, every one of `range`'s lane inside
    /// `range` that was not left out as unpublishable (those are deleted anyway).
    Records {
        range: LaneRange,
        count: u64,
    },
    Presence,
}

impl Sent {
    /// Records carried.
    fn records(&self) -> u64 {
        match self {
            Sent::Records { count, .. } => *count,
            Sent::Presence => 0,
        }
    }
}

/// Acknowledged records awaiting deletion, as few ranges as the acknowledgements allow: a
/// range grows when the next acknowledged range of its lane starts right where it ends.
/// PUBACKs come in publish order (MQTT requires it for QoS 1), so a delete batch is one
/// range per lane; out of order, ranges stay apart and nothing unacknowledged is covered.
#[derive(Debug, Default)]
pub(super) struct Acked {
    ranges: Vec<LaneRange>,
    records: usize,
}

impl Acked {
    pub fn push(&mut self, range: LaneRange, records: u64) {
        self.records += usize::try_from(records).unwrap_or(usize::MAX);
        let open = self.ranges.iter_mut().rev().find(|r| r.lane == range.lane);
        match open {
            Some(open) if open.last == range.after => open.last = range.last,
            _ => self.ranges.push(range),
        }
    }

    /// Records acknowledged.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn take(&mut self) -> Vec<LaneRange> {
        self.records = 0;
        std::mem::take(&mut self.ranges)
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
    pub acked: Acked,
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

    pub fn take_acked(&self) -> Vec<LaneRange> {
        self.lock().acked.take()
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
                        if let Sent::Records { range, count } = sent {
                            s.acked.push(range, count);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::record::Lane;

    fn range(lane: Lane, after: u64, last: u64) -> LaneRange {
        LaneRange { lane, after, last }
    }

    #[test]
    fn in_order_acks_make_one_range_per_lane() {
        let mut acked = Acked::default();
        // Aggregates 3, 4, 6 (5 is an alert), a batch 7..=9, alerts 5 and 10 in between.
        acked.push(range(Lane::Aggregates, 0, 3), 1);
        acked.push(range(Lane::Alerts, 0, 5), 1);
        acked.push(range(Lane::Aggregates, 3, 4), 1);
        acked.push(range(Lane::Aggregates, 4, 6), 1);
        acked.push(range(Lane::Alerts, 5, 10), 1);
        acked.push(range(Lane::Aggregates, 6, 9), 3);
        assert_eq!(acked.len(), 8);
        assert_eq!(
            acked.take(),
            [range(Lane::Aggregates, 0, 9), range(Lane::Alerts, 0, 10)]
        );
        assert_eq!(acked.len(), 0);
        assert!(acked.take().is_empty());
    }

    #[test]
    fn an_ack_out_of_order_never_covers_a_record_still_in_flight() {
        let mut acked = Acked::default();
        // Published 1, 2, 3, 4 in one lane; 3 is acknowledged before 2, and 2 never.
        acked.push(range(Lane::Alerts, 0, 1), 1);
        acked.push(range(Lane::Alerts, 2, 3), 1);
        acked.push(range(Lane::Alerts, 3, 4), 1);
        let ranges = acked.take();
        assert_eq!(
            ranges,
            [range(Lane::Alerts, 0, 1), range(Lane::Alerts, 2, 4)]
        );
        assert!(
            !ranges.iter().any(|r| r.after < 2 && 2 <= r.last),
            "2 is not acknowledged"
        );
    }
}
