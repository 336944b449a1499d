//! The outbox's configuration and the two small value parsers it needs (byte sizes and
//! durations). They live here until `weir_drivers` offers shared ones; the uplink reuses
//! [`de_duration`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `outbox:` in the agent config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The SQLite file. Parent directories are created on open.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Bound on stored payload + topic bytes (not the file size: SQLite adds page and index
    /// overhead, and the WAL sits beside it). Integers, or strings like "64MiB", "500KB".
    #[serde(default = "default_max_bytes", deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Most records the writer groups into one transaction before committing.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How long the writer waits for more appends after the first one before committing.
    #[serde(default = "default_batch_delay", deserialize_with = "de_duration")]
    pub batch_delay: Duration,
    /// `normal` (default) or `full`; see the module docs for what each loses on power failure.
    #[serde(default)]
    pub synchronous: Synchronous,
}

/// SQLite's `PRAGMA synchronous` for the outbox (always in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at checkpoints only: a power cut may roll back the last few commits.
    #[default]
    Normal,
    /// fsync the WAL on every commit: nothing committed is lost, at a cost in flash wear.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

fn default_path() -> PathBuf {
    PathBuf::from("/var/lib/weir/outbox.db")
}

const fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

const fn default_batch_max() -> usize {
    1024
}

const fn default_batch_delay() -> Duration {
    Duration::from_millis(10)
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            path: default_path(),
            max_bytes: default_max_bytes(),
            batch_max: default_batch_max(),
            batch_delay: default_batch_delay(),
            synchronous: Synchronous::default(),
        }
    }
}

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

/// Parses "500ms", "10s", "5m", "1h", "1d" (also "us"); a unit is required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (expected e.g. \"500ms\", \"10s\")"))?;
    let d = match unit.trim() {
        "us" | "µs" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86_400).map(Duration::from_secs),
        "" => return Err(format!("duration `{s}` needs a unit (ms, s, m, h, d)")),
        other => return Err(format!("unknown duration unit `{other}` in `{s}`")),
    };
    d.ok_or_else(|| format!("duration `{s}` is too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BytesRepr {
    Int(u64),
    Str(String),
}

pub(crate) fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match BytesRepr::deserialize(d)? {
        BytesRepr::Int(n) => Ok(n),
        BytesRepr::Str(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 fortnights").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn yaml_config_with_defaults_and_strings() {
        let cfg: OutboxConfig =
            serde_saphyr::from_str("path: x/outbox.db\nmax_bytes: 500KB\nbatch_delay: 5ms\n")
                .unwrap();
        assert_eq!(cfg.path, PathBuf::from("x/outbox.db"));
        assert_eq!(cfg.max_bytes, 500_000);
        assert_eq!(cfg.batch_delay, Duration::from_millis(5));
        assert_eq!(cfg.batch_max, 1024);
        assert_eq!(cfg.synchronous, Synchronous::Normal);

        let cfg: OutboxConfig =
            serde_saphyr::from_str("max_bytes: 1048576\nsynchronous: full\n").unwrap();
        assert_eq!(cfg.max_bytes, 1 << 20);
        assert_eq!(cfg.synchronous, Synchronous::Full);
        assert_eq!(cfg.path, PathBuf::from("/var/lib/weir/outbox.db"));

        let cfg: OutboxConfig = serde_saphyr::from_str("max_bytes: 64 MiB\n").unwrap();
        assert_eq!(cfg.max_bytes, 64 << 20);

        assert!(serde_saphyr::from_str::<OutboxConfig>("max_byte: 1\n").is_err());
        assert!(serde_saphyr::from_str::<OutboxConfig>("max_bytes: lots\n").is_err());
    }
}
