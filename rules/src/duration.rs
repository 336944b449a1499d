//! Human-readable durations for configuration files: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`.
//!
//! Field engineers edit the agent's YAML by hand; a bare `30` would leave them guessing whether
//! it means seconds or milliseconds, so every duration carries its unit (except `0`, which
//! means the same in every unit). This is the one duration parser of the workspace: rule files
//! (windows, `for`, cooldowns), the sources' settings (`weir_drivers::duration` is this module)
//! and the agent's config all read durations here, so `"30 s"` means the same everywhere.
//! Whether zero is allowed is the field's business, not the parser's: a window must be longer
//! than zero (the rule loader says so), a retry delay of `0ms` is fine.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(weir_rules::duration::parse("1500ms"), Ok(Duration::from_millis(1500)));
//! assert_eq!(weir_rules::duration::parse("30 s"), Ok(Duration::from_secs(30)));
//! assert_eq!(weir_rules::duration::parse("0"), Ok(Duration::ZERO));
//! assert!(weir_rules::duration::parse("5").is_err());
//! ```

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error("empty duration (write e.g. `30s`)")]
    Empty,
    #[error("invalid duration `{input}`: expected a whole number followed by ms, s, m, h or d")]
    NoNumber { input: String },
    #[error("invalid duration `{input}`: missing unit (ms, s, m, h or d)")]
    MissingUnit { input: String },
    #[error("invalid duration `{input}`: unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration `{input}`: too large")]
    Overflow { input: String },
}

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`; spaces around and between the
/// two parts are allowed (`"30 s"`). A bare `0` is zero; any other bare number is refused
/// (seconds or milliseconds?).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    let unit = unit.trim_start();
    if digits.is_empty() {
        return Err(DurationError::NoNumber {
            input: input.to_owned(),
        });
    }
    if unit.is_empty() {
        if digits.bytes().all(|b| b == b'0') {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::MissingUnit {
            input: input.to_owned(),
        });
    }
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let n: u64 = digits.parse().map_err(|_| overflow())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: other.to_owned(),
            });
        }
    };
    let millis = n.checked_mul(millis_per_unit).ok_or_else(overflow)?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse`] reads it, in the largest unit that divides it exactly
/// (sub-millisecond parts are dropped: the configuration cannot express them).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// `#[serde(deserialize_with = "weir_rules::duration::deserialize")]` for a
/// [`Duration`] field written as a string such as `"30s"`.
pub fn deserialize<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"500ms\", \"30s\", \"5m\", \"1h\" or \"1d\"")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse(" 30 s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse("30 s"), parse("30s"));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        assert_eq!(parse("  "), Err(DurationError::Empty));
        assert!(matches!(parse("s"), Err(DurationError::NoNumber { .. })));
        assert!(matches!(parse("-5s"), Err(DurationError::NoNumber { .. })));
        assert!(matches!(
            parse("30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse("1.5s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        let e = parse("30x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid duration `30x`: unknown unit `x` (use ms, s, m, h or d)"
        );
        assert!(matches!(
            parse("99999999999999999999s"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse("999999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in ["250ms", "30s", "5m", "2h", "1d", "0ms", "90s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }

    #[test]
    fn deserializes_from_json_string_and_rejects_numbers() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize")]
            d: Duration,
        }
        let t: T = serde_json::from_str(r#"{"d":"10s"}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(10));
        let e = serde_json::from_str::<T>(r#"{"d":10}"#).err().unwrap();
        assert!(e.to_string().contains("duration string"), "{e}");
        let e = serde_json::from_str::<T>(r#"{"d":"10"}"#).err().unwrap();
        assert!(e.to_string().contains("missing unit"), "{e}");
    }
}
