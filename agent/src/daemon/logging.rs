//! Log output for a terminal and for journald.
//!
//! Under systemd (`JOURNAL_STREAM` set) journald stamps every line itself and shows no
//! colours, so the agent prints neither; on a terminal it prints both.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the config's level.
pub fn init(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !journald);
    // A second init (tests, `check` after `run`) is harmless: keep the first subscriber.
    let _ = if journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
