//! The gateway's wall clock, read in one place for the whole workspace (the rule engine never
//! reads it: time enters the engine only as the samples' timestamps).

/// Wall-clock time in µs since the Unix epoch (negative before it, saturating far out).
pub fn now_us() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}
