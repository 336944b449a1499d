//! The Weir edge agent as a library: everything the `weir` binary does, in rooms that show
//! the architecture (see DESIGN.md, "The agent crate's rooms").
//!
//! - [`cli`]: the command line (the `weir` binary's front door).
//! - [`commands`]: the one-shot commands: `check`, `status`, `replay`, `eval`, `outbox`.
//! - [`daemon`]: `weir run`: the pipeline, reload, signals, systemd, metrics and health.
//! - [`config`]: the YAML config and its rule files, loaded and validated.
//! - [`outbox`]: the crash-safe SQLite store-and-forward buffer.
//! - [`fleet`]: signed rule bundles pushed over the broker: format, keys, versions on disk.
//! - [`uplink`]: drains a queue of records (the outbox, handed over by the daemon) to an MQTT
//!   broker.
//! - [`support`]: the record vocabulary and payload format the outbox and the uplink share,
//!   and the commands' progress line.
//!
//! Dependencies point one way: `cli → commands | daemon → config | fleet | outbox | uplink |
//! support`; commands and daemon never import each other; fleet, outbox and uplink import
//! only `support`. A unit test (`architecture`) reads the sources and fails on an import against
//! that direction or a cycle: `cargo test -p weir-agent --lib architecture`.
//!
//! The binary (`main.rs`) only parses the command line and maps errors to exit codes; the
//! benches use this library rather than compiling modules into themselves.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod fleet;
pub mod outbox;
pub mod support;
pub mod uplink;

#[cfg(test)]
mod architecture;
