//! Messages the uplink carries for others besides the outbox's records: subscriptions whose
//! messages are handed over ([`Inbound`], the fleet's bundles), and one retained message kept
//! published ([`Outbound`], the fleet's status).
//!
//! Both ride the one uplink connection, as a gateway on a cellular link should: no second
//! session, no second keep-alive. The connection is a clean session, so the uplink subscribes
//! again and republishes the retained message after every CONNACK; a status changed while the
//! link was down is published once it is back (only the latest counts: a `watch`).

use tokio::sync::{mpsc, watch};

/// A message that arrived on one of [`Control::subscriptions`].
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A retained message to keep published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What [`run_with_control`](super::run_with_control) carries besides records.
#[derive(Debug, Clone)]
pub struct Control {
    /// Topics subscribed (QoS 1) on every connection.
    pub subscriptions: Vec<String>,
    /// Where their messages go; a full channel drops the message (logged): it is a retained
    /// bundle, delivered again on the next connection.
    pub inbound: mpsc::Sender<Inbound>,
    /// The retained message to keep published; `None`: nothing yet.
    pub retained: watch::Receiver<Option<Outbound>>,
}
