//! Interning the groups of grouped rules (`group_by`).
//!
//! A group is interned like a series — an entry of `Engine::series` named after the group,
//! holding the rule's one slot for it — so `advance`, `series_name` and the agent's event
//! naming need nothing new. It is never put in the `(device, metric)` index: rules never
//! select it and `metric.<name>` never reads it, whatever its name. It takes one entry of
//! `max_series`, which is what bounds the number of groups.

use super::{Engine, Series, Slot};
use crate::event::SeriesId;

impl Engine {
    /// The group series of `rule` named `key`, interned (with its slot appended) if new;
    /// `None` when `max_series` is reached or the slot would pass `max_state_bytes`.
    pub(super) fn join_group(&mut self, rule: u32, key: String) -> Option<SeriesId> {
        let key: Box<str> = key.into();
        if let Some(id) = self.groups.get(&(rule, key.clone())) {
            return Some(*id);
        }
        let r = self.rules.rules.get(rule as usize)?;
        let g = r.group.as_ref()?;
        if self.series.len() >= self.limits.max_series {
            return None;
        }
        let id = SeriesId(u32::try_from(self.series.len()).ok()?);
        let first = u32::try_from(self.slots.len()).ok()?;
        if !super::admit(
            &mut self.stats,
            &self.costs,
            rule,
            self.limits.max_state_bytes,
        ) {
            return None;
        }
        let slot = Slot::new(
            rule,
            r,
            (&mut self.dets, &mut self.wins),
            (&key, &g.metric),
            None,
        )?;
        if let Some(more) = super::Slot::fresh_more(r) {
            self.mores.insert(first, more);
        }
        self.slots.push(slot);
        let device = super::intern(&mut self.names, &key);
        let metric = super::intern(&mut self.names, &g.metric);
        self.series.push(Series {
            device,
            metric,
            first,
            len: 1,
            peer_first: 0,
            peer_len: 0,
            fwd_first: 0,
            fwd_len: 0,
            group: true,
            dirty: false,
            newest: i64::MIN,
            guarded: false,
        });
        self.touch(id.0);
        self.groups.insert((rule, key), id);
        Some(id)
    }
}
