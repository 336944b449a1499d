//! How the uplink turns fetched records into MQTT messages, as one pure function: the feeder
//! publishes what [`Grouper::group`] returns, and the benches measure the same function, so
//! the figures are the messages the agent sends.
//!
//! Without batching each record is one message (its JSON, with `id`, `seq` and `gateway`
//! spliced in). With `uplink.batch` or `format: binary`, consecutive records of one lane go
//! into one message until the batch's record or byte limit; a change of lane always starts a
//! new message, so a batch never mixes priorities and lane order holds. A record that cannot
//! be encoded is left out and reported, never sent half-formed.

use super::UplinkConfig;
use super::batch::Batcher;
use super::wire::Encoder;
use crate::support::record::Record;

/// One MQTT message: a record alone or a batch of one lane's records, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub payload: Vec<u8>,
    /// The records it carries (deleted from the outbox once the broker acknowledges it).
    pub records: Vec<&'a Record>,
    /// A batch (acknowledged as a unit), even of one record; `false` for a single record.
    pub batch: bool,
}

/// What a run of records becomes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouped<'a> {
    /// In publishing order.
    pub messages: Vec<Message<'a>>,
    /// Records that cannot be sent, and why (the uplink deletes and counts them).
    pub unpublishable: Vec<(&'a Record, &'static str)>,
}

/// The uplink's encoding settings: single JSON messages, or a batcher.
#[derive(Debug, Clone)]
pub struct Grouper {
    encoder: Encoder,
    batcher: Option<Batcher>,
}

impl Grouper {
    pub fn new(cfg: &UplinkConfig, gateway_id: &str) -> Grouper {
        Grouper {
            encoder: Encoder::new(gateway_id),
            batcher: Batcher::new(cfg.format, cfg.batch.clone(), gateway_id),
        }
    }

    /// Records one message carries at most.
    pub fn per_message(&self) -> usize {
        self.batcher.as_ref().map_or(1, |b| b.cfg.max_records.get())
    }

    /// The messages `records` (in fetch order) become.
    pub fn group<'a>(&self, records: &'a [Record]) -> Grouped<'a> {
        let mut out = Grouped::default();
        let mut open = Batch::default();
        for record in records {
            let encoded = self
                .encoder
                .encode(record)
                .and_then(|json| match &self.batcher {
                    Some(b) => b.fragment(record, json),
                    None => Ok(json),
                });
            let payload = match encoded {
                Ok(p) => p,
                Err(reason) => {
                    out.unpublishable.push((record, reason));
                    continue;
                }
            };
            let Some(batcher) = &self.batcher else {
                out.messages.push(Message {
                    topic: &record.topic,
                    payload,
                    records: vec![record],
                    batch: false,
                });
                continue;
            };
            let full = open.records.last().is_some_and(|last| {
                last.lane != record.lane
                    || !batcher.fits(open.fragments.len(), open.bytes, payload.len())
            });
            if full {
                out.messages
                    .extend(std::mem::take(&mut open).finish(batcher));
            }
            open.bytes += payload.len();
            open.fragments.push(payload);
            open.records.push(record);
        }
        if let Some(batcher) = &self.batcher {
            out.messages.extend(open.finish(batcher));
        }
        out
    }
}

/// A batch being gathered: one lane, in order.
#[derive(Default)]
struct Batch<'a> {
    fragments: Vec<Vec<u8>>,
    bytes: usize,
    records: Vec<&'a Record>,
}

impl<'a> Batch<'a> {
    /// The batch's message; `None` when it holds nothing.
    fn finish(self, batcher: &Batcher) -> Option<Message<'a>> {
        let last = *self.records.last()?;
        Some(Message {
            topic: &last.topic,
            payload: batcher.finish(&self.fragments),
            records: self.records,
            batch: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::support::payload::PAYLOAD_V1;
    use crate::support::record::Lane;
    use crate::uplink::{BatchConfig, Format};

    fn record(id: u64, lane: Lane) -> Record {
        let mut payload = vec![PAYLOAD_V1];
        payload.extend_from_slice(format!(r#"{{"kind":"window","n":{id}}}"#).as_bytes());
        Record {
            id,
            lane,
            topic: format!("weir/gw/{lane}"),
            created_at: 0,
            payload,
        }
    }

    fn broken(id: u64, lane: Lane) -> Record {
        Record {
            payload: vec![9, b'{', b'}'],
            ..record(id, lane)
        }
    }

    fn batching(max_records: usize) -> UplinkConfig {
        UplinkConfig {
            batch: Some(BatchConfig {
                max_records: NonZeroUsize::new(max_records).unwrap(),
                ..BatchConfig::default()
            }),
            ..UplinkConfig::default()
        }
    }

    fn ids(m: &Message<'_>) -> Vec<u64> {
        m.records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn without_batching_each_record_is_its_own_message() {
        let records = [record(1, Lane::Alerts), record(2, Lane::Aggregates)];
        let grouper = Grouper::new(&UplinkConfig::default(), "gw");
        assert_eq!(grouper.per_message(), 1);
        let grouped = grouper.group(&records);
        assert!(grouped.unpublishable.is_empty());
        assert_eq!(grouped.messages.len(), 2);
        let first = &grouped.messages[0];
        assert!(!first.batch);
        assert_eq!(first.topic, "weir/gw/alerts");
        assert_eq!(
            first.payload,
            br#"{"id":"gw:1","seq":1,"gateway":"gw","kind":"window","n":1}"#
        );
        assert_eq!(ids(&grouped.messages[1]), [2]);
    }

    #[test]
    fn batches_hold_one_lane_up_to_the_record_limit() {
        let records = [
            record(1, Lane::Alerts),
            record(2, Lane::Alerts),
            record(3, Lane::Alerts),
            record(4, Lane::Aggregates),
            record(5, Lane::Aggregates),
        ];
        let grouper = Grouper::new(&batching(2), "gw");
        assert_eq!(grouper.per_message(), 2);
        let grouped = grouper.group(&records);
        let split: Vec<Vec<u64>> = grouped.messages.iter().map(ids).collect();
        assert_eq!(
            split,
            [vec![1, 2], vec![3], vec![4, 5]],
            "lane change splits"
        );
        assert!(grouped.messages.iter().all(|m| m.batch));
        assert_eq!(grouped.messages[2].topic, "weir/gw/aggregates");
        // A JSON batch: version, no compression, then the records' messages as an array.
        let first = &grouped.messages[0].payload;
        assert_eq!(first[1], 0, "uncompressed");
        let array: serde_json::Value = serde_json::from_slice(&first[2..]).unwrap();
        assert_eq!(array[0]["seq"], 1);
        assert_eq!(array[1]["seq"], 2);
    }

    #[test]
    fn an_unpublishable_record_is_left_out_and_reported_without_splitting_its_batch() {
        let records = [
            record(1, Lane::Alerts),
            broken(2, Lane::Alerts),
            record(3, Lane::Alerts),
        ];
        let grouped = Grouper::new(&batching(10), "gw").group(&records);
        assert_eq!(grouped.messages.len(), 1);
        assert_eq!(ids(&grouped.messages[0]), [1, 3]);
        assert_eq!(grouped.unpublishable.len(), 1);
        assert_eq!(grouped.unpublishable[0].0.id, 2);

        let single = Grouper::new(&UplinkConfig::default(), "gw").group(&records);
        assert_eq!(single.messages.len(), 2);
        assert_eq!(single.unpublishable[0].0.id, 2);
    }

    #[test]
    fn binary_without_a_batch_section_sends_batches_of_one() {
        let cfg = UplinkConfig {
            format: Format::Binary,
            ..UplinkConfig::default()
        };
        let records = [record(1, Lane::Alerts), record(2, Lane::Alerts)];
        let grouped = Grouper::new(&cfg, "gw").group(&records);
        let split: Vec<Vec<u64>> = grouped.messages.iter().map(ids).collect();
        assert_eq!(split, [vec![1], vec![2]]);
        assert!(grouped.messages.iter().all(|m| m.batch));
    }

    #[test]
    fn nothing_in_nothing_out() {
        let grouped = Grouper::new(&batching(10), "gw").group(&[]);
        assert_eq!(grouped, Grouped::default());
    }
}
