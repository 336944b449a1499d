//! Log output for a terminal and for journald.
//!
//! Under systemd (`JOURNAL_STREAM` set) journald stamps every line itself and shows no
//! colours, so the agent prints neither; on a terminal it prints both.
//!
//! The filter is `tracing_subscriber`'s [`Targets`] (`info`, `weir=debug,info`), not its
//! `EnvFilter`: `EnvFilter` pulls in the `regex` crates (about 0.3 MB of a 6 MB ARM binary,
//! issue 19) for span and field filters that a gateway's operator does not use.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `RUST_LOG`, when set and not empty, overrides the
/// config's level.
pub fn init(level: &str) {
    // An empty `RUST_LOG` (as `RUST_LOG= weir run` sets it) counts as unset: parsed, it
    // would be a filter that lets nothing through.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    // `fmt()` caps events at INFO by default, below any filter: without this, `weir=debug`
    // (or `RUST_LOG=debug`) printed nothing more than `info`. The filter decides.
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !journald);
    // A second init (tests, `check` after `run`) is harmless: keep the first subscriber.
    let _ = if journald {
        builder.without_time().finish().with(filter).try_init()
    } else {
        builder.finish().with(filter).try_init()
    };
}
