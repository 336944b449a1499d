//! Disk full: what lets the outbox keep working when its filesystem has no space left.
//!
//! SQLite cannot free space on a full disk by itself: deleting rows writes pages to the WAL,
//! and checkpointing the WAL may grow the database file, so once both are stuck every
//! transaction fails. The outbox therefore keeps a *reserve* file of [`RESERVE_BYTES`] beside
//! the database. When an append finds the disk full the writer deletes the reserve, checkpoints
//! and truncates the WAL (and from then on keeps it small: reset every 64 pages, cut to
//! 512 KiB), and holds the outbox at its current size — never below it, so records stored
//! before the disk filled stay until the uplink delivers them. New records then go by the
//! overflow policy: `drop_oldest` evicts the oldest records (lowest lane first, alerts last)
//! to make room in pages SQLite already has; `drop_newest` and `block` drop the new ones; when
//! even that does not fit, the new batch is dropped. Every drop is counted
//! (`evicted_full` / `refused_full`) and logged at ERROR, at most once per
//! [`DROP_LOG_EVERY`] with running totals. Every second while full the writer tries to write
//! the reserve and a probe of the same size; once both fit, space has returned and the bound
//! goes back to `max_bytes` (needing twice the reserve keeps the agent from flapping between
//! full and not full on the room the reserve itself gave back).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Size of the reserve file (`<outbox>.reserve`).
pub(crate) const RESERVE_BYTES: usize = 1 << 20;

/// How often a held outbox checks whether space has returned.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// ERROR lines about dropped records at most this often (the counters keep every drop).
pub(crate) const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct DiskGuard {
    reserve: PathBuf,
    /// Since when the disk is full; `None` while it is not.
    pub full_since: Option<Instant>,
    last_probe: Instant,
    last_drop_log: Option<Instant>,
}

impl DiskGuard {
    /// Creates the reserve beside `db` if it is missing (a warning if it cannot).
    pub fn new(db: &Path) -> DiskGuard {
        let mut name = db.as_os_str().to_owned();
        name.push(".reserve");
        let reserve = PathBuf::from(name);
        let ok = std::fs::metadata(&reserve).is_ok_and(|m| m.len() >= RESERVE_BYTES as u64);
        if !ok && let Err(e) = write_reserve(&reserve) {
            tracing::warn!(
                path = %reserve.display(),
                error = %e,
                "outbox: cannot write the disk reserve; a full disk may stop commits until space returns"
            );
        }
        DiskGuard {
            reserve,
            full_since: None,
            last_probe: Instant::now(),
            last_drop_log: None,
        }
    }

    /// The disk is full: gives the reserve back to the filesystem.
    pub fn release(&mut self) {
        let _ = std::fs::remove_file(&self.reserve);
        self.last_probe = Instant::now();
    }

    /// While full, at most every second: true once the reserve could be written again,
    /// i.e. space has returned.
    pub fn space_returned(&mut self) -> bool {
        if self.full_since.is_none() || self.last_probe.elapsed() < PROBE_EVERY {
            return false;
        }
        self.last_probe = Instant::now();
        if write_reserve(&self.reserve).is_err() {
            return false;
        }
        let mut probe = self.reserve.clone().into_os_string();
        probe.push(".probe");
        let probe = PathBuf::from(probe);
        let room = write_reserve(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        room
    }

    /// Whether an ERROR about dropped records may be logged now (see [`DROP_LOG_EVERY`]).
    pub fn log_drop(&mut self) -> bool {
        let due = self
            .last_drop_log
            .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY);
        if due {
            self.last_drop_log = Some(Instant::now());
        }
        due
    }
}

fn write_reserve(path: &Path) -> std::io::Result<()> {
    let result = std::fs::write(path, vec![0u8; RESERVE_BYTES]);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
