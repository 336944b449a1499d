//! Validating deserializers for config fields that several components share: a broker's host
//! and port, an MQTT client id and keep-alive, durations that must not be zero.
//!
//! Why at deserialization: a value refused here is reported by the YAML parser at its exact
//! `file:line:column`, by `weir check` and `weir run` alike, before anything starts. A value
//! that only the runtime refuses (rumqttc panics on a keep-alive under a second, a broker
//! refuses port 0) would otherwise surface as a task that ends while the agent reports itself
//! healthy. Use them with `#[serde(deserialize_with = "weir_drivers::fields::host")]`.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Broker {
//!     #[serde(deserialize_with = "weir_drivers::fields::host")]
//!     host: String,
//!     #[serde(deserialize_with = "weir_drivers::fields::port")]
//!     port: u16,
//! }
//! assert!(serde_json::from_str::<Broker>(r#"{"host": "", "port": 1883}"#).is_err());
//! assert!(serde_json::from_str::<Broker>(r#"{"host": "broker", "port": 0}"#).is_err());
//! assert!(serde_json::from_str::<Broker>(r#"{"host": "broker", "port": 1883}"#).is_ok());
//! ```

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The longest keep-alive MQTT can carry: the CONNECT packet holds it as 16-bit seconds.
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(65_535);

/// Longest DNS name (RFC 1035); also bounds an IP literal.
const MAX_HOST: usize = 253;

/// The reason `host` is not a usable broker host name or address, if it is not.
pub fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("host must not be empty".to_owned());
    }
    if host.len() > MAX_HOST {
        return Some(format!(
            "host is {} bytes long; a host name has at most {MAX_HOST}",
            host.len()
        ));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "host `{host}` contains spaces or control characters"
        ));
    }
    None
}

/// A broker's host name or address: non-empty, no spaces, at most 253 bytes.
pub fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let host = String::deserialize(d)?;
    match host_problem(&host) {
        Some(problem) => Err(D::Error::custom(problem)),
        None => Ok(host),
    }
}

/// A TCP port to connect to: 1 to 65535.
pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let port = u16::deserialize(d)?;
    if port == 0 {
        return Err(D::Error::custom(
            "port 0 is not a port a broker listens on (use 1 to 65535)",
        ));
    }
    Ok(port)
}

/// An optional MQTT client id: absent for the default, else non-empty, without NUL, and at
/// most 65535 bytes (the MQTT string limit).
pub fn client_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = Option::<String>::deserialize(d)?;
    if let Some(id) = &id {
        if id.is_empty() {
            return Err(D::Error::custom(
                "client_id must not be empty (leave it out for the default)",
            ));
        }
        if id.len() > usize::from(u16::MAX) || id.contains('\0') {
            return Err(D::Error::custom(
                "client_id must be at most 65535 bytes, without NUL",
            ));
        }
    }
    Ok(id)
}

/// An MQTT keep-alive that is on: 1s to 65535s (rumqttc refuses less than a second, and
/// the protocol carries whole seconds in 16 bits).
pub fn keep_alive<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ka = crate::duration::deserialize(d)?;
    if ka < Duration::from_secs(1) || ka > MAX_KEEP_ALIVE {
        return Err(D::Error::custom(format!(
            "keep_alive {ka:?}: must be between 1s and 65535s"
        )));
    }
    Ok(ka)
}

/// A duration that must be longer than zero (intervals, timeouts).
pub fn nonzero_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let duration = crate::duration::deserialize(d)?;
    if duration.is_zero() {
        return Err(D::Error::custom("must be longer than 0"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "client_id")]
        client_id: Option<String>,
        #[serde(default = "ka", deserialize_with = "keep_alive")]
        keep_alive: Duration,
    }
    fn ka() -> Duration {
        Duration::from_secs(30)
    }

    #[test]
    fn hosts() {
        assert_eq!(host_problem("broker.example"), None);
        assert_eq!(host_problem("::1"), None);
        assert!(host_problem("").is_some());
        assert!(host_problem("a b").is_some());
        assert!(host_problem(&"a".repeat(254)).is_some());
    }

    #[test]
    fn keep_alive_and_client_id() {
        let parse = |s: &str| serde_json::from_str::<T>(s);
        assert_eq!(parse("{}").unwrap().keep_alive, Duration::from_secs(30));
        assert!(parse(r#"{"keep_alive": "500ms"}"#).is_err());
        assert!(parse(r#"{"keep_alive": "0s"}"#).is_err());
        assert!(parse(r#"{"keep_alive": "65536s"}"#).is_err());
        assert!(parse(r#"{"keep_alive": "65535s"}"#).is_ok());
        assert!(parse(r#"{"client_id": ""}"#).is_err());
        assert_eq!(parse("{}").unwrap().client_id, None);
        assert_eq!(
            parse(r#"{"client_id": "gw"}"#)
                .unwrap()
                .client_id
                .as_deref(),
            Some("gw")
        );
    }
}
