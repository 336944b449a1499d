//! Applied versions on the gateway's disk, and which one runs.
//!
//! Layout under `fleet.dir`:
//!
//! ```text
//! state.json          which version runs, the one before it, the highest ever switched to,
//!                     the last attempt and the refusal counts
//! v7/bundle.json      the signed bundle as received (for audit; its hash is in state.json)
//! v7/rules/*.yaml     the rule files the engine loads while v7 runs
//! v7/weir.yaml        the bundle's agent config, if it carried one
//! v6/…                the previous version, kept for rollback
//! ```
//!
//! Crash safety: a version is written into `.staging-vN/`, every file synced, then renamed to
//! `vN/` and the directory synced; only then does `state.json` (written to a temporary file,
//! synced, renamed) name it. A power cut at any instant leaves `state.json` naming a complete
//! version, old or new. Versions other than the current and the previous are removed after a
//! switch. A `state.json` that cannot be read is moved aside and the gateway runs its config's
//! own rules (version 0), loudly.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::Bundle;
use super::status::Attempt;

/// A version on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: u64,
    pub hash: String,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Running; `None`: the config's own rules.
    pub current: Option<Version>,
    /// Kept for rollback.
    pub previous: Option<Version>,
    /// The highest version ever switched to: a bundle must be newer (replay protection),
    /// including one that was rolled back.
    pub high: u64,
    #[serde(default)]
    pub last: Option<Attempt>,
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Hashes of recent bundles already handled: a retained bundle delivered again after a
    /// reconnect is ignored rather than handled (or counted) twice.
    #[serde(default)]
    pub seen: Vec<String>,
}

/// The versions directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn version_dir(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version}"))
    }

    /// The state on disk; default when there is none. An unreadable one is moved aside.
    pub fn load(&self) -> State {
        let path = self.state_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return State::default(),
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot read the fleet state ({e}); running the config's own rules");
                return State::default();
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => state,
            Err(e) => {
                let aside = path.with_extension(format!(
                    "json.corrupt-{}",
                    weir_drivers::now_us() / 1_000_000
                ));
                let moved = std::fs::rename(&path, &aside);
                tracing::error!(path = %path.display(), moved_to = %aside.display(), moved = moved.is_ok(),
                    "fleet state unreadable ({e}); running the config's own rules");
                State::default()
            }
        }
    }

    /// Replaces `state.json` atomically.
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        write_synced(&self.dir.join("state.json.tmp"), &json)?;
        std::fs::rename(self.dir.join("state.json.tmp"), self.state_path())?;
        sync_dir(&self.dir)
    }

    /// The rule files of the running version, in name order; `None` when none is applied
    /// (the config's own `rules:` list then applies).
    pub fn current_rule_files(&self) -> Option<Vec<PathBuf>> {
        let current = self.load().current?;
        let dir = self.version_dir(current.version).join("rules");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) => {
                tracing::error!(dir = %dir.display(), "fleet version {} has no rules directory ({e})", current.version);
                Vec::new()
            }
        };
        files.sort();
        Some(files)
    }

    /// The agent config of the running version, if its bundle carried one.
    pub fn current_config(&self) -> Option<PathBuf> {
        let current = self.load().current?;
        let path = self.version_dir(current.version).join("weir.yaml");
        path.is_file().then_some(path)
    }

    /// Writes `bundle` as version directory `v<version>`, complete and synced, beside the
    /// current one. Nothing runs it until [`Store::switch`].
    pub fn stage(&self, bundle: &Bundle) -> std::io::Result<PathBuf> {
        let staging = self.dir.join(format!(".staging-v{}", bundle.version));
        let target = self.version_dir(bundle.version);
        for old in [&staging, &target] {
            if old.exists() {
                std::fs::remove_dir_all(old)?;
            }
        }
        std::fs::create_dir_all(staging.join("rules"))?;
        write_synced(&staging.join("bundle.json"), &bundle.to_json())?;
        for (name, text) in &bundle.rules {
            write_synced(&staging.join("rules").join(name), text.as_bytes())?;
        }
        if let Some(config) = &bundle.config {
            write_synced(&staging.join("weir.yaml"), config.as_bytes())?;
        }
        sync_dir(&staging.join("rules"))?;
        sync_dir(&staging)?;
        std::fs::rename(&staging, &target)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }

    /// Removes a staged version that will not run.
    pub fn discard(&self, version: u64) {
        let dir = self.version_dir(version);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), "cannot remove a discarded version: {e}");
        }
    }

    /// Makes `to` the running version and the running one the previous; removes older ones.
    /// `state` changes only once the new state is on disk.
    pub fn switch(&self, state: &mut State, to: Version) -> std::io::Result<()> {
        let mut next = state.clone();
        next.high = next.high.max(to.version);
        next.previous = next.current.replace(to);
        self.save(&next)?;
        *state = next;
        self.prune(state);
        Ok(())
    }

    /// Makes the previous version (or none: the config's own rules) run again.
    /// `state` changes only once the new state is on disk.
    pub fn rollback(&self, state: &mut State) -> std::io::Result<Option<Version>> {
        let mut next = state.clone();
        let bad = next.current.take();
        next.current = next.previous.take();
        self.save(&next)?;
        *state = next;
        if let Some(bad) = &bad {
            self.discard(bad.version);
        }
        Ok(bad)
    }

    fn prune(&self, state: &State) {
        let keep: Vec<String> = [&state.current, &state.previous]
            .into_iter()
            .flatten()
            .map(|v| format!("v{}", v.version))
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let versioned = name
                .strip_prefix('v')
                .is_some_and(|n| n.parse::<u64>().is_ok());
            if versioned && !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(version: u64) -> Bundle {
        let mut rules = BTreeMap::new();
        rules.insert(format!("r{version}.yaml"), "rules: []\n".to_owned());
        Bundle::new(version, "gateway/g".to_owned(), rules)
    }

    #[test]
    fn switch_keeps_one_previous_version_and_rollback_returns_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut state = store.load();
        assert_eq!(store.current_rule_files(), None);
        for v in 1..=3 {
            let b = bundle(v);
            store.stage(&b).unwrap();
            store
                .switch(
                    &mut state,
                    Version {
                        version: v,
                        hash: b.hash(),
                    },
                )
                .unwrap();
        }
        assert!(!store.version_dir(1).exists(), "older versions are pruned");
        assert!(store.version_dir(2).exists());
        let files = store.current_rule_files().unwrap();
        assert!(files[0].ends_with("v3/rules/r3.yaml"), "{files:?}");
        let bad = store.rollback(&mut state).unwrap().unwrap();
        assert_eq!(bad.version, 3);
        let reread = store.load();
        assert_eq!(reread.current.unwrap().version, 2);
        assert_eq!(reread.high, 3, "a rolled-back version still bars replays");
        assert!(!store.version_dir(3).exists());
    }

    #[test]
    fn an_unreadable_state_is_moved_aside_and_no_version_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), "{not json").unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load(), State::default());
        assert!(!dir.path().join("state.json").exists());
    }
}
