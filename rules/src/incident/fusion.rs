//! `fuse:` — a `k` of `n` condition over other rules' alert states on one device.
//!
//! A member is one (rule, metric) alert of the device whose rule matches `of`. It counts
//! while raised and for `within` after it clears, so alerts of one fault that fire a little
//! apart (vibration first, temperature ten minutes later) still count together. The fused
//! alert raises when `k` members count and clears when fewer do.

use std::sync::Arc;

use super::{AlertIn, FuseSpec, Out};
use crate::event::AlertState;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Member {
    rule: Arc<str>,
    metric: Box<str>,
    active: bool,
    /// While not active: counts until this event time.
    until: i64,
}

/// One fuse rule's state on one device. Members that no longer count are dropped, so it
/// holds at most the alerts raised within `within`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct FuseState {
    members: Vec<Member>,
    raised: bool,
}

impl FuseState {
    pub fn heap_bytes(&self) -> usize {
        self.members.capacity() * size_of::<Member>()
    }

    /// The members that count, by name (sorted: not arrival order).
    fn counting(&self, alive: impl Fn(&Member) -> bool) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .members
            .iter()
            .filter(|m| m.active || alive(m))
            .map(|m| {
                if &*m.metric == "*" {
                    m.rule.clone()
                } else {
                    Arc::from(format!("{}/{}", m.rule, m.metric))
                }
            })
            .collect();
        names.sort();
        names
    }

    fn out(
        &self,
        f: &FuseSpec,
        a_device: &str,
        ts: i64,
        state: AlertState,
        members: Vec<Arc<str>>,
    ) -> Out {
        Out::Fused {
            device: a_device.into(),
            rule: f.name.clone(),
            ts,
            state,
            severity: f.severity,
            condition: f.text.clone(),
            members,
        }
    }

    /// One member's transition; the fused transition it causes, if any.
    pub fn observe(&mut self, f: &FuseSpec, a: &AlertIn) -> Option<Out> {
        let at = self
            .members
            .iter()
            .position(|m| m.rule == a.rule && m.metric == a.metric);
        let i = match at {
            Some(i) => i,
            None => {
                self.members.push(Member {
                    rule: a.rule.clone(),
                    metric: a.metric.clone(),
                    active: false,
                    until: i64::MIN,
                });
                self.members.len() - 1
            }
        };
        let m = &mut self.members[i];
        match a.state {
            AlertState::Raised => m.active = true,
            AlertState::Cleared => {
                m.active = false;
                m.until = a.ts.saturating_add(f.within);
            }
        }
        let counting = self.counting(|m| m.until >= a.ts);
        let enough = counting.len() >= f.k as usize;
        if enough != self.raised {
            self.raised = enough;
            let state = if enough {
                AlertState::Raised
            } else {
                AlertState::Cleared
            };
            return Some(self.out(f, &a.device, a.ts, state, counting));
        }
        None
    }

    /// The earliest hold still running.
    pub fn next_expiry(&self) -> Option<i64> {
        self.members
            .iter()
            .filter(|m| !m.active)
            .map(|m| m.until)
            .min()
    }

    /// Drops members whose hold `passed`; clears the fused alert when too few remain.
    pub fn expire(
        &mut self,
        f: &FuseSpec,
        device: &str,
        passed: &impl Fn(i64) -> bool,
    ) -> Option<Out> {
        let mut ending: Vec<i64> = self
            .members
            .iter()
            .filter(|m| !m.active && passed(m.until))
            .map(|m| m.until)
            .collect();
        if ending.is_empty() {
            return None;
        }
        ending.sort_unstable();
        let before = self.counting(|_| true);
        let was_raised = self.raised;
        self.members.retain(|m| m.active || !passed(m.until));
        if !was_raised || self.members.len() >= f.k as usize {
            return None;
        }
        self.raised = false;
        // The instant the count fell below k: holds end in `ending` order.
        let k = f.k as usize;
        let mut left = before.len();
        let mut at = ending[ending.len() - 1];
        for until in ending {
            left -= 1;
            if left < k {
                at = until;
                break;
            }
        }
        Some(self.out(f, device, at, AlertState::Cleared, before))
    }
}
