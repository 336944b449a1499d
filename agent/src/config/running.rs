//! A copy of the config the running agent started with, so `weir check --diff` can say what
//! a reload would change before the operator edits the file in place and sends SIGHUP.
//!
//! `weir run` writes it at start, beside the outbox (`running-config.yaml` in the same
//! directory, so in `StateDirectory=` under systemd), through a temporary file renamed over
//! the old one, readable by its owner only (the config may hold `metrics.page.token`). It
//! holds the start-up config rather than the last reloaded one on purpose:
//! a restart-only setting changed at an earlier reload is still not in effect, and `--diff`
//! must keep naming it until the agent restarts. (A live change already applied shows again
//! as "applied live by a reload": reloading it again changes nothing.)
//!
//! The copy is read back with the base directory of the file it is compared with, so
//! relative paths in it mean what they meant to the agent when both files sit in the same
//! place (the usual case: `/etc/weir/weir.yaml`, edited in place).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{ConfigError, Loaded, Origin, Problem};

/// Where the copy of the running config lives for an outbox at `outbox`.
pub fn path_beside(outbox: &Path) -> PathBuf {
    outbox.with_file_name("running-config.yaml")
}

/// Writes `text`, the running config, beside the outbox at `outbox`.
pub fn save(outbox: &Path, text: &str) -> std::io::Result<PathBuf> {
    let path = path_beside(outbox);
    let tmp = path.with_extension("yaml.tmp");
    {
        // Owner only: the config may hold the status page's token.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Reads the copy of the running config for `current` (the config it is compared with).
pub fn load(current: &Loaded) -> Result<Loaded, ConfigError> {
    let path = path_beside(&current.config.outbox.path);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
        problems: vec![Problem::unlocated(
            path.display().to_string(),
            format!(
                "cannot read the running agent's config ({e}): `weir run` writes it at start; \
                 compare with a file instead with `--against OLD`"
            ),
        )],
    })?;
    let origin = match &current.origin {
        Origin::File { base, .. } => Origin::File {
            path,
            base: base.clone(),
        },
        // The demo's paths are used as written, so its copy is read the same way.
        Origin::BuiltinDemo => Origin::BuiltinDemo,
    };
    Loaded::from_str(&text, origin)
}
