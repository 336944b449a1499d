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
//!   (`decode_errors`), logged at WARN as `bad payload` with the topic and reason, and
//!   acknowledged: redelivery cannot fix it, and leaving it unacknowledged would block the
//!   broker's in-flight window.
//! - **Back-pressure, not buffering.** Each message becomes one [`Delivery`](crate::Delivery) sent on the
//!   bounded channel with `send().await`; while the pipeline is full the source stops reading
//!   the socket, and the broker holds the rest. A stall longer than 1.5 × `keep_alive` makes
//!   the broker drop the connection; unacknowledged messages are then redelivered, which is
//!   safe.
//! - **Never a hot loop.** Every connection error is followed by a backoff sleep (100 ms
//!   doubling to 5 s, reset on CONNACK). Connection loss is logged once at WARN when it
//!   happens; further failed attempts are DEBUG, with a WARN reminder once a minute.
//! - **The polling task never awaits the client.** Subscriptions are queued with
//!   `try_subscribe_many` after every CONNACK (a broker that lost the session then gets
//!   them again); acks are queued with `try_ack` from the agent. Awaiting the client's
//!   request channel on the task that drains it could deadlock.
//!
//! Limits: messages larger than the transport limit (4 × `max_payload`, at least 1 MiB) or
//! with a topic that is not UTF-8 make the client library drop the connection before the
//! source sees them, and the broker redelivers them on every reconnect; set the broker's
//! `message_size_limit` at or below `max_payload` to keep such messages out.

mod config;
mod source;

pub use config::{MqttSourceConfig, Subscription};
pub use source::run;
