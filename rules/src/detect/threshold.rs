//! Threshold with hysteresis and debounce: the detector a field engineer reaches for first.
//!
//! A plain `value > 80` alert flaps when the signal hovers around 80, and one noisy reading
//! raises it. So the alert is raised only when the value has been beyond `raise` for at
//! least `for` (every input in that span beyond it), and cleared only once it is back past
//! `clear`; between the two the alert keeps its state. The direction follows from the two
//! levels: `raise ≥ clear` watches for high values, `raise < clear` for low ones.
//!
//! "For at least D" is measured between input timestamps: the first input beyond `raise`
//! starts the run, and the alert is raised by the first input of that run at or after
//! `start + D`. Without `for`, the first input beyond `raise` raises it.

use super::Verdict;

/// Validated parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    pub raise: f64,
    pub clear: f64,
    /// Debounce in µs; 0 raises at once.
    pub hold: i64,
}

impl Spec {
    fn high(&self) -> bool {
        self.raise >= self.clear
    }

    fn beyond(&self, x: f64) -> bool {
        if self.high() {
            x > self.raise
        } else {
            x < self.raise
        }
    }

    fn back(&self, x: f64) -> bool {
        if self.high() {
            x < self.clear
        } else {
            x > self.clear
        }
    }
}

/// 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// When the current run beyond `raise` started; `i64::MIN` when not in one.
    since: i64,
    active: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            since: i64::MIN,
            active: false,
        }
    }
}

impl State {
    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64) -> Option<Verdict> {
        if x.is_nan() {
            return None;
        }
        if spec.beyond(x) {
            if self.since == i64::MIN {
                self.since = ts;
            }
            if ts.saturating_sub(self.since) >= spec.hold {
                self.active = true;
            }
        } else {
            self.since = i64::MIN;
            if spec.back(x) {
                self.active = false;
            }
        }
        Some(Verdict {
            ts,
            anomalous: self.active,
            value: x,
            score: f64::NAN,
            forecast: None,
        })
    }
}
