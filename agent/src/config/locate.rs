//! Which config file a command reads: the one named with `--config`, else the installed
//! `/etc/weir/weir.yaml`, else the built-in demo. One rule for `run`, `check`, `status` and
//! `outbox`, so `weir check` checks exactly what `weir run` would run. With `fleet:`, the
//! config a pushed bundle carried replaces the local one (both were validated alike).

use std::path::Path;

use super::{ConfigError, DEFAULT_CONFIG_PATH, Loaded, Origin};

/// Reads the config named on the command line, else the installed one, else the demo; and
/// when that config has `fleet:` and the running fleet version carries a config, that one
/// (see [`fleet_config`]).
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    let local = load_local(path)?;
    Ok(fleet_config(&local).unwrap_or(local))
}

/// The config of the running fleet version, if it carries one, read with the local config's
/// base directory (relative paths mean the same). One that no longer loads (a certificate
/// file gone since it was validated) is skipped with a warning: the local config keeps the
/// gateway reachable for the next bundle.
fn fleet_config(local: &Loaded) -> Option<Loaded> {
    let fleet = local.config.fleet.as_ref()?;
    let path = crate::fleet::Store::new(&fleet.dir).current_config()?;
    let Origin::File { base, .. } = &local.origin else {
        return None;
    };
    let text = std::fs::read_to_string(&path).ok()?;
    let origin = Origin::File {
        path: path.clone(),
        base: base.clone(),
    };
    match Loaded::from_str(&text, origin) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            eprintln!(
                "weir: warning: the fleet version's config {} does not load; using {}:\n{e}",
                path.display(),
                local.origin.name()
            );
            None
        }
    }
}

fn load_local(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    match path {
        Some(path) => Loaded::from_path(path),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Loaded::from_path(Path::new(DEFAULT_CONFIG_PATH))
        }
        None => Loaded::builtin_demo(),
    }
}
