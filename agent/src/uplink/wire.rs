//! The wire message: the stored JSON body with `"id"`, `"seq"` and `"gateway"` spliced in
//! front, e.g. `{"id":"gw-1:42","seq":42,"gateway":"gw-1","kind":"alert",...}`. Splicing
//! (rather than parse and re-serialise) keeps the body byte-for-byte and costs one copy.

use std::io::Write;

use crate::support::payload::json_body;
use crate::support::record::Record;

/// MQTT's largest packet (remaining length limit).
pub(super) const MAX_PACKET: usize = 268_435_455;

#[derive(Debug, Clone)]
pub(super) struct Encoder {
    /// The gateway id as a JSON string, quotes included.
    gateway_json: String,
}

impl Encoder {
    pub fn new(gateway_id: &str) -> Encoder {
        Encoder {
            gateway_json: serde_json::Value::String(gateway_id.to_owned()).to_string(),
        }
    }

    /// The message for `record`, or why it cannot be sent. The outbox only stores JSON
    /// objects (format 1 or 2), so an error means a file written by something else.
    pub fn encode(&self, record: &Record) -> Result<Vec<u8>, &'static str> {
        // The client library would refuse a bad topic only when the publish is queued, leaving
        // the record behind the cursor and retried forever (a hand-edited outbox could wedge
        // the uplink); refused here, it is dropped and counted like any unpublishable record.
        crate::support::record::check_topic(&record.topic)?;
        let body = json_body(&record.payload)?;
        let body = body.trim_ascii();
        let (Some(b'{'), Some(b'}')) = (body.first(), body.last()) else {
            return Err("payload body is not a JSON object");
        };
        if body.len() + record.topic.len() + 128 > MAX_PACKET {
            return Err("record too large for one MQTT message");
        }
        let rest = &body[1..]; // after `{`, through the closing `}`
        let gw = &self.gateway_json;
        let seq = record.id;
        let mut out = Vec::with_capacity(2 * gw.len() + rest.len() + 64);
        // Written in place (no `format!` and copy): this runs for every record published.
        let _ = write!(
            out,
            "{{\"id\":\"{}:{seq}\",\"seq\":{seq},\"gateway\":{gw}",
            &gw[1..gw.len() - 1]
        );
        let inner = rest.trim_ascii_start();
        if inner.first() == Some(&b'}') {
            out.push(b'}'); // empty object: no comma
        } else {
            out.push(b',');
            out.extend_from_slice(inner);
        }
        Ok(out)
    }
}
