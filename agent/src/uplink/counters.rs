//! What the uplink counts, read by `/metrics`: whether it is connected, how often it
//! (re)connected or failed to, what it published and had acknowledged, and how long the
//! broker took to acknowledge (publish to PUBACK).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds (seconds) of the publish → PUBACK latency buckets: a LAN broker answers in
/// about a millisecond, a cellular link in hundreds, a congested one in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug)]
pub struct UplinkCounters {
    /// Up since the last CONNACK.
    pub connected: AtomicBool,
    /// CONNACKs received: the first connect and every reconnect.
    pub connects: AtomicU64,
    /// Connection attempts that failed and connections that were lost.
    pub connection_errors: AtomicU64,
    /// Of those, TLS handshakes that failed (an untrusted broker certificate, a refused
    /// client certificate).
    pub tls_errors: AtomicU64,
    /// Records handed to the connection (a resend after a reconnect counts again).
    pub published: AtomicU64,
    /// Records the broker acknowledged.
    pub acked: AtomicU64,
    /// Publish → PUBACK time of acknowledged messages (a batch counts once), seconds.
    pub latency: Histogram,
}

impl Default for UplinkCounters {
    fn default() -> Self {
        UplinkCounters {
            connected: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
            tls_errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl UplinkCounters {
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A PUBACK for a message of `records` records, `latency` after it was sent.
    pub(super) fn observe_ack(&self, records: u64, latency: Duration) {
        self.acked.fetch_add(records, Ordering::Relaxed);
        self.latency.observe(latency.as_secs_f64());
    }
}
