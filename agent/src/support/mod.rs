//! Small helpers shared by every room: the record vocabulary and payload format that the
//! outbox and the uplink both speak, the commands' progress line and the tests' fault
//! injection. Sizes and durations in the config are parsed by `weir_drivers::size` and
//! `weir_drivers::duration`. `support` imports no other room of the crate.

pub mod fault;
pub mod payload;
pub mod plot;
pub mod progress;
pub mod record;
