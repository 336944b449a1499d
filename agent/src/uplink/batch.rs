//! Several records in one MQTT message, optionally compressed, as JSON or in a compact
//! binary form: for metered links, where per-message overhead and repeated field names cost
//! money. Off by default: one JSON object per message is what most consumers expect.
//!
//! A batch message starts with two bytes, so a consumer can tell it from a single-record
//! message (which starts with `{`):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | format version: [`JSON_BATCH`] (2) or [`BINARY_BATCH`] (3) |
//! | 1 | compression of the rest: 0 none, 1 raw DEFLATE (RFC 1951, no zlib header) |
//! | 2.. | the body |
//!
//! JSON body: a JSON array of the records exactly as single messages carry them.
//! Binary body: `varint len, gateway id (UTF-8), varint count`, then per record `varint seq`
//! and its body as a [`Value`](write_value): one tag byte, then the data. Varints are
//! unsigned LEB128; integers are zigzag-encoded before. The README has a decoder.
//!
//! A batch holds records of one lane (the topic names the lane), at most `max_records` and
//! `max_bytes` before compression (a larger single record goes alone), and is acknowledged,
//! and then deleted, as a unit. Nothing lingers to fill a batch: it holds what is waiting.

use std::cell::RefCell;
use std::num::NonZeroUsize;

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output};

use serde::Deserialize;

use crate::support::payload::json_body;
use crate::support::record::Record;

/// Byte 0 of a JSON batch message.
pub const JSON_BATCH: u8 = 2;
/// Byte 0 of a binary batch message.
pub const BINARY_BATCH: u8 = 3;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_STRING: u8 = 5;
const TAG_ARRAY: u8 = 6;
const TAG_OBJECT: u8 = 7;

/// `uplink.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Binary,
}

/// `uplink.batch.compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Deflate,
}

/// `uplink.batch`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Records per message at most.
    #[serde(default = "default_max_records")]
    pub max_records: NonZeroUsize,
    /// Body bytes per message at most, before compression (a larger record goes alone).
    #[serde(
        default = "default_max_bytes",
        deserialize_with = "weir_drivers::size::deserialize"
    )]
    pub max_bytes: u64,
    #[serde(default)]
    pub compression: Compression,
    /// DEFLATE level, 1 (fastest) to 9 (smallest). The default, 1, encodes several times
    /// faster than 6 for a few percent more bytes on the wire (`cargo bench --bench wire`).
    #[serde(default = "default_level", deserialize_with = "de_level")]
    pub level: u8,
}

const fn default_level() -> u8 {
    1
}

fn de_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let level = u8::deserialize(d)?;
    if !(1..=9).contains(&level) {
        return Err(serde::de::Error::custom(format!(
            "level {level}: must be between 1 (fastest) and 9 (smallest)"
        )));
    }
    Ok(level)
}

fn default_max_records() -> NonZeroUsize {
    NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN)
}
const fn default_max_bytes() -> u64 {
    64 * 1024
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
            compression: Compression::None,
            level: default_level(),
        }
    }
}

/// Builds batch messages; one per uplink.
#[derive(Debug, Clone)]
pub struct Batcher {
    pub format: Format,
    pub cfg: BatchConfig,
    gateway: String,
}

impl Batcher {
    /// `None` when records go one per message as plain JSON (no `batch`, format `json`).
    pub fn new(format: Format, cfg: Option<BatchConfig>, gateway: &str) -> Option<Batcher> {
        let cfg = match (format, cfg) {
            (Format::Json, None) => return None,
            // Binary without `batch`: batches of one, uncompressed.
            (Format::Binary, None) => BatchConfig {
                max_records: NonZeroUsize::MIN,
                ..BatchConfig::default()
            },
            (_, Some(cfg)) => cfg,
        };
        Some(Batcher {
            format,
            cfg,
            gateway: gateway.to_owned(),
        })
    }

    /// The part of a batch body one record contributes; `json` is its single message.
    pub fn fragment(&self, record: &Record, json: Vec<u8>) -> Result<Vec<u8>, &'static str> {
        match self.format {
            Format::Json => Ok(json),
            Format::Binary => {
                let body = json_body(&record.payload)?;
                let value: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|_| "payload body is not valid JSON")?;
                let mut out = Vec::with_capacity(body.len() / 2 + 8);
                write_varint(&mut out, record.id);
                write_value(&mut out, &value);
                Ok(out)
            }
        }
    }

    /// Whether a batch of `records` fragments totalling `bytes` has room for one of `next`.
    pub fn fits(&self, records: usize, bytes: usize, next: usize) -> bool {
        records == 0
            || (records < self.cfg.max_records.get() && (bytes + next) as u64 <= self.cfg.max_bytes)
    }

    /// The message for `fragments` (in order, one lane).
    pub fn finish(&self, fragments: &[Vec<u8>]) -> Vec<u8> {
        let total: usize = fragments.iter().map(Vec::len).sum();
        let mut body = Vec::with_capacity(total + fragments.len() + self.gateway.len() + 16);
        let version = match self.format {
            Format::Json => {
                body.push(b'[');
                for (i, f) in fragments.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(f);
                }
                body.push(b']');
                JSON_BATCH
            }
            Format::Binary => {
                write_varint(&mut body, self.gateway.len() as u64);
                body.extend_from_slice(self.gateway.as_bytes());
                write_varint(&mut body, fragments.len() as u64);
                for f in fragments {
                    body.extend_from_slice(f);
                }
                BINARY_BATCH
            }
        };
        match self.cfg.compression {
            Compression::None => {
                let mut out = Vec::with_capacity(body.len() + 2);
                out.extend_from_slice(&[version, 0]);
                out.extend_from_slice(&body);
                out
            }
            Compression::Deflate => {
                let mut out = Vec::with_capacity(body.len() / 4 + 64);
                out.extend_from_slice(&[version, 1]);
                deflate(&body, self.cfg.level, &mut out);
                out
            }
        }
    }
}

thread_local! {
    /// A compressor per thread, reused across batches: a fresh one allocates and zeroes
    /// about 300 KB, which costs more than compressing a small batch at level 1.
    static DEFLATE: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
}

/// Appends `body` as raw DEFLATE (RFC 1951) at `level` to `out`.
fn deflate(body: &[u8], level: u8, out: &mut Vec<u8>) {
    DEFLATE.with_borrow_mut(|slot| {
        let c = slot.get_or_insert_with(|| Box::new(CompressorOxide::new(0)));
        c.reset();
        c.set_format_and_level(DataFormat::Raw, level);
        let start = out.len();
        // With `Finish` and an output callback that always accepts, one call does it all.
        let (status, _) = compress_to_output(c, body, TDEFLFlush::Finish, |chunk| {
            out.extend_from_slice(chunk);
            true
        });
        if status != TDEFLStatus::Done {
            // Not expected; the one-shot API starts from a fresh compressor.
            *slot = None;
            out.truncate(start);
            out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, level));
        }
    });
}

/// Unsigned LEB128: 7 bits per byte, low first, high bit set on all but the last byte.
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A JSON value in the binary form: tag 0 null, 1 false, 2 true, 3 integer (zigzag varint),
/// 4 float (f64 little-endian), 5 string (varint length + UTF-8), 6 array (varint count +
/// values), 7 object (varint count + pairs of key (varint length + UTF-8) and value).
pub fn write_value(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                out.push(TAG_INT);
                write_varint(out, ((i << 1) ^ (i >> 63)) as u64);
            }
            None => {
                out.push(TAG_FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
        },
        Value::String(s) => {
            out.push(TAG_STRING);
            write_str(out, s);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            write_varint(out, items.len() as u64);
            for item in items {
                write_value(out, item);
            }
        }
        Value::Object(map) => {
            out.push(TAG_OBJECT);
            write_varint(out, map.len() as u64);
            for (k, v) in map {
                write_str(out, k);
                write_value(out, v);
            }
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}
