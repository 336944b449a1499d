//! Small helpers shared by every room: the record vocabulary and payload format that the
//! outbox and the uplink both speak, and the commands' progress line. `support` imports no
//! other room of the crate. (Durations, sizes, the clock and backoff are the drivers' crate's:
//! `weir_drivers::{duration, size, now_us, backoff}`.)

pub mod payload;
pub mod progress;
pub mod record;
