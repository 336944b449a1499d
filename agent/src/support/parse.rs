//! Sizes as configuration files write them: `64MiB`, `500KB`, `1048576`.
//!
//! (Durations are `weir_drivers::duration`, shared with the sources.)

use serde::Deserialize;

/// Parses "64MiB", "64 MiB", "500KB", "512", "1.5GiB" into bytes. Decimal units (KB, MB, GB)
/// are powers of 1000, binary units (KiB, MiB, GiB) powers of 1024; case-insensitive.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
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

#[derive(Deserialize)]
#[serde(untagged)]
enum BytesRepr {
    Int(u64),
    Str(String),
}

/// `#[serde(deserialize_with = "crate::support::parse::de_bytes")]`: a size written as a
/// number of bytes or as a string with a unit ([`parse_bytes`]).
pub fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match BytesRepr::deserialize(d)? {
        BytesRepr::Int(n) => Ok(n),
        BytesRepr::Str(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("500KB"), Ok(500_000));
        assert_eq!(parse_bytes("1.5kib"), Ok(1536));
        assert_eq!(parse_bytes("123"), Ok(123));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999GiB").is_err());
    }
}
