//! MQTT clients the tests drive: a [`Publisher`] standing in for devices and a [`Collector`]
//! standing in for the cloud consumer.
//!
//! The collector behaves like the consumer DESIGN.md promises things to: a persistent session
//! (`clean_session(false)`, fixed client id, QoS 1), reconnecting on its own through broker
//! outages, and de-duplicating by record id after the fact ([`distinct_records`]) because
//! delivery is at-least-once. Both use rumqttc's blocking client on their own threads, so the
//! tests stay plain `#[test]` functions.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS, RecvTimeoutError};
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PUBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the oversized payloads the bad-input test sends.
const MAX_PACKET: usize = 4 * 1024 * 1024;

/// Client ids unique within the run and across concurrently running test binaries.
fn client_id(role: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("weir-tests-{role}-{}-{n}", std::process::id())
}

fn options(role: &str, port: u16, clean_session: bool) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id(role), "127.0.0.1", port);
    opts.set_clean_session(clean_session)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts
}

/// One message as received by the collector.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The payload parsed as JSON, if it is JSON.
    pub json: Option<Value>,
}

impl Message {
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.json.as_ref()?.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.field(key)?.as_str()
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.field(key)?.as_u64()
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.field(key)?.as_f64()
    }

    /// The record id (`"<gateway>:<seq>"`), the consumer's de-duplication key.
    pub fn id(&self) -> Option<&str> {
        self.str("id")
    }

    /// A one-line summary for error messages.
    pub fn summary(&self) -> String {
        match &self.json {
            Some(json) => format!("{} {json}", self.topic),
            None => format!("{} <{} bytes, not JSON>", self.topic, self.payload.len()),
        }
    }
}

/// The first arrival of each record id, in arrival order; messages without an id are dropped.
///
/// At-least-once delivery means redeliveries are legal; what must hold is that the *first*
/// arrivals are complete and in order, which is what tests check on this view.
pub fn distinct_records(messages: &[Message]) -> Vec<Message> {
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .filter(|m| m.id().is_some_and(|id| seen.insert(id.to_owned())))
        .cloned()
        .collect()
}

/// Publishes QoS 1 messages and waits for each PUBACK.
pub struct Publisher {
    client: Client,
    connection: Connection,
}

impl Publisher {
    /// Connects to the broker on `port` and waits for the CONNACK.
    pub fn connect(port: u16) -> Result<Publisher> {
        let (client, mut connection) = Client::new(options("pub", port, true), 16);
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut last_error = None;
        loop {
            match connection.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Err(e)) => {
                    last_error = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(RecvTimeoutError::Disconnected) => bail!("publisher event loop closed"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "publisher could not connect to 127.0.0.1:{port} within {CONNECT_TIMEOUT:?} \
                     (last error: {last_error:?})"
                );
            }
        }
        Ok(Publisher { client, connection })
    }

    /// Publishes one QoS 1 message (retain false) and waits for its PUBACK.
    pub fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .with_context(|| format!("queueing a publish to {topic}"))?;
        let deadline = Instant::now() + PUBACK_TIMEOUT;
        loop {
            match self.connection.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return Ok(()),
                Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Err(e)) => bail!("publisher lost its connection publishing to {topic}: {e}"),
                Err(RecvTimeoutError::Disconnected) => bail!("publisher event loop closed"),
            }
            if Instant::now() >= deadline {
                bail!("no PUBACK for a publish to {topic} within {PUBACK_TIMEOUT:?}");
            }
        }
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Message>,
    /// SUBACKs seen: one per (re)subscription, so a test can wait for "subscribed again".
    subacks: u64,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the collector thread only ever happens between pushes; the data is fine.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Subscribes to a topic filter at QoS 1 and collects everything, through broker restarts.
pub struct Collector {
    shared: Arc<Shared>,
    filter: String,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Connects with a persistent session, subscribes to `filter` and waits for the SUBACK.
    pub fn start(port: u16, filter: &str) -> Result<Collector> {
        let (client, connection) = Client::new(options("collector", port, false), 64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("collector-{port}"))
            .spawn({
                let (shared, stop, filter) = (shared.clone(), stop.clone(), filter.to_owned());
                move || collect(client, connection, &filter, &shared, &stop)
            })
            .context("spawning the collector thread")?;
        let collector = Collector {
            shared,
            filter: filter.to_owned(),
            port,
            stop,
            thread: Some(thread),
        };
        collector.wait_subscribed_after(0, CONNECT_TIMEOUT)?;
        Ok(collector)
    }

    /// How many SUBACKs the collector has received so far.
    pub fn subacks(&self) -> u64 {
        self.shared.lock().subacks
    }

    /// Waits until more than `seen` SUBACKs have arrived, i.e. the collector has
    /// (re)subscribed since the caller read [`Collector::subacks`].
    pub fn wait_subscribed_after(&self, seen: u64, timeout: Duration) -> Result<()> {
        let what = format!(
            "the collector's SUBACK #{} for `{}` on :{}",
            seen + 1,
            self.filter,
            self.port
        );
        self.wait_state(&what, timeout, |state| state.subacks > seen)
            .map(drop)
    }

    /// A snapshot of everything collected so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    /// Waits until `pred` holds for the messages collected so far and returns them.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Message]) -> bool,
    ) -> Result<Vec<Message>> {
        self.wait_state(what, timeout, |state| pred(&state.messages))
    }

    fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&State) -> bool,
    ) -> Result<Vec<Message>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if pred(&state) {
                return Ok(state.messages.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                let shown: Vec<String> = state.messages.iter().map(Message::summary).collect();
                return Err(anyhow!(
                    "timed out after {timeout:?} waiting for {what}; the collector on :{} got {} \
                     message(s), last connection error {:?}:\n{}",
                    self.port,
                    shown.len(),
                    state.last_error,
                    crate::tail(&shown.join("\n"), 30)
                ));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The collector thread: polls the connection, (re)subscribes on every CONNACK (a broker that
/// lost our session has lost the subscription too; subscribing again is harmless otherwise),
/// records messages, and keeps going through connection errors.
fn collect(
    client: Client,
    mut connection: Connection,
    filter: &str,
    shared: &Shared,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match connection.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                    shared.lock().last_error = Some(format!("subscribe: {e}"));
                }
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                shared.lock().subacks += 1;
                shared.changed.notify_all();
            }
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                let payload = publish.payload.to_vec();
                let message = Message {
                    topic: publish.topic.clone(),
                    json: serde_json::from_slice(&payload).ok(),
                    payload,
                };
                shared.lock().messages.push(message);
                shared.changed.notify_all();
            }
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => {
                shared.lock().last_error = Some(e.to_string());
                // The broker is away; rumqttc reconnects on the next poll. Do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
    let _ = client.try_disconnect();
}
