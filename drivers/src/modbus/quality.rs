//! Data quality of Modbus readings: what happened to each mapped value on each poll.
//!
//! A counter says that *some* request of a source failed; a rule needs to know *which* value
//! is missing and why, at the time it went missing. So every poll of a group sends, beside
//! each value it read, a sample on the sibling series `<metric>.quality` of the same device,
//! and for a value it could not read only that quality sample. The code is a plain number so
//! the rule engine needs nothing new: `max > 0` over a window means "some poll was bad", and
//! since good polls send 0, an alert on it clears once the device answers again.
//!
//! Why every poll and not only changes: a window that holds the failure and the recovery
//! would otherwise be the last one the series ever closes, and an alert raised on it could
//! never clear. Modbus polls are slow (seconds), so the second sample per value is cheap; a
//! source with `quality: false` sends none.

/// What a poll got for one value. [`Quality::code`] is the sample's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// Read and decoded.
    Good,
    /// The slave answered with this Modbus exception code (1–255; 2 = illegal data address,
    /// 4 = server device failure, 11 = gateway target failed to respond).
    Exception(u8),
    /// No answer within `timeout`, after every retry.
    Timeout,
    /// No connection or an I/O error (refused, port gone), after every retry.
    Transport,
    /// Read, but the words decode to no finite number (a NaN or infinite float).
    Invalid,
}

impl Quality {
    /// The value of the `<metric>.quality` sample: 0 good; 1–255 the exception code; 256 timeout;
    /// 257 transport error; 258 invalid value. Every bad code is above 0 and beyond the
    /// protocol's one-byte exception codes, so the two never collide.
    pub fn code(self) -> f64 {
        match self {
            Quality::Good => 0.0,
            Quality::Exception(code) => f64::from(code),
            Quality::Timeout => 256.0,
            Quality::Transport => 257.0,
            Quality::Invalid => 258.0,
        }
    }
}

/// The quality series' metric name for a value's metric.
pub fn metric(name: &str) -> String {
    format!("{name}.quality")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_only_good_is_zero() {
        let all = [
            Quality::Good,
            Quality::Exception(1),
            Quality::Exception(2),
            Quality::Exception(255),
            Quality::Timeout,
            Quality::Transport,
            Quality::Invalid,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.code() == 0.0, *a == Quality::Good, "{a:?}");
            for b in &all[i + 1..] {
                assert_ne!(a.code(), b.code(), "{a:?} and {b:?}");
            }
        }
        assert_eq!(metric("flow"), "flow.quality");
    }
}
