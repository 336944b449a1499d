//! A guard against device clocks that are far off the gateway's.
//!
//! A PLC whose real-time clock battery died reports the year 2000; a microcontroller without
//! a clock sends its uptime; a device set to the wrong time zone is hours ahead. Such a
//! timestamp is poison for event time: one sample a year ahead moves its series' windows a
//! year on and makes every correct sample after it late. So every device timestamp is checked
//! against the gateway clock when it arrives: one more than `max_ahead` ahead or `max_behind`
//! behind is restamped with the arrival time (the default: the reading is kept, its time
//! approximated) or dropped, and either way counted and logged.
//!
//! The gateway clock may itself be wrong before NTP has synchronised it; restamping then
//! keeps data flowing on the gateway's (wrong) time rather than dropping everything, and the
//! counter shows it. The guard is the agent's, not the engine's: the engine never reads a
//! clock, and `weir replay` of old recordings must not be judged against today.
//!
//! The settings are [`crate::config::ClockGuard`]; this module is what they do.

pub use crate::config::{Action, ClockGuard};

/// What to do with one sample's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok(i64),
    /// Off by `skew` µs (positive: ahead); use the arrival time `now`.
    Restamp {
        now: i64,
        skew: i64,
    },
    Drop {
        skew: i64,
    },
}

impl ClockGuard {
    /// Judges a device timestamp `ts` arriving at gateway time `now` (both µs).
    pub fn check(&self, ts: i64, now: i64) -> Verdict {
        let skew = ts.saturating_sub(now);
        let ahead = i64::try_from(self.max_ahead.as_micros()).unwrap_or(i64::MAX);
        let behind = i64::try_from(self.max_behind.as_micros()).unwrap_or(i64::MAX);
        if skew <= ahead && skew >= behind.saturating_neg() {
            return Verdict::Ok(ts);
        }
        match self.action {
            Action::Restamp => Verdict::Restamp { now, skew },
            Action::Drop => Verdict::Drop { skew },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn timestamps_within_the_bounds_pass_untouched() {
        let g = ClockGuard::default();
        let now = 1_700_000_000 * S;
        assert_eq!(g.check(now, now), Verdict::Ok(now));
        assert_eq!(g.check(now + 300 * S, now), Verdict::Ok(now + 300 * S));
        assert_eq!(
            g.check(now - 7 * 86_400 * S, now),
            Verdict::Ok(now - 7 * 86_400 * S)
        );
    }

    #[test]
    fn a_clock_far_off_is_restamped_or_dropped() {
        let now = 1_700_000_000 * S;
        let g = ClockGuard::default();
        assert_eq!(
            g.check(now + 301 * S, now),
            Verdict::Restamp { now, skew: 301 * S }
        );
        // A device whose clock reset to 2000-01-01.
        let y2k = 946_684_800 * S;
        assert_eq!(
            g.check(y2k, now),
            Verdict::Restamp {
                now,
                skew: y2k - now
            }
        );
        let drop = ClockGuard {
            action: Action::Drop,
            ..ClockGuard::default()
        };
        assert_eq!(drop.check(y2k, now), Verdict::Drop { skew: y2k - now });
        assert_eq!(
            drop.check(i64::MAX, now),
            Verdict::Drop {
                skew: i64::MAX - now
            }
        );
    }
}
