//! Weir's sources: where samples come from.
//!
//! Every source runs as an async task that sends [`Delivery`]s into a bounded channel. A
//! delivery is one unit the source received (one MQTT message, one simulator tick) with the
//! readings decoded from it and, when the transport supports it, an [`Ack`] that the agent
//! fires only after the events those readings caused are committed to the outbox. That is
//! how a crash between receiving and committing makes the broker redeliver instead of losing.
//!
//! Decoding is kept apart from I/O ([`payload`], [`topic`]) so it can be tested on bytes.
//! Bad input never stops a source: it is counted in [`SourceCounters`], logged, and skipped.
//!
//! Sources: [`mqtt::run`] (a local broker, at-least-once with manual acks),
//! [`serial::run`] (a UART: text lines or the binary [`frame`] format), [`modbus::run`]
//! (register maps polled from Modbus TCP slaves) and
//! [`simulator::run`] (seeded synthetic devices with scheduled faults, for demos and tests).
//! Their configurations ([`mqtt::MqttSourceConfig`], [`simulator::SimulatorConfig`]) are serde
//! structs the agent embeds in its own file; [`duration`] (`weir_rules::duration`, re-exported)
//! and [`size`] are the workspace's one `"30s"` and one `"8MiB"` parser.

pub mod backoff;
mod clock;
pub mod corpus;
pub use weir_rules::duration;
pub mod fields;
pub mod frame;
pub mod modbus;
pub mod mqtt;
pub mod payload;
pub mod serial;
pub mod simulator;
pub mod size;
pub mod topic;

mod delivery;
mod error;

pub use clock::now_us;
pub use delivery::{Ack, Delivery, Reading, SourceCounters};
pub(crate) use delivery::{Handed, hand_over};
pub use error::SourceError;
