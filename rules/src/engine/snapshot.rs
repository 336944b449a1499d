//! The engine side of checkpoints (module `snapshot` for the format and its guarantees):
//! which series changed since the last checkpoint, encoding their records, and putting a
//! checkpoint's state back into a fresh engine.
//!
//! Dirty tracking costs the per-sample path one flag test per series touched (the sample's
//! own, and each group it feeds); `advance` marks a series when it closes one of its windows,
//! closes a window of one of its peer windows, or wakes one of its detectors.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Engine, MoreAt, Slot, share};
use crate::agg::{Acc, Closed};
use crate::alert::Lifecycle;
use crate::detect::Detector;
use crate::incident::Layer;
use crate::snapshot::{Checkpoint, RestoreReport, SnapshotError, decode, encode, fingerprint};
use crate::window::Win;

/// The engine-wide record.
#[derive(serde::Serialize, serde::Deserialize)]
struct GlobalRec {
    /// Every rule's fingerprint and name, in rule order.
    rules: Vec<(u64, Arc<str>)>,
    /// The newest sample timestamp pushed.
    newest: i64,
    /// Fingerprint of the `fuse:`/`incidents:` sections, the alert layer's clock and state.
    layer: (u64, i64, Layer),
}

/// One series' (or group's) record, as written (borrowing the engine's state)...
#[derive(serde::Serialize)]
struct SeriesOut<'a> {
    device: &'a str,
    metric: &'a str,
    group: bool,
    newest: i64,
    slots: Vec<SlotOut<'a>>,
    peers: Vec<PeerOut<'a>>,
}

#[derive(serde::Serialize)]
struct SlotOut<'a> {
    rule: u64,
    raised: bool,
    /// `None` for a direct slot (a detector rule without a window has no window state).
    win: Option<&'a Win>,
    prev: Option<&'a Closed>,
    life: Option<&'a Lifecycle>,
    det: Option<&'a Detector>,
    lets: Option<&'a crate::expr::LetMemory>,
}

#[derive(serde::Serialize)]
struct PeerOut<'a> {
    rule: u64,
    win: &'a Win,
    starts: &'a VecDeque<i64>,
    values: &'a VecDeque<f64>,
}

/// ...and as read back: the same fields, owned, in the same order (postcard's encoding of
/// `&T`, `Box<T>` and `T` is the same).
#[derive(serde::Deserialize)]
struct SeriesIn {
    device: Box<str>,
    metric: Box<str>,
    group: bool,
    newest: i64,
    slots: Vec<SlotIn>,
    peers: Vec<PeerIn>,
}

#[derive(serde::Deserialize)]
struct SlotIn {
    rule: u64,
    raised: bool,
    win: Option<Win>,
    prev: Option<Box<Closed>>,
    life: Option<Box<Lifecycle>>,
    det: Option<Detector>,
    lets: Option<Box<crate::expr::LetMemory>>,
}

#[derive(serde::Deserialize)]
struct PeerIn {
    rule: u64,
    win: Win,
    starts: VecDeque<i64>,
    values: VecDeque<f64>,
}

impl Engine {
    /// Marks series `id` changed since the last checkpoint.
    #[inline]
    pub(super) fn touch(&mut self, id: u32) {
        if let Some(s) = self.series.get_mut(id as usize)
            && !s.dirty
        {
            s.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Each rule's fingerprint, in rule order (module `snapshot`).
    fn fingerprints(&self) -> Vec<u64> {
        self.rules
            .rules
            .iter()
            .map(|r| fingerprint(&[&r.name, &r.definition]))
            .collect()
    }

    /// The state changed since the previous checkpoint (every series for the first one, and
    /// after a reload or restore), encoded; see module `snapshot`. Pure: the caller stores it.
    /// Holds every changed series' record at once; [`Engine::checkpoint_chunks`] gives the
    /// same records a chunk at a time.
    pub fn checkpoint(&mut self) -> Checkpoint {
        let mut chunks = self.checkpoint_chunks(usize::MAX);
        let series = chunks.by_ref().flatten().collect();
        Checkpoint {
            full: chunks.full(),
            global: chunks.global().to_vec(),
            series,
        }
    }

    /// The records of [`Engine::checkpoint`], a chunk of at most about `max_bytes` of
    /// encoded state at a time (at least one series per chunk), in id order: a caller that
    /// stores each chunk before asking for the next holds one chunk of encoded state rather
    /// than a second copy of the engine's (issue 19: at 10,000 series that copy was most of
    /// the agent's peak RSS; docs/footprint.md). The chunks borrow the engine, so it cannot
    /// change between them: together they are one consistent checkpoint. The changed set is
    /// taken when this is called: dropping the chunks before the last one loses the rest of
    /// this checkpoint, so a caller that cannot store it all should follow with
    /// [`Engine::checkpoint_full_next`].
    pub fn checkpoint_chunks(&mut self, max_bytes: usize) -> CheckpointChunks<'_> {
        let fps = self.fingerprints();
        let full = self.full_checkpoint;
        let mut ids = std::mem::take(&mut self.dirty);
        if full {
            ids = (0..self.series.len())
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
        } else {
            ids.sort_unstable();
        }
        for &id in &ids {
            if let Some(s) = self.series.get_mut(id as usize) {
                s.dirty = false;
            }
        }
        self.full_checkpoint = false;
        let global = GlobalRec {
            rules: fps
                .iter()
                .zip(&self.rules.rules)
                .map(|(fp, r)| (*fp, r.name.clone()))
                .collect(),
            newest: self.newest,
            layer: (
                fingerprint(&[&self.alerts.definition]),
                self.alerts.clock,
                self.alerts.layer.clone(),
            ),
        };
        CheckpointChunks {
            global: encode(&global),
            engine: self,
            fps,
            ids: ids.into_iter(),
            full,
            max_bytes,
        }
    }

    /// Makes the next checkpoint full (every series, replacing what the store holds): for a
    /// caller whose last checkpoint was not stored, so that series it held are not left out
    /// of the next one.
    pub fn checkpoint_full_next(&mut self) {
        self.full_checkpoint = true;
    }

    /// Series `id`'s record, or `None` for an id the engine does not have.
    fn encode_series(&self, id: u32, fps: &[u64]) -> Option<Vec<u8>> {
        let s = self.series.get(id as usize)?;
        let range = s.slots();
        let slots = self.slots[range.clone()]
            .iter()
            .zip(range)
            .map(|(slot, at)| {
                let more = u32::try_from(at).ok().and_then(|at| self.mores.get(&at));
                SlotOut {
                    rule: fps.get(slot.rule as usize).copied().unwrap_or(0),
                    raised: slot.raised,
                    win: self.wins.get(slot.win as usize),
                    prev: more.and_then(|m| m.prev.as_deref()),
                    life: more.and_then(|m| m.life.as_deref()),
                    det: self.dets.get(slot.det as usize),
                    lets: more.and_then(|m| m.lets.as_deref()),
                }
            })
            .collect();
        let peers = self.peers[s.peers()]
            .iter()
            .map(|p| PeerOut {
                rule: fps.get(p.rule as usize).copied().unwrap_or(0),
                win: &p.win,
                starts: &p.starts,
                values: &p.values,
            })
            .collect();
        let rec = SeriesOut {
            device: &s.device,
            metric: &s.metric,
            group: s.group,
            newest: s.newest,
            slots,
            peers,
        };
        Some(encode(&rec))
    }

    /// Puts the state of `checkpoint` back into this engine, which must not have interned a
    /// series yet (call [`Engine::set_labels`] first). Series are interned again in their old
    /// order, so they get their old ids when the rules are unchanged. Each slot whose rule's
    /// fingerprint is in the checkpoint gets its state back; other rules start fresh. On an
    /// error the engine is left as it was (fresh).
    pub fn restore(&mut self, checkpoint: &Checkpoint) -> Result<RestoreReport, SnapshotError> {
        if !self.series.is_empty() {
            return Err(SnapshotError::NotFresh);
        }
        let global: GlobalRec = decode(&checkpoint.global, &|| "engine".into())?;
        let mut records = Vec::with_capacity(checkpoint.series.len());
        for (id, bytes) in &checkpoint.series {
            let rec: SeriesIn = decode(bytes, &|| format!("series {id}"))?;
            records.push((*id, rec));
        }
        records.sort_by_key(|(id, _)| *id);

        let fps = self.fingerprints();
        let mut report = RestoreReport::default();
        let now: HashMap<u64, ()> = fps.iter().map(|f| (*f, ())).collect();
        let names: HashMap<&str, ()> = self.rules.rules.iter().map(|r| (&*r.name, ())).collect();
        for (fp, name) in &global.rules {
            if now.contains_key(fp) {
                report.kept.push(name.clone());
            } else if names.contains_key(&**name) {
                report.changed.push(name.clone());
            } else {
                report.removed.push(name.clone());
            }
        }
        // A changed rule's slot keeps only `raised`: found by the old fingerprint's name.
        let old_name: HashMap<u64, &str> = global.rules.iter().map(|(f, n)| (*f, &**n)).collect();

        // In id order, so ids come out as before: groups are interned by their first member,
        // a device's series for fused alerts and incidents (metric `*`, no slot) by itself.
        for (_, rec) in &records {
            let refused = if !rec.group {
                self.series(&rec.device, &rec.metric).is_err()
            } else if &*rec.metric == "*" && rec.slots.is_empty() && self.alerts.active {
                self.device_series(&rec.device).is_none()
            } else {
                false
            };
            report.series_refused += usize::from(refused);
        }
        // Which engine series each record is: the same id when its name matches (always, for
        // unchanged rules), else the first series of that name.
        let mut by_name: HashMap<(bool, &str, &str), Vec<usize>> = HashMap::new();
        for (i, s) in self.series.iter().enumerate() {
            by_name
                .entry((s.group, &s.device, &s.metric))
                .or_default()
                .push(i);
        }
        let mut placed = Vec::with_capacity(records.len());
        for (id, rec) in &records {
            let same = self.series.get(*id as usize).is_some_and(|s| {
                s.group == rec.group && *s.device == *rec.device && *s.metric == *rec.metric
            });
            let at = if same {
                Some(*id as usize)
            } else {
                by_name
                    .get(&(rec.group, &*rec.device, &*rec.metric))
                    .and_then(|v| v.first().copied())
            };
            placed.push(at);
        }
        drop(by_name);
        for ((_, rec), at) in records.into_iter().zip(placed) {
            let Some(at) = at else { continue };
            self.install(at, rec, &fps, &old_name);
            report.series += 1;
        }

        let (layer_fp, clock, layer) = global.layer;
        if layer_fp == fingerprint(&[&self.alerts.definition]) {
            self.alerts.layer = layer;
            self.alerts.clock = clock;
        }
        self.newest = global.newest;
        // Members' ids may have moved with changed rules: register them again.
        self.register_all_members();
        self.next_deadline = i64::MIN;
        self.alerts.next = i64::MIN;
        self.full_checkpoint = true;
        Ok(report)
    }

    /// Drops, from now on, each series' samples at or before the newest one it had when it
    /// was checkpointed, until a newer one arrives: after a restore, those are redeliveries
    /// (a broker sends again what was not acknowledged, and an ack can be lost between the
    /// checkpoint's commit and the broker) and their state is already in the restored
    /// windows. Counted in `EngineStats::redelivered_dropped`. For in-order sources; a
    /// sample legitimately older than its series' newest (within a window's lateness) that
    /// arrives first after a restart is dropped too.
    pub fn guard_redeliveries(&mut self) {
        for s in &mut self.series {
            // A series with no sample yet has nothing to guard.
            s.guarded = s.newest != i64::MIN;
        }
    }

    /// Whether [`Engine::push`] would drop this sample as a redelivery (see
    /// [`Engine::guard_redeliveries`]). A caller that logs the engine's input
    /// ([`crate::InputLog`]) must not log such a sample: replayed, it would be counted.
    pub fn is_redelivery(&self, s: &crate::Sample) -> bool {
        self.series
            .get(s.series.0 as usize)
            .is_some_and(|series| series.guarded && s.ts <= series.newest)
    }

    /// Puts one series record's state into the engine's series `at`.
    fn install(&mut self, at: usize, rec: SeriesIn, fps: &[u64], old_name: &HashMap<u64, &str>) {
        let Some(series) = self.series.get(at) else {
            return;
        };
        let (slots, peers) = (series.slots(), series.peers());
        self.series[at].newest = rec.newest;
        let mut saved: Vec<Option<SlotIn>> = rec.slots.into_iter().map(Some).collect();
        // Each slot's saved state, where the checkpoint holds one for its rule as it is now.
        let picks: Vec<Option<SlotIn>> = self.slots[slots.clone()]
            .iter()
            .map(|slot| {
                let fp = fps.get(slot.rule as usize).copied().unwrap_or(0);
                saved
                    .iter_mut()
                    .find(|s| s.as_ref().is_some_and(|s| s.rule == fp))
                    .and_then(Option::take)
            })
            .collect();
        self.unshare_differing(slots.clone(), &picks);
        let first = slots.start;
        for (k, (slot, pick)) in self.slots[slots].iter_mut().zip(picks).enumerate() {
            let Some(rule) = self.rules.rules.get(slot.rule as usize) else {
                continue;
            };
            if let Some(s) = pick {
                let tables = (&mut self.dets[..], &mut self.wins[..]);
                let more = MoreAt::new(&mut self.mores, first + k);
                put_slot(slot, s, rule.acc.fft.as_ref(), tables, more);
            } else if let Some(s) = saved.iter().flatten().find(|s| {
                old_name
                    .get(&s.rule)
                    .is_some_and(|n| *n == &*rule.name && !fps.contains(&s.rule))
            }) {
                slot.raised = s.raised;
            }
        }
        let mut saved: Vec<Option<PeerIn>> = rec.peers.into_iter().map(Some).collect();
        for p in &mut self.peers[peers] {
            let fp = fps.get(p.rule as usize).copied().unwrap_or(0);
            if let Some(s) = saved
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|s| s.rule == fp))
                .and_then(Option::take)
            {
                p.win = s.win;
                p.starts = s.starts;
                p.values = s.values;
            }
        }
    }
}

impl Engine {
    /// Before a series' slots take their saved states (`picks`, in slot order): a window
    /// state the slots `range` share stays shared only if the checkpoint holds the same
    /// state, to the bit, for each of them (module `share`); a slot for which it holds
    /// another, or none, gets a copy of its own to restore into.
    fn unshare_differing(&mut self, range: std::ops::Range<usize>, picks: &[Option<SlotIn>]) {
        // Encoded as the checkpoint encodes them (the same code: no second copy of the
        // serializer in the binary).
        let saved = |k: usize| {
            let win = picks.get(k).and_then(|p| p.as_ref()?.win.as_ref());
            win.map(encode)
        };
        let leaders = share::leaders(&self.slots[range.clone()]);
        for (k, leader) in leaders.into_iter().enumerate() {
            let Some(l) = leader else { continue };
            if saved(k) == saved(l) {
                continue;
            }
            let Some(slot) = self.slots.get_mut(range.start + k) else {
                continue;
            };
            // A restore starts from a fresh engine: the state it had is a fresh one too.
            if let Some(rule) = self.rules.rules.get(slot.rule as usize)
                && let Ok(at) = u32::try_from(self.wins.len())
            {
                self.wins.push(Win::new(rule.window, Acc::new(&rule.acc)));
                slot.win = at;
            }
        }
        share::set_roles(&mut self.slots[range]);
    }
}

/// One slot's saved state into `slot` (same rule); FFT plans come from the rule.
fn put_slot(
    slot: &mut Slot,
    s: SlotIn,
    plan: Option<&Arc<crate::spectrum::FftPlan>>,
    (dets, wins): (&mut [Detector], &mut [Win]),
    more: MoreAt<'_>,
) {
    slot.raised = s.raised;
    if let (Some(w), Some(saved)) = (wins.get_mut(slot.win as usize), s.win) {
        *w = saved;
        w.set_plan(plan);
    }
    let mut prev = s.prev;
    if let Some(p) = &mut prev {
        p.acc.set_plan(plan);
    }
    let MoreAt { mores, at } = more;
    if mores.contains_key(&at) || prev.is_some() || s.life.is_some() || s.lets.is_some() {
        let more = mores.entry(at).or_default();
        more.prev = prev;
        more.life = s.life;
        more.lets = s.lets;
    }
    if let (Some(d), Some(saved)) = (dets.get_mut(slot.det as usize), s.det) {
        *d = saved;
    }
}

/// One checkpoint, a chunk of series records at a time ([`Engine::checkpoint_chunks`]).
pub struct CheckpointChunks<'a> {
    engine: &'a Engine,
    fps: Vec<u64>,
    ids: std::vec::IntoIter<u32>,
    full: bool,
    global: Vec<u8>,
    max_bytes: usize,
}

impl CheckpointChunks<'_> {
    /// As [`Checkpoint::full`]: every series is in the chunks and the store should drop any
    /// record not in them.
    pub fn full(&self) -> bool {
        self.full
    }

    /// The engine-wide record ([`Checkpoint::global`]).
    pub fn global(&self) -> &[u8] {
        &self.global
    }

    /// Series records not yet returned.
    pub fn remaining(&self) -> usize {
        self.ids.len()
    }
}

impl Iterator for CheckpointChunks<'_> {
    /// `(series id, record)` in id order, as in [`Checkpoint::series`].
    type Item = Vec<(u32, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        while bytes < self.max_bytes {
            let Some(id) = self.ids.next() else { break };
            if let Some(rec) = self.engine.encode_series(id, &self.fps) {
                bytes = bytes.saturating_add(rec.len());
                chunk.push((id, rec));
            }
        }
        (!chunk.is_empty()).then_some(chunk)
    }
}
