//! The serial source: readings from a device on a UART (RS-232/485 adapters, USB CDC).
//!
//! Why it is built this way:
//!
//! - **Decoding apart from the port.** [`lines`] (JSON lines, `key=value` lines, CSV with a
//!   header) and [`crate::frame`] (binary frames for microcontrollers) are byte accumulators
//!   with no I/O; [`run`] only moves bytes from the port into them, so every protocol rule is
//!   tested on bytes and the port code is small.
//! - **Garbage is expected.** A device rebooting, line noise, or the port opened half-way
//!   through a frame produce bad input; it is counted (`decode_errors`, `crc_errors` for
//!   frames), logged at WARN a few times a minute, and the decoder resynchronises at the
//!   next newline or `0x00`.
//! - **Devices disappear.** A USB adapter unplugged makes reads fail; the source closes the
//!   port, counts a `transport_errors`, and reopens with the shared [`Backoff`](crate::backoff::Backoff)
//!   (`reopen_min` doubling to `reopen_max`, with jitter; it starts over only once a port has
//!   stayed open 10 s, so a device that resets on every open does not cause a storm) until the device is back, forever, without a hot loop. A partial frame or
//!   CSV header from before the loss is forgotten.
//! - **No libudev.** `tokio-serial` is built without default features, so cross builds for
//!   ARM need no system library; the port is opened by path.
//!
//! One [`Delivery`](crate::Delivery) (without ack: a UART cannot redeliver) per good frame or
//! line.
//!
//! ```yaml
//! sources:
//!   - serial:
//!       name: bench-uart
//!       path: /dev/serial/by-id/usb-FTDI_FT232R-if00-port0
//!       baud: 115200          # default
//!       data_bits: 8          # default
//!       parity: none          # none | odd | even
//!       stop_bits: 1          # 1 | 2
//!       protocol: frames      # frames | json_lines | kv_lines | csv
//!       device: bench-1       # for lines/frames that name no device; default: the name
//! ```

mod config;
pub mod lines;
pub(crate) mod port;
mod source;

pub use config::{Parity, Protocol, SerialConfig};
pub use source::run;

#[cfg(test)]
mod tests;
