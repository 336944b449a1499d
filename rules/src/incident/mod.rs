//! Alerts about alerts: `fuse:` rules (`k` of `n` other rules' alerts, within a time span)
//! and *incidents* (the alerts of one device that fire together, grouped into one raise and
//! one clear).
//!
//! One bearing fault raises the vibration rule, the temperature rule and the device's
//! multivariate rule, each on its own schedule; a control room wants to be told once. An
//! incident opens with the first alert of a device, collects every alert of that device
//! raised while it is open, and clears `gap` after the last of them cleared — so alerts that
//! come and go within `gap` of each other are one incident. The contributing alerts are
//! still emitted as their own events (records on the uplink): the incident adds one raise
//! and one clear that name them.
//!
//! Both work on the engine's alert events only, never on samples, so they cost nothing per
//! sample. Time is the alerts' own timestamps plus the engine's clock (the latest sample or
//! watermark): a fuse member's hold and an incident's `gap` expire when that clock passes
//! them by more than the longest window of the rule set (`slack`), so an alert a window close
//! emits a little after its own timestamp still finds its incident open. Determinism: state
//! lives in ordered maps and is walked in key order.
//!
//! # Records
//!
//! A fused alert is an ordinary [`crate::EventKind::Alert`] on the device (metric `*`),
//! with `condition` `"2 of [a, b] within 10m"` and its members as `contributions` (1 each).
//! An incident is an [`crate::EventKind::Incident`] on the device (metric `*`, rule: the
//! section's `name`, default `incident`): its raise is stamped with the first contributor's
//! raise and lists the contributors raised at that instant; its clear is stamped with the
//! last contributor's clear and lists every contributor of the incident, ordered by raise
//! time, rule and metric (never by arrival order). The raise is emitted once the clock has
//! passed its instant by `slack`, so every alert of that instant is in it: an incident
//! raise trails its first alert by up to the longest window plus one sample.

mod fusion;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::{AlertState, Contributor, Severity};
use crate::schema::Glob;
use crate::tree::Loc;

pub(crate) use fusion::FuseState;

/// A compiled `fuse:` entry.
#[derive(Debug, Clone)]
pub(crate) struct FuseSpec {
    pub name: Arc<str>,
    pub device: Glob,
    /// Rule-name patterns whose alerts are members.
    pub of: Vec<Glob>,
    /// Members (distinct rule and metric) that must be raised, or have cleared less than
    /// `within` ago.
    pub k: u32,
    pub within: i64,
    pub severity: Severity,
    pub text: Arc<str>,
    /// Where its name was written (for duplicate names across files).
    pub at: (Arc<str>, Loc),
}

/// A compiled `incidents:` section.
#[derive(Debug, Clone)]
pub(crate) struct IncidentSpec {
    pub name: Arc<str>,
    pub device: Glob,
    pub rules: Vec<Glob>,
    pub gap: i64,
}

/// The file-level sections over alerts.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceRules {
    pub fuse: Vec<FuseSpec>,
    /// One section per file that has one (a pump file and a motor file on one gateway);
    /// a device belongs to the first whose `select.device` matches it.
    pub incidents: Vec<IncidentSpec>,
    /// Where each section was written, to report two for the same devices.
    pub incidents_at: Vec<(Arc<str>, Loc)>,
}

impl DeviceRules {
    pub fn is_empty(&self) -> bool {
        self.fuse.is_empty() && self.incidents.is_empty()
    }

    /// Joins the sections of several files: fuse rules and incident sections add up
    /// (`merge` reports two incident sections for the same devices).
    pub fn merge(&mut self, other: DeviceRules) {
        self.fuse.extend(other.fuse);
        self.incidents_at.extend(other.incidents_at);
        self.incidents.extend(other.incidents);
    }

    /// The incident section a device belongs to: the first that selects it.
    pub fn incidents_for(&self, device: &str) -> Option<&IncidentSpec> {
        self.incidents.iter().find(|s| s.device.matches(device))
    }

    /// A description that changes whenever the sections do (a reload restarts their state
    /// only then). Where they were written does not count.
    pub fn definition(&self) -> String {
        let fuse: Vec<String> = self
            .fuse
            .iter()
            .map(|f| {
                format!(
                    "{:?}",
                    (&f.name, &f.device, &f.of, f.k, f.within, f.severity)
                )
            })
            .collect();
        let incidents: Vec<String> = self
            .incidents
            .iter()
            .map(|i| format!("{:?}", (&i.name, &i.device, &i.rules, i.gap)))
            .collect();
        format!("{fuse:?}{incidents:?}")
    }
}

/// An alert transition as the layer sees it.
#[derive(Debug, Clone)]
pub(crate) struct AlertIn {
    pub ts: i64,
    pub rule: Arc<str>,
    pub device: Box<str>,
    pub metric: Box<str>,
    pub state: AlertState,
    pub severity: Severity,
}

/// What the layer emits, for the engine to turn into events on the device's series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    Fused {
        device: Box<str>,
        rule: Arc<str>,
        ts: i64,
        state: AlertState,
        severity: Severity,
        condition: Arc<str>,
        members: Vec<Arc<str>>,
    },
    Incident {
        device: Box<str>,
        rule: Arc<str>,
        ts: i64,
        state: AlertState,
        severity: Severity,
        opened: i64,
        contributors: Vec<Contributor>,
    },
}

/// One device's open incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Incident {
    opened: i64,
    contributors: Vec<Contributor>,
    /// Contributors currently raised, by (rule, metric).
    active: Vec<(Arc<str>, Box<str>)>,
    /// When the last active contributor cleared (`None` while one is raised).
    quiet_since: Option<i64>,
    /// The raise is emitted at the end of the batch that opened it.
    announced: bool,
}

/// The layer's state: fuse members per (fuse rule, device) and open incidents per device.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Layer {
    fuse: BTreeMap<(u32, Box<str>), FuseState>,
    open: BTreeMap<Box<str>, Incident>,
}

impl Layer {
    /// Bytes held (for `Engine::state_bytes`), roughly.
    pub fn heap_bytes(&self) -> usize {
        self.fuse.values().map(FuseState::heap_bytes).sum::<usize>()
            + self
                .open
                .values()
                .map(|i| {
                    size_of::<Incident>()
                        + i.contributors.capacity() * size_of::<Contributor>()
                        + i.active.capacity() * size_of::<(Arc<str>, Box<str>)>()
                })
                .sum::<usize>()
    }

    /// The clock value past which [`Layer::process`] has something to expire even without
    /// new alerts (`i64::MAX`: nothing pending).
    pub fn next_deadline(&self, spec: &DeviceRules, slack: i64) -> i64 {
        let incidents = self.open.iter().filter_map(|(device, i)| {
            let gap = spec.incidents_for(device).map_or(0, |s| s.gap);
            match i.quiet_since {
                _ if !i.announced => Some(i.opened),
                Some(q) => Some(q.saturating_add(gap)),
                None => None,
            }
        });
        let fuse = self.fuse.values().filter_map(FuseState::next_expiry);
        incidents
            .chain(fuse)
            .min()
            .map_or(i64::MAX, |d| d.saturating_add(slack))
    }

    /// Takes a batch of alert transitions (in emission order) and the engine's clock `now`
    /// (`i64::MAX`: the input ended); appends what follows to `out`.
    pub fn process(
        &mut self,
        spec: &DeviceRules,
        alerts: &[AlertIn],
        now: i64,
        slack: i64,
        out: &mut Vec<Out>,
    ) {
        for a in alerts {
            let mut fused = Vec::new();
            for (i, f) in spec.fuse.iter().enumerate() {
                if *a.rule == *f.name || !f.device.matches(&a.device) {
                    continue;
                }
                if !f.of.iter().any(|g| g.matches(&a.rule)) {
                    continue;
                }
                let key = (i as u32, a.device.clone());
                let state = self.fuse.entry(key).or_default();
                if let Some(o) = state.observe(f, a) {
                    fused.push(o);
                }
            }
            self.incident(spec, a, out);
            for o in fused {
                self.after_fused(spec, &o, out);
                out.push(o);
            }
        }
        self.announce(spec, now, slack, out);
        self.expire(spec, now, slack, out);
    }

    /// A fused alert is an alert of its device too: it joins the incident.
    fn after_fused(&mut self, spec: &DeviceRules, o: &Out, out: &mut Vec<Out>) {
        if let Out::Fused {
            device,
            rule,
            ts,
            state,
            severity,
            ..
        } = o
        {
            let a = AlertIn {
                ts: *ts,
                rule: rule.clone(),
                device: device.clone(),
                metric: "*".into(),
                state: *state,
                severity: *severity,
            };
            self.incident(spec, &a, out);
        }
    }

    fn incident(&mut self, spec: &DeviceRules, a: &AlertIn, out: &mut Vec<Out>) {
        let Some(s) = spec.incidents_for(&a.device) else {
            return;
        };
        if !s.rules.iter().any(|g| g.matches(&a.rule)) {
            return;
        }
        let key = (a.rule.clone(), a.metric.clone());
        match a.state {
            AlertState::Raised => {
                // Quiet for longer than `gap` before this raise: that incident is over,
                // whatever the clock has seen.
                let over = self
                    .open
                    .get(&a.device)
                    .and_then(|i| i.quiet_since)
                    .is_some_and(|q| a.ts > q.saturating_add(s.gap));
                if over && let Some(inc) = self.open.remove(&a.device) {
                    close(s, a.device.clone(), inc, out);
                }
                let inc = self
                    .open
                    .entry(a.device.clone())
                    .or_insert_with(|| Incident {
                        opened: a.ts,
                        contributors: Vec::new(),
                        active: Vec::new(),
                        quiet_since: None,
                        announced: false,
                    });
                if !inc.active.contains(&key) {
                    inc.active.push(key);
                }
                inc.quiet_since = None;
                let known = inc
                    .contributors
                    .iter()
                    .any(|c| c.rule == a.rule && *c.metric == *a.metric);
                if !known {
                    inc.contributors.push(Contributor {
                        rule: a.rule.clone(),
                        metric: a.metric.clone(),
                        raised: a.ts,
                        severity: a.severity,
                    });
                    // In a fixed order, not arrival order within a timestamp.
                    inc.contributors.sort_by(|x, y| {
                        (x.raised, &x.rule, &x.metric).cmp(&(y.raised, &y.rule, &y.metric))
                    });
                }
                // An earlier alert arriving late opens the incident earlier (until announced).
                if !inc.announced {
                    inc.opened = inc.opened.min(a.ts);
                }
            }
            AlertState::Cleared => {
                if let Some(inc) = self.open.get_mut(&a.device) {
                    inc.active.retain(|k| *k != key);
                    if inc.active.is_empty() {
                        inc.quiet_since = Some(a.ts);
                    }
                }
            }
        }
    }

    /// Emits the raise of every incident whose opening instant the clock has passed (by
    /// more than `slack`), so every alert stamped with that instant — whatever order they
    /// arrived in — is among its contributors.
    fn announce(&mut self, spec: &DeviceRules, now: i64, slack: i64, out: &mut Vec<Out>) {
        let end = now == i64::MAX;
        let due = |i: &Incident| !i.announced && (end || now.saturating_sub(slack) > i.opened);
        for (device, inc) in self.open.iter_mut().filter(|(_, i)| due(i)) {
            let Some(s) = spec.incidents_for(device) else {
                continue;
            };
            inc.announced = true;
            let contributors: Vec<Contributor> = inc
                .contributors
                .iter()
                .filter(|c| c.raised == inc.opened)
                .cloned()
                .collect();
            out.push(Out::Incident {
                device: device.clone(),
                rule: s.name.clone(),
                ts: inc.opened,
                state: AlertState::Raised,
                severity: max_severity(&contributors),
                opened: inc.opened,
                contributors,
            });
        }
    }

    /// Fuse holds and incident gaps that `now` has passed (by more than `slack`).
    fn expire(&mut self, spec: &DeviceRules, now: i64, slack: i64, out: &mut Vec<Out>) {
        let end = now == i64::MAX;
        let passed = |deadline: i64| end || now.saturating_sub(slack) > deadline;
        let mut fused = Vec::new();
        for ((i, device), state) in &mut self.fuse {
            if let Some(f) = spec.fuse.get(*i as usize)
                && let Some(o) = state.expire(f, device, &passed)
            {
                fused.push(o);
            }
        }
        for o in fused {
            self.after_fused(spec, &o, out);
            out.push(o);
        }
        let done: Vec<Box<str>> = self
            .open
            .iter()
            .filter(|(device, i)| {
                let gap = spec.incidents_for(device).map_or(0, |s| s.gap);
                i.quiet_since.is_some_and(|q| passed(q.saturating_add(gap)))
            })
            .map(|(d, _)| d.clone())
            .collect();
        for device in done {
            if let (Some(s), Some(inc)) = (spec.incidents_for(&device), self.open.remove(&device)) {
                close(s, device, inc, out);
            }
        }
    }
}

/// Emits the clear of a finished incident (and first its raise, if it opened and closed
/// within one batch).
fn close(s: &IncidentSpec, device: Box<str>, inc: Incident, out: &mut Vec<Out>) {
    if !inc.announced {
        let contributors = inc.contributors.clone();
        out.push(Out::Incident {
            device: device.clone(),
            rule: s.name.clone(),
            ts: inc.opened,
            state: AlertState::Raised,
            severity: max_severity(&contributors),
            opened: inc.opened,
            contributors,
        });
    }
    out.push(Out::Incident {
        device,
        rule: s.name.clone(),
        ts: inc.quiet_since.unwrap_or(inc.opened),
        state: AlertState::Cleared,
        severity: max_severity(&inc.contributors),
        opened: inc.opened,
        contributors: inc.contributors,
    });
}

fn max_severity(c: &[Contributor]) -> Severity {
    c.iter()
        .map(|c| c.severity)
        .max()
        .unwrap_or(Severity::Warning)
}
