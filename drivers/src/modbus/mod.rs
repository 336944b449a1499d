//! The Modbus source: polls register maps from Modbus TCP slaves and from slaves on Modbus
//! RTU serial lines.
//!
//! Why it is built this way:
//!
//! - **Maps are data.** What to read is YAML ([`map::RegisterConfig`]): the four tables,
//!   `u16`/`i16`/`u32`/`i32`/`f32`/`f64` with byte and word order, scale and offset. Decoding
//!   and batching ([`map`]) are pure and tested on words.
//! - **Few requests.** Values of one table that are adjacent (or within `max_gap`) are read in
//!   one request, up to the protocol's limit (125 registers, 2000 bits); a value never
//!   straddles two requests.
//! - **One task and one connection per TCP slave**, so a slave that stops answering delays
//!   only its own polls; the others keep their schedule. The slaves of one RTU line share a
//!   task (the bus carries one request at a time), so there a silent slave costs its
//!   neighbours `timeout × (retries + 1)` per poll.
//! - **Failures are counted, never fatal.** A request without an answer within `timeout`
//!   counts in `timeouts`, a failed connection or I/O in `transport_errors`; both are
//!   retried `retries` times on a fresh connection (a late answer must not be taken for the
//!   next request's), then that poll of the group is given up. An exception answer counts in
//!   `exceptions` and drops only that request's values. `connected` is true while every
//!   slave has a connection.
//! - **Quality on the readings.** Besides the counters, every poll sends a
//!   `<metric>.quality` sample per value: 0 when read, else why not ([`quality`]), so rules
//!   and the cloud see which value is missing and since when.
//! - **Groups poll on their own intervals**; a poll slower than its interval skips the missed
//!   polls instead of bursting. One poll of a group is one delivery, stamped with the time the
//!   poll started.
//!
//! ```yaml
//! sources:
//!   - modbus:
//!       name: plant-modbus
//!       timeout: 500ms        # per request; default 1s
//!       retries: 1            # default
//!       max_gap: 0            # default: read only mapped addresses
//!       quality: true         # default: a `<metric>.quality` sample per value and poll
//!       slaves:
//!         - device: boiler-1
//!           tcp: 192.168.1.20:502
//!           unit: 1
//!           groups:
//!             - interval: 1s
//!               registers:
//!                 - { name: temperature, table: holding, address: 0, type: i16, scale: 0.1 }
//!                 - { name: flow, table: input, address: 10, type: f32, word_order: little }
//!                 - { name: energy, table: holding, address: 20, type: u32, byte_order: big }
//!                 - { name: running, table: coil, address: 0 }
//!             - interval: 1m
//!               registers:
//!                 - { name: alarm, table: discrete_input, address: 3 }
//!         - device: meter-7
//!           rtu: { path: /dev/ttyUSB0, baud: 19200, parity: even, stop_bits: 1 }
//!           unit: 7
//!           groups:
//!             - interval: 10s
//!               registers:
//!                 - { name: energy, table: input, address: 0, type: u32, word_order: little, scale: 0.01 }
//! ```

mod config;
pub mod map;
pub mod quality;
mod source;

pub use config::{GroupConfig, ModbusConfig, RtuConfig, SlaveConfig};
pub use source::run;
