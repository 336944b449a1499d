//! Run-hour and start counters on disk, so maintenance counts survive restarts.
//!
//! A small JSON file beside the outbox (`runtime.json` in the same directory, so in
//! `StateDirectory=` under systemd), rewritten whole at most once a minute when the counters
//! changed, and at shutdown. Writes go to a temporary file that is synced and renamed over
//! the old one, so a power cut leaves either the old or the new counts, never a torn file.
//! Losing up to a minute of run time on a power cut is the price of sparing the flash.
//!
//! A file that cannot be read as counters is moved aside with a timestamp and logged at
//! ERROR; the agent starts with zero counts rather than not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use weir_rules::RuntimeCounter;

/// The run-hours file (`runtime.json`: the name on disk predates this module's).
pub struct RunHoursFile {
    path: PathBuf,
}

impl RunHoursFile {
    /// The store beside the outbox database at `outbox`.
    pub fn beside(outbox: &Path) -> RunHoursFile {
        RunHoursFile {
            path: outbox.with_file_name("runtime.json"),
        }
    }

    pub fn at(path: PathBuf) -> RunHoursFile {
        RunHoursFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved counters; none when there is no file yet.
    pub fn load(&self) -> Vec<RuntimeCounter> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), "cannot read run-time counters ({e}); counting from zero");
                return Vec::new();
            }
        };
        match serde_json::from_slice(&text) {
            Ok(counters) => counters,
            Err(e) => {
                let aside = self.path.with_extension(format!(
                    "json.corrupt-{}",
                    weir_drivers::now_us() / 1_000_000
                ));
                let moved = std::fs::rename(&self.path, &aside);
                tracing::error!(
                    path = %self.path.display(),
                    moved_to = %aside.display(),
                    moved = moved.is_ok(),
                    "run-time counters unreadable ({e}); counting from zero"
                );
                Vec::new()
            }
        }
    }

    /// Replaces the file with `counters`, atomically.
    pub fn save(&self, counters: &[RuntimeCounter]) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(counters).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(run_us: i64) -> RuntimeCounter {
        RuntimeCounter {
            rule: "hours".into(),
            device: "pump-1".into(),
            metric: "current".into(),
            run_us,
            starts: 3,
        }
    }

    #[test]
    fn saves_and_loads_and_starts_empty_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunHoursFile::beside(&dir.path().join("outbox.db"));
        assert!(store.load().is_empty());
        store.save(&[counter(7)]).unwrap();
        store.save(&[counter(9)]).unwrap();
        assert_eq!(store.load(), [counter(9)]);
        assert!(!dir.path().join("runtime.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_counting_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunHoursFile::beside(&dir.path().join("outbox.db"));
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(store.load().is_empty());
        assert!(!store.path().exists());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("runtime.json.corrupt-")
            });
        assert!(aside);
    }
}
