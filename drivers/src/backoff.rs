//! The workspace's one retry schedule: exponential backoff with "equal jitter".
//!
//! Every reconnect loop (the MQTT source, the serial port, Modbus retries, the agent's uplink)
//! waits with it, so none retries in a hot loop and clients that lost the same broker or bus
//! at the same moment spread out instead of returning together. Each delay is half the current
//! step plus a random part of the other half: never immediate, never longer than the step.
//! The step doubles from `min` up to `max` and goes back to `min` on [`Backoff::reset`] (after
//! a successful connect).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Exponential backoff from `min` to `max` with equal jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    attempt: u64,
}

impl Backoff {
    /// Delays start within `[min / 2, min]` and grow to within `[max / 2, max]`.
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            step: min,
            attempt: 0,
        }
    }

    /// Back to the shortest delay (call it once connected).
    pub fn reset(&mut self) {
        self.step = self.min;
    }

    /// The next delay to wait before retrying.
    pub fn next_delay(&mut self) -> Duration {
        let half = self.step / 2;
        self.step = (self.step * 2).min(self.max);
        self.attempt = self.attempt.wrapping_add(1);
        // A fresh RandomState is randomly keyed: enough randomness for jitter, no dependency.
        let r = RandomState::new().hash_one(self.attempt);
        let span = u64::try_from(half.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        half + Duration::from_nanos(r % span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn grows_with_jitter_to_the_cap_and_resets() {
        let mut b = Backoff::new(MIN, MAX);
        let mut step = MIN;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(MAX);
        }
        assert!(b.next_delay() >= MAX / 2);
        b.reset();
        assert!(b.next_delay() <= MIN);
    }

    #[test]
    fn delays_are_spread_not_equal() {
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| Backoff::new(MAX, MAX).next_delay())
            .collect();
        assert!(delays.len() > 1, "twenty clients, one delay: {delays:?}");
    }
}
