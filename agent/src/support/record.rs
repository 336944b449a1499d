//! A stored record and its lane: what the outbox keeps and the uplink sends.
//!
//! The outbox and the uplink both speak these types, and neither imports the other (the
//! daemon hands the outbox to the uplink as a [`crate::uplink::Queue`]), so they live here.

/// A topic MQTT lets a client publish on: non-empty, no wildcard (`+`, `#`), no NUL, at most
/// 65,535 bytes. Checked by the outbox on append, and again by the uplink before publishing
/// (a stored topic may have been edited by hand).
pub fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err("topic must be non-empty without MQTT wildcards or NUL");
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err("topic longer than 65535 bytes");
    }
    Ok(())
}

/// Delivery priority. Lower value = higher priority; `Ord` follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Lane {
    Alerts = 0,
    Predictions = 1,
    Aggregates = 2,
}

impl Lane {
    /// In priority order.
    pub const ALL: [Lane; 3] = [Lane::Alerts, Lane::Predictions, Lane::Aggregates];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Alerts => "alerts",
            Lane::Predictions => "predictions",
            Lane::Aggregates => "aggregates",
        }
    }

    pub(crate) fn from_i64(v: i64) -> Option<Lane> {
        match v {
            0 => Some(Lane::Alerts),
            1 => Some(Lane::Predictions),
            2 => Some(Lane::Aggregates),
            _ => None,
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Monotonic, never reused: the wire `seq`.
    pub id: u64,
    pub lane: Lane,
    pub topic: String,
    pub created_at: i64,
    pub payload: Vec<u8>,
}

/// The records of `lane` with `after < id <= last`: acknowledged records as the uplink hands
/// them to the outbox for deletion. The uplink publishes each lane in id order from
/// consecutive fetches, so a run of acknowledged records of one lane is one range, whatever
/// the other lanes' ids between them: one seek and one range delete instead of a delete per
/// run of consecutive ids (a lane's ids are interleaved with the other lanes').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneRange {
    pub lane: Lane,
    /// Exclusive: the lane's record just before the range (0 = none), not deleted.
    pub after: u64,
    /// Inclusive.
    pub last: u64,
}

/// Where a fetch from the outbox resumes in each lane: only ids above `after(lane)` are returned.
/// The uplink advances it past what it has in flight and resets it on reconnect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCursor {
    after: [u64; 3],
}

impl LaneCursor {
    /// From the oldest record of every lane.
    pub const START: LaneCursor = LaneCursor { after: [0; 3] };

    pub fn after(&self, lane: Lane) -> u64 {
        self.after[lane as usize]
    }

    /// Moves past `record` in its lane.
    pub fn advance(&mut self, record: &Record) {
        let a = &mut self.after[record.lane as usize];
        *a = (*a).max(record.id);
    }
}
