//! Run hours and start/stop cycles: the counters maintenance is planned on.
//!
//! A pump's bearings are due after so many running hours, a contactor after so many starts.
//! `runtime` watches a signal that says whether the machine runs (motor current, speed, a
//! running flag): it is running while the input is above `running_above`. Between two inputs
//! that both say "running", the time between them is added to the run time, capped at
//! `max_gap` so a gateway or device outage is not counted as running; each idle → running
//! change counts a start. The rule's alert is raised (maintenance due) once the run time
//! reaches `hours` or the starts reach `starts`; the score is the run time in hours.
//!
//! The counters must outlive restarts and reloads: the engine exports them
//! ([`crate::Engine::runtime_counters`]) for the agent to persist, and takes them back
//! ([`crate::Engine::restore_runtime`]) at start.

use super::Verdict;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spec {
    pub running_above: f64,
    /// µs; the most one interval between inputs adds.
    pub max_gap: i64,
    /// Maintenance is due at this run time (µs), if set.
    pub due_run: Option<i64>,
    /// ... or at this many starts, if set.
    pub due_starts: Option<u64>,
}

/// 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    pub run_us: i64,
    pub starts: u64,
    running: bool,
    /// The previous input's time; `i64::MIN` before the first.
    last_ts: i64,
}

impl Default for State {
    fn default() -> Self {
        State {
            run_us: 0,
            starts: 0,
            running: false,
            last_ts: i64::MIN,
        }
    }
}

impl State {
    pub fn feed(&mut self, spec: &Spec, ts: i64, x: f64) -> Option<Verdict> {
        // NaN says nothing about running; an input older than the last is not time passing.
        if x.is_nan() || ts < self.last_ts {
            return None;
        }
        let running = x > spec.running_above;
        if self.running && running && self.last_ts != i64::MIN {
            let dt = ts.saturating_sub(self.last_ts).min(spec.max_gap);
            self.run_us = self.run_us.saturating_add(dt);
        }
        if running && !self.running {
            self.starts = self.starts.saturating_add(1);
        }
        self.running = running;
        self.last_ts = ts;
        let due = spec.due_run.is_some_and(|h| self.run_us >= h)
            || spec.due_starts.is_some_and(|n| self.starts >= n);
        Some(Verdict {
            ts,
            anomalous: due,
            value: self.starts as f64,
            score: self.hours(),
            forecast: None,
        })
    }

    pub fn hours(&self) -> f64 {
        self.run_us as f64 / 3.6e9
    }

    /// Takes persisted counters back; whether it runs is learnt again from the next input.
    pub fn restore(&mut self, run_us: i64, starts: u64) {
        self.run_us = run_us;
        self.starts = starts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const H: i64 = 3_600 * S;

    fn spec() -> Spec {
        Spec {
            running_above: 1.0,
            max_gap: 5 * 60 * S,
            due_run: Some(2 * H),
            due_starts: Some(3),
        }
    }

    #[test]
    fn counts_running_time_and_starts_and_ignores_outages() {
        let spec = spec();
        let mut s = State::default();
        // Runs for minutes 0..=29, idle for 30..=39, runs for 40..=60, sampled each minute.
        for m in 0..=60 {
            let x = if (30..40).contains(&m) { 0.0 } else { 5.0 };
            s.feed(&spec, m * 60 * S, x);
        }
        assert_eq!(s.starts, 2);
        // 0→29 and 40→60: an interval counts when both of its ends say "running".
        assert_eq!(s.run_us, 49 * 60 * S);
        // A two-hour silence while running adds only `max_gap`.
        s.feed(&spec, 3 * H, 5.0);
        assert_eq!(s.run_us, 54 * 60 * S);
        assert!(s.feed(&spec, 3 * H + 60 * S, f64::NAN).is_none());
    }

    #[test]
    fn maintenance_is_due_at_the_run_time_or_the_starts() {
        let spec = spec();
        let mut s = State::default();
        let mut due_at = None;
        for m in 0..200 {
            let v = s.feed(&spec, m * 60 * S, 5.0);
            if v.is_some_and(|v| v.anomalous) && due_at.is_none() {
                due_at = Some(m);
            }
        }
        assert_eq!(due_at, Some(120));
        let mut s = State::default();
        let flips: Vec<bool> = [5.0, 0.0, 5.0, 0.0, 5.0]
            .iter()
            .enumerate()
            .map(|(i, x)| s.feed(&spec, i as i64 * S, *x).is_some_and(|v| v.anomalous))
            .collect();
        assert_eq!(flips, [false, false, false, false, true]);
    }

    #[test]
    fn restored_counters_continue() {
        let spec = spec();
        let mut s = State::default();
        s.restore(2 * H - 60 * S, 1);
        assert!(!s.feed(&spec, 0, 5.0).is_some_and(|v| v.anomalous));
        assert_eq!(
            s.starts, 2,
            "the first running input after a restart is a start"
        );
        assert!(s.feed(&spec, 60 * S, 5.0).is_some_and(|v| v.anomalous));
    }
}
