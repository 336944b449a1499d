//! Payload decoding: MQTT message bytes to `(metric, value)` pairs and an optional timestamp.
//!
//! Kept free of I/O and of the MQTT client so every accepted form and every rejection can be
//! tested on bytes, and so a bad payload can be explained precisely in the log: devices are
//! configured by hand and a clear reason ("no numeric field in object") saves a site visit.
//!
//! Accepted forms (see the interface contract):
//!
//! | topic names the metric (`{metric}` or `metric:`) | payload                         | readings              |
//! |---|---|---|
//! | yes | `21.5`, `true` / `false`                               | one, booleans as 1.0 / 0.0 |
//! | yes | `{"value": 21.5}`, optionally with `"ts"`              | one                   |
//! | no  | `{"temp": 21.5, "hum": 40, "on": true}`, optional `"ts"` | one per numeric or boolean field |
//!
//! `"ts"`, when present and not `null`, is epoch **milliseconds** (integer or fractional); the
//! reading then carries that time instead of the receive time. Fields that are neither numbers
//! nor booleans (strings, arrays, nested objects, `null`) are ignored, as are fields with an
//! empty name; an object left with no numeric field is an error. Values are `f64`, so integers
//! beyond 2^53 lose precision; JSON cannot carry NaN or infinities, so every value is finite.

use std::borrow::Cow;

use serde_json::Value;

/// What a payload decoded to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'m> {
    /// Event time from the payload's `"ts"`, in µs since the Unix epoch; `None` = use the
    /// receive time.
    pub ts: Option<i64>,
    /// `(metric, value)` pairs. For objects the order is unspecified (serde_json's map order).
    /// The metric borrows the caller's name when the topic supplied it.
    pub values: Vec<(Cow<'m, str>, f64)>,
}

/// Why a payload was rejected. Each message says what was expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("payload is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is empty")]
    Empty,
    #[error("payload is not JSON: {reason} at {}", location(*.line, *.column))]
    NotJson {
        reason: String,
        line: usize,
        column: usize,
    },
    #[error(
        "expected a number, true/false or {{\"value\": ...}} (the topic names the metric), found {found}"
    )]
    NotNumeric { found: &'static str },
    #[error(
        "object has no \"value\" field (the topic names the metric, so the payload carries one value)"
    )]
    MissingValue,
    #[error("field \"value\" is {found}, not a number or true/false")]
    ValueNotNumeric { found: &'static str },
    #[error(
        "expected a JSON object of numeric fields (the topic does not name the metric), found {found}"
    )]
    NotObject { found: &'static str },
    #[error("no numeric field in object")]
    NoNumericField,
    #[error("field \"ts\" is {found}, not a number of epoch milliseconds")]
    TimestampNotNumeric { found: &'static str },
    #[error("field \"ts\" = {ms} ms is out of range")]
    TimestampOutOfRange { ms: String },
}

fn location(line: usize, column: usize) -> String {
    // Payloads are nearly always one line; the line number would only be noise.
    if line <= 1 {
        format!("column {column}")
    } else {
        format!("line {line} column {column}")
    }
}

/// Decodes one payload.
///
/// `metric` is the metric name the topic supplied (captured `{metric}` or a subscription's
/// fixed `metric:`); `None` means the payload must be an object whose fields name the metrics.
/// Payloads longer than `max_payload` bytes are rejected before parsing.
pub fn decode<'m>(
    payload: &[u8],
    metric: Option<&'m str>,
    max_payload: usize,
) -> Result<Decoded<'m>, PayloadError> {
    if payload.len() > max_payload {
        return Err(PayloadError::TooLarge {
            size: payload.len(),
            limit: max_payload,
        });
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::Empty);
    }
    let doc: Value = serde_json::from_slice(payload).map_err(not_json)?;
    match metric {
        Some(name) => decode_single(doc, name),
        None => decode_object(doc),
    }
}

fn not_json(e: serde_json::Error) -> PayloadError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let reason = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    PayloadError::NotJson {
        reason,
        line,
        column,
    }
}

fn decode_single(doc: Value, name: &str) -> Result<Decoded<'_>, PayloadError> {
    let (value, ts) = match doc {
        Value::Object(map) => {
            let ts = timestamp(map.get("ts"))?;
            let v = map.get("value").ok_or(PayloadError::MissingValue)?;
            let value = numeric(v).ok_or(PayloadError::ValueNotNumeric { found: kind(v) })?;
            (value, ts)
        }
        other => {
            let value = numeric(&other).ok_or(PayloadError::NotNumeric {
                found: kind(&other),
            })?;
            (value, None)
        }
    };
    Ok(Decoded {
        ts,
        values: vec![(Cow::Borrowed(name), value)],
    })
}

fn decode_object(doc: Value) -> Result<Decoded<'static>, PayloadError> {
    let Value::Object(map) = doc else {
        return Err(PayloadError::NotObject { found: kind(&doc) });
    };
    let ts = timestamp(map.get("ts"))?;
    let values: Vec<_> = map
        .into_iter()
        .filter(|(k, _)| k != "ts" && !k.is_empty())
        .filter_map(|(k, v)| numeric(&v).map(|x| (Cow::Owned(k), x)))
        .collect();
    if values.is_empty() {
        return Err(PayloadError::NoNumericField);
    }
    Ok(Decoded { ts, values })
}

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Epoch milliseconds to µs, exactly for integers, rounded to the µs for fractions.
fn timestamp(v: Option<&Value>) -> Result<Option<i64>, PayloadError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(other) => return Err(PayloadError::TimestampNotNumeric { found: kind(other) }),
    };
    let out_of_range = || PayloadError::TimestampOutOfRange { ms: n.to_string() };
    if let Some(ms) = n.as_i64() {
        return ms.checked_mul(1000).map(Some).ok_or_else(out_of_range);
    }
    let us = n
        .as_f64()
        .map(|ms| (ms * 1000.0).round())
        .ok_or_else(out_of_range)?;
    // i64::MAX is not representable as f64; 2^63 is the first value that does not fit.
    if us.is_finite() && us >= -(2f64.powi(63)) && us < 2f64.powi(63) {
        Ok(Some(us as i64))
    } else {
        Err(out_of_range())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
