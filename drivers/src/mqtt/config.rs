//! The MQTT source's configuration: serde structs with documented defaults, validated where
//! serde can see the problem (so the agent reports it with the file's line and column) and in
//! [`MqttSourceConfig::validate`] for cross-field rules.

use std::time::Duration;

use serde::Deserialize;

use crate::SourceError;
use crate::topic::TopicPattern;

/// MQTT's largest packet (remaining length), 256 MiB − 1.
pub(crate) const MQTT_MAX_PACKET: usize = 268_435_455;

/// One MQTT source: a broker connection and the topics it maps to readings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// Source name, for logs, metrics and the default client id.
    #[serde(default = "default_name")]
    pub name: String,
    /// Broker host name or address.
    #[serde(default = "default_host", deserialize_with = "crate::fields::host")]
    pub host: String,
    /// Broker TCP port.
    #[serde(default = "default_port", deserialize_with = "crate::fields::port")]
    pub port: u16,
    /// MQTT client id; must be stable across restarts so the broker keeps the session.
    /// Default `weir-src-{name}`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Keep-alive interval: `0s` (off) or 1 s to 65535 s.
    #[serde(
        default = "default_keep_alive",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub keep_alive: Duration,
    /// Topic patterns to subscribe to (QoS 1), tried in order; the first that captures a
    /// message's topic maps it. Default `[{ topic: "plant/{device}/{metric}" }]`.
    #[serde(default = "default_subscriptions")]
    pub subscriptions: Vec<Subscription>,
    /// Largest payload decoded (`65536`, `"64KiB"`, `"8MiB"`); larger ones are read, counted
    /// as decode errors (and as oversized), acknowledged and skipped.
    #[serde(
        default = "default_max_payload",
        deserialize_with = "crate::size::deserialize_usize"
    )]
    pub max_payload: usize,
    /// Largest MQTT message the client reads at all (default `16MiB`, raised to fit
    /// `max_payload` and a topic). The client cannot skip a larger one unread: it drops the
    /// connection, the broker redelivers the message on every reconnect, and the source is
    /// reported stalled (`/healthz`, `weir status`, `weir_source_stalled`) until it is removed
    /// from the broker or this is raised. Bounds the memory one message can take.
    #[serde(
        default = "default_max_message",
        deserialize_with = "crate::size::deserialize_usize"
    )]
    pub max_message: usize,
}

fn default_name() -> String {
    "mqtt".to_owned()
}
fn default_host() -> String {
    "127.0.0.1".to_owned()
}
const fn default_port() -> u16 {
    1883
}
const fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_subscriptions() -> Vec<Subscription> {
    match TopicPattern::parse("plant/{device}/{metric}") {
        Ok(topic) => vec![Subscription {
            topic,
            metric: None,
        }],
        // The literal above is valid; an empty list would be reported by `validate`.
        Err(_) => Vec::new(),
    }
}
const fn default_max_payload() -> usize {
    65_536
}
/// 16 MiB: far above any telemetry payload, so a device's mistake (a log file, a firmware
/// image on the wrong topic) is read and skipped, yet small enough to hold for a moment on a
/// 256 MB gateway.
const fn default_max_message() -> usize {
    16 << 20
}
/// Room for the topic (at most 65,535 bytes) and the headers around a payload.
const MESSAGE_OVERHEAD: usize = 65_536 + 16;

impl Default for MqttSourceConfig {
    fn default() -> Self {
        MqttSourceConfig {
            name: default_name(),
            host: default_host(),
            port: default_port(),
            client_id: None,
            keep_alive: default_keep_alive(),
            subscriptions: default_subscriptions(),
            max_payload: default_max_payload(),
            max_message: default_max_message(),
        }
    }
}

/// A topic pattern and, when the pattern has no `{metric}`, optionally a fixed metric name
/// (then the payload is one value, as with `{metric}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSubscription")]
pub struct Subscription {
    pub topic: TopicPattern,
    pub metric: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscription {
    topic: TopicPattern,
    #[serde(default)]
    metric: Option<String>,
}

impl TryFrom<RawSubscription> for Subscription {
    type Error = String;

    fn try_from(raw: RawSubscription) -> Result<Self, String> {
        let sub = Subscription {
            topic: raw.topic,
            metric: raw.metric,
        };
        sub.check()?;
        Ok(sub)
    }
}

impl Subscription {
    fn check(&self) -> Result<(), String> {
        match &self.metric {
            Some(m) if m.is_empty() => Err("`metric` must not be empty".to_owned()),
            Some(m) if self.topic.has_metric() => Err(format!(
                "topic `{}` captures {{metric}} and `metric: {m}` fixes it too; keep one",
                self.topic
            )),
            _ => Ok(()),
        }
    }
}

impl MqttSourceConfig {
    /// The client id used: the configured one or `weir-src-{name}`.
    pub fn effective_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("weir-src-{}", self.name))
    }

    /// The limit the MQTT client enforces on incoming packets: `max_message`, and always room
    /// for a `max_payload` payload with its topic, so that every payload above `max_payload`
    /// and below this still reaches the source to be counted and acked. rumqttc checks a
    /// packet's declared length before reading it and drops the connection when it is larger.
    pub(crate) fn transport_limit(&self) -> usize {
        self.max_message
            .max(self.max_payload.saturating_add(MESSAGE_OVERHEAD))
            .min(MQTT_MAX_PACKET)
    }

    /// Checks what serde does not (and what the MQTT client would panic on): non-empty names,
    /// a keep-alive the protocol can carry, at least one subscription, a sane payload limit.
    pub fn validate(&self) -> Result<(), SourceError> {
        let err =
            |field: String, reason: String| Err(SourceError::config(&self.name, field, reason));
        if self.name.is_empty() {
            return err("name".into(), "must not be empty".into());
        }
        if self.host.is_empty() {
            return err("host".into(), "must not be empty".into());
        }
        if self.client_id.as_deref() == Some("") {
            return err(
                "client_id".into(),
                "must not be empty: a persistent session needs a stable id".into(),
            );
        }
        let ka = self.keep_alive;
        if !ka.is_zero() && (ka < Duration::from_secs(1) || ka > Duration::from_secs(65_535)) {
            return err(
                "keep_alive".into(),
                "must be 0s (off) or between 1s and 65535s".into(),
            );
        }
        if self.subscriptions.is_empty() {
            return err("subscriptions".into(), "at least one is needed".into());
        }
        for (i, sub) in self.subscriptions.iter().enumerate() {
            sub.check()
                .or_else(|reason| err(format!("subscriptions[{i}]"), reason))?;
        }
        if self.max_payload == 0 || self.max_payload > MQTT_MAX_PACKET {
            return err(
                "max_payload".into(),
                format!("must be between 1 and {MQTT_MAX_PACKET} bytes"),
            );
        }
        if self.max_message == 0 || self.max_message > MQTT_MAX_PACKET {
            return err(
                "max_message".into(),
                format!("must be between 1 and {MQTT_MAX_PACKET} bytes"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let cfg: MqttSourceConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, MqttSourceConfig::default());
        assert_eq!(cfg.name, "mqtt");
        assert_eq!(cfg.host, "127.0.0.1");
        assert_eq!(cfg.port, 1883);
        assert_eq!(cfg.keep_alive, Duration::from_secs(30));
        assert_eq!(cfg.max_payload, 65_536);
        assert_eq!(cfg.max_message, 16 << 20);
        assert_eq!(cfg.subscriptions.len(), 1);
        assert_eq!(
            cfg.subscriptions[0].topic.as_str(),
            "plant/{device}/{metric}"
        );
        assert_eq!(cfg.effective_client_id(), "weir-src-mqtt");
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn parses_a_full_config() {
        let cfg: MqttSourceConfig = serde_json::from_str(
            r#"{"name": "line-2", "host": "broker", "port": 1884, "client_id": "gw-7",
                "keep_alive": "1m", "max_payload": 1024,
                "subscriptions": [{"topic": "a/{device}"}, {"topic": "b/{device}/x", "metric": "rpm"}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.effective_client_id(), "gw-7");
        assert_eq!(cfg.keep_alive, Duration::from_secs(60));
        assert_eq!(cfg.subscriptions[1].metric.as_deref(), Some("rpm"));
        assert_eq!(cfg.subscriptions[1].topic.filter(), "b/+/x");
        assert_eq!(cfg.transport_limit(), 16 << 20);
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn sizes_take_units() {
        let cfg: MqttSourceConfig =
            serde_json::from_str(r#"{"max_payload": "8MiB", "max_message": "2MiB"}"#).unwrap();
        assert_eq!(cfg.max_payload, 8 << 20);
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(
            cfg.transport_limit(),
            (8 << 20) + MESSAGE_OVERHEAD,
            "a payload of max_payload always fits"
        );
        let e = serde_json::from_str::<MqttSourceConfig>(r#"{"max_payload": "8 parsecs"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown size unit"), "{e}");
    }

    #[test]
    fn rejects_bad_fields_at_parse_time() {
        let e = |s: &str| {
            serde_json::from_str::<MqttSourceConfig>(s)
                .unwrap_err()
                .to_string()
        };
        assert!(e(r#"{"prot": 1}"#).contains("unknown field `prot`"));
        assert!(
            e(r#"{"subscriptions": [{"topic": "x/{device}", "qos": 1}]}"#)
                .contains("unknown field `qos`")
        );
        assert!(e(r#"{"subscriptions": [{"topic": "plant/x"}]}"#).contains("no `{device}` level"));
        assert!(
            e(r#"{"subscriptions": [{"topic": "p/{device}/{metric}", "metric": "t"}]}"#)
                .contains("keep one")
        );
        assert!(
            e(r#"{"subscriptions": [{"topic": "p/{device}", "metric": ""}]}"#)
                .contains("`metric` must not be empty")
        );
        assert!(e(r#"{"keep_alive": 30}"#).contains("duration string"));
    }

    #[test]
    fn validate_names_the_field() {
        let bad = |cfg: MqttSourceConfig| cfg.validate().unwrap_err().to_string();
        assert_eq!(
            bad(MqttSourceConfig {
                keep_alive: Duration::from_millis(500),
                ..MqttSourceConfig::default()
            }),
            "source `mqtt`: invalid `keep_alive`: must be 0s (off) or between 1s and 65535s"
        );
        assert!(
            MqttSourceConfig {
                keep_alive: Duration::ZERO,
                ..MqttSourceConfig::default()
            }
            .validate()
            .is_ok()
        );
        assert!(
            bad(MqttSourceConfig {
                keep_alive: Duration::from_secs(70_000),
                ..MqttSourceConfig::default()
            })
            .contains("keep_alive")
        );
        assert!(
            bad(MqttSourceConfig {
                client_id: Some(String::new()),
                ..MqttSourceConfig::default()
            })
            .contains("`client_id`")
        );
        assert_eq!(
            bad(MqttSourceConfig {
                subscriptions: vec![],
                ..MqttSourceConfig::default()
            }),
            "source `mqtt`: invalid `subscriptions`: at least one is needed"
        );
        assert!(
            bad(MqttSourceConfig {
                max_payload: 0,
                ..MqttSourceConfig::default()
            })
            .contains("`max_payload`")
        );
        assert!(
            bad(MqttSourceConfig {
                host: String::new(),
                ..MqttSourceConfig::default()
            })
            .contains("`host`")
        );
        let sub = Subscription {
            topic: TopicPattern::parse("p/{device}/{metric}").unwrap(),
            metric: Some("x".into()),
        };
        assert!(
            bad(MqttSourceConfig {
                subscriptions: vec![sub],
                ..MqttSourceConfig::default()
            })
            .starts_with("source `mqtt`: invalid `subscriptions[0]`:")
        );
    }
}
