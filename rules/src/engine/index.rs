//! The series index: `(device, metric)` → series id, in 4 bytes per series.
//!
//! Every sample the agent hands over is interned by name first, so the index is read once per
//! sample; it is written once per series. It was a map of maps (`device` → `metric` → id),
//! which at issue 19's 10,000 series over 2,500 devices cost about 80 bytes per series: an
//! inner table per device, sized for growth, and a key in each. The names are already in the
//! series table, so this index keeps only the ids, in one table hashed on both names, and
//! compares a candidate with the names its series holds.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::Series;
use crate::event::SeriesId;

#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    ids: HashTable<SeriesId>,
    /// Keyed per process, as std's maps are: device names come off the network.
    hasher: RandomState,
}

impl SeriesIndex {
    fn hash(&self, device: &str, metric: &str) -> u64 {
        self.hasher.hash_one((device, metric))
    }

    /// The series named `(device, metric)`, if interned; `series` is the engine's table.
    #[inline]
    pub fn get(&self, series: &[Series], device: &str, metric: &str) -> Option<SeriesId> {
        let matches = |id: &SeriesId| {
            series
                .get(id.0 as usize)
                .is_some_and(|s| &*s.device == device && &*s.metric == metric)
        };
        self.ids.find(self.hash(device, metric), matches).copied()
    }

    /// Adds `id`, already pushed to `series` and not yet in the index.
    pub fn insert(&mut self, series: &[Series], id: SeriesId) {
        let Some(s) = series.get(id.0 as usize) else {
            return;
        };
        let hasher = &self.hasher;
        let rehash = |id: &SeriesId| {
            series
                .get(id.0 as usize)
                .map_or(0, |s| hasher.hash_one((&*s.device, &*s.metric)))
        };
        let hash = hasher.hash_one((&*s.device, &*s.metric));
        self.ids.insert_unique(hash, id, rehash);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}
