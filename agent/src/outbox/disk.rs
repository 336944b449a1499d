//! Disk full: what lets the outbox keep working when its filesystem has no space left.
//!
//! SQLite cannot free space on a full disk by itself: deleting rows writes pages to the WAL,
//! and checkpointing the WAL may grow the database file, so once both are stuck every
//! transaction fails. The outbox therefore keeps a *reserve* file of [`RESERVE_BYTES`] beside
//! the database. When an append finds the disk full the writer deletes the reserve, checkpoints
//! and truncates the WAL, and holds the outbox at its current size: the overflow policy then
//! evicts the oldest records (lowest lane first) to make room in pages SQLite already has.
//! Every second while full it tries to write the reserve again; once that succeeds, space has
//! returned and the bound goes back to `max_bytes`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Size of the reserve file (`<outbox>.reserve`).
pub(crate) const RESERVE_BYTES: usize = 1 << 20;

/// How often a held outbox checks whether space has returned.
const PROBE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct DiskGuard {
    reserve: PathBuf,
    /// Since when the disk is full; `None` while it is not.
    pub full_since: Option<Instant>,
    last_probe: Instant,
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
        write_reserve(&self.reserve).is_ok()
    }
}

fn write_reserve(path: &Path) -> std::io::Result<()> {
    let result = std::fs::write(path, vec![0u8; RESERVE_BYTES]);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
