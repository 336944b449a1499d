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
//! window (brought up to date in one step when a run of samples in one pane ends, see
//! `Checkout`).
//!
//! The pane the last sample went to is *hot*: its accumulator lives inline in the rule's
//! slot (the rest of the state is boxed), so an in-order sample landing in it while no
//! window is due touches only the slot, as a tumbling window's sample does. That fast path
//! is what brings hopping windows to tumbling speed: a cache miss into the pane buffer per
//! sample was most of their cost with 10,000 series.
//!
//! Used for hopping windows (and tumbling ones with allowed lateness) of rules without
//! extra state (percentile sketch, moments, FFT frames: those do not merge, or not exactly)
//! whose windows hold at most [`MAX_PANES_PER_WINDOW`] panes; the others keep one
//! accumulator per open window.
//!
//! Memory: the inline hot accumulator (an [`InlineAcc`]: a full rule's 8 more words boxed
//! beside it, 72 bytes), a boxed part (about 150 bytes), one `(start, Acc)`
//! (144 bytes) per pane from the oldest open window to the newest sample, and 16 bytes per
//! open window: for 1 m / 10 s, 7 panes and 6 windows, about what 6 per-window accumulators
//! take.

use std::collections::VecDeque;

use crate::agg::{Acc, Closed, InlineAcc, Update};
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
///
/// The accumulator of the *hot* pane (the one the last sample went to) is kept here, inline
/// in the rule's slot, and the rest in a box: an in-order sample landing in the same pane
/// while no window is due (`newest ≤ ts < until`) touches only the slot, as a tumbling
/// window's does (a lean rule; a full one also updates the EWMA of the pane's windows, in
/// the box). Any other sample, `advance` with a window due, or a read of an open window
/// first writes the hot accumulator back (or reads it in its place).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Panes {
    /// The hot pane's totals, checked out of `cold.panes` while `until > i64::MIN`.
    hot: InlineAcc,
    /// Samples in `[newest, until)` take the fast path: the end of the hot pane, or sooner
    /// `lateness` past the oldest open window's end (a sample then closes windows).
    until: i64,
    /// The oldest open window's end (`i64::MAX` if none).
    deadline: i64,
    /// The newest timestamp pushed; `cold.closed` lags `newest - lateness` while on the fast
    /// path, and catches up before anything reads it.
    newest: i64,
    cold: Box<Cold>,
}

impl Panes {
    pub fn new(size: i64, hop: i64, lateness: i64, pane: i64) -> Panes {
        Panes {
            hot: InlineAcc::EMPTY,
            until: i64::MIN,
            deadline: i64::MAX,
            newest: i64::MIN,
            cold: Box::new(Cold::new(size, hop, lateness, pane)),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        size_of::<Cold>() + self.cold.heap_bytes() + self.hot.heap_bytes()
    }

    /// Gives every accumulator it holds its rule's FFT plan back (module `snapshot`; panes
    /// are only used for rules without FFT frames, so this is for completeness).
    pub fn set_plan(&mut self, plan: Option<&std::sync::Arc<crate::spectrum::FftPlan>>) {
        self.hot.set_plan(plan);
        self.cold
            .panes
            .iter_mut()
            .for_each(|(_, a)| a.set_plan(plan));
    }

    /// Writes the hot accumulator back into its pane; the fast path is off until the next
    /// full push.
    fn flush(&mut self) {
        if self.until == i64::MIN {
            return;
        }
        self.until = i64::MIN;
        let cold = &mut *self.cold;
        if let Some(h) = cold.hot
            && let Some((_, pane)) = cold.panes.get_mut(h.pane)
        {
            self.hot.store(pane);
            for (_, w) in cold.wins.range_mut(h.wins.0..h.wins.1) {
                *w = cold
                    .checkout
                    .window_ewma(*w, self.hot.count, self.hot.ewma());
            }
        }
    }

    #[inline]
    pub fn push(&mut self, ts: i64, v: f64, up: Update, done: &mut impl FnMut(Done)) -> Pushed {
        if self.newest <= ts && ts < self.until {
            self.newest = ts;
            self.hot.add(ts, v, up);
            return Pushed::new(false, self.deadline);
        }
        self.flush();
        let cold = &mut *self.cold;
        // The watermark the fast path did not record (it closed nothing: `until`).
        cold.closed = cold.closed.max(self.newest.saturating_sub(cold.lateness));
        self.newest = self.newest.max(ts);
        let pushed = cold.push(ts, v, up, done);
        self.deadline = pushed.deadline;
        if !pushed.late
            && let Some(h) = cold.hot
            && let Some((_, pane)) = cold.panes.get(h.pane)
        {
            self.hot.load(pane, up);
            cold.checkout = Checkout {
                count: pane.count,
                ewma: pane.ewma(),
                alpha: up.alpha,
            };
            self.until = h.end.min(pushed.deadline.saturating_add(cold.lateness));
        }
        pushed
    }

    /// Closes every window ending at or before `watermark`; returns the earliest end still
    /// open (`i64::MAX` if none).
    pub fn advance(&mut self, watermark: i64, done: &mut impl FnMut(Done)) -> i64 {
        if watermark < self.deadline {
            return self.deadline;
        }
        self.flush();
        self.deadline = self.cold.advance(watermark, done);
        self.deadline
    }

    /// The totals of the open window starting at `start`, if it is open.
    pub fn open_at(&self, start: i64) -> Option<Acc> {
        // No extra state in panes: the copy does not allocate.
        let hot = (self.until != i64::MIN)
            .then_some(self.cold.hot)
            .flatten()
            .map(|h| (h.pane, self.hot.to_acc()));
        self.cold.open_at(start, hot.as_ref().map(|(i, a)| (*i, a)))
    }
}

/// Everything of [`Panes`] but the hot pane's accumulator: the panes, the open windows and
/// the window's parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Cold {
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
    /// The hot pane when [`Panes`] checked it out.
    checkout: Checkout,
    /// The end of the oldest open window (`i64::MAX` if none), kept here so the fast path
    /// does not wait on a cache miss into `wins`.
    deadline: i64,
}

/// The pane `[start, end)` of the last sample that took the full path, its index in
/// `panes` and the range of `wins` holding its windows. Every sample in that pane belongs
/// to exactly those windows (window bounds are multiples of the pane length), all open;
/// while no window closes and no pane or window is added or dropped, another sample in
/// the pane just adds to it and to those windows' EWMAs (see [`Panes`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Hot {
    start: i64,
    end: i64,
    pane: usize,
    wins: (usize, usize),
}

/// The hot pane as it was checked out, to bring its windows' EWMAs up to date afterwards:
/// `k` samples later the pane's own EWMA is `e = (1−α)^k·e₀ + r`, and every window's is
/// `(1−α)^k·w + r` with the same `r` (both took the same samples), so `w ← (1−α)^k·(w − e₀)
/// + e`. The fast path then does no EWMA work of its own.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Checkout {
    count: u64,
    ewma: f64,
    alpha: f64,
}

impl Checkout {
    /// A window's EWMA `w` at checkout, brought up to the pane's totals now: `count`
    /// samples, EWMA `ewma`.
    fn window_ewma(&self, w: f64, count: u64, ewma: f64) -> f64 {
        let k = count.saturating_sub(self.count);
        if k == 0 {
            return w;
        }
        let decay = (1.0 - self.alpha).powi(i32::try_from(k).unwrap_or(i32::MAX));
        decay * (w - self.ewma) + ewma
    }
}

impl Cold {
    fn new(size: i64, hop: i64, lateness: i64, pane: i64) -> Cold {
        Cold {
            size,
            hop,
            lateness,
            closed: i64::MIN,
            pane,
            // In order, a series holds one window's panes and one more, and `size / hop`
            // windows (rounded up): allocated once; lateness grows them on demand.
            panes: VecDeque::with_capacity(usize::try_from(size / pane.max(1) + 1).unwrap_or(1)),
            wins: VecDeque::with_capacity(
                usize::try_from(crate::window::overlap(size, hop)).unwrap_or(1),
            ),
            hot: None,
            checkout: Checkout {
                count: 0,
                ewma: f64::NAN,
                alpha: f64::NAN,
            },
            deadline: i64::MAX,
        }
    }

    fn heap_bytes(&self) -> usize {
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

    fn push(&mut self, ts: i64, v: f64, up: Update, done: &mut impl FnMut(Done)) -> Pushed {
        let upto = ts.saturating_sub(self.lateness);
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
    fn advance(&mut self, watermark: i64, done: &mut impl FnMut(Done)) -> i64 {
        // Only the windows this closes are barred from reopening (see `window`).
        if let Some(end) = self.close(watermark, done) {
            self.hot = None;
            self.closed = self.closed.max(end);
            self.drop_panes();
            self.set_deadline();
        }
        self.deadline()
    }

    /// The totals of the open window starting at `start`, if it is open; `hot` stands for
    /// the pane at its index.
    fn open_at(&self, start: i64, hot: Option<(usize, &Acc)>) -> Option<Acc> {
        let at = self.wins.iter().position(|(s, _)| *s == start)?;
        let (_, mut ewma) = self.wins[at];
        if let (Some((_, acc)), Some(h)) = (hot, self.hot)
            && (h.wins.0..h.wins.1).contains(&at)
        {
            ewma = self.checkout.window_ewma(ewma, acc.count, acc.ewma());
        }
        let end = start.saturating_add(self.size);
        let from = self.panes.partition_point(|(s, _)| *s < start);
        let mut acc = Acc::EMPTY;
        for (i, (_, pane)) in self
            .panes
            .range(from..)
            .enumerate()
            .take_while(|(_, (s, _))| *s < end)
        {
            match hot {
                Some((at, hot)) if at == from + i => acc.merge(hot),
                _ => acc.merge(pane),
            }
        }
        acc.set_ewma(ewma);
        Some(acc)
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
