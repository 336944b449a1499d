//! The engine's memory budget: what one rule's state on one series can cost at most, and the
//! bound on the sum ([`crate::Limits::max_state_bytes`]).
//!
//! `max_series` bounds how many series there are, not how much each costs: a rule like
//! `hopping: {size: 64s, hop: 1s}, lateness: 192s` with a percentile keeps up to 256 open
//! windows per series, each with a 2 KB sketch, so 10,000 series want gigabytes. Each rule's
//! worst case per series is therefore computed once, when the rules are loaded
//! ([`slot_cost`]), from what its state can hold:
//!
//! - the slot itself, inline, and its window state (none for a detector rule without a
//!   window);
//! - per open window, its accumulator (for a window state holding one inline, the words a
//!   full rule updates beyond the lean ones, boxed) and, when the rule asks for them, the
//!   extras: the moment sums, the percentile sketch at its exact size (256 values, 2 KB:
//!   windows of up to 255 samples; each doubling beyond adds one level of at most 2 KB — the
//!   estimate is for the common case, not for a 1 kHz channel in a 64 s window), the FFT
//!   frame buffer;
//! - the most windows open at once: `ceil((size + lateness) / hop)` for hopping and tumbling
//!   with lateness (the deque rounded up to a power of two), one for the others, and a
//!   sliding window's ring of `max_samples` pairs;
//! - the previous window for rules reading `prev(...)`, the previous close's `let` values,
//!   and a detector's history.
//!
//! The engine reserves that cost when it gives a rule a slot (a new series, a new group, a
//! rule added by a reload) and refuses the slot when the reservation would pass the budget:
//! the series is still interned and the rules that fit still see it; the refusal is counted
//! ([`crate::EngineStats::budget_refused`]) and the agent logs it once. State kept across a
//! reload stays, even over a lowered budget. Reserving the worst case rather than measuring
//! keeps the check O(1) per new slot and the engine deterministic: the same input admits the
//! same slots, whatever the allocator does.
//!
//! Why 64 MiB by default: the smallest gateway Weir targets has 256 MB of RAM, of which the
//! OS, the local broker and the agent's own buffers (SQLite's cache, channels) take well over
//! half; a quarter of it is what the rule state may take. Typical rule sets are far below
//! it: a tumbling rule costs a few hundred bytes per series, 3 MB for 10,000 series.

use std::sync::Arc;

use crate::agg::{Acc, AccSpec, Closed, InlineAcc};
use crate::detect::{DetectKind, Detector};
use crate::ruleset::Rule;
use crate::sketch::DEFAULT_K;
use crate::window::{MAX_OPEN, Win, WindowSpec, overlap};

/// [`crate::Limits::max_state_bytes`] by default: 64 MiB (see the module docs).
pub const DEFAULT_MAX_STATE_BYTES: usize = 64 << 20;

/// The most bytes one window's accumulator owns on the heap, for windows the sketch holds
/// exactly (see the module docs).
fn acc_heap(spec: &AccSpec) -> usize {
    let fresh = Acc::new(spec).heap_bytes();
    if spec.sketch {
        // The first level grows to `k` values; the list of levels holds a few entries.
        fresh + DEFAULT_K * size_of::<f64>() + 4 * size_of::<Vec<f64>>()
    } else {
        fresh
    }
}

/// The most bytes a detector's history holds.
fn detector_bytes(kind: &DetectKind) -> usize {
    let fresh = size_of::<Detector>() + Detector::new(kind).heap_bytes();
    fresh
        + match kind {
            // The window and a sorted copy of it.
            DetectKind::Robust(s) => s.window * (size_of::<f64>() + size_of::<u16>()),
            DetectKind::Trend(s) => s.points * size_of::<(i64, f64)>(),
            _ => 0,
        }
}

/// The worst case, in bytes, of one rule's state on one series; `slot` is the engine's inline
/// slot size. Saturating: an absurd rule costs `usize::MAX` and never fits.
pub(crate) fn slot_cost(rule: &Rule, slot: usize) -> usize {
    let acc = acc_heap(&rule.acc);
    let per_window = size_of::<(i64, Acc)>().saturating_add(acc);
    // A detector rule without a window has no window state (`Engine::wins`).
    let windows = if crate::engine::is_direct(rule) {
        0
    } else {
        size_of::<Win>().saturating_add(windows_bytes(rule, acc, per_window))
    };
    let prev = if rule.uses_prev() {
        // A sliding window's closed state carries its sorted values for exact percentiles.
        let sorted = match rule.window {
            WindowSpec::Sliding { cap, .. } if rule.acc.sketch => cap * size_of::<f64>(),
            _ => 0,
        };
        size_of::<Closed>() + acc + sorted
    } else {
        0
    };
    let detector = rule.detect.as_ref().map_or(0, |d| detector_bytes(&d.kind));
    let life = if rule.alert.is_some() { 64 } else { 0 };
    // The previous close's `let` values (module `expr::lets`).
    let lets = if rule.lets.is_empty() {
        0
    } else {
        size_of::<crate::expr::LetMemory>() + rule.lets.len() * size_of::<f64>()
    };
    slot.saturating_add(crate::engine::slot_more_bytes(rule))
        .saturating_add(windows)
        .saturating_add(lets)
        .saturating_add(prev)
        .saturating_add(detector)
        .saturating_add(life)
}

/// Per-rule worst case per series, for `weir check`: `(rule name, bytes)`, in rule order.
pub(crate) fn costs(rules: &[Rule], slot: usize) -> Vec<(Arc<str>, usize)> {
    rules
        .iter()
        .map(|r| (Arc::clone(&r.name), slot_cost(r, slot)))
        .collect()
}

/// The worst case of all rules' state on one series: a series gets a slot of every rule that
/// selects it, and rules whose device or metric patterns cannot both match one name never
/// share a series, so this is the largest sum over the rules that may overlap with one rule
/// (labels are not considered: they may overlap).
pub(crate) fn per_series(rules: &[Rule], slot: usize) -> usize {
    let costs: Vec<usize> = rules.iter().map(|r| slot_cost(r, slot)).collect();
    rules
        .iter()
        .map(|r| {
            rules
                .iter()
                .zip(&costs)
                .filter(|(o, _)| o.metric.may_overlap(&r.metric) && o.device.may_overlap(&r.device))
                .map(|(_, c)| *c)
                .fold(0, usize::saturating_add)
        })
        .max()
        .unwrap_or(0)
}

/// What a rule's open windows own beyond the inline window state: `acc` is one accumulator's
/// heap, `per_window` an open window's entry with it.
fn windows_bytes(rule: &Rule, acc: usize, per_window: usize) -> usize {
    match rule.window {
        WindowSpec::Hopping {
            size,
            hop,
            lateness,
        } if !rule.acc.any()
            && let Some(pane) = crate::panes::pane_len(size, hop) =>
        {
            let open = overlap(size.saturating_add(lateness), hop).clamp(1, MAX_OPEN);
            crate::panes::worst_bytes(size, lateness, pane, usize::try_from(open).unwrap_or(1))
                .saturating_add(InlineAcc::more_bytes(&rule.acc))
        }
        WindowSpec::Hopping {
            size,
            hop,
            lateness,
        } => {
            let open = overlap(size.saturating_add(lateness), hop).clamp(1, MAX_OPEN);
            let open = usize::try_from(open)
                .unwrap_or(usize::MAX)
                .next_power_of_two();
            // The open windows, and the prototype accumulator copied for each new one.
            per_window
                .saturating_mul(open)
                .saturating_add(size_of::<Acc>() + acc)
        }
        WindowSpec::Sliding { cap, .. } => {
            size_of::<crate::sliding::Ring>()
                + crate::sliding::Ring::worst_bytes(cap, acc, rule.acc.sketch)
        }
        // The accumulator inline, and behind its pointer what the rule updates beyond the
        // eight words every rule does.
        WindowSpec::Tumbling { .. } | WindowSpec::Count { .. } | WindowSpec::Session { .. } => {
            acc.saturating_add(InlineAcc::more_bytes(&rule.acc))
        }
    }
}
