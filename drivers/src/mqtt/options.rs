//! The one place an MQTT client's connection settings become rumqttc's `MqttOptions`: the
//! MQTT source, the uplink and the local actions publisher all start here and then add what
//! is theirs (a persistent session and manual acks; TLS, in-flight window and last will; nothing).
//!
//! Why one constructor: rumqttc panics on a keep-alive between 0 and 1 s and on an empty client
//! id. Config validation (`crate::fields`) refuses those at load, so this is the second line: a
//! value that slipped through (a default changed, a caller built a config by hand) is an
//! error here, never a panic inside a task.

use std::time::Duration;

use rumqttc::MqttOptions;

use crate::fields::MAX_KEEP_ALIVE;

/// A setting rumqttc would refuse with a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

impl OptionsError {
    /// The setting at fault, and why (for a caller's own error type).
    pub fn parts(&self) -> (&'static str, &'static str) {
        match self {
            OptionsError::Invalid { field, reason } => (field, reason),
        }
    }
}

/// Connection settings shared by every MQTT client Weir runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    pub client_id: String,
    pub host: &'a str,
    pub port: u16,
    /// `Duration::ZERO` turns keep-alive off; otherwise 1 s to 65,535 s.
    pub keep_alive: Duration,
}

impl Connection<'_> {
    /// The client options for these settings, or the setting rumqttc would panic on.
    pub fn options(&self) -> Result<MqttOptions, OptionsError> {
        let bad = |field, reason| Err(OptionsError::Invalid { field, reason });
        if self.client_id.is_empty() {
            return bad("client_id", "must not be empty");
        }
        if self.host.is_empty() {
            return bad("host", "must not be empty");
        }
        let ka = self.keep_alive;
        if !ka.is_zero() && (ka < Duration::from_secs(1) || ka > MAX_KEEP_ALIVE) {
            return bad("keep_alive", "must be 0s (off) or between 1s and 65535s");
        }
        let mut opts = MqttOptions::new(self.client_id.clone(), self.host, self.port);
        opts.set_keep_alive(ka);
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(client_id: &str, host: &str, keep_alive: Duration) -> Connection<'static> {
        Connection {
            client_id: client_id.into(),
            host: Box::leak(host.to_owned().into_boxed_str()),
            port: 1883,
            keep_alive,
        }
    }

    #[test]
    fn what_rumqttc_would_panic_on_is_an_error() {
        let field = |c: Connection| match c.options() {
            Err(OptionsError::Invalid { field, .. }) => field,
            Ok(_) => "ok",
        };
        assert_eq!(field(conn("", "b", Duration::from_secs(30))), "client_id");
        assert_eq!(field(conn("id", "", Duration::from_secs(30))), "host");
        assert_eq!(
            field(conn("id", "b", Duration::from_millis(500))),
            "keep_alive"
        );
        assert_eq!(
            field(conn("id", "b", Duration::from_secs(70_000))),
            "keep_alive"
        );
        assert_eq!(field(conn("id", "b", Duration::ZERO)), "ok");
        let opts = conn("id", "b", Duration::from_secs(30)).options().unwrap();
        assert_eq!(opts.keep_alive(), Duration::from_secs(30));
        assert_eq!(opts.broker_address(), ("b".to_owned(), 1883));
    }
}
