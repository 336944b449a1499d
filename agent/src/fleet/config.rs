//! `fleet:` in the agent config: where bundles come from, who may sign them, where they are
//! kept, and how long a new version is watched before it counts as applied.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `fleet:` in the agent config. Present: the gateway takes bundles over its uplink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Directory of trusted public keys (`*.pub`, hex, as `weir keygen` writes them).
    #[serde(default = "default_trusted_keys")]
    pub trusted_keys: PathBuf,
    /// Where applied versions are kept (relative: to the config's directory).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// This gateway's labels: one group topic per label (`group/site=north`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How long a new version is watched after the switch before it counts as applied.
    #[serde(
        default = "default_watch",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub watch: Duration,
    /// How long health may stay bad within [`FleetConfig::watch`] before the gateway rolls
    /// back by itself.
    #[serde(
        default = "default_unhealthy_for",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub unhealthy_for: Duration,
}

fn default_trusted_keys() -> PathBuf {
    PathBuf::from("/etc/weir/trusted-keys")
}
fn default_dir() -> PathBuf {
    PathBuf::from("/var/lib/weir/fleet")
}
const fn default_watch() -> Duration {
    Duration::from_secs(60)
}
const fn default_unhealthy_for() -> Duration {
    Duration::from_secs(15)
}

impl FleetConfig {
    /// Problems a loaded config must not have: `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (key, value) in &self.labels {
            let bad = |s: &str| s.is_empty() || s.contains(['/', '+', '#', '=', '\0']);
            if bad(key) || bad(value) {
                problems.push((
                    "labels",
                    format!(
                        "label `{key}: {value}`: key and value must be non-empty, without / + # ="
                    ),
                ));
            }
        }
        if self.unhealthy_for > self.watch {
            problems.push((
                "unhealthy_for",
                "must not be longer than `watch` (the rollback could never happen)".to_owned(),
            ));
        }
        problems
    }

    /// Resolves relative paths against the config's directory.
    pub fn resolve_paths(&mut self, resolve: impl Fn(&std::path::Path) -> PathBuf) {
        self.trusted_keys = resolve(&self.trusted_keys);
        self.dir = resolve(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Loaded, Origin};

    fn load(yaml: &str) -> Result<Loaded, String> {
        let origin = Origin::File {
            path: "/etc/weir/weir.yaml".into(),
            base: "/etc/weir".into(),
        };
        Loaded::from_str(yaml, origin).map_err(|e| e.to_string())
    }

    const BASE: &str = "gateway_id: g\nsources: [{simulator: {}}]\noutbox: {path: /tmp/x.db}\n";

    #[test]
    fn fleet_needs_an_uplink_and_sane_labels_and_durations() {
        let err = load(&format!("{BASE}fleet: {{}}\n")).unwrap_err();
        assert!(
            err.contains("fleet: bundles arrive over the uplink"),
            "{err}"
        );
        let err = load(&format!(
            "{BASE}uplink: {{}}\nfleet: {{labels: {{site: a/b}}, watch: 5s, unhealthy_for: 10s}}\n"
        ))
        .unwrap_err();
        assert!(err.contains("fleet.labels"), "{err}");
        assert!(err.contains("fleet.unhealthy_for"), "{err}");
        let err = load(&format!("{BASE}uplink: {{}}\nfleet: {{watch: soon}}\n")).unwrap_err();
        assert!(err.contains(":5:"), "a bad duration is located: {err}");
    }

    #[test]
    fn relative_fleet_paths_are_resolved_against_the_config_directory() {
        let loaded = load(&format!(
            "{BASE}uplink: {{}}\nfleet: {{dir: fleet, labels: {{site: north}}}}\n"
        ))
        .unwrap();
        let fleet = loaded.config.fleet.unwrap();
        assert_eq!(fleet.dir, std::path::Path::new("/etc/weir/fleet"));
        assert_eq!(
            fleet.trusted_keys,
            std::path::Path::new("/etc/weir/trusted-keys")
        );
        assert_eq!(fleet.labels["site"], "north");
    }
}
