//! Reading a config: from a file or the built-in demo, to a checked [`Loaded`] with its paths
//! resolved, and the rule files it names.
//!
//! Its own file because it is the one way in: every command and the daemon's reload get their
//! config through [`Loaded`] (or, for `weir replay`, [`replay_settings_from_path`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::validate::{Locations, validate};
use super::{
    Config, ConfigError, DEMO_CONFIG, DEMO_RULES, LabelEntry, Problem, rule_files, yaml_problem,
};

/// Where the config came from: rule and outbox paths are resolved against `base`.
#[derive(Debug, Clone)]
pub enum Origin {
    File { path: PathBuf, base: PathBuf },
    BuiltinDemo,
}

impl Origin {
    pub fn name(&self) -> String {
        match self {
            Origin::File { path, .. } => path.display().to_string(),
            Origin::BuiltinDemo => "<built-in demo>/demo.yaml".to_owned(),
        }
    }
}

/// A parsed, checked config and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub origin: Origin,
    /// The YAML it was read from, kept so the daemon can record what it runs (see
    /// [`super::running`]).
    pub text: String,
}

/// A rule file's text as the engine should see it: a name for diagnostics and its source.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub name: String,
    pub text: String,
}

impl Loaded {
    /// Reads and checks `path`.
    pub fn from_path(path: &Path) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem::unlocated(
                file.clone(),
                format!("cannot read config: {e}"),
            )],
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let origin = Origin::File {
            path: path.to_path_buf(),
            base,
        };
        Loaded::from_str(&text, origin)
    }

    /// The built-in demo config (simulated devices, a local outbox, a local broker if any).
    pub fn builtin_demo() -> Result<Loaded, ConfigError> {
        Loaded::from_str(DEMO_CONFIG, Origin::BuiltinDemo)
    }

    pub fn from_str(text: &str, origin: Origin) -> Result<Loaded, ConfigError> {
        let file = origin.name();
        let mut config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            problems: vec![yaml_problem(&file, &e)],
        })?;
        // Parses as `Config` did, so it cannot fail where that succeeded; if it did, the
        // checks below would only lack a location.
        let at: Locations = serde_saphyr::from_str(text).unwrap_or_default();
        if let Origin::File { base, .. } = &origin {
            config.outbox.path = resolve(base, &config.outbox.path);
            if let Some(tls) = config.uplink.as_mut().and_then(|u| u.tls.as_mut()) {
                tls.resolve_paths(|p| resolve(base, p));
            }
            if let Some(fleet) = config.fleet.as_mut() {
                fleet.resolve_paths(|p| resolve(base, p));
            }
        }
        let problems = validate(&config, &at, &file);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Certificate and key files are read now, so a missing or bad one is a config error
        // that names it (in `weir check` too), not an uplink that never connects.
        if let Some(tls) = config.uplink.as_ref().and_then(|u| u.tls.as_ref())
            && let Err(e) = crate::uplink::tls_client_config(tls)
        {
            return Err(ConfigError {
                problems: vec![Problem::unlocated(file, e.to_string())],
            });
        }
        Ok(Loaded {
            config,
            origin,
            text: text.to_owned(),
        })
    }

    /// Reads every rule file named by the config. Each entry is the file's result, so the
    /// caller decides whether one unreadable file is fatal (`check`) or skipped (`run`).
    pub fn rule_files(&self) -> Vec<Result<RuleFile, Problem>> {
        if let Some(files) = rule_files::fleet_version(self) {
            return files;
        }
        self.config
            .rules
            .iter()
            .map(|rel| match &self.origin {
                Origin::File { base, .. } => rule_files::read(&resolve(base, rel)),
                Origin::BuiltinDemo => {
                    let key = rel.to_string_lossy();
                    DEMO_RULES
                        .iter()
                        .find(|(name, _)| *name == key)
                        .map(|(name, text)| RuleFile {
                            name: format!("<built-in demo>/{name}"),
                            text: (*text).to_owned(),
                        })
                        .ok_or_else(|| {
                            Problem::unlocated(
                                self.origin.name(),
                                format!("the built-in demo has no rule file `{key}`"),
                            )
                        })
                }
            })
            .collect()
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Only the `labels:` (and `engine.max_state_bytes`) of a config, for `weir replay --config`:
/// the other sections are not read at all, so a gateway's config works as is on a laptop
/// without its devices.
#[derive(Debug, Deserialize)]
struct LabelsOnly {
    #[serde(default)]
    labels: Vec<LabelEntry>,
    #[serde(default)]
    engine: Option<BudgetOnly>,
}

#[derive(Debug, Deserialize)]
struct BudgetOnly {
    #[serde(default, deserialize_with = "optional_size")]
    max_state_bytes: Option<usize>,
}

fn optional_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    weir_drivers::size::deserialize_usize(d).map(Some)
}

/// What `weir replay --config` reads of the config at `path`: the device labels, and
/// `engine.max_state_bytes` if it sets one (so a replay runs under the gateway's budget).
/// Everything else in it is ignored.
pub fn replay_settings_from_path(
    path: &Path,
) -> Result<(weir_rules::DeviceLabels, Option<usize>), ConfigError> {
    let file = path.display().to_string();
    let problem = |message: String| ConfigError {
        problems: vec![Problem::unlocated(file.clone(), message)],
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read config: {e}")))?;
    let raw: LabelsOnly = serde_saphyr::from_str(&text).map_err(|e| ConfigError {
        problems: vec![yaml_problem(&file, &e)],
    })?;
    let budget = raw.engine.and_then(|e| e.max_state_bytes);
    let labels = weir_rules::DeviceLabels::new(raw.labels.into_iter().map(|e| (e.devices, e.set)))
        .map_err(|e| problem(format!("labels: {e}")))?;
    Ok((labels, budget))
}
