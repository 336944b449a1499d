//! Window kinds and their per-(rule, series) state.
//!
//! Every kind assigns samples to windows, feeds each window's [`Acc`] and hands closed windows
//! back through a callback, in window-start order. Memory per (rule, series) is fixed when
//! the series is interned and never grows with the data:
//!
//! | kind | windows | state |
//! |---|---|---|
//! | `tumbling: D` | `[k·D, (k+1)·D)`, aligned to the epoch | one inline [`Acc`] |
//! | `hopping: { size: S, hop: H }` | `[k·H, k·H + S)`, so each sample is in about S/H windows | `ceil(S/H)` accumulators allocated once (S/H ≤ [`MAX_OVERLAP`]) |
//! | `count: N` | every N samples of the series, in arrival order | one inline [`Acc`] |
//!
//! Time windows close when a sample at or after their end arrives, or when
//! [`crate::Engine::advance`] passes their end. A window is only ever opened if it starts
//! after every window opened before it, so a window never reopens after closing: a sample
//! that belongs to no still-open window and only to windows older than the newest one is
//! late, dropped and counted. Count windows ignore time: they take every sample and close on
//! the N-th; a partial count window stays open (idle timeout is future work). Their `start`
//! and `end` are the earliest and latest timestamps in the window, both inclusive.

use std::collections::VecDeque;

use crate::agg::{Acc, Closed};

/// Hopping windows may overlap at most this many times (`size / hop`), bounding the work
/// per sample and the memory per series.
pub(crate) const MAX_OVERLAP: i64 = 64;

/// How many hopping windows contain a sample: `ceil(size / hop)`, for `0 < hop ≤ size`.
pub(crate) fn overlap(size: i64, hop: i64) -> i64 {
    (size - 1) / hop.max(1) + 1
}

/// A window kind as written in a rule, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowSpec {
    /// Window length in µs; > 0.
    Tumbling { size: i64 },
    /// 0 < hop ≤ size, size / hop ≤ [`MAX_OVERLAP`].
    Hopping { size: i64, hop: i64 },
    /// Samples per window; > 0.
    Count { n: u64 },
}

/// A window that has just closed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    pub start: i64,
    pub end: i64,
    pub closed: Closed,
}

/// The open windows of one rule on one series.
#[derive(Debug, Clone)]
pub(crate) enum Win {
    Tumbling {
        size: i64,
        /// Samples before this are late: the open window's start, or the end of the last
        /// closed one when no window is open.
        floor: i64,
        start: i64,
        open: bool,
        acc: Acc,
    },
    Hopping {
        size: i64,
        hop: i64,
        /// The start of the newest window ever opened.
        newest: Option<i64>,
        /// Open windows `(start, acc)`, oldest first.
        open: VecDeque<(i64, Acc)>,
    },
    Count {
        n: u64,
        acc: Acc,
    },
}

/// What a sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// It belonged to no window that could still take it.
    pub late: bool,
    /// The earliest end of a time window now open (`i64::MAX` if none).
    pub deadline: i64,
}

fn secs(us: i64) -> f64 {
    us as f64 / 1e6
}

impl Win {
    pub fn new(spec: WindowSpec) -> Win {
        match spec {
            WindowSpec::Tumbling { size } => Win::Tumbling {
                size,
                floor: i64::MIN,
                start: 0,
                open: false,
                acc: Acc::EMPTY,
            },
            WindowSpec::Hopping { size, hop } => {
                // Validated: 0 < hop ≤ size and size / hop ≤ MAX_OVERLAP.
                let k = usize::try_from(overlap(size, hop)).unwrap_or(1);
                Win::Hopping {
                    size,
                    hop,
                    newest: None,
                    open: VecDeque::with_capacity(k),
                }
            }
            WindowSpec::Count { n } => Win::Count { n, acc: Acc::EMPTY },
        }
    }

    /// Bytes this state owns on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Win::Hopping { open, .. } => open.capacity() * size_of::<(i64, Acc)>(),
            _ => 0,
        }
    }

    #[inline]
    pub fn push(&mut self, ts: i64, v: f64, alpha: f64, mut done: impl FnMut(Done)) -> Pushed {
        match self {
            Win::Tumbling {
                size,
                floor,
                start,
                open,
                acc,
            } => {
                if ts < *floor {
                    return Pushed {
                        late: true,
                        deadline: if *open {
                            start.saturating_add(*size)
                        } else {
                            i64::MAX
                        },
                    };
                }
                let end = start.saturating_add(*size);
                if *open && ts >= end {
                    done(Done {
                        start: *start,
                        end,
                        closed: Closed {
                            acc: std::mem::replace(acc, Acc::EMPTY),
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
                acc.add(ts, v, alpha);
                Pushed {
                    late: false,
                    deadline: start.saturating_add(*size),
                }
            }
            Win::Hopping {
                size,
                hop,
                newest,
                open,
            } => {
                let (size, hop) = (*size, *hop);
                close_hopping(open, size, ts, &mut done);
                let mut added = false;
                for (start, acc) in open.iter_mut() {
                    if *start <= ts {
                        acc.add(ts, v, alpha);
                        added = true;
                    }
                }
                // Windows containing `ts` start in (ts - size, ts], on multiples of `hop`;
                // only those newer than every window opened so far may open. i128 keeps the
                // arithmetic exact at the ends of the i64 range.
                let (t, s, h) = (i128::from(ts), i128::from(size), i128::from(hop));
                let highest = t - t.rem_euclid(h);
                let mut first = (t - s).div_euclid(h) * h + h;
                if let Some(n) = newest {
                    first = first.max(i128::from(*n) + h);
                }
                let mut start = first;
                while start <= highest {
                    let Ok(s64) = i64::try_from(start) else { break };
                    let mut acc = Acc::EMPTY;
                    acc.add(ts, v, alpha);
                    open.push_back((s64, acc));
                    *newest = Some(s64);
                    added = true;
                    start += h;
                }
                Pushed {
                    late: !added,
                    deadline: open
                        .front()
                        .map_or(i64::MAX, |(s, _)| s.saturating_add(size)),
                }
            }
            Win::Count { n, acc } => {
                acc.add(ts, v, alpha);
                if acc.count >= *n {
                    let acc = std::mem::replace(acc, Acc::EMPTY);
                    done(Done {
                        start: acc.first_ts,
                        end: acc.last_ts,
                        closed: Closed {
                            acc,
                            secs: secs(acc.last_ts.saturating_sub(acc.first_ts)),
                        },
                    });
                }
                Pushed {
                    late: false,
                    deadline: i64::MAX,
                }
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
                    start: *start,
                    end,
                    closed: Closed {
                        acc: std::mem::replace(acc, Acc::EMPTY),
                        secs: secs(*size),
                    },
                });
                *open = false;
                *floor = end;
                i64::MAX
            }
            Win::Hopping { size, open, .. } => {
                let size = *size;
                close_hopping(open, size, watermark, &mut done);
                open.front()
                    .map_or(i64::MAX, |(s, _)| s.saturating_add(size))
            }
            Win::Count { .. } => i64::MAX,
        }
    }
}

fn close_hopping(
    open: &mut VecDeque<(i64, Acc)>,
    size: i64,
    upto: i64,
    done: &mut impl FnMut(Done),
) {
    while let Some(&(start, acc)) = open.front() {
        let end = start.saturating_add(size);
        if end > upto {
            break;
        }
        open.pop_front();
        done(Done {
            start,
            end,
            closed: Closed {
                acc,
                secs: secs(size),
            },
        });
    }
}
