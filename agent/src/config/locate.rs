//! Which config file a command reads: the one named with `--config`, else the installed
//! `/etc/weir/weir.yaml`, else the built-in demo. One rule for `run`, `check`, `status` and
//! `outbox`, so `weir check` checks exactly what `weir run` would run.

use std::path::Path;

use super::{ConfigError, DEFAULT_CONFIG_PATH, Loaded};

/// Reads the config named on the command line, else the installed one, else the demo.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    match path {
        Some(path) => Loaded::from_path(path),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Loaded::from_path(Path::new(DEFAULT_CONFIG_PATH))
        }
        None => Loaded::builtin_demo(),
    }
}
