//! Signing keys and the gateway's trusted public keys, as files.
//!
//! `weir keygen` writes `<name>.key` (the Ed25519 private key, PKCS#8 v2 as hex, mode 0600:
//! it stays on the operator's machine) and `<name>.pub` (the 32-byte public key as hex, one
//! line). A gateway trusts every `*.pub` file in its trusted-keys directory
//! (`/etc/weir/trusted-keys/` unless `fleet.trusted_keys` says otherwise), named by the file's
//! stem. The directory is read again for every bundle, so adding or revoking a key is a file
//! copy or removal, without a restart. Hex rather than PEM: one line to copy, no parser needed.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::hex::{hex, unhex};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a weir key ({reason})")]
    Invalid { path: PathBuf, reason: &'static str },
    #[error("{path} already exists; not overwriting a key")]
    Exists { path: PathBuf },
    #[error("key name `{name}`: letters, digits, `_` and `-` only")]
    BadName { name: String },
}

/// The two files `weir keygen` wrote.
#[derive(Debug)]
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
}

/// Writes a new key pair `<dir>/<name>.key` and `<dir>/<name>.pub`; refuses to overwrite.
pub fn generate(dir: &Path, name: &str) -> Result<KeyFiles, KeyError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(KeyError::BadName {
            name: name.to_owned(),
        });
    }
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for path in [&private, &public] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let invalid = |path: &Path, reason| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| invalid(&private, "the system random source failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| invalid(&private, "generated key does not parse"))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_new(&private, &hex(pkcs8.as_ref()), 0o600).map_err(io(&private))?;
    write_new(&public, &hex(pair.public_key().as_ref()), 0o644).map_err(io(&public))?;
    Ok(KeyFiles { private, public })
}

fn write_new(path: &Path, hex: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    writeln!(file, "{hex}")?;
    file.sync_all()
}

/// Reads a private key written by [`generate`].
pub fn load_signing_key(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = unhex(&text).ok_or(invalid("not hex"))?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| invalid("not an Ed25519 PKCS#8 private key"))
}

/// The public keys a gateway trusts, by name.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl TrustedKeys {
    /// Every `*.pub` file in `dir`. A missing directory is no keys (every bundle is then
    /// refused); an unreadable or malformed key file is skipped with a warning.
    pub fn load(dir: &Path) -> Result<TrustedKeys, KeyError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TrustedKeys::default());
            }
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "pub") {
                continue;
            }
            let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            match std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| unhex(&t))
                .filter(|k| k.len() == 32)
            {
                Some(key) => keys.push((name, key)),
                None => {
                    tracing::warn!(path = %path.display(), "not a trusted key (32 bytes as hex); skipped")
                }
            }
        }
        keys.sort();
        Ok(TrustedKeys { keys })
    }

    pub fn named(&self, name: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.as_slice())
    }

    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(_, k)| k.as_slice())
    }
}
