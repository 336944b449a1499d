//! Run-hour and start counters that survive restarts, so maintenance thresholds mean
//! something: kept in the outbox database (table `run_hours`, module `outbox::engine_state`),
//! in the transactions of the engine's checkpoints, or every minute when checkpoints are off,
//! and at shutdown. [`Saved`] finds the counters that changed since they were last written,
//! so a write costs one row per running machine, not one per `runtime` rule and series.
//!
//! Why in the database and not in a file of its own (`runtime.json` beside the outbox, as
//! until issue 18): a file was a second write path, synced and renamed every minute, whose
//! contents could disagree with the checkpoint after a crash; in the database the counters
//! are committed with the state and the input they come from.
//!
//! **Import.** An agent that finds the old `runtime.json` at start takes the counters that
//! are ahead of what the database holds, commits them, and only then renames the file to
//! `runtime.json.imported` (logged at INFO). A crash between the two imports it again: the
//! first import's counters are in the database then, so nothing is counted twice. A file that
//! cannot be read as counters is moved aside with a timestamp and logged at ERROR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use weir_rules::{Engine, RuntimeCounter};

/// The counters as last written: what [`Saved::changed`] compares with.
#[derive(Debug, Default)]
pub struct Saved {
    written: HashMap<(String, String, String), (i64, u64)>,
}

impl Saved {
    /// Starts from the engine's counters as they are now (restored: already stored).
    pub fn of(engine: &Engine) -> Saved {
        let mut saved = Saved::default();
        saved.changed(engine);
        saved
    }

    /// The engine's counters that differ from those last written, now counted as written
    /// (the caller writes them).
    pub fn changed(&mut self, engine: &Engine) -> Vec<RuntimeCounter> {
        engine
            .runtime_counters()
            .into_iter()
            .filter(|c| {
                let key = (c.rule.clone(), c.device.clone(), c.metric.clone());
                self.written.insert(key, (c.run_us, c.starts)) != Some((c.run_us, c.starts))
            })
            .collect()
    }
}

/// The run-hours file of agents before issue 18 (`runtime.json` beside the outbox).
pub struct OldFile {
    path: PathBuf,
}

impl OldFile {
    /// The file beside the outbox database at `outbox`.
    pub fn beside(outbox: &Path) -> OldFile {
        OldFile {
            path: outbox.with_file_name("runtime.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its counters; none when there is no file (the usual case).
    pub fn load(&self) -> Vec<RuntimeCounter> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), "cannot read the old run-hours file ({e}); not imported");
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
                    "old run-hours file unreadable ({e}); not imported"
                );
                Vec::new()
            }
        }
    }

    /// Once its counters are committed: renamed to `runtime.json.imported`, so it is
    /// imported once.
    pub fn imported(&self) -> std::io::Result<PathBuf> {
        let to = self.path.with_extension("json.imported");
        std::fs::rename(&self.path, &to)?;
        Ok(to)
    }
}

/// Puts run-hour counters back into `engine` after its state was restored (or not): those
/// stored in the outbox, then those of an old `runtime.json`, each where it is ahead of what
/// the engine holds. Run hours only grow, so the larger count is the newer one: a restored
/// checkpoint plus its replayed input is normally ahead of both, but not a checkpoint that
/// was refused (another format), one left from before `checkpoint_interval: 0s` was turned
/// back on, or a `runtime` rule whose definition changed (its other state starts fresh; the
/// machine's hours are kept, by rule name, device and metric). With `checkpoints`, what was
/// put back is checkpointed at once (the input log replays onto the checkpoint). The old
/// file's counters are committed, then the file renamed.
pub async fn restore(
    engine: &mut Engine,
    outbox: &crate::outbox::Outbox,
    old: &OldFile,
    checkpoints: bool,
) {
    let ahead = |engine: &Engine, saved: Vec<RuntimeCounter>| -> Vec<RuntimeCounter> {
        let have = engine.runtime_counters();
        saved
            .into_iter()
            .filter(|c| {
                !have.iter().any(|h| {
                    h.rule == c.rule
                        && h.device == c.device
                        && h.metric == c.metric
                        && h.run_us >= c.run_us
                })
            })
            .collect()
    };
    let mut put_back = 0;
    match outbox.run_hours().await {
        Ok(stored) => {
            let stored = ahead(engine, stored);
            if !stored.is_empty() {
                put_back = engine.restore_runtime(&stored);
                tracing::info!(restored = put_back, "run-hour counters restored");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the run-hour counters: counting from zero")
        }
    }
    let from_file = old.load();
    let import = ahead(engine, from_file.clone());
    let imported = engine.restore_runtime(&import);
    put_back += imported;
    if checkpoints && put_back > 0 {
        // The input logged from now on is replayed onto the last checkpoint after a crash: it
        // must hold what was just put back, or a replay would count from the older hours.
        if let Err(e) = outbox.checkpoint(engine.checkpoint(), Vec::new()).await {
            tracing::error!(error = %e, "run-hour counters not checkpointed");
        }
    }
    if from_file.is_empty() {
        return;
    }
    // Committed before the file goes: a crash in between imports it again, and then finds
    // these in the database.
    let (done, committed) = tokio::sync::oneshot::channel();
    let hook: crate::outbox::AfterCommit = Box::new(move || {
        let _ = done.send(());
    });
    let queued = outbox.save_run_hours(import, vec![hook]).await;
    if queued.is_err() || committed.await.is_err() {
        tracing::error!(path = %old.path().display(), "old run-hours file not imported: the outbox did not commit; tried again at the next start");
        return;
    }
    let restored = imported;
    match old.imported() {
        Ok(to) => tracing::info!(
            path = %old.path().display(),
            renamed_to = %to.display(),
            restored,
            "old run-hours file imported into the outbox database"
        ),
        Err(e) => tracing::warn!(
            path = %old.path().display(),
            "old run-hours file imported but not renamed ({e}); it is read again at the next start, for series nothing else holds"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, OutboxConfig};
    use weir_rules::{RuleSet, Sample};

    const RULE: &str = "rules:\n  - name: hours\n    select: { metric: current }\n    detect: { runtime: { running_above: 1, hours: 100 } }\n    alert: {}\n";
    const S: i64 = 1_000_000;

    fn engine() -> Engine {
        Engine::new(RuleSet::parse_str(RULE, "r.yaml").unwrap())
    }

    /// Runs `pump-1` for `seconds` from `from` (one sample a second, all above the bound).
    fn run(e: &mut Engine, from: i64, seconds: i64) {
        let series = e.series("pump-1", "current").unwrap();
        for t in from..=from + seconds {
            e.push(
                Sample {
                    series,
                    ts: t * S,
                    value: 5.0,
                },
                &mut Vec::new(),
            );
        }
    }

    fn run_us(e: &Engine) -> i64 {
        e.runtime_counters().first().map_or(0, |c| c.run_us)
    }

    #[tokio::test]
    async fn counters_written_to_the_outbox_come_back_and_an_old_file_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OutboxConfig {
            path: dir.path().join("outbox.db"),
            ..OutboxConfig::default()
        };
        let old = OldFile::beside(&cfg.path);
        let mut from_file = counter(7 * S);
        from_file.rule = "hours".into();
        std::fs::write(old.path(), serde_json::to_vec(&[from_file]).unwrap()).unwrap();
        {
            let (outbox, thread) = Outbox::open(&cfg).unwrap();
            let mut e = engine();
            restore(&mut e, &outbox, &old, false).await;
            assert_eq!(run_us(&e), 7 * S, "imported");
            assert!(!old.path().exists(), "renamed once committed");
            // Three more seconds; written as checkpoints off would, and the process dies
            // without another write (what a kill -9 leaves).
            let mut saved = Saved::of(&e);
            run(&mut e, 100, 3);
            let changed = saved.changed(&e);
            assert_eq!(changed.len(), 1);
            assert!(saved.changed(&e).is_empty(), "written once");
            outbox.save_run_hours(changed, Vec::new()).await.unwrap();
            drop(outbox);
            thread.join().unwrap();
        }
        // The old file is back (a copy restored from a backup, say): it is behind what is
        // stored, so it changes nothing.
        let mut stale = counter(7 * S);
        stale.rule = "hours".into();
        std::fs::write(old.path(), serde_json::to_vec(&[stale]).unwrap()).unwrap();
        let (outbox, _thread) = Outbox::open(&cfg).unwrap();
        let mut e = engine();
        restore(&mut e, &outbox, &old, false).await;
        assert_eq!(
            run_us(&e),
            10 * S,
            "7 s imported + 3 s run, not imported twice"
        );
    }

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
    fn an_old_file_loads_and_is_renamed_once_imported() {
        let dir = tempfile::tempdir().unwrap();
        let old = OldFile::beside(&dir.path().join("outbox.db"));
        assert!(old.load().is_empty());
        std::fs::write(old.path(), serde_json::to_vec(&[counter(9)]).unwrap()).unwrap();
        assert_eq!(old.load(), [counter(9)]);
        let to = old.imported().unwrap();
        assert_eq!(to, dir.path().join("runtime.json.imported"));
        assert!(old.load().is_empty(), "imported once");
    }

    #[test]
    fn a_corrupt_old_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let old = OldFile::beside(&dir.path().join("outbox.db"));
        std::fs::write(old.path(), b"{not json").unwrap();
        assert!(old.load().is_empty());
        assert!(!old.path().exists());
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
