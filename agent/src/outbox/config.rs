//! The outbox's configuration. Durations and sizes use the shared [`weir_drivers::duration`]
//! and [`weir_drivers::size`] parsers, like every other duration and size in the agent's config.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `outbox:` in the agent config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The SQLite file. Parent directories are created on open.
    #[serde(default = "default_path", deserialize_with = "de_path")]
    pub path: PathBuf,
    /// Bound on stored payload + topic bytes (not the file size: SQLite adds page and index
    /// overhead, and the WAL sits beside it). Integers, or strings like "64MiB", "500KB".
    #[serde(default = "default_max_bytes", deserialize_with = "de_max_bytes")]
    pub max_bytes: u64,
    /// Most records the writer groups into one transaction before committing.
    #[serde(default = "default_batch_max", deserialize_with = "de_batch_max")]
    pub batch_max: usize,
    /// How long the writer waits for more appends after the first one before committing
    /// (at most [`MAX_BATCH_DELAY`]: every device ack waits for it).
    #[serde(default = "default_batch_delay", deserialize_with = "de_batch_delay")]
    pub batch_delay: Duration,
    /// `normal` (default) or `full`; see the module docs for what each loses on power failure.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Age bound: records older than this (by `created_at`) are evicted, oldest first. One
    /// duration for every lane, or a map `{alerts: 30d, aggregates: 1d}`; absent = no bound.
    #[serde(default)]
    pub max_age: MaxAge,
    /// What happens when an append does not fit under `max_bytes`.
    #[serde(default)]
    pub overflow: Overflow,
    /// SQLite's page cache on the writer's connection, KiB ([`WRITER_CACHE_KIB`]). Not a
    /// setting (never read from YAML): the outbox bench compares values with it.
    #[serde(skip, default = "default_cache_kib")]
    #[doc(hidden)]
    pub cache_kib: u32,
}

/// SQLite's page cache on the writer's connection, KiB. SQLite's default is 2,000 KiB, and
/// the writer filled it: it was the largest fixed item of the agent's heap (issue 19,
/// docs/footprint.md). The writer appends at the end of the records table, drains from its
/// start and rewrites the engine state table in key order, so few pages are hot. 256 rather
/// than 512 (ninth round): the same bytes written per payload byte within 2 % in `cargo bench
/// --bench outbox` (`WEIR_BENCH_CACHE_KIB`), 128 writes 6 % more and ingests a fifth slower.
pub const WRITER_CACHE_KIB: u32 = 256;

const fn default_cache_kib() -> u32 {
    WRITER_CACHE_KIB
}

/// `outbox.overflow`: the policy when the byte bound is reached. Every record it drops is
/// counted by reason and logged at ERROR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Evict the oldest records of the lowest-priority lane (aggregates, then predictions,
    /// alerts last) to make room: the newest data wins.
    #[default]
    DropOldest,
    /// Keep what is stored; new records that do not fit are dropped (and still acknowledged
    /// to their source: the policy decided their fate).
    DropNewest,
    /// Push back on the sources: `append` waits until the uplink has made room, so device
    /// messages stay unacknowledged at their broker. Nothing is dropped for space.
    Block,
}

/// `outbox.max_age`, per lane (index = lane); `None` = no age bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxAge(pub [Option<Duration>; 3]);

impl MaxAge {
    pub fn is_set(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PerLaneAge {
    alerts: Option<String>,
    predictions: Option<String>,
    aggregates: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MaxAgeRepr {
    All(String),
    PerLane(PerLaneAge),
}

impl<'de> Deserialize<'de> for MaxAge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaxAge, D::Error> {
        let parse = |s: Option<String>| -> Result<Option<Duration>, D::Error> {
            let Some(s) = s else { return Ok(None) };
            match weir_drivers::duration::parse(&s) {
                Ok(d) if d.is_zero() => Err(serde::de::Error::custom(
                    "max_age must be longer than 0 (leave it out for no age bound)",
                )),
                Ok(d) => Ok(Some(d)),
                Err(e) => Err(serde::de::Error::custom(e)),
            }
        };
        match MaxAgeRepr::deserialize(d)? {
            MaxAgeRepr::All(s) => {
                let d = parse(Some(s))?;
                Ok(MaxAge([d; 3]))
            }
            MaxAgeRepr::PerLane(p) => Ok(MaxAge([
                parse(p.alerts)?,
                parse(p.predictions)?,
                parse(p.aggregates)?,
            ])),
        }
    }
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
    pub fn pragma_value(self) -> &'static str {
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

/// 4096 rather than 1024: every commit rewrites the partly filled last page of each lane and
/// the pages above them, so larger groups write less per record (2.65 instead of 2.94 bytes
/// per payload byte at ingest in `cargo bench --bench outbox`) when a burst fills them.
const fn default_batch_max() -> usize {
    4096
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
            max_age: MaxAge::default(),
            overflow: Overflow::default(),
            cache_kib: default_cache_kib(),
        }
    }
}

pub(crate) use weir_drivers::size::deserialize as de_bytes;

impl OutboxConfig {
    /// Whether the agent could open its outbox at `path`, checked without creating anything
    /// lasting, so `weir check` refuses what `weir run` would refuse: a path that is a
    /// directory, or one on a read-only filesystem, is an error (`Err`) that says what to
    /// change. A path this user may not write is only a warning (`Ok(Some)`): `weir check` is
    /// often run by another user than the agent's.
    pub fn check_path(&self) -> Result<Option<String>, String> {
        let path = &self.path;
        if path.is_dir() {
            return Err(format!(
                "outbox.path {} is a directory; name a file in it, e.g. {}",
                path.display(),
                path.join("outbox.db").display()
            ));
        }
        let tried = if path.exists() {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop)
                .map_err(|e| (e, path.to_path_buf()))
        } else {
            // The agent creates missing parent directories: the nearest existing one must
            // take a new file.
            match path.ancestors().skip(1).find(|a| a.is_dir()) {
                None => Ok(()),
                Some(dir) => {
                    let probe = dir.join(format!(".weir-check-{}", std::process::id()));
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&probe)
                        .map(|_| {
                            let _ = std::fs::remove_file(&probe);
                        })
                        .map_err(|e| (e, dir.to_path_buf()))
                }
            }
        };
        match tried {
            Ok(()) => Ok(None),
            Err((e, at)) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(Some(format!(
                "outbox.path {}: this user cannot write {} ({e}); make sure the agent's user can",
                path.display(),
                at.display()
            ))),
            Err((e, at)) => Err(format!(
                "outbox.path {}: cannot write {}: {e}",
                path.display(),
                at.display()
            )),
        }
    }
}

/// The smallest bound accepted: every record (a few hundred bytes, at most the MQTT
/// payload limit of a source) must fit, or it could never be stored.
pub const MIN_MAX_BYTES: u64 = 64 * 1024;

/// The longest `batch_delay`: a commit, and the device acks behind it, wait this long at most.
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(10);

fn de_batch_delay<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let delay = weir_drivers::duration::deserialize(d)?;
    if delay > MAX_BATCH_DELAY {
        return Err(serde::de::Error::custom(format!(
            "batch_delay {delay:?}: at most 10s (every commit and device ack waits for it)"
        )));
    }
    Ok(delay)
}

/// Records per transaction: at least 1; at most 1,000,000 (a group is held in memory).
fn de_batch_max<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    if !(1..=1_000_000).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "batch_max {n}: must be between 1 and 1000000"
        )));
    }
    usize::try_from(n).map_err(serde::de::Error::custom)
}

fn de_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(d)?;
    // SQLite opens "" as a private temporary database: everything would vanish on exit.
    if path.as_os_str().is_empty() {
        return Err(serde::de::Error::custom("path must not be empty"));
    }
    Ok(path)
}

fn de_max_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = de_bytes(d)?;
    if n < MIN_MAX_BYTES {
        return Err(serde::de::Error::custom(format!(
            "max_bytes {n} is below the minimum of 64KiB: one record must always fit"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_and_overflow() {
        let cfg: OutboxConfig =
            serde_saphyr::from_str("max_age: 2h\noverflow: drop_newest\n").unwrap();
        let two_h = Some(Duration::from_secs(7200));
        assert_eq!(cfg.max_age, MaxAge([two_h; 3]));
        assert_eq!(cfg.overflow, Overflow::DropNewest);
        let cfg: OutboxConfig =
            serde_saphyr::from_str("max_age: {aggregates: 1d}\noverflow: block\n").unwrap();
        assert_eq!(
            cfg.max_age,
            MaxAge([None, None, Some(Duration::from_secs(86_400))])
        );
        assert_eq!(cfg.overflow, Overflow::Block);
        assert!(serde_saphyr::from_str::<OutboxConfig>("max_age: soon\n").is_err());
        assert!(serde_saphyr::from_str::<OutboxConfig>("max_age: {alarms: 1d}\n").is_err());
        assert!(serde_saphyr::from_str::<OutboxConfig>("overflow: drop_all\n").is_err());
    }

    #[test]
    fn a_directory_is_refused_at_check_and_a_permission_problem_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |path: std::path::PathBuf| OutboxConfig {
            path,
            ..OutboxConfig::default()
        };
        let e = cfg(dir.path().to_owned()).check_path().unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        assert_eq!(cfg(dir.path().join("a/b/outbox.db")).check_path(), Ok(None));
        assert_eq!(cfg(dir.path().join("outbox.db")).check_path(), Ok(None));
        // A read-only file; root can write anyway, so only checked when it really is not.
        let ro = dir.path().join("ro.db");
        std::fs::write(&ro, b"").unwrap();
        let mut perms = std::fs::metadata(&ro).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&ro, perms).unwrap();
        if std::fs::OpenOptions::new().write(true).open(&ro).is_err() {
            assert!(
                cfg(ro)
                    .check_path()
                    .unwrap_err()
                    .contains("cannot be written")
            );
        }
    }

    #[test]
    fn a_bound_too_small_for_one_record_is_rejected() {
        let err = serde_saphyr::from_str::<OutboxConfig>("max_bytes: 1KB\n").unwrap_err();
        assert!(err.to_string().contains("minimum of 64KiB"), "{err}");
    }

    #[test]
    fn yaml_config_with_defaults_and_strings() {
        let cfg: OutboxConfig =
            serde_saphyr::from_str("path: x/outbox.db\nmax_bytes: 500KB\nbatch_delay: 5ms\n")
                .unwrap();
        assert_eq!(cfg.path, PathBuf::from("x/outbox.db"));
        assert_eq!(cfg.max_bytes, 500_000);
        assert_eq!(cfg.batch_delay, Duration::from_millis(5));
        assert_eq!(cfg.batch_max, 4096);
        assert_eq!(cfg.synchronous, Synchronous::Normal);

        let cfg: OutboxConfig =
            serde_saphyr::from_str("max_bytes: 1048576\nsynchronous: full\n").unwrap();
        assert_eq!(cfg.max_bytes, 1 << 20);
        assert_eq!(cfg.synchronous, Synchronous::Full);
        assert_eq!(cfg.path, PathBuf::from("/var/lib/weir/outbox.db"));

        let cfg: OutboxConfig = serde_saphyr::from_str("max_bytes: 64 MiB\n").unwrap();
        assert_eq!(cfg.max_bytes, 64 << 20);

        assert!(serde_saphyr::from_str::<OutboxConfig>("max_byte: 1\n").is_err());
        assert_eq!(cfg.overflow, Overflow::DropOldest);
        assert!(!cfg.max_age.is_set());
        assert!(serde_saphyr::from_str::<OutboxConfig>("max_bytes: lots\n").is_err());
    }
}
