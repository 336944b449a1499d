//! Small helpers shared by every room: the record vocabulary and payload format that the
//! outbox and the uplink both speak, parsing of configuration values, and the commands'
//! progress line. `support` imports
//! no other room of the crate.

pub mod fault;
pub mod parse;
pub mod payload;
pub mod progress;
pub mod record;
