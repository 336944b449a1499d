//! The sections that configure the daemon's own parts: the local actions broker
//! (`actions:`), the metrics listener (`metrics:`) and the clock guard
//! (`engine.clock_guard`). They live here, not beside the code that uses them, so the config
//! never imports the daemon (see DESIGN.md, "The agent crate's rooms").

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// The `actions:` section: where local alert publications go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    #[serde(
        default = "default_host",
        deserialize_with = "weir_drivers::fields::host"
    )]
    pub host: String,
    #[serde(
        default = "default_port",
        deserialize_with = "weir_drivers::fields::port"
    )]
    pub port: u16,
    /// Default `weir-actions-<gateway_id>`.
    #[serde(default, deserialize_with = "weir_drivers::fields::client_id")]
    pub client_id: Option<String>,
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}
const fn default_port() -> u16 {
    1883
}

/// `metrics:` in the agent config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` and `/healthz` are served; `null` turns the listener off.
    #[serde(default = "default_listen", deserialize_with = "de_listen")]
    pub listen: Option<SocketAddr>,
    /// The status page at `/` (see `docs/status-page.md`).
    #[serde(default)]
    pub page: PageConfig,
}

/// `metrics.page`: the live status page served beside `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    /// `false` serves `/metrics` and `/healthz` only.
    #[serde(default = "default_page_enabled")]
    pub enabled: bool,
    /// Required for the page and its data when set; must be set when `metrics.listen` is not
    /// a loopback address (`weir check` refuses the config otherwise). At least 16 characters
    /// of `A-Z a-z 0-9 . _ ~ -`, so it travels in a URL unchanged.
    #[serde(default, deserialize_with = "de_token")]
    pub token: Option<String>,
    /// Series the page keeps a recent past for (at most 2,224 bytes each, see `daemon::page::board`); later ones are counted
    /// and not shown. The engine's own `max_series` is separate.
    #[serde(default = "default_page_series")]
    pub max_series: usize,
}

const fn default_page_enabled() -> bool {
    true
}
const fn default_page_series() -> usize {
    2_000
}

impl Default for PageConfig {
    fn default() -> Self {
        PageConfig {
            enabled: default_page_enabled(),
            token: None,
            max_series: default_page_series(),
        }
    }
}

fn de_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let token = Option::<String>::deserialize(d)?;
    if let Some(t) = &token {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_~".contains(c);
        if t.len() < 16 || !t.chars().all(allowed) {
            return Err(serde::de::Error::custom(
                "metrics.page.token: give at least 16 characters of A-Z a-z 0-9 . _ ~ - \
                 (for example the output of `openssl rand -hex 16`)",
            ));
        }
    }
    Ok(token)
}

/// Port 0 would listen on a random port no scraper or health check can find.
fn de_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let listen = Option::<SocketAddr>::deserialize(d)?;
    if listen.is_some_and(|a| a.port() == 0) {
        return Err(serde::de::Error::custom(
            "metrics.listen: port 0 would pick a random port; give one (default 127.0.0.1:9464)",
        ));
    }
    Ok(listen)
}

fn default_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_listen(),
            page: PageConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
/// `engine.clock_guard.action`.
pub enum Action {
    /// Use the arrival time instead.
    Restamp,
    Drop,
}

/// `engine.clock_guard`: how far a device timestamp may be from the gateway clock, and what
/// happens beyond (the guard itself is `daemon::clock_guard`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockGuard {
    #[serde(
        default = "default_max_ahead",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub max_ahead: Duration,
    #[serde(
        default = "default_max_behind",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub max_behind: Duration,
    #[serde(default = "default_action")]
    pub action: Action,
}

const fn default_max_ahead() -> Duration {
    Duration::from_secs(5 * 60)
}
const fn default_max_behind() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
const fn default_action() -> Action {
    Action::Restamp
}

impl Default for ClockGuard {
    fn default() -> Self {
        ClockGuard {
            max_ahead: default_max_ahead(),
            max_behind: default_max_behind(),
            action: default_action(),
        }
    }
}
