//! The workspace's one retry schedule, used by every reconnect loop (MQTT sources, the serial
//! port, Modbus links, the uplink, the actions broker) and by the daemon's supervisor when it
//! restarts a task that ended.
//!
//! Why a connection must *prove itself* before the backoff starts over: a broker that accepts
//! the connection and closes it right after CONNACK (a full session store, an ACL that kicks
//! the client, a message the client cannot read) looks like a successful connect every time.
//! Resetting on CONNACK turned that into a reconnect every ~90 ms with the whole backlog
//! re-sent each time. Here a connection that comes up is only *on trial*; the backoff starts
//! over when it does useful work ([`Backoff::proven`]: a PUBACK, a message processed) or stays
//! up for [`PROVE_AFTER`]. A connection that fails on trial counts as a failed attempt, so the
//! delays keep growing, and [`Backoff::unproven`] tells how many did in a row: the signal a
//! source uses to report that it cannot make progress.
//!
//! Delays use "equal jitter": half the current step plus a random part of the other half, so
//! gateways that lost the same broker spread out and a retry is never immediate; the step
//! doubles from `min` to `max`.
//!
//! ```
//! use std::time::Duration;
//! use weir_drivers::backoff::Backoff;
//! let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
//! let first = b.failed();
//! assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
//! b.connected(); // CONNACK: on trial, the backoff does not start over yet
//! let second = b.failed();
//! assert!(second >= Duration::from_millis(100));
//! assert_eq!(b.unproven(), 1);
//! ```

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// How long a connection must stay up to count as proven when nothing else proves it.
pub const PROVE_AFTER: Duration = Duration::from_secs(10);

/// Exponential backoff with jitter that starts over only once a connection proved itself.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    prove_after: Duration,
    step: Duration,
    attempt: u64,
    /// When the current connection came up, while it is on trial.
    trial_since: Option<Instant>,
    /// Connections in a row that came up and failed before proving themselves.
    unproven: u32,
}

impl Backoff {
    /// Delays from about `min` doubling up to `max`; `min` is raised to 1 ms, `max` to `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            prove_after: PROVE_AFTER,
            step: min,
            attempt: 0,
            trial_since: None,
            unproven: 0,
        }
    }

    /// Changes how long a connection must stay up to prove itself (default [`PROVE_AFTER`]).
    pub fn prove_after(mut self, d: Duration) -> Self {
        self.prove_after = d;
        self
    }

    /// The connection came up (a CONNACK, an open port): it is on trial from now.
    pub fn connected(&mut self) {
        self.trial_since = Some(Instant::now());
    }

    /// The connection did useful work: the next failure waits only `min` again.
    pub fn proven(&mut self) {
        self.step = self.min;
        self.trial_since = None;
        self.unproven = 0;
    }

    /// Marks the current connection proven if it has stayed up long enough; call it on any
    /// sign of life (a ping answered). Returns whether the backoff is not on trial any more.
    pub fn settle(&mut self) -> bool {
        if self
            .trial_since
            .is_some_and(|since| since.elapsed() >= self.prove_after)
        {
            self.proven();
        }
        self.trial_since.is_none()
    }

    /// Whether the current connection is still on trial.
    pub fn on_trial(&self) -> bool {
        self.trial_since.is_some()
    }

    /// A connection attempt or a connection failed: how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        if let Some(since) = self.trial_since.take() {
            if since.elapsed() >= self.prove_after {
                self.proven();
            } else {
                self.unproven = self.unproven.saturating_add(1);
            }
        }
        let half = self.step / 2;
        self.step = self.step.saturating_mul(2).min(self.max);
        self.attempt = self.attempt.wrapping_add(1);
        // A fresh RandomState is randomly keyed: enough randomness for jitter, no dependency.
        let r = RandomState::new().hash_one(self.attempt);
        let span = u64::try_from(half.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        half + Duration::from_nanos(r % span)
    }

    /// Connections in a row that came up and then failed without proving themselves.
    pub fn unproven(&self) -> u32 {
        self.unproven
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn grows_with_jitter_to_the_cap() {
        let mut b = Backoff::new(MIN, MAX);
        let mut step = MIN;
        for _ in 0..12 {
            let d = b.failed();
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(MAX);
        }
        assert!(b.failed() >= MAX / 2);
    }

    #[test]
    fn a_connection_that_fails_on_trial_does_not_reset_the_backoff() {
        let mut b = Backoff::new(MIN, MAX);
        let mut delays = Vec::new();
        for _ in 0..8 {
            b.connected();
            delays.push(b.failed());
        }
        assert_eq!(b.unproven(), 8);
        // Each step doubles, so a delay two attempts later is at least twice as long, until
        // the cap: there jitter leaves any delay in [MAX / 2, MAX].
        for w in delays.windows(3) {
            assert!(w[2] >= w[0] * 2 || w[2] >= MAX / 2, "{delays:?}");
        }
        assert!(delays[7] >= MAX / 2, "{delays:?}");
    }

    #[test]
    fn proof_starts_over() {
        let mut b = Backoff::new(MIN, MAX);
        for _ in 0..6 {
            b.connected();
            b.failed();
        }
        b.connected();
        b.proven();
        assert_eq!(b.unproven(), 0);
        assert!(!b.on_trial());
        assert!(b.failed() <= MIN);
    }

    #[test]
    fn staying_up_long_enough_is_proof() {
        let mut b = Backoff::new(MIN, MAX).prove_after(Duration::ZERO);
        for _ in 0..6 {
            b.failed();
        }
        b.connected();
        assert!(b.failed() <= MIN);
        assert_eq!(b.unproven(), 0);
    }

    #[test]
    fn delays_are_spread_not_equal() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| Backoff::new(MAX, MAX).failed()).collect();
        assert!(delays.len() > 1, "twenty clients, one delay: {delays:?}");
    }

    #[test]
    fn failures_before_connecting_are_not_unproven_connections() {
        let mut b = Backoff::new(MIN, MAX);
        for _ in 0..5 {
            b.failed();
        }
        assert_eq!(b.unproven(), 0);
    }
}
