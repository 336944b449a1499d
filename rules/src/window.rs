//! Window kinds and their per-(rule, series) state.
//!
//! Every kind assigns samples to windows, feeds each window's [`Acc`] and hands closed windows
//! back through a callback, in window-start order. Memory per (rule, series) is fixed when
//! the series is interned and never grows with the data:
//!
//! | kind | windows | state |
//! |---|---|---|
//! | `tumbling: D` | `[k·D, (k+1)·D)`, aligned to the epoch | one [`InlineAcc`] |
//! | `hopping: { size: S, hop: H }` | `[k·H, k·H + S)`, so each sample is in about S/H windows | `ceil(S/H)` accumulators allocated once (S/H ≤ [`MAX_OVERLAP`]); `ceil((S + D)/H)` with lateness D |
//! | `count: N` | every N samples of the series, in arrival order | one [`InlineAcc`] |
//! | `sliding: D` | on every sample at `t`, `(t - D, t]` | a ring of at most `max_samples` (default 1024) `(ts, value)` pairs, 16 bytes each, grown on demand, and two extremum deques (8 bytes per entry, a few entries on noisy data) |
//! | `session: G` | a run of samples with gaps `< G`, ending `G` after its last sample | one [`InlineAcc`] |
//!
//! An [`InlineAcc`] is the window's [`Acc`] in 72 bytes: a lean rule (module `agg`) keeps the
//! 8 words it updates and a null pointer, a full rule 8 more words behind the pointer (once
//! per series, reused by every window); a window state is 112 bytes whatever its kind. A
//! closed window is read as an [`Acc`], whatever kept it.
//!
//! Rules naming a percentile or with an `fft:` section also keep, per open window, a quantile
//! sketch (module `sketch`, 2 KB per level) and an FFT frame buffer (module `spectrum`, 16 bytes
//! per frame sample), boxed beside the [`Acc`]; other rules pay one null pointer.
//!
//! Time windows close when a sample at or after their end arrives, or when
//! [`crate::Engine::advance`] passes their end. A window never reopens after closing: a
//! sample that belongs only to closed windows is late, dropped and counted (or emitted as a
//! `Late` event with `late: emit`).
//!
//! Allowed lateness (`lateness: D`, tumbling and hopping only) moves the closing point: a
//! window closes when a sample `D` past its end arrives, so several windows of a series are
//! open at once and a sample up to `D` behind the newest joins every open window containing
//! it. Such a window is kept as a hopping one (tumbling = hopping with `hop = size`), whose
//! deque then holds up to `ceil((size + D) / hop)` windows ([`MAX_OPEN`] at most). Count windows ignore time: they take every sample and close on
//! the N-th; a partial count window stays open (idle timeout is future work). Their `start`
//! and `end` are the earliest and latest timestamps in the window, both inclusive.
//!
//! Sliding windows emit on every sample, with `start = t - D + 1` and `end = t + 1` (so the
//! window is `[start, end)` like the others) and event time `t`. They need samples in order:
//! one older than the newest seen is late. When more than `max_samples` fall within `D`, the
//! oldest is dropped and counted in `EngineStats::window_overflow`, so memory stays bounded
//! whatever a device sends. Their aggregates are kept incrementally, O(1) amortised per
//! sample (module `sliding`; percentiles exact from a sorted copy), except for rules with
//! skewness, kurtosis or an FFT, which recompute from the ring on each sample: O(samples in
//! window).
//!
//! Session windows are formed in arrival order: a sample at or after `last + G` closes the
//! open session; `advance` past `last + G` closes it too. A sample before the end of the
//! previous session is late; an out-of-order one after it joins the open session. `rate` and
//! the other aggregates treat a session's span `last - first` as its length.

use std::collections::VecDeque;

use crate::agg::{Acc, Closed, InlineAcc, Update};
use crate::panes::{Panes, pane_len};
use crate::sliding::Ring;

/// Hopping windows may overlap at most this many times (`size / hop`), bounding the work
/// per sample and the memory per series.
pub(crate) const MAX_OVERLAP: i64 = 64;

/// With allowed lateness, several windows of a series stay open at once: at most
/// `ceil((size + lateness) / hop)`, bounded by this (256 × 144 B ≈ 36 KB per series at worst).
pub(crate) const MAX_OPEN: i64 = 256;

/// Samples a sliding window keeps unless the rule says otherwise, and the most it may ask.
pub(crate) const DEFAULT_MAX_SAMPLES: u64 = 1_024;
pub(crate) const MAX_SAMPLES: u64 = 65_536;

/// How many hopping windows contain a sample: `ceil(size / hop)`, for `0 < hop ≤ size`.
pub(crate) fn overlap(size: i64, hop: i64) -> i64 {
    (size - 1) / hop.max(1) + 1
}

/// A window kind as written in a rule, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowSpec {
    /// Window length in µs; > 0.
    Tumbling { size: i64 },
    /// 0 < hop ≤ size, size / hop ≤ [`MAX_OVERLAP`]; `(size + lateness) / hop` ≤
    /// [`MAX_OPEN`] (rounded up). A tumbling window with allowed lateness is a hopping one with `hop = size`.
    Hopping { size: i64, hop: i64, lateness: i64 },
    /// Samples per window; > 0.
    Count { n: u64 },
    /// On every sample at `t`, the window `(t - size, t]`, holding at most `cap` samples.
    Sliding { size: i64, cap: usize },
    /// A run of samples with gaps shorter than `gap`; closes `gap` after its latest sample.
    Session { gap: i64 },
}

/// A window that has just closed.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    /// The event time of the window's events: its end, or for sliding windows the sample
    /// that moved it.
    pub ts: i64,
    pub start: i64,
    pub end: i64,
    pub closed: Closed,
}

/// The open windows of one rule on one series.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Win {
    Tumbling {
        size: i64,
        /// Samples before this are late: the open window's start, or the end of the last
        /// closed one when no window is open.
        floor: i64,
        start: i64,
        open: bool,
        acc: InlineAcc,
    },
    Hopping {
        size: i64,
        hop: i64,
        /// Allowed lateness: a window closes once a sample `lateness` past its end arrives.
        lateness: i64,
        /// Every window ending at or before this has closed and never reopens.
        closed: i64,
        /// Open windows `(start, acc)`, oldest first.
        open: VecDeque<(i64, Acc)>,
        /// An empty accumulator of the rule's kind, copied for each new window; boxed so
        /// this variant does not make every window state bigger.
        proto: Box<Acc>,
    },
    /// A hopping window of a rule without extra state: panes shared between the
    /// overlapping windows (module `panes`).
    Panes(Panes),
    Count {
        n: u64,
        acc: InlineAcc,
    },
    Sliding {
        size: i64,
        cap: usize,
        /// The newest timestamp seen; older samples are late.
        newest: i64,
        /// The window's samples in arrival order (at most `cap`) and its running totals;
        /// boxed so this variant does not make every window state bigger.
        ring: Box<Ring>,
    },
    Session {
        gap: i64,
        /// Samples before this (the end of the last closed session) are late.
        floor: i64,
        open: bool,
        acc: InlineAcc,
    },
}

/// What a sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// It belonged to no window that could still take it.
    pub late: bool,
    /// The earliest end of a time window now open (`i64::MAX` if none).
    pub deadline: i64,
    /// A sliding window was full and dropped its oldest sample to take this one.
    pub overflow: bool,
}

impl Pushed {
    pub(crate) const fn new(late: bool, deadline: i64) -> Pushed {
        Pushed {
            late,
            deadline,
            overflow: false,
        }
    }
}

pub(crate) fn secs(us: i64) -> f64 {
    us as f64 / 1e6
}

impl Win {
    /// `proto` is an empty accumulator of the kind the rule needs (see [`Acc::new`]).
    pub fn new(spec: WindowSpec, proto: Acc) -> Win {
        match spec {
            WindowSpec::Tumbling { size } => Win::Tumbling {
                size,
                floor: i64::MIN,
                start: 0,
                open: false,
                acc: InlineAcc::from(proto),
            },
            WindowSpec::Hopping {
                size,
                hop,
                lateness,
            } if !proto.has_extra()
                && let Some(pane) = pane_len(size, hop) =>
            {
                Win::Panes(Panes::new(size, hop, lateness, pane))
            }
            WindowSpec::Hopping {
                size,
                hop,
                lateness,
            } => {
                // Validated: 0 < hop ≤ size and size / hop ≤ MAX_OVERLAP. With lateness the
                // deque grows on demand (up to MAX_OPEN), as most series are in order.
                let k = usize::try_from(overlap(size, hop)).unwrap_or(1);
                Win::Hopping {
                    size,
                    hop,
                    lateness,
                    closed: i64::MIN,
                    open: VecDeque::with_capacity(k),
                    proto: Box::new(proto),
                }
            }
            WindowSpec::Count { n } => Win::Count {
                n,
                acc: InlineAcc::from(proto),
            },
            WindowSpec::Sliding { size, cap } => Win::Sliding {
                size,
                cap,
                newest: i64::MIN,
                ring: Box::new(Ring::new(proto)),
            },
            WindowSpec::Session { gap } => Win::Session {
                gap,
                floor: i64::MIN,
                open: false,
                acc: InlineAcc::from(proto),
            },
        }
    }

    /// The accumulator of the open time window starting at `start`, if one is open (for
    /// another metric's rule reading this one over the same window).
    pub fn open_at(&self, start: i64) -> Option<Acc> {
        match self {
            Win::Tumbling {
                start: s,
                open: true,
                acc,
                ..
            } if *s == start => Some(acc.to_acc()),
            Win::Hopping { open, .. } => open
                .iter()
                .find(|(s, _)| *s == start)
                .map(|(_, a)| a.clone()),
            Win::Panes(p) => p.open_at(start),
            _ => None,
        }
    }

    /// Gives every accumulator this state holds its rule's FFT plan back (module
    /// `snapshot`: the plan is derived from the rule, not state).
    pub fn set_plan(&mut self, plan: Option<&std::sync::Arc<crate::spectrum::FftPlan>>) {
        match self {
            Win::Hopping { open, proto, .. } => {
                open.iter_mut().for_each(|(_, a)| a.set_plan(plan));
                proto.set_plan(plan);
            }
            Win::Sliding { ring, .. } => ring.accs_mut(&mut |a| a.set_plan(plan)),
            Win::Panes(p) => p.set_plan(plan),
            Win::Tumbling { acc, .. } | Win::Count { acc, .. } | Win::Session { acc, .. } => {
                acc.set_plan(plan);
            }
        }
    }

    /// Bytes this state owns on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Win::Hopping { open, proto, .. } => {
                open.capacity() * size_of::<(i64, Acc)>()
                    + open.iter().map(|(_, a)| a.heap_bytes()).sum::<usize>()
                    + size_of::<Acc>()
                    + proto.heap_bytes()
            }
            Win::Sliding { ring, .. } => size_of::<Ring>() + ring.heap_bytes(),
            Win::Panes(p) => p.heap_bytes(),
            Win::Tumbling { acc, .. } | Win::Count { acc, .. } | Win::Session { acc, .. } => {
                acc.heap_bytes()
            }
        }
    }

    #[inline]
    pub fn push(&mut self, ts: i64, v: f64, up: Update, mut done: impl FnMut(Done)) -> Pushed {
        match self {
            Win::Tumbling {
                size,
                floor,
                start,
                open,
                acc,
            } => {
                if ts < *floor {
                    return Pushed::new(
                        true,
                        if *open {
                            start.saturating_add(*size)
                        } else {
                            i64::MAX
                        },
                    );
                }
                let end = start.saturating_add(*size);
                if *open && ts >= end {
                    done(Done {
                        ts: end,
                        start: *start,
                        end,
                        closed: Closed {
                            acc: acc.take(),
                            secs: secs(*size),
                        },
                    });
                    *open = false;
                    *floor = end;
                }
                if !*open {
                    *start = ts.saturating_sub(ts.rem_euclid(*size));
                    *floor = *start;
                    *open = true;
                }
                acc.add(ts, v, up);
                Pushed::new(false, start.saturating_add(*size))
            }
            Win::Hopping {
                size,
                hop,
                lateness,
                closed,
                open,
                proto,
            } => {
                let (size, hop) = (*size, *hop);
                let upto = ts.saturating_sub(*lateness);
                if upto > *closed {
                    // The series' own watermark: windows ending by it are closed whether or
                    // not anything opened them.
                    close_hopping(open, size, upto, &mut done);
                    *closed = upto;
                }
                let added = add_hopping(open, proto, size, hop, *closed, ts, v, up);
                Pushed::new(
                    !added,
                    open.front()
                        .map_or(i64::MAX, |(s, _)| s.saturating_add(size)),
                )
            }
            Win::Panes(p) => p.push(ts, v, up, &mut done),
            Win::Count { n, acc } => {
                acc.add(ts, v, up);
                if acc.count >= *n {
                    let acc = acc.take();
                    let (first, last) = (acc.first_ts, acc.last_ts);
                    done(Done {
                        ts: last,
                        start: first,
                        end: last,
                        closed: Closed {
                            acc,
                            secs: secs(last.saturating_sub(first)),
                        },
                    });
                }
                Pushed::new(false, i64::MAX)
            }
            Win::Sliding {
                size,
                cap,
                newest,
                ring,
            } => {
                if ts < *newest {
                    return Pushed::new(true, i64::MAX);
                }
                *newest = ts;
                let from = ts.saturating_sub(*size);
                // O(1) amortised for rules without extra state (module `sliding`).
                let (acc, overflow) = ring.push(ts, v, from, *cap, up);
                done(Done {
                    ts,
                    start: from.saturating_add(1),
                    end: ts.saturating_add(1),
                    closed: Closed {
                        acc,
                        secs: secs(*size),
                    },
                });
                Pushed {
                    late: false,
                    deadline: i64::MAX,
                    overflow,
                }
            }
            Win::Session {
                gap,
                floor,
                open,
                acc,
            } => {
                if ts < *floor {
                    let deadline = if *open {
                        acc.last_ts.saturating_add(*gap)
                    } else {
                        i64::MAX
                    };
                    return Pushed::new(true, deadline);
                }
                if *open && ts >= acc.last_ts.saturating_add(*gap) {
                    *floor = close_session(acc, *gap, &mut done);
                    *open = false;
                }
                *open = true;
                acc.add(ts, v, up);
                Pushed::new(false, acc.last_ts.saturating_add(*gap))
            }
        }
    }

    /// Closes every time window ending at or before `watermark`; returns the earliest end
    /// still open (`i64::MAX` if none).
    pub fn advance(&mut self, watermark: i64, mut done: impl FnMut(Done)) -> i64 {
        match self {
            Win::Tumbling {
                size,
                floor,
                start,
                open,
                acc,
            } => {
                if !*open {
                    return i64::MAX;
                }
                let end = start.saturating_add(*size);
                if end > watermark {
                    return end;
                }
                done(Done {
                    ts: end,
                    start: *start,
                    end,
                    closed: Closed {
                        acc: acc.take(),
                        secs: secs(*size),
                    },
                });
                *open = false;
                *floor = end;
                i64::MAX
            }
            Win::Hopping {
                size, open, closed, ..
            } => {
                let size = *size;
                // Only the windows this closes are barred from reopening: a window nobody
                // opened may still open for a sample within the lateness of the series' own
                // newest sample, whatever processing time says.
                if let Some(end) = close_hopping(open, size, watermark, &mut done) {
                    *closed = (*closed).max(end);
                }
                open.front()
                    .map_or(i64::MAX, |(s, _)| s.saturating_add(size))
            }
            Win::Panes(p) => p.advance(watermark, &mut done),
            Win::Session {
                gap,
                floor,
                open,
                acc,
            } => {
                if !*open {
                    return i64::MAX;
                }
                let end = acc.last_ts.saturating_add(*gap);
                if end > watermark {
                    return end;
                }
                *floor = close_session(acc, *gap, &mut done);
                *open = false;
                i64::MAX
            }
            Win::Count { .. } | Win::Sliding { .. } => i64::MAX,
        }
    }
}

/// Emits the session in `acc`, resets it and returns its end (`gap` after its last sample).
fn close_session(acc: &mut InlineAcc, gap: i64, done: &mut impl FnMut(Done)) -> i64 {
    let acc = acc.take();
    let (first, last) = (acc.first_ts, acc.last_ts);
    let end = last.saturating_add(gap);
    done(Done {
        ts: end,
        start: first,
        end,
        closed: Closed {
            acc,
            secs: secs(last.saturating_sub(first)),
        },
    });
    end
}

/// Adds a sample at `ts` to every window that contains it and has not closed (ends after
/// `closed`), opening those not open yet in start order; false if there is none (late).
///
/// Windows containing `ts` start in `(ts - size, ts]` on multiples of `hop`, at most
/// `size / hop` of them. In order, they are the newest ones and already open: the common case
/// is a short walk from the back of the deque. A late-but-allowed sample may open an older
/// window between two open ones.
#[expect(
    clippy::too_many_arguments,
    reason = "the window's fields and the sample"
)]
fn add_hopping(
    open: &mut VecDeque<(i64, Acc)>,
    proto: &Acc,
    size: i64,
    hop: i64,
    closed: i64,
    ts: i64,
    v: f64,
    up: Update,
) -> bool {
    let Some((lowest, highest)) = starts_containing(size, hop, closed, ts) else {
        return false;
    };
    let mut i = open.partition_point(|(start, _)| *start < lowest);
    let mut start = lowest;
    loop {
        match open.get_mut(i) {
            Some((st, acc)) if *st == start => acc.add(ts, v, up),
            _ => {
                let mut acc = proto.fresh();
                acc.add(ts, v, up);
                open.insert(i, (start, acc));
            }
        }
        i += 1;
        match start.checked_add(hop) {
            Some(next) if next <= highest => start = next,
            _ => return true,
        }
    }
}

/// The lowest and highest start of the hopping windows that contain `ts` and end after
/// `closed`; `None` if there is none (the sample is late).
pub(crate) fn starts_containing(size: i64, hop: i64, closed: i64, ts: i64) -> Option<(i64, i64)> {
    // i128: exact at the ends of the i64 range.
    let (t, s, h, c) = (
        i128::from(ts),
        i128::from(size),
        i128::from(hop),
        i128::from(closed),
    );
    let highest = t - t.rem_euclid(h);
    // The lowest start whose window contains `ts` and ends after `closed`.
    let lowest = ((t - s).div_euclid(h) * h + h).max((c - s).div_euclid(h) * h + h);
    if lowest > highest {
        return None;
    }
    Some((i64::try_from(lowest).ok()?, i64::try_from(highest).ok()?))
}

/// Closes the open windows ending at or before `upto`; returns the end of the last one closed.
fn close_hopping(
    open: &mut VecDeque<(i64, Acc)>,
    size: i64,
    upto: i64,
    done: &mut impl FnMut(Done),
) -> Option<i64> {
    let mut last = None;
    while let Some(&(start, _)) = open.front() {
        let end = start.saturating_add(size);
        if end > upto {
            break;
        }
        let Some((_, acc)) = open.pop_front() else {
            break;
        };
        last = Some(end);
        done(Done {
            ts: end,
            start,
            end,
            closed: Closed {
                acc,
                secs: secs(size),
            },
        });
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one windowed rule costs per series inline (module `agg::inline`): a regression
    /// in these sizes multiplies by every (rule, series).
    #[test]
    fn window_state_sizes() {
        assert_eq!(size_of::<InlineAcc>(), 72);
        assert_eq!(size_of::<Panes>(), 104);
        assert_eq!(size_of::<Win>(), 112);
    }
}
