//! The parts of a rule's state on a series that only some rules keep (`prev`, `let` memory,
//! storm control), by slot index beside the slots rather than behind a pointer in every slot.
//!
//! Why: a slot is per (rule, series), three per series in issue 19's workload; a pointer in
//! each was 8 of its 24 bytes (0.23 MiB at 10,000 series) for state most rules never keep.
//! The table is read only where that state is read (a window closes, a verdict of a rule
//! with storm control), never per sample.

use std::collections::HashMap;

use crate::agg::Closed;
use crate::alert::{self, Lifecycle};

/// The parts of a slot only some rules keep (`Slot::needs_more`): in `Engine::mores` under
/// the slot's index from the slot's creation, absent for the others, which never write it.
#[derive(Debug, Clone, Default)]
pub(super) struct More {
    /// The previous closed window, kept only for rules whose condition reads `prev(...)`;
    /// allocated at the first close and overwritten in place after that.
    pub(super) prev: Option<Box<Closed>>,
    /// The rule's `let` values at the previous close (what `prev(<let>)` reads and the state
    /// of its `ewma(x, alpha)` values), for rules with `let:` only; allocated at the first
    /// close.
    pub(super) lets: Option<Box<crate::expr::LetMemory>>,
    /// Storm-control state (rules whose alert has `suppress` or `cooldown` only).
    pub(super) life: Option<Box<Lifecycle>>,
}

/// [`More`] by slot index, for the slots that keep one.
pub(super) type Mores = HashMap<u32, More>;

/// Where one slot's [`More`] is, looked up only where it is read (a window closed, a verdict
/// of a rule with storm control), never per sample.
pub(super) struct MoreAt<'a> {
    pub(super) mores: &'a mut Mores,
    pub(super) at: u32,
}

impl<'a> MoreAt<'a> {
    pub(super) fn new(mores: &'a mut Mores, at: usize) -> MoreAt<'a> {
        // Slot indices fit in u32: the table is refused past that (`Slot::new`'s callers).
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        MoreAt { mores, at }
    }

    pub(super) fn get(&mut self) -> Option<&mut More> {
        if self.mores.is_empty() {
            return None;
        }
        self.mores.get_mut(&self.at)
    }

    /// The storm-control state, for a rule whose alert keeps one.
    pub(super) fn life(&mut self, alert: &crate::ruleset::AlertRule) -> Option<&mut Lifecycle> {
        if !alert::needs_lifecycle(alert) {
            return None;
        }
        self.get().and_then(|m| m.life.as_deref_mut())
    }
}
