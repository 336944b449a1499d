//! Text line protocols: bytes to lines ([`LineAccumulator`]) and lines to records
//! ([`LineDecoder`]), with no I/O, so every accepted form and every rejection is tested on
//! bytes.
//!
//! | protocol | a line | readings |
//! |---|---|---|
//! | `json_lines` | `{"device": "pump-1", "temp": 21.5, "on": true, "ts": 1700000000000}` | one per numeric or boolean field (the MQTT payload rules, [`crate::payload`]) |
//! | `kv_lines` | `device=pump-1 temp=21.5 hum=40` (spaces, tabs, commas or semicolons between pairs) | one per pair |
//! | `csv` | a header line `device,ts,temp,hum`, then `pump-1,,21.5,40` | one per non-empty cell |
//!
//! In every form `device` names the device (else the source's configured device) and `ts` is
//! the device's time in epoch milliseconds (else the receive time). `\r\n` and `\n` both end a
//! line; blank lines are skipped. CSV: the first line after the port opens is the header, and
//! a line in which no value cell is a number is taken as a new header (a device that reboots
//! prints its header again). Quoted CSV fields are not supported: sensors do not send them.

use std::borrow::Cow;

use serde::Deserialize;

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'l> {
    /// The device the line names, if it names one.
    pub device: Option<Cow<'l, str>>,
    /// Device time, µs since the Unix epoch.
    pub ts: Option<i64>,
    pub values: Vec<(Cow<'l, str>, f64)>,
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    #[error("line longer than {limit} bytes")]
    TooLong { limit: usize },
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Json(#[from] crate::payload::PayloadError),
    #[error("`{pair}` is not key=value")]
    NotPair { pair: String },
    #[error("`{key}` has value `{value}`, not a number or true/false")]
    NotNumber { key: String, value: String },
    #[error("`ts` is `{value}`, not epoch milliseconds")]
    BadTs { value: String },
    #[error("line has {found} cells, the header has {expected}")]
    CellCount { found: usize, expected: usize },
    #[error("line has no values")]
    NoValues,
}

/// What [`LineAccumulator::feed`] produced; `remaining` is the input not yet consumed.
#[derive(Debug, PartialEq)]
pub enum LineFeed<'s, 'a> {
    Consumed,
    Line { line: &'s [u8], remaining: &'a [u8] },
    TooLong { limit: usize, remaining: &'a [u8] },
}

/// Splits a byte stream into lines of at most `limit` bytes. A longer line is reported once
/// and dropped up to its newline.
#[derive(Debug)]
pub struct LineAccumulator {
    buf: Vec<u8>,
    limit: usize,
    discarding: bool,
    /// Set when the last line returned still occupies `buf`.
    consumed: bool,
}

impl LineAccumulator {
    pub fn new(limit: usize) -> Self {
        LineAccumulator {
            buf: Vec::with_capacity(limit.min(4096)),
            limit,
            discarding: false,
            consumed: false,
        }
    }

    /// Drops a partial line (after the port was reopened).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.consumed = false;
    }

    pub fn feed<'s, 'a>(&'s mut self, input: &'a [u8]) -> LineFeed<'s, 'a> {
        if std::mem::take(&mut self.consumed) {
            self.buf.clear();
        }
        for (i, &byte) in input.iter().enumerate() {
            let remaining = &input[i + 1..];
            if byte == b'\n' {
                if std::mem::take(&mut self.discarding) {
                    self.buf.clear();
                    continue;
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    self.buf.clear();
                    continue;
                }
                self.consumed = true;
                return LineFeed::Line {
                    line: &self.buf,
                    remaining,
                };
            }
            if self.discarding {
                continue;
            }
            if self.buf.len() == self.limit {
                self.buf.clear();
                self.discarding = true;
                return LineFeed::TooLong {
                    limit: self.limit,
                    remaining,
                };
            }
            self.buf.push(byte);
        }
        LineFeed::Consumed
    }
}

/// A line protocol's decoder; CSV keeps its header between lines.
#[derive(Debug, Clone)]
pub enum LineDecoder {
    JsonLines { max_line: usize },
    KvLines,
    Csv { header: Option<Vec<String>> },
}

impl LineDecoder {
    /// Forgets per-connection state (the CSV header).
    pub fn reset(&mut self) {
        if let LineDecoder::Csv { header } = self {
            *header = None;
        }
    }

    /// Decodes one line (without its newline). `Ok(None)`: the line was a CSV header.
    pub fn decode<'l>(&'l mut self, line: &'l [u8]) -> Result<Option<Record<'l>>, LineError> {
        match self {
            LineDecoder::JsonLines { max_line } => json_line(line, *max_line).map(Some),
            LineDecoder::KvLines => kv_line(as_str(line)?).map(Some),
            LineDecoder::Csv { header } => csv_line(header, as_str(line)?),
        }
    }
}

fn as_str(line: &[u8]) -> Result<&str, LineError> {
    std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)
}

fn json_line(line: &[u8], max_line: usize) -> Result<Record<'_>, LineError> {
    #[derive(Deserialize)]
    struct DeviceField<'a> {
        #[serde(borrow, default)]
        device: Option<Cow<'a, str>>,
    }
    let decoded = crate::payload::decode(line, None, max_line)?;
    // The payload decoder has checked it is a JSON object; only the device name is left.
    let device = serde_json::from_slice::<DeviceField<'_>>(line)
        .ok()
        .and_then(|d| d.device);
    Ok(Record {
        device,
        ts: decoded.ts,
        values: decoded.values,
    })
}

fn number(key: &str, value: &str) -> Result<f64, LineError> {
    match value {
        "true" => Ok(1.0),
        "false" => Ok(0.0),
        _ => value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| LineError::NotNumber {
                key: key.to_owned(),
                value: value.to_owned(),
            }),
    }
}

fn is_number(cell: &str) -> bool {
    cell == "true" || cell == "false" || cell.parse::<f64>().is_ok()
}

fn ts_ms(value: &str) -> Result<i64, LineError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && ms.abs() < 9.0e15)
        .map(|ms| (ms * 1000.0).round() as i64)
        .ok_or_else(|| LineError::BadTs {
            value: value.to_owned(),
        })
}

fn kv_line(line: &str) -> Result<Record<'_>, LineError> {
    let mut record = Record {
        device: None,
        ts: None,
        values: Vec::new(),
    };
    let pairs = line
        .split(|c: char| c.is_ascii_whitespace() || c == ',' || c == ';')
        .filter(|p| !p.is_empty());
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(LineError::NotPair {
                pair: pair.to_owned(),
            });
        };
        match key {
            "device" => record.device = Some(Cow::Borrowed(value)),
            "ts" => record.ts = Some(ts_ms(value)?),
            _ => record
                .values
                .push((Cow::Borrowed(key), number(key, value)?)),
        }
    }
    if record.values.is_empty() {
        return Err(LineError::NoValues);
    }
    Ok(record)
}

fn csv_line<'l>(
    header: &'l mut Option<Vec<String>>,
    line: &'l str,
) -> Result<Option<Record<'l>>, LineError> {
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    let is_header = match header {
        None => true,
        // No cell is a number and some cell is a known column: the device rebooted and
        // printed its header again (perhaps a changed one).
        Some(h) => {
            !cells.iter().any(|c| is_number(c)) && cells.iter().any(|c| h.iter().any(|n| n == c))
        }
    };
    if is_header {
        *header = Some(cells.iter().map(|c| (*c).to_owned()).collect());
        return Ok(None);
    }
    let names = header.as_deref().unwrap_or_default();
    if cells.len() != names.len() {
        return Err(LineError::CellCount {
            found: cells.len(),
            expected: names.len(),
        });
    }
    let mut record = Record {
        device: None,
        ts: None,
        values: Vec::new(),
    };
    for (name, cell) in names.iter().zip(cells) {
        if cell.is_empty() || name.is_empty() {
            continue;
        }
        match name.as_str() {
            "device" => record.device = Some(Cow::Borrowed(cell)),
            "ts" => record.ts = Some(ts_ms(cell)?),
            _ => record
                .values
                .push((Cow::Borrowed(name.as_str()), number(name, cell)?)),
        }
    }
    if record.values.is_empty() {
        return Err(LineError::NoValues);
    }
    Ok(Some(record))
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
