//! Hopping windows that share partial aggregates between overlapping windows (*panes*).
//!
//! A hopping window of size S and hop H puts each sample in about S/H windows; feeding each
//! window's accumulator costs S/H additions per sample (6 for 1 m / 10 s), with S/H
//! accumulators to keep in cache. Instead, time is cut into panes of `g = gcd(S, H)`: every
//! window is the union of `S/g` consecutive panes, and every sample falls in exactly one
//! pane. A sample costs one accumulator addition, as in a tumbling window; a window costs
//! `S/g` merges when it closes (Chan's pairwise update, [`Acc::merge`]), once per hop
//! rather than once per sample. This is the panes technique of stream processors (Li et
//! al., "No pane, no gain", SIGMOD Record 2005).
//!
//! The windows themselves still exist, as `(start, ewma)` pairs: which windows are open,
//! and so which samples are late, is decided exactly as for per-window accumulators
//! (module `window`), and the EWMA, which follows arrival order across panes, is kept per
//! window (one multiply-add per open window per sample, skipped by lean rules, which never
//! read it).
//!
//! Used for hopping windows (and tumbling ones with allowed lateness) of rules without
//! extra state (percentile sketch, moments, FFT frames: those do not merge, or not exactly)
//! whose windows hold at most [`MAX_PANES_PER_WINDOW`] panes; the others keep one
//! accumulator per open window.
//!
//! Memory: one `(start, Acc)` (144 bytes) per pane from the oldest open window to the
//! newest sample, and 16 bytes per open window: for 1 m / 10 s, 7 panes and 6 windows,
//! about what 6 per-window accumulators take.

use std::collections::VecDeque;

use crate::agg::{Acc, Closed, Update};
use crate::window::{Done, Pushed, secs, starts_containing};

/// The most panes a window may be cut into (`size / gcd(size, hop)`); beyond it merging on
/// close would cost more than the per-sample additions it saves.
pub(crate) const MAX_PANES_PER_WINDOW: i64 = 64;

/// The pane length for a hopping window, if it is built from panes.
pub(crate) fn pane_len(size: i64, hop: i64) -> Option<i64> {
    let g = gcd(size, hop);
    (g > 0 && size / g <= MAX_PANES_PER_WINDOW).then_some(g)
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a.rem_euclid(b));
    }
    a.abs()
}

/// The most bytes the panes of one series may own, for the state budget.
pub(crate) fn worst_bytes(size: i64, lateness: i64, pane: i64, windows: usize) -> usize {
    let panes = size.saturating_add(lateness) / pane.max(1) + 2;
    let panes = usize::try_from(panes).unwrap_or(usize::MAX);
    panes
        .next_power_of_two()
        .saturating_mul(size_of::<(i64, Acc)>())
        .saturating_add(windows.next_power_of_two() * size_of::<(i64, f64)>())
}

/// The open hopping windows of one rule on one series, as panes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Panes {
    size: i64,
    hop: i64,
    /// Allowed lateness: a window closes once a sample `lateness` past its end arrives.
    lateness: i64,
    /// Every window ending at or before this has closed and never reopens.
    closed: i64,
    /// Pane length: gcd(size, hop).
    pane: i64,
    /// `(start, totals)` of the panes holding samples, oldest first.
    panes: VecDeque<(i64, Acc)>,
    /// `(start, ewma)` of the open windows, oldest first.
    wins: VecDeque<(i64, f64)>,
    /// Where the last sample went, while nothing has moved since (see [`Hot`]).
    hot: Option<Hot>,
    /// The end of the oldest open window (`i64::MAX` if none), kept here so the fast path
    /// does not wait on a cache miss into `wins`.
    deadline: i64,
}

/// The pane `[start, end)` of the last sample that took the full path, its index in
/// `panes` and the range of `wins` holding its windows. Every sample in that pane belongs
/// to exactly those windows (window bounds are multiples of the pane length), all open;
/// while no window closes and no pane or window is added or dropped, another sample in
/// the pane just adds to it and to those windows' EWMAs: the in-order fast path, as cheap
/// as a tumbling window's.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hot {
    start: i64,
    end: i64,
    pane: usize,
    wins: (usize, usize),
}

impl Panes {
    pub fn new(size: i64, hop: i64, lateness: i64, pane: i64) -> Panes {
        Panes {
            size,
            hop,
            lateness,
            closed: i64::MIN,
            pane,
            panes: VecDeque::new(),
            wins: VecDeque::new(),
            hot: None,
            deadline: i64::MAX,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.panes.capacity() * size_of::<(i64, Acc)>()
            + self.wins.capacity() * size_of::<(i64, f64)>()
    }

    fn deadline(&self) -> i64 {
        self.deadline
    }

    /// Refreshes `deadline` after `wins` changed.
    fn set_deadline(&mut self) {
        self.deadline = self
            .wins
            .front()
            .map_or(i64::MAX, |(s, _)| s.saturating_add(self.size));
    }

    pub fn push(&mut self, ts: i64, v: f64, up: Update, done: &mut impl FnMut(Done)) -> Pushed {
        let upto = ts.saturating_sub(self.lateness);
        if let Some(h) = self.hot
            && h.start <= ts
            && ts < h.end
        {
            let deadline = self.deadline();
            // Nothing closes: the same as the full path, whose `close` would find nothing.
            if upto < deadline
                && let Some((_, pane)) = self.panes.get_mut(h.pane)
            {
                self.closed = self.closed.max(upto);
                pane.add(ts, v, up);
                if !up.lean {
                    for (_, ewma) in self.wins.range_mut(h.wins.0..h.wins.1) {
                        *ewma = up.alpha * v + (1.0 - up.alpha) * *ewma;
                    }
                }
                return Pushed::new(false, deadline);
            }
        }
        self.hot = None;
        if upto > self.closed {
            // The series' own watermark: windows ending by it are closed whether or not
            // anything opened them.
            self.close(upto, done);
            self.closed = upto;
            self.drop_panes();
        }
        self.set_deadline();
        let Some((lowest, highest)) = starts_containing(self.size, self.hop, self.closed, ts)
        else {
            return Pushed::new(true, self.deadline());
        };
        // The sample's pane.
        let pane_start = ts.saturating_sub(ts.rem_euclid(self.pane));
        let pane = self.panes.partition_point(|(s, _)| *s < pane_start);
        let (i, start) = (pane, pane_start);
        match self.panes.get_mut(i) {
            Some((s, acc)) if *s == start => acc.add(ts, v, up),
            _ => {
                let mut acc = Acc::EMPTY;
                acc.add(ts, v, up);
                self.panes.insert(i, (start, acc));
            }
        }
        // The windows containing it: open those not open yet, update their EWMA.
        let mut i = self.wins.partition_point(|(s, _)| *s < lowest);
        let first_win = i;
        let mut start = lowest;
        loop {
            match self.wins.get_mut(i) {
                Some((s, ewma)) if *s == start => {
                    if !up.lean {
                        *ewma = up.alpha * v + (1.0 - up.alpha) * *ewma;
                    }
                }
                _ => self.wins.insert(i, (start, v)),
            }
            i += 1;
            match start.checked_add(self.hop) {
                Some(next) if next <= highest => start = next,
                _ => break,
            }
        }
        self.hot = pane_start.checked_add(self.pane).map(|end| Hot {
            start: pane_start,
            end,
            pane,
            wins: (first_win, i),
        });
        self.set_deadline();
        Pushed::new(false, self.deadline())
    }

    /// Closes every window ending at or before `watermark`; returns the earliest end still
    /// open (`i64::MAX` if none).
    pub fn advance(&mut self, watermark: i64, done: &mut impl FnMut(Done)) -> i64 {
        // Only the windows this closes are barred from reopening (see `window`).
        if let Some(end) = self.close(watermark, done) {
            self.hot = None;
            self.closed = self.closed.max(end);
            self.drop_panes();
            self.set_deadline();
        }
        self.deadline()
    }

    /// The totals of the open window starting at `start`, if it is open.
    pub fn open_at(&self, start: i64) -> Option<Acc> {
        let &(_, ewma) = self.wins.iter().find(|(s, _)| *s == start)?;
        Some(self.window(start, ewma))
    }

    /// The merged panes of the window starting at `start`.
    fn window(&self, start: i64, ewma: f64) -> Acc {
        let end = start.saturating_add(self.size);
        let from = self.panes.partition_point(|(s, _)| *s < start);
        let mut acc = Acc::EMPTY;
        for (_, pane) in self.panes.range(from..).take_while(|(s, _)| *s < end) {
            acc.merge(pane);
        }
        acc.set_ewma(ewma);
        acc
    }

    /// Closes the open windows ending at or before `upto`; returns the end of the last one
    /// closed.
    fn close(&mut self, upto: i64, done: &mut impl FnMut(Done)) -> Option<i64> {
        let mut last = None;
        while let Some(&(start, ewma)) = self.wins.front() {
            let end = start.saturating_add(self.size);
            if end > upto {
                break;
            }
            let acc = self.window(start, ewma);
            self.wins.pop_front();
            last = Some(end);
            done(Done {
                ts: end,
                start,
                end,
                closed: Closed {
                    acc,
                    secs: secs(self.size),
                },
            });
        }
        last
    }

    /// Drops the panes no window that may still open contains: those ending at or before
    /// the lowest start of a window ending after `closed`.
    fn drop_panes(&mut self) {
        let lowest = self
            .closed
            .saturating_sub(self.size)
            .div_euclid(self.hop)
            .saturating_mul(self.hop)
            .saturating_add(self.hop);
        while self
            .panes
            .front()
            .is_some_and(|(s, _)| s.saturating_add(self.pane) <= lowest)
        {
            self.panes.pop_front();
        }
    }
}
