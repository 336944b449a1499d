//! `uplink:` in the agent config, and the MQTT client options made from it. Everything rumqttc
//! would panic on (a keep-alive under a second, an in-flight window of 0) is refused here, when
//! the config loads, with the field named.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::MqttOptions;
use serde::Deserialize;
use weir_drivers::mqtt::{Connection, OptionsError};

use super::{BatchConfig, Format, TlsConfig, UplinkError, presence, tls, wire};

/// `uplink:` in the agent config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
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
    /// Defaults to `weir-{gateway_id}`.
    #[serde(default, deserialize_with = "weir_drivers::fields::client_id")]
    pub client_id: Option<String>,
    /// Records go to `{topic_prefix}/{gateway_id}/{lane}` (see [`topic_for`](super::topic_for)).
    #[serde(default = "default_topic_prefix", deserialize_with = "de_topic_prefix")]
    pub topic_prefix: String,
    /// Most publishes awaiting a PUBACK at once (1..=65535). A drain sends at most this many
    /// messages per round trip: 128 over a 200 ms cellular round trip is 640 messages/s (32,
    /// the old default, held a backlog drain to 160). Each in flight costs one record in memory
    /// and, after a reconnect, at most one duplicate.
    #[serde(default = "default_inflight", deserialize_with = "de_inflight")]
    pub inflight: usize,
    /// "1s" to "65535s".
    #[serde(
        default = "default_keep_alive",
        deserialize_with = "weir_drivers::fields::keep_alive"
    )]
    pub keep_alive: Duration,
    /// A retained `online` status on connect and a retained `offline` last will on
    /// `{topic_prefix}/{gateway_id}/status` (see [`presence`](super::presence)).
    #[serde(default = "default_status")]
    pub status: bool,
    /// Absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `json` (default) or `binary` (see [`batch`](super::batch)).
    #[serde(default)]
    pub format: Format,
    /// Absent: one record per message.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

const fn default_status() -> bool {
    true
}

fn default_host() -> String {
    "127.0.0.1".into()
}
const fn default_port() -> u16 {
    1883
}
/// The longest `topic_prefix`: every record's topic (prefix, gateway id, lane) is stored with
/// it in the outbox and sent with every message, so a long prefix costs flash and airtime on
/// each record; MQTT itself allows 65535 bytes per topic.
pub const MAX_TOPIC_PREFIX: usize = 256;

fn de_topic_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
        return Err(serde::de::Error::custom(format!(
            "topic_prefix `{prefix}`: must be non-empty, without MQTT wildcards (+ #)"
        )));
    }
    if prefix.len() > MAX_TOPIC_PREFIX {
        return Err(serde::de::Error::custom(format!(
            "topic_prefix is {} bytes long; at most {MAX_TOPIC_PREFIX}",
            prefix.len()
        )));
    }
    if prefix.starts_with('$') {
        return Err(serde::de::Error::custom(format!(
            "topic_prefix `{prefix}`: topics starting with `$` are reserved for the broker"
        )));
    }
    Ok(prefix)
}

/// 1 to 65535 publishes awaiting their PUBACK (rumqttc panics on 0; MQTT packet ids are 16 bits).
fn de_inflight<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    if !(1..=u64::from(u16::MAX)).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "inflight {n}: must be between 1 and 65535"
        )));
    }
    usize::try_from(n).map_err(serde::de::Error::custom)
}

fn default_topic_prefix() -> String {
    "weir".into()
}
const fn default_inflight() -> usize {
    128
}
const fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            host: default_host(),
            port: default_port(),
            client_id: None,
            topic_prefix: default_topic_prefix(),
            inflight: default_inflight(),
            keep_alive: default_keep_alive(),
            status: default_status(),
            tls: None,
            format: Format::Json,
            batch: None,
        }
    }
}

/// The client options for `cfg` (TLS included) as gateway `gateway_id` connects: the uplink's,
/// and `weir push`'s (which turns `status` off: no last will on a gateway's topic).
/// The most publishes written to the socket at once (about 16 KiB of typical records).
const WRITE_BATCH: usize = 64;

pub fn mqtt_options(cfg: &UplinkConfig, gateway_id: &str) -> Result<MqttOptions, UplinkError> {
    let bad = |field, reason| UplinkError::Config { field, reason };
    // rumqttc panics on these; refuse them here instead (the rest in `Connection::options`).
    if cfg.keep_alive < Duration::from_secs(1) {
        return Err(bad("keep_alive", "must be at least 1s"));
    }
    let inflight = u16::try_from(cfg.inflight)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(bad("inflight", "must be between 1 and 65535"))?;
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("weir-{gateway_id}"));
    let mut opts = Connection {
        client_id,
        host: &cfg.host,
        port: cfg.port,
        keep_alive: cfg.keep_alive,
    }
    .options()
    .map_err(|e: OptionsError| {
        let (field, reason) = e.parts();
        bad(field, reason)
    })?;
    opts.set_clean_session(true)
        .set_inflight(inflight)
        // rumqttc's 10 KiB default would turn a large record into a reconnect loop.
        .set_max_packet_size(1 << 20, wire::MAX_PACKET)
        // Publishes the feeder queued together leave in one write (patched rumqttc, see the
        // workspace Cargo.toml): fewer syscalls here and fewer reads at the broker.
        .set_max_request_batch(WRITE_BATCH);
    if cfg.status {
        opts.set_last_will(presence::Presence::new(&cfg.topic_prefix, gateway_id).will());
    }
    if let Some(tls) = &cfg.tls {
        let client = tls::client_config(tls)?;
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(client)),
        ));
    }
    Ok(opts)
}
