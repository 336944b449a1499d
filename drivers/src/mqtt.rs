//! The MQTT source: subscribes to a local broker and turns messages into readings, with
//! at-least-once ingest.
//!
//! Why it is built this way:
//!
//! - **At least once.** Subscriptions are QoS 1 with manual acks, and the session is persistent
//!   (`clean_session = false`, a stable client id, default `weir-src-{name}`). A message is
//!   acknowledged only when the agent calls [`Ack::ack`](crate::Ack::ack) after the events it caused are
//!   committed, so a crash or restart in between leaves it unacknowledged and the broker
//!   redelivers it to the same client id. Duplicates are possible; loss is not.
//! - **Bad input is acknowledged at once.** A payload that cannot be decoded, is larger than
//!   `max_payload`, or arrives on a topic no pattern captures is counted
//!   (`decode_errors`; `oversized` too for a payload over `max_payload`), logged at WARN as `bad payload` with the topic and reason, and
//!   acknowledged: redelivery cannot fix it, and leaving it unacknowledged would block the
//!   broker's in-flight window.
//! - **Back-pressure, not buffering.** Each message becomes one [`Delivery`](crate::Delivery) sent on the
//!   bounded channel with `send().await`; while the pipeline is full the source stops reading
//!   the socket, and the broker holds the rest. A stall longer than 1.5 × `keep_alive` makes
//!   the broker drop the connection; unacknowledged messages are then redelivered, which is
//!   safe.
//! - **Never a hot loop.** Every connection error is followed by a backoff sleep (the shared
//!   [`Backoff`](crate::backoff::Backoff): 100 ms doubling to 10 s with jitter). A CONNACK does
//!   not start it over: a connection must prove itself first (a message read, or 10 s up),
//!   so a broker that closes right after CONNACK sees growing delays, not a storm. Connection
//!   loss is logged once at WARN when it happens; further failed attempts (and connects that
//!   fail again on trial) are DEBUG, with a WARN reminder once a minute.
//! - **A source that cannot make progress says so.** After 5 connections in a row that come
//!   up and fail before a message gets through, the source is *stalled*: an ERROR line,
//!   `weir_source_stalled 1`, `/healthz` 503, `weir status` and systemd's STATUS= name it. It
//!   clears as soon as a message is read or a connection stays up 10 s.
//! - **The polling task never awaits the client.** Subscriptions are queued with
//!   `try_subscribe_many` after every CONNACK (a broker that lost the session then gets
//!   them again); acks are queued with `try_ack` from the agent. Awaiting the client's
//!   request channel on the task that drains it could deadlock.
//!
//! Limits: how oversized messages are handled. rumqttc reads a packet's declared length first
//! and drops the connection, without reading the packet, when it exceeds the client's incoming
//! limit; over MQTT 3.1.1 the broker cannot be told that limit, and it redelivers an
//! unacknowledged QoS 1 message on every reconnect. So the client's limit is set to
//! `max_message` (default 16 MiB, always at least `max_payload` plus room for a topic), well
//! above `max_payload`: a message between the two is read, counted as bad (`decode_errors`,
//! `oversized`), acknowledged and skipped like any bad payload, and the next message is
//! processed. A message above `max_message` (or with a topic that is not UTF-8) still cannot
//! be read: the source counts each refusal (`oversized`), logs an ERROR once, and reports
//! itself stalled as above; set the broker's `message_size_limit` at or below `max_message`
//! to keep such messages out. `max_message` bounds the memory one message can take.

mod config;
mod options;
mod source;

pub use config::{MqttSourceConfig, Subscription};
pub use options::{Connection, OptionsError};
pub use source::run;
