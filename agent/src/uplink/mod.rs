//! Drains the outbox to the cloud broker over MQTT (QoS 1) and deletes a record only once the
//! broker has acknowledged it.
//!
//! The outbox is the only source of truth: the client runs with `clean_session(true)` and
//! keeps no state across connections. On every CONNACK everything not yet deleted is sent
//! again, oldest first in lane order, so a record published but not acknowledged before a
//! disconnect arrives twice at worst — consumers deduplicate by `id` (`"{gateway}:{seq}"`).
//!
//! Two tasks share a small state under a mutex ([`session`]): the *poll task* owns the
//! rumqttc `EventLoop` and only polls it (so keep-alives and PUBACKs are never held up by
//! disk reads), and the *feeder* (this module's [`run`]) fetches from the outbox and queues
//! publishes with `try_publish`, at most `inflight` unacknowledged at a time. rumqttc reports
//! `Outgoing::Publish(pkid)` in the order publishes were queued, which is how a PUBACK's
//! packet id is mapped back to a record id. On a connection error the poll task, holding the
//! lock, clears that mapping and everything rumqttc still holds (including requests queued
//! meanwhile), so a stale publish can never be matched to the wrong record.
//!
//! Around that core: [`config`] (the `uplink:` section and the client options made from it),
//! [`presence`] (a retained online/offline message and last will), [`tls`]
//! (rustls with `ring`, server verification and optional client certificates, every file
//! checked when the config loads), [`batch`] (several records of one lane per message, JSON
//! or binary, optionally DEFLATE-compressed, acknowledged and deleted as a unit) and
//! [`counters`] (what `/metrics` shows of the uplink), and [`control`] (subscriptions and a
//! retained message for the fleet, on the same connection).

mod batch;
mod config;
mod control;
mod counters;
mod group;
mod presence;
mod queue;
mod session;
mod tls;
mod wire;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::record::{Lane, LaneCursor, LaneRange, Record};
pub use batch::Compression;
pub use batch::{BatchConfig, Format};
pub use config::UplinkConfig;
pub use config::mqtt_options;
pub use control::{Control, Inbound, Outbound};
pub use counters::UplinkCounters;
pub use group::{Grouped, Grouper, Message};
pub use queue::Queue;
use session::{Sent, Shared};
pub use tls::{TlsConfig, TlsError, client_config as tls_client_config};

/// How long shutdown waits for outstanding PUBACKs before disconnecting.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Acknowledged records are deleted in batches, not one transaction per PUBACK (each delete
/// is a commit that rewrites whole pages on flash): once [`DELETE_BATCH`] are acknowledged, or
/// at the latest this long after the first acknowledgement of the batch. Deleting late is safe: a record not yet deleted is resent
/// after a reconnect, a duplicate at worst. Larger batches write less: every page a delete
/// touches goes into the WAL, and batches of 2,048 rather than 512 touch the boundary and
/// parent pages 4× less often (12 % fewer bytes written per record deleted, measured).
const DELETE_DELAY: Duration = Duration::from_millis(100);
/// See [`DELETE_DELAY`]. The acknowledged records wait in memory as ranges of ids, one per
/// lane while PUBACKs come in order (`session::Acked`), deleted with a seek per range.
const DELETE_BATCH: usize = 2048;

/// Records the feeder fetches at once at least (see [`Feeder::fill`]). They wait in memory
/// until the window has room; a commit of new records discards them (and they are fetched
/// again) so a new alert never waits behind them.
const READ_AHEAD: usize = 512;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    #[error("invalid uplink config: {field}: {reason}")]
    Config {
        field: &'static str,
        reason: &'static str,
    },
    #[error("the uplink's connection task ended unexpectedly")]
    TaskEnded,
    #[error("uplink lost its outbox: {source}")]
    Outbox {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The uplink's error for a queue that failed or has gone.
fn lost(e: impl std::error::Error + Send + Sync + 'static) -> UplinkError {
    UplinkError::Outbox {
        source: Box::new(e),
    }
}

/// The topic a record of `lane` is published to.
pub fn topic_for(prefix: &str, gateway_id: &str, lane: Lane) -> String {
    format!("{prefix}/{gateway_id}/{}", lane.as_str())
}

/// Runs until `shutdown`: connects (and reconnects) to the broker, publishes the outbox's
/// records and deletes each one its PUBACK confirms. On shutdown it stops fetching, waits up
/// to 2 s for outstanding PUBACKs, then disconnects. Errors only for an invalid config, when
/// the outbox's writer has stopped, or if the connection task died (a bug).
pub async fn run<Q: Queue>(
    cfg: UplinkConfig,
    gateway_id: String,
    outbox: Q,
    counters: Arc<UplinkCounters>,
    shutdown: CancellationToken,
) -> Result<(), UplinkError> {
    run_with_control(cfg, gateway_id, outbox, counters, shutdown, None).await
}

/// [`run`], also carrying `control`'s subscriptions and retained message (see [`control`]).
pub async fn run_with_control<Q: Queue>(
    cfg: UplinkConfig,
    gateway_id: String,
    outbox: Q,
    counters: Arc<UplinkCounters>,
    shutdown: CancellationToken,
    control: Option<Control>,
) -> Result<(), UplinkError> {
    let opts = mqtt_options(&cfg, &gateway_id)?;
    let inflight = cfg.inflight;
    let extra = control.as_ref().map_or(0, |c| c.subscriptions.len() + 1);
    // Room for every in-flight publish, the control's subscriptions and retained message,
    // plus the final DISCONNECT: try_publish never finds the request channel full.
    let (client, eventloop) = AsyncClient::new(opts, inflight + 4 + extra);
    let shared = Arc::new(Shared::default());
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let poller = tokio::spawn(session::poll(
        eventloop,
        Arc::clone(&shared),
        Arc::clone(&wake),
        stop.clone(),
        counters,
        control.as_ref().map(|c| c.inbound.clone()),
    ));
    let mut feeder = Feeder {
        client,
        outbox: Arc::new(outbox),
        deleting: None,
        shared,
        grouper: Grouper::new(&cfg, &gateway_id),
        presence: cfg
            .status
            .then(|| presence::Presence::new(&cfg.topic_prefix, &gateway_id)),
        inflight,
        cursor: LaneCursor::START,
        ahead: VecDeque::new(),
        fetched: LaneCursor::START,
        generation: 0,
        control,
        retained_due: false,
    };
    let result = feeder.feed(&wake, &shutdown).await;
    if result.is_ok() {
        feeder.drain(&wake).await;
    }
    stop.cancel();
    if let Err(e) = poller.await {
        tracing::error!(error = %e, "uplink poll task failed");
    }
    result
}

struct Feeder<Q: Queue> {
    client: AsyncClient,
    outbox: Arc<Q>,
    /// The delete of acknowledged records under way, if any: it runs beside the publishing
    /// (awaiting it would stop the window from refilling for as long as the commit takes,
    /// an fsync under `synchronous: full`), one at a time.
    deleting: Option<tokio::task::JoinHandle<Result<(), Q::Error>>>,
    shared: Arc<Shared>,
    /// Records into messages: single JSON, or batches (`uplink.batch`, `uplink.format`).
    grouper: Grouper,
    /// `Some` when `uplink.status` is on.
    presence: Option<presence::Presence>,
    inflight: usize,
    /// Where the next publish resumes: past what this connection has published.
    cursor: LaneCursor,
    /// Records fetched ahead of the window, not yet published (see [`Feeder::fill`]).
    ahead: VecDeque<Record>,
    /// Past everything in `ahead`: where the next fetch resumes.
    fetched: LaneCursor,
    /// Connection generation the cursors belong to.
    generation: u64,
    control: Option<Control>,
    /// The control's retained message is to be (re)published.
    retained_due: bool,
}

impl<Q: Queue> Feeder<Q> {
    async fn feed(
        &mut self,
        wake: &Notify,
        shutdown: &CancellationToken,
    ) -> Result<(), UplinkError> {
        let mut changes = self.outbox.changes();
        let mut delete_due: Option<tokio::time::Instant> = None;
        loop {
            let acked = self.shared.acked();
            let now = tokio::time::Instant::now();
            if acked > 0 {
                let due = *delete_due.get_or_insert(now + DELETE_DELAY);
                if (acked >= DELETE_BATCH || now >= due) && self.deleting.is_none() {
                    let ranges = self.shared.take_acked();
                    let outbox = Arc::clone(&self.outbox);
                    self.deleting =
                        Some(tokio::spawn(
                            async move { outbox.delete_ranges(ranges).await },
                        ));
                    delete_due = None;
                }
            }
            self.fill(&mut changes).await?;
            // While a delete is under way the next one waits for it (the `deleted` branch).
            let due = delete_due.filter(|_| self.deleting.is_none());
            let timer = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let deleting = self.deleting.as_mut();
            let deleted = async {
                match deleting {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            };
            let retained = async {
                match self.control.as_mut() {
                    // A change not yet published waits for the connection (the wake-up).
                    Some(c) if !self.retained_due => match c.retained.changed().await {
                        Ok(()) => self.retained_due = true,
                        // The fleet task is gone: nothing more to publish.
                        Err(_) => self.control = None,
                    },
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = timer => {}
                _ = retained => {}
                r = deleted => {
                    self.deleting = None;
                    Self::deleted(r)?;
                }
                _ = wake.notified() => {}
                _ = self.shared.closed() => return Err(UplinkError::TaskEnded),
                r = changes.changed() => if r.is_err() {
                    return Err(lost(Q::closed()));
                },
            }
        }
    }

    /// Deletes what is acknowledged now, after the delete under way (if any).
    async fn delete_acked(&mut self) -> Result<(), UplinkError> {
        if let Some(task) = self.deleting.take() {
            Self::deleted(task.await)?;
        }
        let acked = self.shared.take_acked();
        if acked.is_empty() {
            return Ok(());
        }
        Self::deleted(Ok(self.outbox.delete_ranges(acked).await))
    }

    /// The outcome of a delete of acknowledged records.
    fn deleted(r: Result<Result<(), Q::Error>, tokio::task::JoinError>) -> Result<(), UplinkError> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if Q::is_closed(&e) => Err(lost(e)),
            // Not deleted means sent again after the next reconnect: a duplicate, not a loss.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "uplink could not delete delivered records");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "uplink's delete task failed; the records are sent again after a reconnect");
                Ok(())
            }
        }
    }

    /// Publishes fetched records while connected and below the in-flight limit.
    async fn fill(
        &mut self,
        changes: &mut tokio::sync::watch::Receiver<u64>,
    ) -> Result<(), UplinkError> {
        loop {
            let (connected, generation, outstanding) = self.shared.link();
            if !connected || outstanding >= self.inflight {
                return Ok(());
            }
            if generation != self.generation {
                // New connection: nothing is in flight, resend everything not deleted.
                self.generation = generation;
                self.cursor = LaneCursor::START;
                self.rewind();
                if let Some(control) = &self.control {
                    // Clean session: subscribe again, and republish the retained status.
                    self.retained_due = true;
                    for topic in &control.subscriptions {
                        if let Err(e) = self.client.try_subscribe(topic.as_str(), QoS::AtLeastOnce)
                        {
                            tracing::warn!(error = %e, topic, "uplink could not subscribe");
                        }
                    }
                }
                // The birth goes first, before any record of this connection.
                if let Some(presence) = &self.presence {
                    let payload = presence.online();
                    if !self.publish_presence(generation, payload) {
                        return Ok(());
                    }
                    continue;
                }
            }
            if self.retained_due
                && let Some(control) = &self.control
            {
                let message = control.retained.borrow().clone();
                if let Some(message) = message
                    && !self.publish_retained(generation, message)
                {
                    return Ok(());
                }
                self.retained_due = false;
                continue;
            }
            if changes.has_changed().unwrap_or(false) && !self.ahead.is_empty() {
                // New records may belong to a higher lane: fetch again from what was sent,
                // so they jump the queue as they would without read-ahead.
                self.rewind();
            }
            changes.borrow_and_update();
            let per_message = self.grouper.per_message();
            let wanted = self.inflight.saturating_sub(outstanding) * per_message;
            if self.ahead.len() < wanted {
                // One fetch fills the whole window and then some: a PUBACK frees one slot
                // at a time, and a round trip to the writer thread per slot would cap the rate.
                let limit = wanted.max(self.inflight * per_message).max(READ_AHEAD);
                let more = match self.outbox.fetch(limit, self.fetched).await {
                    Ok(more) => more,
                    Err(e) => return Err(lost(e)),
                };
                for record in &more {
                    self.fetched.advance(record);
                }
                self.ahead.extend(more);
            }
            if self.ahead.is_empty() {
                return Ok(());
            }
            let take = wanted.min(self.ahead.len());
            let batch: Vec<Record> = self.ahead.drain(..take).collect();
            let grouped = self.grouper.group(&batch);
            let mut stalled = false;
            {
                let mut s = self.shared.lock();
                if !s.connected || s.generation != self.generation {
                    drop(s);
                    self.rewind();
                    continue;
                }
                for message in grouped.messages {
                    let Some(&last) = message.records.last() else {
                        continue;
                    };
                    // The message's records are the lane's next ones after what this
                    // connection published last in it (fetched in order, rewound on any
                    // gap), so the range starts there; see `LaneRange`.
                    let sent = Sent::Records {
                        range: LaneRange {
                            lane: last.lane,
                            after: self.cursor.after(last.lane),
                            last: last.id,
                        },
                        count: message.records.len() as u64,
                    };
                    match self.client.try_publish(
                        message.topic,
                        QoS::AtLeastOnce,
                        false,
                        message.payload,
                    ) {
                        Ok(()) => {
                            s.issued.push_back(sent);
                            self.cursor.advance(last);
                        }
                        Err(e) => {
                            // Unreachable by construction (channel sized for the window);
                            // the records stay behind the cursor and are fetched again.
                            tracing::warn!(error = %e, "uplink could not queue a publish");
                            stalled = true;
                            break;
                        }
                    }
                }
            }
            if !grouped.unpublishable.is_empty() {
                let mut bad = Vec::new();
                for &(record, reason) in &grouped.unpublishable {
                    tracing::error!(
                        id = record.id,
                        lane = record.lane.as_str(),
                        reason,
                        "uplink dropped an unpublishable record (data lost)"
                    );
                    bad.push(record.id);
                    if !stalled {
                        // Everything around it was published: move past it (it is deleted
                        // before the next fetch either way).
                        self.cursor.advance(record);
                    }
                }
                self.outbox.count_discarded(bad.len() as u64);
                if let Err(e) = self.outbox.delete(bad).await {
                    tracing::error!(error = %e, "uplink could not delete unpublishable records");
                }
            }
            if stalled {
                // Retry on the next wake-up rather than spin; what was not queued is
                // fetched again.
                self.rewind();
                return Ok(());
            }
        }
    }

    /// Forgets the records read ahead: the next fetch resumes past what was published.
    fn rewind(&mut self) {
        self.ahead.clear();
        self.fetched = self.cursor;
    }

    /// Queues a retained presence message on connection `generation`, tracked like a record so
    /// packet ids stay matched. False if the connection is gone or the queue refused it.
    fn publish_presence(&self, generation: u64, payload: Vec<u8>) -> bool {
        let Some(presence) = &self.presence else {
            return true;
        };
        let mut s = self.shared.lock();
        if !s.connected || s.generation != generation {
            return false;
        }
        match self
            .client
            .try_publish(presence.topic.as_str(), QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => {
                s.issued.push_back(Sent::Presence);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "uplink could not queue its presence message");
                false
            }
        }
    }

    /// Queues the control's retained message on connection `generation`, tracked like a
    /// presence message. False if the connection is gone or the queue refused it.
    fn publish_retained(&self, generation: u64, message: Outbound) -> bool {
        let mut s = self.shared.lock();
        if !s.connected || s.generation != generation {
            return false;
        }
        match self
            .client
            .try_publish(message.topic, QoS::AtLeastOnce, true, message.payload)
        {
            Ok(()) => {
                s.issued.push_back(Sent::Presence);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "uplink could not queue a retained status");
                false
            }
        }
    }

    /// Waits (bounded) for outstanding PUBACKs, deletes what they confirm, publishes the
    /// `offline` presence message (waiting briefly for its PUBACK) and disconnects.
    async fn drain(&mut self, wake: &Notify) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        loop {
            if self.delete_acked().await.is_err() {
                break;
            }
            let (connected, _, outstanding) = self.shared.link();
            if !connected || outstanding == 0 {
                break;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(outstanding, "uplink stopping with unacknowledged publishes (sent again next run)");
                    break;
                }
            }
        }
        let _ = self.delete_acked().await;
        let (connected, generation, _) = self.shared.link();
        if connected
            && let Some(presence) = &self.presence
            && self.publish_presence(generation, presence.shutdown())
        {
            // The DISCONNECT would follow the PUBLISH on the wire anyway; waiting for the PUBACK
            // makes sure the broker has stored the retained `offline` before the socket closes.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while self.shared.link().2 > 0 {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        if self.shared.link().0 && self.client.try_disconnect().is_ok() {
            // Let the poll task write the DISCONNECT; it returns once it has.
            let _ = tokio::time::timeout(Duration::from_millis(500), self.shared.closed()).await;
        }
    }
}
