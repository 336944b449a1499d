//! Getting run-time counters out of the engine and back in, so they survive restarts.
//!
//! The engine is pure and keeps everything in memory; a run-hour counter that restarts
//! from zero with the agent would make maintenance thresholds meaningless. The agent asks
//! for [`Engine::runtime_counters`] now and then, writes them to disk, and hands them back
//! to a new engine with [`Engine::restore_runtime`] before the first sample.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::detect::DetectKind;
use crate::detect::Detector;

/// One `runtime` rule's counters on one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeCounter {
    pub rule: String,
    pub device: String,
    pub metric: String,
    /// Running time, µs (exact, so save and restore never drift).
    pub run_us: i64,
    pub starts: u64,
}

impl Engine {
    /// Every `runtime` rule's counters, by series id then rule order.
    pub fn runtime_counters(&self) -> Vec<RuntimeCounter> {
        let mut out = Vec::new();
        for series in &self.series {
            let range = series.first as usize..(series.first + series.len) as usize;
            for slot in &self.slots[range] {
                let (Some(det), Some(rule)) = (
                    self.dets.get(slot.det as usize),
                    self.rules.rules.get(slot.rule as usize),
                ) else {
                    continue;
                };
                if let Detector::Runtime(state) = det {
                    out.push(RuntimeCounter {
                        rule: rule.name.to_string(),
                        device: series.device.to_string(),
                        metric: series.metric.to_string(),
                        run_us: state.run_us,
                        starts: state.starts,
                    });
                }
            }
        }
        out
    }

    /// Puts persisted counters back; returns how many found their rule and series. Counters
    /// of rules that no longer exist or are no longer `runtime` rules, or of series beyond
    /// `max_series`, are skipped.
    pub fn restore_runtime(&mut self, counters: &[RuntimeCounter]) -> usize {
        let mut restored = 0;
        for c in counters {
            let Some(rule) = self.rules.rules.iter().position(|r| {
                *r.name == c.rule
                    && r.detect
                        .as_ref()
                        .is_some_and(|d| matches!(d.kind, DetectKind::Runtime(_)))
            }) else {
                continue;
            };
            let Ok(id) = self.series(&c.device, &c.metric) else {
                continue;
            };
            let series = &self.series[id.0 as usize];
            let range = series.first as usize..(series.first + series.len) as usize;
            for slot in &self.slots[range] {
                if slot.rule as usize == rule
                    && let Some(Detector::Runtime(state)) = self.dets.get_mut(slot.det as usize)
                {
                    state.restore(c.run_us, c.starts);
                    restored += 1;
                }
            }
        }
        restored
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EventKind, RuleSet, Sample};

    const RULES: &str = r#"
rules:
  - name: pump-hours
    select: { metric: current }
    detect: { runtime: { running_above: 1, hours: 1 } }
    alert: { severity: info }
"#;

    #[test]
    fn counters_survive_an_engine_restart() {
        let s = 1_000_000;
        let mut a = Engine::new(RuleSet::parse_str(RULES, "r.yaml").unwrap());
        let id = a.series("pump-1", "current").unwrap();
        let mut out = Vec::new();
        // 40 minutes running, sampled every minute.
        for m in 0..=40 {
            a.push(
                Sample {
                    series: id,
                    ts: m * 60 * s,
                    value: 3.0,
                },
                &mut out,
            );
        }
        assert!(out.is_empty());
        let saved = a.runtime_counters();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].run_us, 40 * 60 * s);
        assert_eq!(saved[0].starts, 1);

        let mut b = Engine::new(RuleSet::parse_str(RULES, "r.yaml").unwrap());
        assert_eq!(b.restore_runtime(&saved), 1);
        let id = b.series("pump-1", "current").unwrap();
        // 20 more minutes reach the hour: maintenance due.
        for m in 100..=120 {
            b.push(
                Sample {
                    series: id,
                    ts: m * 60 * s,
                    value: 3.0,
                },
                &mut out,
            );
        }
        let raised: Vec<f64> = out
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Alert { score, .. } => Some(*score),
                _ => None,
            })
            .collect();
        assert_eq!(raised, [1.0]);
        assert_eq!(b.runtime_counters()[0].starts, 2);
    }

    #[test]
    fn counters_of_unknown_rules_are_skipped() {
        let mut e = Engine::new(RuleSet::parse_str(RULES, "r.yaml").unwrap());
        let gone = super::RuntimeCounter {
            rule: "renamed".into(),
            device: "pump-1".into(),
            metric: "current".into(),
            run_us: 5,
            starts: 1,
        };
        assert_eq!(e.restore_runtime(&[gone]), 0);
    }
}
