//! The accumulator a window state keeps inline: [`Acc`]'s totals in 72 bytes instead of 136.
//!
//! A window state (`window::Win`) is held per (rule, series), so its size is most of what a
//! windowed rule costs per series. Most rules are *lean* (module [`crate::agg`]): they never
//! update or read eight of [`Acc`]'s words (Welford's mean and M2, `Σv²`, the EWMA and the
//! slope's time origin and co-moments). [`InlineAcc`] keeps the eight words every rule
//! updates inline and moves the other eight, with the extra state, behind one pointer that
//! a lean rule without extra state never allocates. A full rule allocates it once, at its
//! first sample on the series, and keeps it: closing a window copies the totals out into an
//! [`Acc`] (what every reader of a closed window gets, unchanged) and resets them in place,
//! so no window open or close allocates beyond what the extra state did before.
//!
//! Only the windows holding one accumulator inline use it (tumbling, count and session
//! windows, and the hot pane of a hopping window built from panes); accumulators on the
//! heap (a hopping window's per-window ones, panes, a sliding window's totals) stay [`Acc`].
//!
//! **Stored form.** An `InlineAcc` is written to a checkpoint exactly as the [`Acc`] it
//! stands for (the words it does not keep as [`Acc::EMPTY`] has them, which is what a lean
//! rule's `Acc` held), and read back from one: checkpoint `FORMAT` is unchanged. A restored
//! lean rule's window drops the words it never updated; a full rule's gets them back.

use serde::{Deserialize, Serialize, Serializer};

use super::{Acc, Extra, FftPlan, Update};
use std::sync::Arc;

/// [`Acc`]'s totals with the words only full rules update kept behind a pointer.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "Acc")]
pub(crate) struct InlineAcc {
    pub count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    pub first_ts: i64,
    last: f64,
    pub last_ts: i64,
    /// The other words and the extra state; `None` for a lean rule without extra state.
    more: Option<Box<More>>,
}

/// What [`InlineAcc`] keeps beyond the eight words every rule updates.
#[derive(Debug, Clone, PartialEq)]
struct More {
    spread: Spread,
    /// As [`Acc`]'s.
    extra: Option<Box<Extra>>,
}

/// The words of [`Acc`] only full rules update (same meanings).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    mean: f64,
    m2: f64,
    sumsq: f64,
    ewma: f64,
    base: i64,
    mean_t: f64,
    m2t: f64,
    cxy: f64,
}

impl Spread {
    /// [`Acc::EMPTY`]'s values.
    const EMPTY: Spread = Spread {
        mean: Acc::EMPTY.mean,
        m2: Acc::EMPTY.m2,
        sumsq: Acc::EMPTY.sumsq,
        ewma: Acc::EMPTY.ewma,
        base: Acc::EMPTY.base,
        mean_t: Acc::EMPTY.mean_t,
        m2t: Acc::EMPTY.m2t,
        cxy: Acc::EMPTY.cxy,
    };

    fn of(a: &Acc) -> Spread {
        Spread {
            mean: a.mean,
            m2: a.m2,
            sumsq: a.sumsq,
            ewma: a.ewma,
            base: a.base,
            mean_t: a.mean_t,
            m2t: a.m2t,
            cxy: a.cxy,
        }
    }

    /// Bit for bit [`Spread::EMPTY`] (its EWMA is NaN, so `==` would never say so).
    fn is_empty(&self) -> bool {
        let (a, b) = (self, &Spread::EMPTY);
        a.mean.to_bits() == b.mean.to_bits()
            && a.m2.to_bits() == b.m2.to_bits()
            && a.sumsq.to_bits() == b.sumsq.to_bits()
            && a.ewma.to_bits() == b.ewma.to_bits()
            && a.base == b.base
            && a.mean_t.to_bits() == b.mean_t.to_bits()
            && a.m2t.to_bits() == b.m2t.to_bits()
            && a.cxy.to_bits() == b.cxy.to_bits()
    }
}

impl InlineAcc {
    /// The words not kept ([`Spread::EMPTY`] when there is no [`More`]).
    fn spread(&self) -> Spread {
        self.more.as_ref().map_or(Spread::EMPTY, |m| m.spread)
    }

    fn extra(&self) -> Option<&Extra> {
        self.more.as_ref().and_then(|m| m.extra.as_deref())
    }

    /// The first full update on this accumulator: the words it needs.
    #[cold]
    #[inline(never)]
    fn grow(more: &mut Option<Box<More>>) -> &mut More {
        more.get_or_insert_with(|| {
            Box::new(More {
                spread: Spread::EMPTY,
                extra: None,
            })
        })
    }

    /// Exactly [`Acc::add`] on the [`Acc`] this stands for: the same operations in the same
    /// order (a unit test compares every word, bit for bit).
    #[inline(always)]
    pub fn add(&mut self, ts: i64, v: f64, up: Update) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if ts < self.first_ts {
            self.first_ts = ts;
            self.first = v;
        }
        if ts >= self.last_ts {
            self.last_ts = ts;
            self.last = v;
        }
        let count = self.count;
        if up.lean {
            // Only sketch and frames can be set: moments make a rule full.
            if let Some(m) = &mut self.more
                && let Some(extra) = &mut m.extra
            {
                extra.add(v, count, 0.0, 0.0, 0.0);
            }
            return;
        }
        self.add_spread(ts, v, up);
    }

    /// The part of [`InlineAcc::add`] only a full rule runs, out of line: the lean path,
    /// inlined into every window kind, stays short (this body inlined beside it cost the
    /// aarch64 binary a few KB, issue 19's size budget).
    #[inline(never)]
    fn add_spread(&mut self, ts: i64, v: f64, up: Update) {
        let count = self.count;
        let more = match &mut self.more {
            Some(m) => m,
            None => Self::grow(&mut self.more),
        };
        let s = &mut more.spread;
        if count == 1 {
            s.base = ts;
        }
        let inv_n = 1.0 / count as f64;
        let t = ts.saturating_sub(s.base) as f64;
        let dt = t - s.mean_t;
        s.mean_t += dt * inv_n;
        s.m2t += dt * (t - s.mean_t);
        let delta = v - s.mean;
        let delta_n = delta * inv_n;
        let m2 = s.m2;
        s.mean += delta_n;
        s.m2 += delta * (v - s.mean);
        s.cxy += dt * (v - s.mean);
        s.sumsq += v * v;
        s.ewma = if count == 1 {
            v
        } else {
            up.alpha * v + (1.0 - up.alpha) * s.ewma
        };
        if let Some(extra) = &mut more.extra {
            extra.add(v, count, delta, delta_n, m2);
        }
    }

    /// The totals so far as an [`Acc`] (a copy: allocates only for extra state).
    pub fn to_acc(&self) -> Acc {
        self.acc_with(self.extra().map(|e| Box::new(e.clone())))
    }

    /// The totals so far as an [`Acc`] holding `extra`.
    fn acc_with(&self, extra: Option<Box<Extra>>) -> Acc {
        let s = self.spread();
        Acc {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            first: self.first,
            first_ts: self.first_ts,
            last: self.last,
            last_ts: self.last_ts,
            mean: s.mean,
            m2: s.m2,
            sumsq: s.sumsq,
            ewma: s.ewma,
            base: s.base,
            mean_t: s.mean_t,
            m2t: s.m2t,
            cxy: s.cxy,
            extra,
        }
    }

    /// Returns the totals so far and starts over, empty, as [`Acc::take`] does: the extra
    /// state moves out (a fresh one takes its place), the other words are reset in place.
    pub fn take(&mut self) -> Acc {
        // The totals are read before the extra state moves out and the spread is reset.
        let mut acc = self.acc_with(None);
        acc.extra = self.more.as_mut().and_then(|m| {
            m.spread = Spread::EMPTY;
            let fresh = m.extra.as_ref().map(|e| Box::new(e.fresh()));
            std::mem::replace(&mut m.extra, fresh)
        });
        let more = self.more.take();
        *self = InlineAcc {
            more,
            ..InlineAcc::EMPTY
        };
        acc
    }

    /// Takes `a`'s totals (a pane checked out, module `panes`), which keeps no extra state;
    /// the words only full rules update are copied if this rule is full or keeps them.
    pub fn load(&mut self, a: &Acc, up: Update) {
        self.count = a.count;
        self.sum = a.sum;
        self.min = a.min;
        self.max = a.max;
        self.first = a.first;
        self.first_ts = a.first_ts;
        self.last = a.last;
        self.last_ts = a.last_ts;
        let more = match &mut self.more {
            Some(m) => m,
            None if up.lean => return,
            None => Self::grow(&mut self.more),
        };
        more.spread = Spread::of(a);
    }

    /// Writes these totals into `a` (a pane checked back in): the words not kept are left
    /// as they are, which is what they were when [`InlineAcc::load`] read them.
    pub fn store(&self, a: &mut Acc) {
        a.count = self.count;
        a.sum = self.sum;
        a.min = self.min;
        a.max = self.max;
        a.first = self.first;
        a.first_ts = self.first_ts;
        a.last = self.last;
        a.last_ts = self.last_ts;
        if let Some(m) = &self.more {
            let s = m.spread;
            (a.mean, a.m2, a.sumsq, a.ewma) = (s.mean, s.m2, s.sumsq, s.ewma);
            (a.base, a.mean_t, a.m2t, a.cxy) = (s.base, s.mean_t, s.m2t, s.cxy);
        }
    }

    /// [`Acc::ewma`].
    pub fn ewma(&self) -> f64 {
        self.spread().ewma
    }

    /// Bytes owned on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.more.as_ref().map_or(0, |m| {
            size_of::<More>() + m.extra.as_ref().map_or(0, |e| e.heap_bytes())
        })
    }

    /// The most bytes it owns for a rule of `spec`'s kind beyond the extra state (what
    /// [`Acc::new`] allocates): the words a full rule updates, or the pointer's target
    /// holding the extra state.
    pub fn more_bytes(spec: &super::AccSpec) -> usize {
        if spec.lean && !spec.any() {
            0
        } else {
            size_of::<More>()
        }
    }

    /// [`Acc::set_plan`].
    pub fn set_plan(&mut self, plan: Option<&Arc<FftPlan>>) {
        if let (Some(m), Some(plan)) = (&mut self.more, plan)
            && let Some(e) = &mut m.extra
            && let Some(f) = &mut e.frames
        {
            f.set_plan(plan);
        }
    }

    pub const EMPTY: InlineAcc = InlineAcc {
        count: Acc::EMPTY.count,
        sum: Acc::EMPTY.sum,
        min: Acc::EMPTY.min,
        max: Acc::EMPTY.max,
        first: Acc::EMPTY.first,
        first_ts: Acc::EMPTY.first_ts,
        last: Acc::EMPTY.last,
        last_ts: Acc::EMPTY.last_ts,
        more: None,
    };
}

/// Keeps what `a` holds: the words only full rules update are dropped when they are
/// [`Acc::EMPTY`]'s (a lean rule's, or a full rule's before its first sample: it allocates
/// them again then), so a lean rule's window read from a checkpoint allocates nothing.
impl From<Acc> for InlineAcc {
    fn from(a: Acc) -> InlineAcc {
        let spread = Spread::of(&a);
        let more = (a.extra.is_some() || !spread.is_empty()).then(|| {
            Box::new(More {
                spread,
                extra: a.extra,
            })
        });
        InlineAcc {
            count: a.count,
            sum: a.sum,
            min: a.min,
            max: a.max,
            first: a.first,
            first_ts: a.first_ts,
            last: a.last,
            last_ts: a.last_ts,
            more,
        }
    }
}

/// Compares the [`Acc`]s they stand for, as `Acc`'s derived `==` does.
impl PartialEq for InlineAcc {
    fn eq(&self, o: &InlineAcc) -> bool {
        self.count == o.count
            && self.sum == o.sum
            && self.min == o.min
            && self.max == o.max
            && self.first == o.first
            && self.first_ts == o.first_ts
            && self.last == o.last
            && self.last_ts == o.last_ts
            && self.spread() == o.spread()
            && self.extra() == o.extra()
    }
}

/// [`Acc`]'s stored form, borrowed: the same fields in the same order, so postcard writes
/// the same bytes as for the `Acc` this stands for (checked by a unit test).
#[derive(Serialize)]
#[serde(rename = "Acc")]
struct AccRef<'a> {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: f64,
    first_ts: i64,
    last: f64,
    last_ts: i64,
    mean: f64,
    m2: f64,
    sumsq: f64,
    ewma: f64,
    base: i64,
    mean_t: f64,
    m2t: f64,
    cxy: f64,
    extra: Option<&'a Extra>,
}

impl<'a> AccRef<'a> {
    /// `a`'s stored form, with `extra` as its extra state.
    fn of(a: &Acc, extra: Option<&'a Extra>) -> AccRef<'a> {
        AccRef {
            count: a.count,
            sum: a.sum,
            min: a.min,
            max: a.max,
            first: a.first,
            first_ts: a.first_ts,
            last: a.last,
            last_ts: a.last_ts,
            mean: a.mean,
            m2: a.m2,
            sumsq: a.sumsq,
            ewma: a.ewma,
            base: a.base,
            mean_t: a.mean_t,
            m2t: a.m2t,
            cxy: a.cxy,
            extra,
        }
    }
}

impl Serialize for Acc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AccRef::of(self, self.extra.as_deref()).serialize(s)
    }
}

impl Serialize for InlineAcc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The totals as an `Acc` without its extra state (no allocation), which is borrowed.
        AccRef::of(&self.acc_with(None), self.extra()).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::AccSpec;
    use crate::event::Aggregate;
    use proptest::prelude::*;

    /// Every field, bit for bit (NaN included).
    fn bits(a: &Acc) -> Vec<u64> {
        let f = [
            a.sum, a.min, a.max, a.first, a.last, a.mean, a.m2, a.sumsq, a.ewma, a.mean_t, a.m2t,
            a.cxy,
        ];
        let mut v: Vec<u64> = f.iter().map(|x| x.to_bits()).collect();
        v.extend([a.count, a.first_ts as u64, a.last_ts as u64, a.base as u64]);
        v
    }

    fn spec(lean: bool, moments: bool) -> AccSpec {
        AccSpec {
            lean,
            moments,
            ..AccSpec::default()
        }
    }

    /// The size this module exists for; a regression shows here first.
    #[test]
    fn it_is_nine_words() {
        assert_eq!(size_of::<InlineAcc>(), 72);
        assert_eq!(size_of::<Acc>(), 136);
    }

    #[test]
    fn a_lean_rule_allocates_nothing() {
        let up = Update {
            alpha: 0.2,
            lean: true,
        };
        let mut a = InlineAcc::from(Acc::new(&spec(true, false)));
        for i in 0..10 {
            a.add(i, i as f64, up);
        }
        assert_eq!(a.heap_bytes(), 0);
        assert_eq!(a.take().get(Aggregate::Max, 1.0), 9.0);
        assert_eq!(a.heap_bytes(), 0);
    }

    proptest! {
        /// Windows of random samples, closed at random points, lean and full, with and
        /// without moments: every total `take` returns is the one `Acc` computes, bit for bit,
        /// and so are the stored bytes of both before each close.
        #[test]
        fn it_is_acc_bit_for_bit(
            samples in prop::collection::vec((-50i64..50, -1e6f64..1e6, any::<bool>()), 0..60),
            lean in any::<bool>(),
            moments in any::<bool>(),
        ) {
            let s = spec(lean && !moments, moments);
            let up = Update { alpha: 0.3, lean: s.lean };
            let mut acc = Acc::new(&s);
            let mut inline = InlineAcc::from(Acc::new(&s));
            for (i, (dt, v, close)) in samples.into_iter().enumerate() {
                let ts = i as i64 * 1_000 + dt;
                acc.add(ts, v, up);
                inline.add(ts, v, up);
                prop_assert_eq!(
                    postcard::to_allocvec(&acc).ok(),
                    postcard::to_allocvec(&inline).ok()
                );
                if close {
                    let (a, b) = (acc.take(), inline.take());
                    prop_assert_eq!(bits(&a), bits(&b));
                    prop_assert_eq!(
                        a.get(Aggregate::Kurtosis, 1.0).to_bits(),
                        b.get(Aggregate::Kurtosis, 1.0).to_bits()
                    );
                }
            }
            prop_assert_eq!(bits(&acc.take()), bits(&inline.take()));
        }
    }

    /// Read back from its stored form, a full rule's window keeps its totals and a lean
    /// one's drops the words it never updates.
    #[test]
    fn stored_form_round_trips() {
        let full = Update {
            alpha: 0.2,
            lean: false,
        };
        let mut a = InlineAcc::EMPTY;
        a.add(5, 2.0, full);
        a.add(7, 4.0, full);
        let bytes = postcard::to_allocvec(&a).unwrap();
        let back: InlineAcc = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(bits(&back.to_acc()), bits(&a.to_acc()));
        let lean = Update {
            alpha: 0.2,
            lean: true,
        };
        let mut a = InlineAcc::EMPTY;
        a.add(5, 2.0, lean);
        let bytes = postcard::to_allocvec(&a).unwrap();
        let back: InlineAcc = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.heap_bytes(), 0);
        assert_eq!(bits(&back.to_acc()), bits(&a.to_acc()));
    }
}
