//! Byte sizes for configuration files: `65536`, `"64KiB"`, `"8 MiB"`, `"500KB"`, `"1.5GiB"`.
//!
//! One parser for every size in the agent's configuration (the outbox bound, a source's
//! payload limit), so a unit that works in one place works in all of them. Decimal units
//! (KB, MB, GB) are powers of 1000, binary units (KiB, MiB, GiB) powers of 1024; units are
//! case-insensitive; a bare integer is bytes.
//!
//! ```
//! assert_eq!(weir_drivers::size::parse("8MiB"), Ok(8 << 20));
//! assert_eq!(weir_drivers::size::parse("500KB"), Ok(500_000));
//! assert!(weir_drivers::size::parse("12 parsecs").is_err());
//! ```

use serde::Deserialize;

/// Parses a size string into bytes; the error says what was wrong, for the config loader to
/// place at the field's line and column.
pub fn parse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000 * 1000,
        "g" | "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("size `{s}` is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f * (mult as f64) < u64::MAX as f64 => {
            Ok((f * mult as f64) as u64)
        }
        _ => Err(format!(
            "invalid size `{s}` (expected e.g. \"64MiB\" or 1048576)"
        )),
    }
}

/// Formats bytes in the largest binary unit that divides them exactly (`8MiB`, `1536B`).
pub fn format(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Int(u64),
    Str(String),
}

/// `#[serde(deserialize_with = "weir_drivers::size::deserialize")]` for a `u64` byte count
/// written as an integer or a string with a unit.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Int(n) => Ok(n),
        Repr::Str(s) => parse(&s).map_err(serde::de::Error::custom),
    }
}

/// As [`deserialize`], for a `usize` field (a size held in memory).
pub fn deserialize_usize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = deserialize(d)?;
    usize::try_from(n).map_err(|_| serde::de::Error::custom(format!("size {n} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("64 MiB"), Ok(64 << 20));
        assert_eq!(parse("8MiB"), Ok(8 << 20));
        assert_eq!(parse("500KB"), Ok(500_000));
        assert_eq!(parse("1.5kib"), Ok(1536));
        assert_eq!(parse("123"), Ok(123));
        assert!(parse("12 parsecs").is_err());
        assert!(parse("MiB").is_err());
        assert!(parse("99999999999GiB").is_err());
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(8 << 20), "8MiB");
        assert_eq!(format(1536), "1536B");
        assert_eq!(format(3 << 10), "3KiB");
        assert_eq!(format(1000), "1000B");
    }

    #[test]
    fn deserializes_integers_and_strings() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize_usize")]
            n: usize,
        }
        let t: T = serde_json::from_str(r#"{"n":"8MiB"}"#).unwrap();
        assert_eq!(t.n, 8 << 20);
        let t: T = serde_json::from_str(r#"{"n":4096}"#).unwrap();
        assert_eq!(t.n, 4096);
        let e = serde_json::from_str::<T>(r#"{"n":"8 furlongs"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown size unit"), "{e}");
    }
}
