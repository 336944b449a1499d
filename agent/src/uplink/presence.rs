//! The gateway's presence on the cloud broker: a retained message on
//! `<topic_prefix>/<gateway_id>/status` (`uplink.status` turns it on). In the code it is
//! *presence*; "status" there is only the wire's and the config's word for it.
//!
//! A cloud consumer needs to tell "quiet" from "gone". On every CONNACK the uplink publishes
//! a retained `online` message (the *birth*), and each CONNECT registers a retained last will
//! `offline` on the same topic, which the broker publishes itself when the connection dies
//! without a DISCONNECT (power cut, `kill -9`, lost link, keep-alive timeout). A clean stop
//! publishes `offline` before disconnecting (a clean DISCONNECT discards the will). Retained,
//! so a consumer that subscribes later still learns the last known state.
//!
//! ```json
//! {"status":"online","gateway":"gw-17","version":"0.1.0","ts":1732530000000000}
//! {"status":"offline","gateway":"gw-17","version":"0.1.0","reason":"connection lost"}
//! {"status":"offline","gateway":"gw-17","version":"0.1.0","reason":"shutdown","ts":1732530100000000}
//! ```
//!
//! `ts` is µs since the Unix epoch, as in records. The will has no `ts`: it is written at
//! connect time and published by the broker whenever the connection is lost.

use weir_drivers::now_us;

use rumqttc::{LastWill, QoS};
use serde_json::json;

/// The version the presence messages report.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds the presence topic and payloads for one gateway.
#[derive(Debug, Clone)]
pub(super) struct Presence {
    pub topic: String,
    gateway: String,
}

impl Presence {
    pub fn new(prefix: &str, gateway_id: &str) -> Presence {
        Presence {
            topic: format!("{prefix}/{gateway_id}/status"),
            gateway: gateway_id.to_owned(),
        }
    }

    /// The birth message, stamped now.
    pub fn online(&self) -> Vec<u8> {
        json!({
            "status": "online",
            "gateway": self.gateway,
            "version": VERSION,
            "ts": now_us(),
        })
        .to_string()
        .into_bytes()
    }

    /// What a clean shutdown publishes.
    pub fn shutdown(&self) -> Vec<u8> {
        json!({
            "status": "offline",
            "gateway": self.gateway,
            "version": VERSION,
            "reason": "shutdown",
            "ts": now_us(),
        })
        .to_string()
        .into_bytes()
    }

    /// The last will the broker publishes when the connection is lost.
    pub fn will(&self) -> LastWill {
        let payload = json!({
            "status": "offline",
            "gateway": self.gateway,
            "version": VERSION,
            "reason": "connection lost",
        })
        .to_string();
        LastWill::new(self.topic.clone(), payload, QoS::AtLeastOnce, true)
    }
}
