//! The per-sample path: `push` and `advance` walking the slots, and the helpers they share.
//!
//! Apart from the types, interning and construction in `engine.rs` because this is the code a
//! gateway runs per sample, what the throughput bench measures, and where a change costs
//! samples/s. rustc compiles the `Engine` methods here (`push`, `advance`) with the rest of
//! `Engine`'s methods, but the free functions in a codegen unit of their own, so without LTO
//! their calls would cross units: the helpers are `#[inline]` (without it a build with 16
//! codegen units copied each `Sample` before every `feed` call, 4.5% more instructions in
//! `push`, `feed` and `close`; release builds use one unit and fat LTO either way).

use super::peers::PeerView;
use super::share::{Handed, Share};
use super::{Engine, EngineStats, More, MoreAt, Mores, NO_WIN, Slot};
use crate::agg::{DEFAULT_EWMA_ALPHA, Env, Update};
use crate::alert::{self, Target};
use crate::detect::{Detector, Verdict};
use crate::event::{Aggregate, Event, EventKind, Sample, SeriesId};
use crate::ruleset::RuleSet;
use crate::window::{Done, Win};

impl Engine {
    /// [`Engine::push`] before the alert layer (`device`): windows and detectors.
    pub(super) fn push_windows(&mut self, s: Sample, out: &mut Vec<Event>) {
        if let Some(series) = self.series.get_mut(s.series.0 as usize) {
            if series.guarded {
                if s.ts <= series.newest {
                    self.stats.redelivered_dropped += 1;
                    return;
                }
                series.guarded = false;
            }
            series.newest = series.newest.max(s.ts);
        }
        if s.value.is_nan() {
            self.stats.nan_dropped += 1;
            self.nan_to_detectors(s, out);
            return;
        }
        if self.series.get(s.series.0 as usize).is_none() {
            return;
        }
        self.newest = self.newest.max(s.ts);
        self.touch_with_groups(s.series.0);
        self.feed_peers(s.series, s.ts, s.value);
        let handed = &mut self.handed;
        let series = &self.series[s.series.0 as usize];
        let target = Target {
            id: s.series,
            device: &series.device,
            metric: &series.metric,
        };
        let peers = PeerView {
            index: &self.index,
            series: &self.series,
            peers: &self.peers,
            device: &series.device,
        };
        let mut deadline = self.next_deadline;
        let range = series.slots();
        let mut cx = Cx {
            rules: &self.rules,
            stats: &mut self.stats,
            dets: &mut self.dets,
            wins: &mut self.wins,
            mores: &mut self.mores,
            target,
            peers: &peers,
            s,
            handed: &mut *handed,
            out: &mut *out,
        };
        // An index by counting, not `zip` with the range: the zip was 3 % of the
        // per-sample instructions in `throughput window_kinds tumbling`.
        for (k, slot) in self.slots[range.clone()].iter_mut().enumerate() {
            deadline = deadline.min(feed(&mut cx, slot, range.start + k));
        }
        handed.clear();
        for &g in &self.fwd[series.fwd()] {
            // Group series ids were issued by this engine and hold exactly one slot.
            let Some(group) = self.series.get(g as usize) else {
                continue;
            };
            let target = Target {
                id: SeriesId(g),
                device: &group.device,
                metric: &group.metric,
            };
            let peers = PeerView {
                device: &group.device,
                ..peers
            };
            let range = group.slots();
            // A group series has one slot: nothing to hand over.
            let mut none = Handed::default();
            let mut cx = Cx {
                rules: &self.rules,
                stats: &mut self.stats,
                dets: &mut self.dets,
                wins: &mut self.wins,
                mores: &mut self.mores,
                target,
                peers: &peers,
                s,
                handed: &mut none,
                out: &mut *out,
            };
            for (k, slot) in self.slots[range.clone()].iter_mut().enumerate() {
                deadline = deadline.min(feed(&mut cx, slot, range.start + k));
            }
        }
        self.next_deadline = deadline;
    }

    /// [`Engine::advance`] before the alert layer (`device`): windows and detectors.
    pub(super) fn advance_windows(&mut self, watermark: i64, out: &mut Vec<Event>) {
        self.advance_with(watermark, &mut |_| true, out);
    }

    /// `advance_windows`, with `judge` deciding for each window it closes whether it is
    /// judged (and may restamp it) or dropped.
    fn advance_with(
        &mut self,
        watermark: i64,
        judge: &mut dyn FnMut(&mut Done) -> bool,
        out: &mut Vec<Event>,
    ) {
        if watermark < self.next_deadline {
            return;
        }
        let mut touched = self.advance_peers(watermark);
        let mut next = i64::MAX;
        let handed = &mut self.handed;
        for (id, series) in self.series.iter().enumerate() {
            let range = series.slots();
            let mut changed = false;
            for (k, slot) in self.slots[range.clone()].iter_mut().enumerate() {
                let slot_at = range.start + k;
                let Slot {
                    rule,
                    raised,
                    win,
                    det,
                    share,
                    ..
                } = slot;
                let mores = &mut self.mores;
                let stats = &mut self.stats;
                let rules = &self.rules;
                let mut det = self.dets.get_mut(*det as usize);
                let target = Target {
                    // `id` fits in u32: it was checked when the series was interned.
                    id: SeriesId(id as u32),
                    device: &series.device,
                    metric: &series.metric,
                };
                let peers = PeerView {
                    index: &self.index,
                    series: &self.series,
                    peers: &self.peers,
                    device: &series.device,
                };
                let at = *win;
                if *share == Share::Follows {
                    // Its leader advanced the window and handed over what closed.
                    for done in handed.closed_by(at) {
                        let mut done = done.clone();
                        if !judge(&mut done) {
                            continue;
                        }
                        let more = MoreAt::new(&mut *mores, slot_at);
                        let state = (&mut *raised, more, det.as_deref_mut());
                        close(rules, stats, *rule, state, target, &peers, done, out);
                    }
                } else {
                    let leads = *share == Share::Leads;
                    let win = self.wins.get_mut(at as usize);
                    next = next.min(win.map_or(i64::MAX, |win| {
                        win.advance(watermark, |mut done| {
                            changed = true;
                            if leads {
                                handed.closed(at, &done);
                            }
                            if !judge(&mut done) {
                                return;
                            }
                            let more = MoreAt::new(&mut *mores, slot_at);
                            let state = (&mut *raised, more, det.as_deref_mut());
                            close(rules, stats, *rule, state, target, &peers, done, out);
                        })
                    }));
                }
                if let (Some(d), Some(r)) = (det.as_deref_mut(), rules.rules.get(*rule as usize))
                    && let (Some(spec), Some(a)) = (&r.detect, &r.alert)
                {
                    changed |= d.deadline(&spec.kind) <= watermark;
                    let mut more = MoreAt::new(&mut *mores, slot_at);
                    d.advance(&spec.kind, watermark, &mut |v| {
                        let life = more.life(a);
                        alert::transition(r, a, raised, life, stats, target, v, None, out);
                    });
                }
                next = next.min(det_deadline(rules, *rule, det.as_deref()));
            }
            handed.clear();
            if changed {
                // `id` fits in u32: it was checked when the series was interned.
                touched.push(id as u32);
            }
        }
        touched.into_iter().for_each(|id| self.touch(id));
        self.next_deadline = next;
    }

    /// The input has ended (the end of a replayed file). Every window that ends at or before
    /// the newest sample pushed closes as `advance` to that time would close it. Of the
    /// windows still open, a *complete* one — its series' samples reached to within one
    /// sampling interval of its end (`end − last ≤ (last − first) / (count − 1)`), so it
    /// holds every sample it would have had — is judged as usual but stamped at the newest
    /// sample; every other one is *partial*: dropped, not judged, and counted in
    /// `EngineStats::partial_windows`.
    ///
    /// Why drop partial windows rather than judge them: a window still open when the data
    /// stops holds only part of its span — a 10-minute hopping window may hold the last
    /// 30 s — so its count, sum, rate and spread are of another population than every
    /// window a detector or condition was tuned on, and judging it raises (or clears)
    /// alerts at the end of every recording for no reason in the data. And no event is
    /// ever stamped after the newest sample: a window's event time would otherwise be up to
    /// `size` past the end of the input. (`advance(i64::MAX)` still closes and judges
    /// everything, stamped at each window's end, for callers that want that.) The live
    /// agent never calls this: its input does not end.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let newest = self.newest;
        if newest == i64::MIN {
            return;
        }
        self.advance(newest, out);
        let mut partial = 0u64;
        self.next_deadline = i64::MIN;
        let before = out.len();
        self.advance_with(
            i64::MAX,
            &mut |done| {
                let acc = &done.closed.acc;
                let span = acc.last_ts.saturating_sub(acc.first_ts) as f64;
                let complete = acc.count >= 2
                    && done.end.saturating_sub(acc.last_ts) as f64 <= span / (acc.count - 1) as f64;
                if complete {
                    done.ts = done.ts.min(newest);
                } else {
                    partial += 1;
                }
                complete
            },
            out,
        );
        self.stats.partial_windows += partial;
        self.next_deadline = i64::MAX;
        // Fused alerts and incidents see the last windows' alerts, and the end of the input.
        self.end_alert_layer(before, out);
    }

    /// Marks the sample's series and every group it feeds changed (module `snapshot`).
    #[inline]
    fn touch_with_groups(&mut self, id: u32) {
        self.touch(id);
        let Some(series) = self.series.get(id as usize) else {
            return;
        };
        for k in series.fwd() {
            if let Some(&g) = self.fwd.get(k) {
                self.touch(g);
            }
        }
    }

    /// NaN reaches no window, but a per-sample detector may care (`range` reports it,
    /// `missing` takes it as a sign of life; the others skip it).
    fn nan_to_detectors(&mut self, s: Sample, out: &mut Vec<Event>) {
        if self.series.get(s.series.0 as usize).is_none() {
            return;
        }
        self.touch(s.series.0);
        let series = &self.series[s.series.0 as usize];
        let range = series.slots();
        let target = Target {
            id: s.series,
            device: &series.device,
            metric: &series.metric,
        };
        let mut deadline = self.next_deadline;
        for (slot, at) in self.slots[range.clone()]
            .iter_mut()
            .zip(range)
            .filter(|(slot, _)| slot.win == NO_WIN)
        {
            let det = self.dets.get_mut(slot.det as usize);
            let state = (&mut slot.raised, MoreAt::new(&mut self.mores, at), det);
            let due = feed_direct(
                &self.rules,
                &mut self.stats,
                slot.rule,
                state,
                target,
                s,
                out,
            );
            deadline = deadline.min(due);
        }
        self.next_deadline = deadline;
    }
}

/// What [`feed`] reads and writes besides the slot, the same for every slot of a sample's
/// series: the engine's tables (split borrows) and the sample's context, built once per
/// sample and passed as one pointer (as eight arguments per slot, passing them was a tenth
/// of the per-sample instructions of `throughput window_kinds tumbling`).
struct Cx<'a, 'p> {
    rules: &'a RuleSet,
    stats: &'a mut EngineStats,
    dets: &'a mut [Detector],
    wins: &'a mut [Win],
    mores: &'a mut Mores,
    target: Target<'p>,
    peers: &'a PeerView<'p>,
    s: Sample,
    handed: &'a mut Handed,
    out: &'a mut Vec<Event>,
}

/// Feeds a sample to one slot (the series' own or its group's), the slot at `slot_at`;
/// returns the slot's next deadline. Late samples are counted, and with `late: emit`
/// reported on the sample's own series. A slot sharing its window state (module `share`)
/// takes what its leader handed over in `handed` rather than pushing the sample again.
#[inline]
fn feed(cx: &mut Cx<'_, '_>, slot: &mut Slot, slot_at: usize) -> i64 {
    let Cx {
        rules,
        stats,
        dets,
        wins,
        mores,
        target,
        peers,
        s,
        handed,
        out,
    } = cx;
    // Single references, read once (not through `cx` at every use); `target` and `s` by
    // reference (copied out, they were 3 % of the per-sample instructions).
    let (rules, peers): (&RuleSet, &PeerView<'_>) = (rules, peers);
    let (target, s): (&Target<'_>, &Sample) = (target, s);
    let (stats, dets, wins): (&mut EngineStats, &mut [Detector], &mut [Win]) = (stats, dets, wins);
    let (mores, handed, out): (&mut Mores, &mut Handed, &mut Vec<Event>) = (mores, handed, out);
    // A slot's `More` is looked up only where a window closes or a verdict needs it.
    let Slot {
        rule,
        win,
        det,
        raised,
        share,
        lean,
        emit_late,
    } = slot;
    let mut det = dets.get_mut(*det as usize);
    let at = *win;
    if at == NO_WIN {
        let state = (raised, MoreAt::new(mores, slot_at), det);
        return feed_direct(rules, stats, *rule, state, *target, *s, out);
    }
    let pushed = if *share == Share::Follows {
        for done in handed.closed_by(at) {
            let state = (
                &mut *raised,
                MoreAt::new(mores, slot_at),
                det.as_deref_mut(),
            );
            close(
                rules,
                stats,
                *rule,
                state,
                *target,
                peers,
                done.clone(),
                out,
            );
        }
        match handed.pushed_to(at) {
            Some(pushed) => pushed,
            None => return i64::MAX,
        }
    } else {
        // Every slot but a direct one has its window state (`Slot::new`).
        let Some(win) = wins.get_mut(at as usize) else {
            return i64::MAX;
        };
        // A lean rule never reads the EWMA, so only a full one looks its factor up.
        let alpha = match *lean {
            true => DEFAULT_EWMA_ALPHA,
            false => rules
                .rules
                .get(*rule as usize)
                .map_or(DEFAULT_EWMA_ALPHA, |r| r.ewma_alpha),
        };
        let up = Update { alpha, lean: *lean };
        let leads = *share == Share::Leads;
        let pushed = win.push(s.ts, s.value, up, |done| {
            if leads {
                handed.closed(at, &done);
            }
            let state = (
                &mut *raised,
                MoreAt::new(mores, slot_at),
                det.as_deref_mut(),
            );
            close(rules, stats, *rule, state, *target, peers, done, out);
        });
        if leads {
            handed.pushed(at, pushed);
        }
        pushed
    };
    if !pushed.late
        && let Some(d) = det
    {
        d.observe(*s);
    }
    if pushed.late {
        stats.late_dropped += 1;
        if *emit_late && let Some(rule) = rules.rules.get(*rule as usize) {
            out.push(Event {
                rule: rule.name.clone(),
                series: s.series,
                ts: s.ts,
                kind: EventKind::Late { value: s.value },
            });
        }
    }
    if pushed.overflow {
        stats.window_overflow += 1;
    }
    pushed.deadline
}

/// Split borrows of a slot's alert state: `raised`, its [`More`] (`prev`, `lets`, `life`),
/// `det`.
type SlotState<'a> = (&'a mut bool, MoreAt<'a>, Option<&'a mut Detector>);

/// Feeds a sample straight to a windowless rule's detector; returns when the detector next
/// needs an `advance`.
#[inline]
fn feed_direct(
    rules: &RuleSet,
    stats: &mut EngineStats,
    rule: u32,
    (raised, mut more, det): SlotState<'_>,
    target: Target<'_>,
    s: Sample,
    out: &mut Vec<Event>,
) -> i64 {
    let Some(r) = rules.rules.get(rule as usize) else {
        return i64::MAX;
    };
    let (Some(d), Some(spec), Some(a)) = (det, &r.detect, &r.alert) else {
        return i64::MAX;
    };
    d.feed(&spec.kind, s.ts, s.value, &mut |v| {
        let life = more.life(a);
        alert::transition(r, a, raised, life, stats, target, v, None, out);
    });
    d.deadline(&spec.kind)
}

/// When a slot's detector next needs an `advance` (`i64::MAX`: never, so far).
#[inline]
fn det_deadline(rules: &RuleSet, rule: u32, det: Option<&Detector>) -> i64 {
    match (
        det,
        rules
            .rules
            .get(rule as usize)
            .and_then(|r| r.detect.as_ref()),
    ) {
        (Some(d), Some(spec)) => d.deadline(&spec.kind),
        _ => i64::MAX,
    }
}

/// Emits a closed window's events: Window first, then any alert transition.
#[inline]
#[expect(
    clippy::too_many_arguments,
    reason = "split borrows of the engine and the slot"
)]
fn close(
    rules: &RuleSet,
    stats: &mut EngineStats,
    rule: u32,
    state: SlotState<'_>,
    target: Target<'_>,
    peers: &PeerView<'_>,
    done: Done,
    out: &mut Vec<Event>,
) {
    let (raised, mut more, det) = state;
    let series = target.id;
    stats.windows_closed += 1;
    let rule_index = rule;
    let Some(rule) = rules.rules.get(rule as usize) else {
        return;
    };
    // Per window closed, not per sample: a slot without `More` reads an empty one, and
    // writes nothing to it (`Slot::needs_more`).
    let mut spare = More::default();
    let kept = match Slot::needs_more(rule) {
        true => more.get(),
        false => None,
    };
    let More {
        prev,
        lets: last_lets,
        life,
    } = Slot::more(kept, &mut spare);
    // Empty (no allocation) unless the rule reads other metrics of the device.
    let others: Vec<f64> = if rule.peer_reads.is_empty() {
        Vec::new()
    } else {
        peers.values(rule_index, rule, done.start, done.closed.secs)
    };
    let mut env = Env {
        cur: &done.closed,
        prev: prev.as_deref(),
        others: &others,
        lets: &[],
        prev_lets: last_lets.as_deref().map_or(&[], |m| m.0.as_slice()),
    };
    // Empty (no allocation) unless the rule has `let:` values.
    let mut lets = Vec::new();
    if !rule.lets.is_empty() {
        rule.lets.eval(&env, &mut lets);
        env.lets = &lets;
    }
    if !rule.aggregates.is_empty() {
        out.push(Event {
            rule: rule.name.clone(),
            series,
            ts: done.ts,
            kind: EventKind::Window {
                start: done.start,
                end: done.end,
                values: rule.aggregates.iter().map(|&a| (a, env.get(a))).collect(),
            },
        });
    }
    if let Some(a) = &rule.alert {
        match (&a.condition, &rule.detect, det) {
            (Some(c), _, _) => {
                let (anomalous, value) = c.eval(&env);
                let v = Verdict {
                    ts: done.ts,
                    anomalous,
                    value,
                    score: f64::NAN,
                    forecast: None,
                };
                alert::transition(
                    rule,
                    a,
                    raised,
                    life.as_deref_mut(),
                    stats,
                    target,
                    v,
                    Some(&env),
                    out,
                );
            }
            (None, Some(spec), Some(d)) => {
                let x = spec
                    .value
                    .as_ref()
                    .map_or_else(|| env.get(Aggregate::Mean), |v| v.eval(&env));
                let before = out.len();
                d.feed(&spec.kind, done.ts, x, &mut |v| {
                    alert::transition(
                        rule,
                        a,
                        raised,
                        life.as_deref_mut(),
                        stats,
                        target,
                        v,
                        Some(&env),
                        out,
                    );
                });
                super::device::attach_contributions(d, &spec.kind, &mut out[before..]);
            }
            _ => {}
        }
    }
    if rule.uses_prev() {
        match prev {
            Some(p) => **p = done.closed,
            None => *prev = Some(Box::new(done.closed)),
        }
    }
    if !lets.is_empty() {
        match last_lets {
            Some(m) => m.0 = lets,
            None => *last_lets = Some(Box::new(crate::expr::LetMemory(lets))),
        }
    }
}
