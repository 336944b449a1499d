//! The fleet's MQTT topics, all under the uplink's `topic_prefix`:
//!
//! | topic | retained | written by |
//! |---|---|---|
//! | `{prefix}/fleet/gateway/{gateway_id}` | yes | `weir push --gateway` (a bundle) |
//! | `{prefix}/fleet/group/{key}={value}` | yes | `weir push --group` (a bundle) |
//! | `{prefix}/fleet/status/{gateway_id}` | yes | the gateway (its [`Status`](super::Status)) |
//!
//! Bundles are retained so that a gateway that was offline during a push gets the newest one
//! when it reconnects; statuses are retained so that a dashboard sees the whole fleet on
//! subscribing to `{prefix}/fleet/status/+`.

use std::collections::BTreeMap;

/// A bundle's target: one gateway or every gateway with a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Gateway(String),
    Group { key: String, value: String },
}

impl Target {
    /// The target as signed in a bundle: `gateway/<id>` or `group/<key>=<value>`.
    pub fn name(&self) -> String {
        match self {
            Target::Gateway(id) => format!("gateway/{id}"),
            Target::Group { key, value } => format!("group/{key}={value}"),
        }
    }

    pub fn topic(&self, prefix: &str) -> String {
        format!("{prefix}/fleet/{}", self.name())
    }

    /// Parses `key=value` for a group.
    pub fn group(label: &str) -> Option<Target> {
        let (key, value) = label.split_once('=')?;
        let ok = |s: &str| !s.is_empty() && !s.contains(['/', '+', '#', '=', '\0']);
        (ok(key) && ok(value)).then(|| Target::Group {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The topics a gateway subscribes to, each with the target a bundle arriving there must name.
pub fn subscriptions(
    prefix: &str,
    gateway_id: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    std::iter::once(Target::Gateway(gateway_id.to_owned()))
        .chain(labels.iter().map(|(key, value)| Target::Group {
            key: key.clone(),
            value: value.clone(),
        }))
        .map(|t| (t.topic(prefix), t.name()))
        .collect()
}

pub fn status_topic(prefix: &str, gateway_id: &str) -> String {
    format!("{prefix}/fleet/status/{gateway_id}")
}
