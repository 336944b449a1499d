//! Replacing the rule set of a running engine without forgetting what it has learnt.
//!
//! A field engineer who fixes one rule's threshold must not reset every other rule: a 1 h
//! window would be empty for an hour after each edit, and an alert already raised would be
//! raised a second time. So a rule keeps its per-series state across a reload when its name
//! and its definition (everything written in its YAML entry, whichever file holds it) are
//! unchanged. A rule whose definition changed restarts its windows but remembers whether its
//! alert was raised, so its next evaluation clears that alert instead of raising it twice.
//! Run-time counters (`runtime`) carry over even then: they count the machine, not the rule.
//! New rules start empty; removed rules' state is dropped.
//!
//! A rule whose grouping changed (`group_by`, `select.metric`) gets new groups; its old
//! groups lose their slot but keep their series id and so their `max_series` entry until the
//! agent restarts. Reusing those ids would be cheap here but wrong: ids are never reused,
//! because events already emitted and the agent's tables name series by id. An alert raised
//! on an old group (or, for a rule that became grouped or ungrouped, on an old series) is
//! reported, like one of a removed rule, since nothing will clear it.
//!
//! Series keep their ids, so events already emitted and the agent's tables stay valid.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Engine, EngineStats, More, NO_DET, NO_WIN, Slot, Tables, share};
use crate::detect::Detector;
use crate::event::SeriesId;
use crate::ruleset::{Rule, RuleSet};
use crate::window::Win;

/// What a [`Engine::reload`] did, by rule name, for the log line an operator reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Unchanged rules: their windows and alert state carried over.
    pub kept: Vec<Arc<str>>,
    /// Changed rules: windows restarted, a raised alert stays raised until it clears.
    pub restarted: Vec<Arc<str>>,
    pub added: Vec<Arc<str>>,
    pub removed: Vec<Arc<str>>,
    /// Removed rules that had an alert raised on some series: nothing will clear it now.
    pub removed_while_raised: Vec<Arc<str>>,
    /// Rules still in the set that had an alert raised on a series or group they no longer
    /// hold a window for (a changed `group_by`, `select.metric` or `select`; a rule that
    /// became grouped or ungrouped): nothing will clear it now.
    pub orphaned_while_raised: Vec<Arc<str>>,
}

/// What became of one old rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Same definition, now at this index of the new set.
    Kept(u32),
    /// Same name, new definition, at this index.
    Restarted(u32),
    Removed,
}

impl Engine {
    /// Replaces the rule set, keeping the state of unchanged rules (see the module docs).
    ///
    /// Every interned series is matched against the new rules at once, so the cost is one
    /// pass over series × rules, paid per reload rather than per sample.
    pub fn reload(&mut self, rules: RuleSet) -> ReloadReport {
        // Run hours and starts are the machine's, not the rule's: they carry over even when
        // the rule changes (a new maintenance threshold must not reset the count).
        let counters = self.runtime_counters();
        let new_index: HashMap<&str, usize> = rules
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (&*r.name, i))
            .collect();
        let fates: Vec<Fate> = self
            .rules
            .rules
            .iter()
            .map(|old| match new_index.get(&*old.name) {
                Some(&i) if rules.rules[i].definition == old.definition => Fate::Kept(index(i)),
                Some(&i) => Fate::Restarted(index(i)),
                None => Fate::Removed,
            })
            .collect();

        let mut report = ReloadReport::default();
        for (old, fate) in self.rules.rules.iter().zip(&fates) {
            match fate {
                Fate::Kept(_) => report.kept.push(old.name.clone()),
                Fate::Restarted(_) => report.restarted.push(old.name.clone()),
                Fate::Removed => report.removed.push(old.name.clone()),
            }
        }
        let old_names: HashMap<&str, ()> =
            self.rules.rules.iter().map(|r| (&*r.name, ())).collect();
        report.added = rules
            .rules
            .iter()
            .filter(|r| !old_names.contains_key(&*r.name))
            .map(|r| r.name.clone())
            .collect();

        let old_rules = std::mem::replace(&mut self.rules, rules);
        // The budget is reserved again from scratch: state carried over is kept (reserved
        // even past the budget), new slots must fit.
        self.costs = super::slot_costs(&self.rules);
        self.stats.state_reserved = 0;
        let mut old_slots: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut old_dets: Vec<Option<Detector>> = std::mem::take(&mut self.dets)
            .into_iter()
            .map(Some)
            .collect();
        let mut old_wins: Vec<Option<Win>> = std::mem::take(&mut self.wins)
            .into_iter()
            .map(Some)
            .collect();
        // By old slot index; a kept slot's moves with it to its new index.
        let mut old_mores = std::mem::take(&mut self.mores);
        let mut raised_removed = vec![false; fates.len()];
        // Old window state → new, so slots that shared one before share it after (module
        // `share`); `NO_WIN` until the first of them is carried.
        let mut moved = vec![NO_WIN; old_wins.len()];

        // Groups first, so every series finds its kept group whatever the ids' order. A
        // group survives when its rule does with the same grouping; one whose rule changed
        // its `group_by` or `select.metric` is left without a slot (its id stays taken).
        self.groups.clear();
        let mut group_slots = Vec::new();
        for (id, series) in self.series.iter().enumerate().filter(|(_, s)| s.group) {
            let old_at = series.first;
            let Some(old) = old_slots
                .get_mut(series.slots())
                .and_then(|s| s.first_mut())
            else {
                continue;
            };
            let Some(old_rule) = old.as_ref().map(|s| s.rule as usize) else {
                continue;
            };
            let old_group = old_rules.rules.get(old_rule).and_then(|r| r.group.as_ref());
            // Left in `old_slots` otherwise, for the raised-alert tally below.
            if let Some(&(Fate::Kept(j) | Fate::Restarted(j))) = fates.get(old_rule) {
                let Some(rule) = self.rules.rules.get(j as usize) else {
                    continue;
                };
                if rule.group.as_ref() != old_group {
                    continue;
                }
                let name = (&*series.device, &*series.metric);
                let old_tables = (&mut old_dets[..], &mut old_wins[..]);
                let tables = (&mut self.dets, &mut self.wins);
                let fresh = (None, &mut moved[..]);
                let old = (old.take(), old_mores.remove(&old_at));
                let slot = carry(old, j, rule, &fates, old_tables, tables, name, fresh);
                if let Some(slot) = slot {
                    reserve(&mut self.stats, &self.costs, j);
                    group_slots.push((id, slot));
                    self.groups
                        .insert((j, (*series.device).into()), SeriesId(index(id)));
                }
            }
        }

        // Every series slot that will carry its state over is reserved before any new slot
        // is admitted, so new slots cannot take the room of kept ones.
        for series in self.series.iter().filter(|s| !s.group) {
            for old in old_slots
                .get(series.slots())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some(&(Fate::Kept(j) | Fate::Restarted(j))) = fates.get(old.rule as usize) {
                    reserve(&mut self.stats, &self.costs, j);
                }
            }
        }
        let mut group_slots = group_slots.into_iter().peekable();
        self.fwd.clear();
        // Groups interned below are appended and already placed: only the old ids are walked.
        for id in 0..self.series.len() {
            let first = self.slots.len();
            let mut grouped = Vec::new();
            let Engine {
                series,
                rules,
                slots,
                mores,
                dets,
                wins,
                labels,
                fwd,
                stats,
                costs,
                limits,
                ..
            } = &mut *self;
            let series = &mut series[id];
            if series.group {
                if let Some((_, (slot, more))) = group_slots.next_if(|(g, _)| *g == id) {
                    if let Some(more) = more {
                        mores.insert(index(slots.len()), more);
                    }
                    slots.push(slot);
                }
            } else {
                let device_labels = labels.of(&series.device);
                let old_range = series.slots();
                // Slots of this series starting fresh, whose window states new slots may share.
                let mut fresh = Vec::new();
                for (i, rule) in rules.rules.iter().enumerate() {
                    if !rule.selects(&series.device, &series.metric, &device_labels) {
                        continue;
                    }
                    let i = index(i);
                    if let Some(g) = &rule.group {
                        grouped.extend(g.key(&series.device, &device_labels).map(|k| (i, k)));
                        continue;
                    }
                    let old = old_slots[old_range.clone()]
                        .iter_mut()
                        .zip(old_range.clone())
                        .find(|(s, _)| {
                            s.as_ref().is_some_and(|s| {
                                matches!(fates[s.rule as usize], Fate::Kept(j) | Fate::Restarted(j) if j == i)
                            })
                        });
                    let (old, old_more) = match old {
                        Some((s, at)) => (s.take(), old_mores.remove(&index(at))),
                        None => (None, None),
                    };
                    let kept = old
                        .as_ref()
                        .is_some_and(|o| fates.get(o.rule as usize) == Some(&Fate::Kept(i)));
                    // Carried slots were reserved above.
                    if old.is_none() && !super::admit(stats, costs, i, limits.max_state_bytes) {
                        continue;
                    }
                    // `None` only past u32 indices, which `max_series` rules out.
                    let name = (&*series.device, &*series.metric);
                    let old_tables = (&mut old_dets[..], &mut old_wins[..]);
                    let tables = (&mut *dets, &mut *wins);
                    let shared = match kept {
                        true => None,
                        false => share::fresh_window(rules, fresh.iter().map(|&k| &slots[k]), rule),
                    };
                    let fresh_state = (shared, &mut moved[..]);
                    let old = (old, old_more);
                    let slot = carry(old, i, rule, &fates, old_tables, tables, name, fresh_state);
                    if let Some((slot, more)) = slot {
                        if let Some(more) = more {
                            mores.insert(index(slots.len()), more);
                        }
                        slots.push(slot);
                        if !kept {
                            fresh.push(slots.len() - 1);
                        }
                    }
                }
                share::set_roles(&mut slots[first..]);
            }
            series.first = index(first);
            series.len = index(slots.len() - first);
            series.fwd_first = index(fwd.len());
            series.fwd_len = 0;
            for (rule, key) in grouped {
                match self.join_group(rule, key) {
                    Some(g) => {
                        self.fwd.push(g.0);
                        self.series[id].fwd_len += 1;
                    }
                    None => self.stats.groups_refused += 1,
                }
            }
        }
        // Every old slot not carried over is gone; a raised alert on it will never clear.
        let mut raised_orphaned = vec![false; fates.len()];
        for old in old_slots.iter().flatten().filter(|s| s.raised) {
            let r = old.rule as usize;
            match fates.get(r) {
                Some(Fate::Removed) => raised_removed[r] = true,
                Some(_) => raised_orphaned[r] = true,
                None => {}
            }
        }
        let names = |raised: Vec<bool>| -> Vec<Arc<str>> {
            old_rules
                .rules
                .iter()
                .zip(raised)
                .filter(|(_, raised)| *raised)
                .map(|(r, _)| r.name.clone())
                .collect()
        };
        report.removed_while_raised = names(raised_removed);
        report.orphaned_while_raised = names(raised_orphaned);
        self.stats.groups = self.groups.len();
        self.rebuild_peers(&|old| match fates.get(old as usize) {
            Some(Fate::Kept(j)) => Some(*j),
            _ => None,
        });
        self.register_all_members();
        self.reset_alert_layer();
        self.restore_runtime(&counters);
        // Restarted and added slots have no deadline yet: make the next `advance` look.
        self.next_deadline = i64::MIN;
        // Slots moved and changed: the next checkpoint rewrites every series.
        self.full_checkpoint = true;
        report
    }
}

/// The new slot of rule `i` on a series whose old slot for it (same name) was `old`: the old
/// one itself when the rule is unchanged, a fresh one remembering a raised alert when it
/// changed, a fresh one when it is new. `None` only past u32 detector or window indices.
/// A fresh slot reads window state `shared` if set (module `share`); a kept one moves its
/// window state, or reads it where `moved` says a slot that shared it moved it already.
#[expect(
    clippy::too_many_arguments,
    reason = "split borrows of the old and new tables"
)]
fn carry(
    (old, old_more): (Option<Slot>, Option<More>),
    i: u32,
    rule: &Rule,
    fates: &[Fate],
    (old_dets, old_wins): (&mut [Option<Detector>], &mut [Option<Win>]),
    (dets, wins): Tables<'_>,
    name: (&str, &str),
    (shared, moved): (Option<u32>, &mut [u32]),
) -> Option<(Slot, Option<More>)> {
    let fresh = |slot: Slot| (slot, Slot::fresh_more(rule));
    match old {
        Some(old) if fates.get(old.rule as usize) == Some(&Fate::Kept(i)) => {
            // Its detector and window states move with it into the new tables.
            let det = match old_dets.get_mut(old.det as usize).and_then(Option::take) {
                Some(d) => {
                    dets.push(d);
                    index(dets.len() - 1)
                }
                None => NO_DET,
            };
            let win = match moved.get(old.win as usize) {
                Some(&at) if at != NO_WIN => at,
                _ => match old_wins.get_mut(old.win as usize).and_then(Option::take) {
                    Some(w) => {
                        wins.push(w);
                        let at = index(wins.len() - 1);
                        if let Some(m) = moved.get_mut(old.win as usize) {
                            *m = at;
                        }
                        at
                    }
                    None => NO_WIN,
                },
            };
            // So does its `More`.
            let slot = Slot {
                rule: i,
                det,
                win,
                ..old
            };
            Some((slot, old_more))
        }
        Some(old) => Slot::new(i, rule, (dets, wins), name, shared).map(|new| {
            fresh(Slot {
                raised: old.raised,
                ..new
            })
        }),
        None => Slot::new(i, rule, (dets, wins), name, shared).map(fresh),
    }
}

/// Reserves rule `rule`'s worst case for a slot carried over a reload, budget or not.
fn reserve(stats: &mut EngineStats, costs: &[usize], rule: u32) {
    let cost = costs.get(rule as usize).copied().unwrap_or(0);
    stats.state_reserved = stats.state_reserved.saturating_add(cost);
}

/// Rule and slot indices are u32 in the hot path. A rule set or slot table beyond 4 billion
/// entries cannot be built within `max_series`, so saturating here never happens in practice.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Aggregate, Event, EventKind, Sample};

    const S: i64 = 1_000_000;

    fn set(yaml: &str) -> RuleSet {
        RuleSet::parse_str(yaml, "test.yaml").unwrap()
    }

    fn push(e: &mut Engine, series: SeriesId, ts: i64, value: f64) -> Vec<Event> {
        let mut out = Vec::new();
        e.push(Sample { series, ts, value }, &mut out);
        out
    }

    fn count_of(events: &[Event], rule: &str) -> Option<f64> {
        events.iter().find_map(|e| match &e.kind {
            EventKind::Window { values, .. } if &*e.rule == rule => values
                .iter()
                .find(|(a, _)| *a == Aggregate::Count)
                .map(|(_, v)| *v),
            _ => None,
        })
    }

    const TWO: &str = r#"
rules:
  - name: steady
    window: { tumbling: 10s }
    aggregates: [count]
  - name: tuned
    window: { tumbling: 10s }
    aggregates: [count]
    alert: { when: "max > 80" }
"#;

    #[test]
    fn unchanged_rules_keep_their_windows_and_changed_ones_restart() {
        let mut e = Engine::new(set(TWO));
        let id = e.series("pump-1", "temp").unwrap();
        for k in 0..5 {
            assert!(push(&mut e, id, k * S, 1.0).is_empty());
        }
        let report = e.reload(set(&TWO.replace("max > 80", "max > 90").replace(
            "rules:\n",
            "rules:\n  - name: fresh\n    window: { tumbling: 10s }\n    aggregates: [count]\n",
        )));
        assert_eq!(report.kept, vec![Arc::from("steady")]);
        assert_eq!(report.restarted, vec![Arc::from("tuned")]);
        assert_eq!(report.added, vec![Arc::from("fresh")]);
        assert!(report.removed.is_empty());
        for k in 5..8 {
            assert!(push(&mut e, id, k * S, 1.0).is_empty());
        }
        let out = push(&mut e, id, 10 * S, 1.0);
        // `steady` saw all 8 samples; `tuned` and `fresh` only the 3 after the reload.
        assert_eq!(count_of(&out, "steady"), Some(8.0));
        assert_eq!(count_of(&out, "tuned"), Some(3.0));
        assert_eq!(count_of(&out, "fresh"), Some(3.0));
    }

    /// A kept rule's `prev` window moves with its slot, to the slot's new index (a rule
    /// added before it shifts every slot), for a series and for a group alike. Fails if a
    /// reload drops or misplaces the slot's `More`.
    #[test]
    fn a_kept_rule_keeps_its_prev_window_when_its_slot_moves() {
        const PREV: &str = r#"
rules:
  - name: step
    window: { tumbling: 10s }
    alert: { when: "mean > prev(mean) + 5" }
  - name: group-step
    select: { metric: "bearing_*" }
    group_by: device
    window: { tumbling: 10s }
    alert: { when: "mean > prev(mean) + 5" }
"#;
        let mut e = Engine::new(set(PREV));
        let id = e.series("pump-1", "bearing_de").unwrap();
        let raises = |out: &[Event]| {
            let mut r: Vec<String> = out
                .iter()
                .filter(|ev| {
                    matches!(
                        ev.kind,
                        EventKind::Alert {
                            state: crate::event::AlertState::Raised,
                            ..
                        }
                    )
                })
                .map(|ev| ev.rule.to_string())
                .collect();
            r.sort();
            r
        };
        push(&mut e, id, 0, 10.0);
        // The first window's mean, 10, is each rule's `prev` at the reload.
        assert!(raises(&push(&mut e, id, 10 * S, 20.0)).is_empty());
        let report = e.reload(set(&PREV.replace(
            "rules:\n",
            "rules:\n  - name: fresh\n    window: { tumbling: 10s }\n    alert: { when: \"mean > prev(mean) + 100\" }\n",
        )));
        assert_eq!(report.added, vec![Arc::from("fresh")]);
        assert_eq!(report.kept.len(), 2, "{report:?}");
        // 20 against the kept 10: both kept rules raise; `fresh` has no `prev` yet.
        let out = push(&mut e, id, 20 * S, 20.0);
        assert_eq!(raises(&out), ["group-step", "step"]);
    }

    #[test]
    fn a_changed_rule_clears_its_raised_alert_once_instead_of_raising_it_again() {
        let mut e = Engine::new(set(TWO));
        let id = e.series("pump-1", "temp").unwrap();
        push(&mut e, id, 0, 85.0);
        let raised = push(&mut e, id, 10 * S, 85.0);
        assert!(
            raised
                .iter()
                .any(|ev| matches!(ev.kind, EventKind::Alert { .. }))
        );
        e.reload(set(&TWO.replace("max > 80", "max > 90")));
        // The restarted window holds only what came after the reload.
        assert!(push(&mut e, id, 15 * S, 85.0).is_empty());
        let out = push(&mut e, id, 20 * S, 85.0);
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|ev| match &ev.kind {
                EventKind::Alert { state, .. } => Some(*state),
                _ => None,
            })
            .collect();
        assert_eq!(alerts, vec![crate::event::AlertState::Cleared]);
    }

    #[test]
    fn removed_rules_are_reported_and_stop_emitting() {
        let mut e = Engine::new(set(TWO));
        let id = e.series("pump-1", "temp").unwrap();
        push(&mut e, id, 0, 85.0);
        push(&mut e, id, 10 * S, 85.0);
        let only_steady =
            "rules:\n  - name: steady\n    window: { tumbling: 10s }\n    aggregates: [count]\n";
        let report = e.reload(set(only_steady));
        assert_eq!(report.removed, vec![Arc::from("tuned")]);
        assert_eq!(report.removed_while_raised, vec![Arc::from("tuned")]);
        let out = push(&mut e, id, 20 * S, 1.0);
        assert!(out.iter().all(|ev| &*ev.rule == "steady"), "{out:?}");
        assert_eq!(count_of(&out, "steady"), Some(1.0));
    }

    #[test]
    fn a_rule_moved_to_another_file_keeps_its_state() {
        let mut e = Engine::new(set(TWO));
        let id = e.series("pump-1", "temp").unwrap();
        push(&mut e, id, 0, 1.0);
        let report = e.reload(RuleSet::parse_str(TWO, "other.yaml").unwrap());
        assert_eq!(report.kept.len(), 2);
        let out = push(&mut e, id, 10 * S, 1.0);
        assert_eq!(count_of(&out, "steady"), Some(1.0));
    }

    #[test]
    fn idle_windows_of_kept_rules_still_close_on_advance() {
        let mut e = Engine::new(set(TWO));
        let id = e.series("pump-1", "temp").unwrap();
        push(&mut e, id, 0, 1.0);
        e.reload(set(TWO));
        let mut out = Vec::new();
        e.advance(10 * S, &mut out);
        assert_eq!(count_of(&out, "steady"), Some(1.0));
    }
}
