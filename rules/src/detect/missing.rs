//! Missing data: a series that has sent nothing for `after`.
//!
//! The engine reads no clock, so silence is noticed in two ways, both in event time:
//! * [`crate::Engine::advance`] past `last + after` raises the alert (the agent advances on
//!   wall time every 250 ms, so on a gateway this fires about `after + engine.idle_close`
//!   after the last sample arrived);
//! * a sample arriving `after` or more past the previous one (a recording replayed without
//!   advances, or a gap `advance` did not see) raises it at `last + after` and clears it at
//!   once — the gap shows up as a raise/clear pair.
//!
//! `advance(i64::MAX)`, the end of the input, raises nothing.
//!
//! Any sample clears the alert, NaN included (the device is talking, if nonsense: the
//! `range` detector is for that). A series is watched from its first sample on: the engine
//! cannot miss a series it has never heard of.

use super::Verdict;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    /// µs; > 0.
    pub after: i64,
}

/// 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// The newest sample's timestamp; `i64::MIN` before the first.
    last: i64,
    active: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            last: i64::MIN,
            active: false,
        }
    }
}

impl State {
    /// When the alert is due if nothing arrives (`i64::MAX`: not watching, or already raised).
    pub fn deadline(&self, spec: &Spec) -> i64 {
        if self.active || self.last == i64::MIN {
            i64::MAX
        } else {
            self.last.saturating_add(spec.after)
        }
    }

    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64, emit: &mut impl FnMut(Verdict)) {
        let due = self.deadline(spec);
        if ts >= due {
            emit(Verdict {
                ts: due,
                anomalous: true,
                value: f64::NAN,
                score: spec.after as f64 / 1e6,
                forecast: None,
            });
            self.active = true;
        }
        let gap = if self.last == i64::MIN {
            0.0
        } else {
            ts.saturating_sub(self.last) as f64 / 1e6
        };
        self.active = false;
        self.last = self.last.max(ts);
        emit(Verdict {
            ts,
            anomalous: false,
            value: x,
            score: gap,
            forecast: None,
        });
    }

    pub fn advance(&mut self, spec: &Spec, watermark: i64, emit: &mut impl FnMut(Verdict)) {
        let due = self.deadline(spec);
        // `advance(i64::MAX)` means the input ended (`weir replay` at the end of a file, to
        // close the last windows): the end of a recording is not a device going quiet.
        if watermark >= due && watermark != i64::MAX {
            self.active = true;
            emit(Verdict {
                ts: due,
                anomalous: true,
                value: f64::NAN,
                score: spec.after as f64 / 1e6,
                forecast: None,
            });
        }
    }
}
