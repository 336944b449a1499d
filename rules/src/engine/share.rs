//! One window state for the rules that keep the same window over a series.
//!
//! Rules often watch a series through the same window: issue 19's workload has a 10 s
//! tumbling window raising `max > 80` and CUSUM on the same 10 s means, and a rule file
//! commonly holds a threshold, a detector and a trend over one window length. Each kept a
//! window state of its own per series (112 bytes, plus a sketch or FFT frames where the rule
//! needs them), all with the same contents. Two rules' states are the same when their
//! windows have the same spec, their accumulators the same spec ([`crate::agg::AccSpec`]:
//! sketch, moments, FFT, lean) and the same EWMA factor, and the states started together.
//! Then one state serves both, as a stream processor shares a window between queries.
//!
//! The first slot of the series that reads a shared state *leads*: it pushes the sample (or
//! the watermark) into the window and hands what that gave (the windows it closed, and
//! whether the sample was late, overflowed, and the next deadline) to the slots that
//! *follow*, which judge them as their own. Slots are walked in rule order, so every rule
//! sees what a window of its own would have given it, and the events come out in the same
//! order as before; the engine proptests and `share_tests` hold it to that.
//!
//! Sharing starts only between fresh states (a series interned, rules added or restarted by a
//! reload: module `reload`); a reload keeps the sharing of the states it keeps. A restore
//! (module `snapshot`) shares a state only where the checkpoint holds the same state for
//! every slot that reads it, and gives a slot its own otherwise (a checkpoint from before this
//! module, say, with one rule added by a reload after the other). Checkpoints hold each
//! slot's window as before, a shared one once per slot: the format is unchanged.
//!
//! The budget (module `budget`) still reserves a window per rule and series: a worst case,
//! and the rule that shares today may be reloaded into one that does not.

use super::{NO_WIN, Slot};
use crate::ruleset::{Rule, RuleSet};
use crate::window::{Done, Pushed};

/// A slot's part in a shared window state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Share {
    /// Its window state is its own (or it has none).
    Own,
    /// The first of the series' slots reading its state: it updates the state.
    Leads,
    /// Reads the state an earlier slot of the series leads.
    Follows,
}

/// What leading slots hand to their followers during one `push` or `advance` of a series.
#[derive(Debug, Default)]
pub(super) struct Handed {
    /// `(window state, closed window)`, in the order the windows closed.
    done: Vec<(u32, Done)>,
    /// `(window state, what the push said)`.
    pushed: Vec<(u32, Pushed)>,
}

impl Handed {
    pub fn clear(&mut self) {
        self.done.clear();
        self.pushed.clear();
    }

    pub fn closed(&mut self, win: u32, done: &Done) {
        self.done.push((win, done.clone()));
    }

    pub fn pushed(&mut self, win: u32, pushed: Pushed) {
        self.pushed.push((win, pushed));
    }

    /// The windows state `win` closed, in order.
    pub fn closed_by(&self, win: u32) -> impl Iterator<Item = &Done> {
        self.done
            .iter()
            .filter(move |(w, _)| *w == win)
            .map(|(_, d)| d)
    }

    /// What pushing the sample into state `win` said.
    pub fn pushed_to(&self, win: u32) -> Option<Pushed> {
        self.pushed.iter().find(|(w, _)| *w == win).map(|&(_, p)| p)
    }
}

/// Whether slots of rules `a` and `b` on one series keep the same window state when both
/// start fresh.
pub(super) fn same_window(a: &Rule, b: &Rule) -> bool {
    !super::is_direct(a)
        && !super::is_direct(b)
        && a.group.is_none()
        && b.group.is_none()
        && a.window == b.window
        && a.acc == b.acc
        && a.ewma_alpha.to_bits() == b.ewma_alpha.to_bits()
}

/// The window state a new slot of `rule` can share: that of the first of `fresh` (slots of
/// the same series whose states are fresh too) keeping the same window.
pub(super) fn fresh_window<'a>(
    rules: &RuleSet,
    fresh: impl IntoIterator<Item = &'a Slot>,
    rule: &Rule,
) -> Option<u32> {
    fresh
        .into_iter()
        .filter(|s| s.win != NO_WIN)
        .find(|s| {
            rules
                .rules
                .get(s.rule as usize)
                .is_some_and(|r| same_window(r, rule))
        })
        .map(|s| s.win)
}

/// Sets the roles of one series' slots from the window states they point at.
pub(super) fn set_roles(slots: &mut [Slot]) {
    for k in 0..slots.len() {
        let win = slots[k].win;
        let role = if win == NO_WIN {
            Share::Own
        } else if slots[..k].iter().any(|s| s.win == win) {
            Share::Follows
        } else if slots[k + 1..].iter().any(|s| s.win == win) {
            Share::Leads
        } else {
            Share::Own
        };
        slots[k].share = role;
    }
}

/// The slot each follower of `slots` follows (its index in `slots`), `None` for the others.
pub(super) fn leaders(slots: &[Slot]) -> Vec<Option<usize>> {
    slots
        .iter()
        .enumerate()
        .map(|(k, s)| match s.share {
            Share::Follows => slots[..k].iter().position(|l| l.win == s.win),
            _ => None,
        })
        .collect()
}
