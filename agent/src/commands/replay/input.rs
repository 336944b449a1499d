//! Reading recorded samples: CSV and JSON lines, with the timestamp forms field data has.
//!
//! Recordings come from data loggers, historians and benchmark sets, so the reader is lenient
//! about *form* (header names, epoch units, ISO dates with or without `T`/zone) but strict about
//! *content*: a line it cannot read is reported with its line number and skipped, never guessed.

use std::io::BufRead;

use thiserror::Error;

/// One recorded sample, before interning.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ts: i64,
    pub device: Option<String>,
    pub metric: Option<String>,
    pub value: f64,
}

/// Why a line was skipped.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum RowError {
    #[error("expected {expected} comma-separated fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("bad timestamp `{text}`: {reason}")]
    Timestamp { text: String, reason: &'static str },
    #[error("bad value `{text}`: not a number")]
    Value { text: String },
    #[error("not a JSON object: {reason}")]
    Json { reason: String },
    #[error("missing field `{field}`")]
    Missing { field: &'static str },
}

/// The layout of a CSV file, from its header (or its width when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLayout {
    ts: usize,
    value: usize,
    device: Option<usize>,
    metric: Option<usize>,
    width: usize,
}

impl CsvLayout {
    /// `timestamp,value` or `timestamp,device,metric,value`, the header-less forms.
    fn positional(width: usize) -> Option<CsvLayout> {
        match width {
            2 => Some(CsvLayout {
                ts: 0,
                value: 1,
                device: None,
                metric: None,
                width,
            }),
            4 => Some(CsvLayout {
                ts: 0,
                device: Some(1),
                metric: Some(2),
                value: 3,
                width,
            }),
            _ => None,
        }
    }

    /// Reads a header line. `None` when the line is data, not a header.
    pub fn from_header(line: &str) -> Option<CsvLayout> {
        let names: Vec<String> = split_csv(line)
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        let find = |options: &[&str]| names.iter().position(|n| options.contains(&n.as_str()));
        let ts = find(&["timestamp", "ts", "time", "datetime"])?;
        let value = find(&["value", "val", "v"])?;
        Some(CsvLayout {
            ts,
            value,
            device: find(&["device", "dev"]),
            metric: find(&["metric", "name", "series"]),
            width: names.len(),
        })
    }

    /// The layout for a file whose first line is `first`: its header, or positional.
    pub fn detect(first: &str) -> Result<(CsvLayout, bool), RowError> {
        if let Some(layout) = CsvLayout::from_header(first) {
            return Ok((layout, true));
        }
        let width = split_csv(first).len();
        CsvLayout::positional(width)
            .map(|l| (l, false))
            .ok_or(RowError::FieldCount {
                expected: 2,
                found: width,
            })
    }

    pub fn row(&self, line: &str) -> Result<Row, RowError> {
        let fields = split_csv(line);
        if fields.len() != self.width {
            return Err(RowError::FieldCount {
                expected: self.width,
                found: fields.len(),
            });
        }
        let text = |i: usize| fields[i].trim();
        Ok(Row {
            ts: parse_timestamp(text(self.ts))?,
            device: self.device.map(|i| text(i).to_owned()),
            metric: self.metric.map(|i| text(i).to_owned()),
            value: text(self.value).parse().map_err(|_| RowError::Value {
                text: text(self.value).to_owned(),
            })?,
        })
    }
}

/// A recording read line by line: blank lines and `#` comments hold no row; in CSV the first
/// other line is the header (or, without one, fixes the positional layout); in JSON lines each
/// line is an object. The one row reader of `weir replay` and `weir eval`, so both skip the
/// same lines.
#[derive(Debug, Default)]
pub struct RowReader {
    jsonl: bool,
    layout: Option<CsvLayout>,
}

impl RowReader {
    /// A reader of CSV (`jsonl: false`) or JSON lines.
    pub fn new(jsonl: bool) -> RowReader {
        RowReader {
            jsonl,
            layout: None,
        }
    }

    /// The row `line` holds; `None` for a blank line, a comment or the CSV header.
    pub fn line(&mut self, line: &str) -> Option<Result<Row, RowError>> {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        if self.jsonl {
            return Some(json_row(text));
        }
        if let Some(layout) = &self.layout {
            return Some(layout.row(text));
        }
        match CsvLayout::detect(text) {
            Ok((detected, header)) => {
                self.layout = Some(detected);
                (!header).then(|| detected.row(text))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Splits one CSV line; a field may be wrapped in double quotes (no embedded newlines).
pub fn split_csv(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or(f)
        })
        .collect()
}

/// One JSON line: `{"ts": …, "device": …, "metric": …, "value": …}` (`timestamp` also works).
pub fn json_row(line: &str) -> Result<Row, RowError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| RowError::Json {
        reason: e.to_string(),
    })?;
    let object = value.as_object().ok_or(RowError::Json {
        reason: "a JSON value that is not an object".to_owned(),
    })?;
    let ts = object
        .get("ts")
        .or_else(|| object.get("timestamp"))
        .ok_or(RowError::Missing { field: "ts" })?;
    let ts = match ts {
        serde_json::Value::String(s) => parse_timestamp(s)?,
        serde_json::Value::Number(n) => epoch_to_us(n.as_f64().unwrap_or(f64::NAN))?,
        other => {
            return Err(RowError::Timestamp {
                text: other.to_string(),
                reason: "neither a number nor a string",
            });
        }
    };
    let value = match object
        .get("value")
        .ok_or(RowError::Missing { field: "value" })?
    {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
        other => {
            return Err(RowError::Value {
                text: other.to_string(),
            });
        }
    };
    let text = |key: &str| object.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(Row {
        ts,
        device: text("device"),
        metric: text("metric"),
        value,
    })
}

/// Whether a file looks like JSON lines: its first non-blank character is `{`.
pub fn looks_like_jsonl(reader: &mut impl BufRead) -> std::io::Result<bool> {
    let buf = reader.fill_buf()?;
    Ok(buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// A timestamp as µs since the Unix epoch: an epoch number (its unit from its magnitude:
/// s, ms, µs or ns) or an ISO-8601 date-time in UTC unless it names an offset
/// (`2014-04-01 00:05:00`, `2014-04-01T00:05:00.250Z`, `…+02:00`).
pub fn parse_timestamp(text: &str) -> Result<i64, RowError> {
    let text = text.trim();
    if let Ok(n) = text.parse::<f64>() {
        return epoch_to_us(n).map_err(|_| RowError::Timestamp {
            text: text.to_owned(),
            reason: "out of range",
        });
    }
    parse_iso(text).map_err(|reason| RowError::Timestamp {
        text: text.to_owned(),
        reason,
    })
}

fn epoch_to_us(n: f64) -> Result<i64, RowError> {
    if !n.is_finite() {
        return Err(RowError::Timestamp {
            text: n.to_string(),
            reason: "not finite",
        });
    }
    // Seconds until year 5138, then ms, µs, ns: the magnitudes do not overlap in practice.
    let a = n.abs();
    let us = if a >= 1e17 {
        n / 1e3
    } else if a >= 1e14 {
        n
    } else if a >= 1e11 {
        n * 1e3
    } else {
        n * 1e6
    };
    if us.abs() >= 9.2e18 {
        return Err(RowError::Timestamp {
            text: n.to_string(),
            reason: "out of range",
        });
    }
    Ok(us.round() as i64)
}

fn parse_iso(s: &str) -> Result<i64, &'static str> {
    let bytes = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let part = s.get(range).ok_or("too short")?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err("expected YYYY-MM-DD HH:MM:SS");
        }
        part.parse().map_err(|_| "expected YYYY-MM-DD HH:MM:SS")
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err("expected a number or YYYY-MM-DD HH:MM:SS");
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("month or day out of range");
    }
    let mut us = days_from_civil(year, month, day) * 86_400_000_000;
    let mut rest = &s[10..];
    if let Some(time) = rest.strip_prefix([' ', 'T']) {
        let t = time.as_bytes();
        if t.len() < 8 || t[2] != b':' || t[5] != b':' {
            return Err("expected HH:MM:SS after the date");
        }
        let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || m > 59 || sec > 60 {
            return Err("time of day out of range");
        }
        us += ((h * 60 + m) * 60 + sec) * 1_000_000;
        rest = &time[8..];
        if let Some(frac) = rest.strip_prefix(['.', ',']) {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err("empty fraction of a second");
            }
            let mut micros = 0i64;
            for (i, d) in frac.bytes().take(digits.min(6)).enumerate() {
                micros += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
            }
            us += micros;
            rest = &frac[digits..];
        }
    }
    match rest {
        "" | "Z" | "z" => Ok(us),
        offset if offset.len() == 6 && (offset.starts_with('+') || offset.starts_with('-')) => {
            let o = offset.as_bytes();
            if o[3] != b':' || !o[1..3].iter().chain(&o[4..6]).all(u8::is_ascii_digit) {
                return Err("bad UTC offset (expected ±HH:MM)");
            }
            let hours = i64::from(o[1] - b'0') * 10 + i64::from(o[2] - b'0');
            let minutes = i64::from(o[4] - b'0') * 10 + i64::from(o[5] - b'0');
            let shift = (hours * 60 + minutes) * 60_000_000;
            Ok(if o[0] == b'+' { us - shift } else { us + shift })
        }
        _ => Err("unexpected text after the time"),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_reader_skips_blanks_comments_and_the_header() {
        let mut r = RowReader::new(false);
        assert!(r.line("").is_none());
        assert!(r.line("# recorded 2024-05-01").is_none());
        assert!(r.line("timestamp,value").is_none(), "the header is no row");
        let row = r.line("1700000000,2.5\n").unwrap().unwrap();
        assert_eq!((row.ts, row.value), (1_700_000_000_000_000, 2.5));
        assert!(r.line("1700000001,2.5,extra").unwrap().is_err());

        let mut r = RowReader::new(false);
        let row = r.line("1700000000,pump-1,temp,3").unwrap().unwrap();
        assert_eq!(
            row.device.as_deref(),
            Some("pump-1"),
            "header-less, positional"
        );

        let mut r = RowReader::new(true);
        let row = r
            .line(r#"{"ts": 1700000000, "device": "d", "metric": "m", "value": 1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(row.value, 1.0);
    }

    #[test]
    fn iso_timestamps_in_utc_and_with_offsets() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        // NAB's form.
        assert_eq!(
            parse_timestamp("2014-04-01 00:05:00"),
            Ok(1_396_310_700_000_000)
        );
        assert_eq!(
            parse_timestamp("2014-04-01T00:05:00.25Z"),
            Ok(1_396_310_700_250_000)
        );
        assert_eq!(
            parse_timestamp("2014-04-01T02:05:00+02:00"),
            Ok(1_396_310_700_000_000)
        );
        assert_eq!(parse_timestamp("2000-02-29"), Ok(951_782_400_000_000));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Ok(-1_000_000));
        assert!(parse_timestamp("2014-13-01 00:00:00").is_err());
        assert!(parse_timestamp("2014-04-01 0:05:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2014-04-01 00:05:00 CET").is_err());
    }

    #[test]
    fn epoch_units_follow_the_magnitude() {
        assert_eq!(parse_timestamp("1396310700"), Ok(1_396_310_700_000_000));
        assert_eq!(parse_timestamp("1396310700.5"), Ok(1_396_310_700_500_000));
        assert_eq!(parse_timestamp("1396310700000"), Ok(1_396_310_700_000_000));
        assert_eq!(
            parse_timestamp("1396310700000000"),
            Ok(1_396_310_700_000_000)
        );
        assert_eq!(
            parse_timestamp("1396310700000000000"),
            Ok(1_396_310_700_000_000)
        );
    }

    #[test]
    fn csv_with_header_without_header_and_with_bad_lines() {
        let (layout, header) = CsvLayout::detect("timestamp,value").unwrap();
        assert!(header);
        let row = layout.row("2014-04-01 00:05:00,21.5").unwrap();
        assert_eq!(
            (row.ts, row.value, row.device),
            (1_396_310_700_000_000, 21.5, None)
        );

        let (layout, header) = CsvLayout::detect("1000,pump-1,temp,3").unwrap();
        assert!(!header);
        let row = layout.row("1000,pump-1,temp,3").unwrap();
        assert_eq!(row.device.as_deref(), Some("pump-1"));
        assert_eq!(row.metric.as_deref(), Some("temp"));

        let (layout, _) = CsvLayout::detect("Value,Device,TS,Metric").unwrap();
        let row = layout.row("\"7\",d,1000,m").unwrap();
        assert_eq!(row.value, 7.0);

        assert_eq!(
            layout.row("1,2"),
            Err(RowError::FieldCount {
                expected: 4,
                found: 2
            })
        );
        assert!(matches!(
            layout.row("x,d,1000,m"),
            Err(RowError::Value { .. })
        ));
        assert!(CsvLayout::detect("a,b,c").is_err());
    }

    #[test]
    fn json_lines() {
        let row =
            json_row(r#"{"ts": 1396310700000, "device": "d", "metric": "m", "value": 2}"#).unwrap();
        assert_eq!(row.ts, 1_396_310_700_000_000);
        assert_eq!(row.device.as_deref(), Some("d"));
        let row = json_row(r#"{"timestamp": "2014-04-01 00:05:00", "value": true}"#).unwrap();
        assert_eq!(row.value, 1.0);
        assert_eq!(
            json_row(r#"{"value": 1}"#),
            Err(RowError::Missing { field: "ts" })
        );
        assert!(matches!(json_row("[1]"), Err(RowError::Json { .. })));
        assert!(matches!(
            json_row(r#"{"ts": 1, "value": "x"}"#),
            Err(RowError::Value { .. })
        ));
    }
}
