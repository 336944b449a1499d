//! A bundle: what an operator pushes to a gateway or a group, and its signature.
//!
//! On the wire a bundle is one JSON object (`weir push` writes it, the gateway reads it):
//!
//! ```json
//! { "format": 1, "version": 7, "target": "group/site=north",
//!   "rules": { "pumps.yaml": "rules:\n  - name: …" },
//!   "config": null, "key": "ops", "signature": "<128 hex digits>" }
//! ```
//!
//! The signature is Ed25519 over a *canonical encoding*, not over the JSON text: JSON has many
//! spellings of one value (key order, escapes, spaces), so signing its text would make a
//! re-encoding by any tool in between break the signature, and verifying a re-parse would let
//! two different texts share one. The encoding ([`Bundle::canonical`]) is a fixed byte layout
//! of every signed field, each length-prefixed, rule files in name order. The target is signed
//! too, so a bundle signed for one group cannot be replayed onto another. The bundle's hash
//! (reported in the gateway's status) is SHA-256 of the same bytes.

use std::collections::BTreeMap;

use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::hex::{hex, unhex};
use super::keys::TrustedKeys;

/// The only bundle format this agent reads.
pub const FORMAT: u32 = 1;
/// The largest bundle `weir push` sends (its JSON). The uplink accepts incoming packets up
/// to 1 MiB; a larger retained bundle would fail the uplink's connection on every reconnect.
pub const MAX_BYTES: usize = 768 * 1024;
/// The largest rule file count, and name length, a bundle may carry.
const MAX_FILES: usize = 256;
const MAX_NAME: usize = 128;

/// A bundle as it travels, signed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: u32,
    /// Strictly increasing per target; a gateway refuses a version not newer than its own.
    pub version: u64,
    /// `gateway/<id>` or `group/<key>=<value>`: where it was pushed.
    pub target: String,
    /// Rule file name (one path segment, `.yaml` or `.yml`) → its text.
    pub rules: BTreeMap<String, String>,
    /// An agent config (YAML), optional.
    #[serde(default)]
    pub config: Option<String>,
    /// The name of the key that signed it (the trusted key file's stem); not signed.
    #[serde(default)]
    pub key: Option<String>,
    /// Hex Ed25519 signature over [`Bundle::canonical`]; absent when unsigned.
    #[serde(default)]
    pub signature: Option<String>,
}

/// Why a bundle was refused before validation. Each is a counter in the gateway's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("malformed bundle: {reason}")]
    Malformed { reason: String },
    #[error("unsigned bundle")]
    Unsigned,
    #[error("bad signature: {reason}")]
    BadSignature { reason: String },
    #[error("replayed bundle: version {version} is not newer than {current}")]
    Replayed { version: u64, current: u64 },
    #[error("bundle for `{target}` arrived on the topic of `{expected}`")]
    WrongTarget { target: String, expected: String },
}

impl Refusal {
    /// The counter's name in the status message.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed { .. } | Refusal::WrongTarget { .. } => "malformed",
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::Replayed { .. } => "replayed",
        }
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Bundle {
    /// An unsigned bundle of `rules` for `target`.
    pub fn new(version: u64, target: String, rules: BTreeMap<String, String>) -> Bundle {
        Bundle {
            format: FORMAT,
            version,
            target,
            rules,
            config: None,
            key: None,
            signature: None,
        }
    }

    /// The signed bytes: a domain tag, then every signed field length-prefixed (u64 BE).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = b"weir-bundle\n".to_vec();
        out.extend_from_slice(&self.format.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        put(&mut out, self.target.as_bytes());
        out.extend_from_slice(&(self.rules.len() as u64).to_be_bytes());
        for (name, text) in &self.rules {
            put(&mut out, name.as_bytes());
            put(&mut out, text.as_bytes());
        }
        match &self.config {
            Some(config) => {
                out.push(1);
                put(&mut out, config.as_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// SHA-256 of [`Bundle::canonical`], hex: the bundle's identity in status messages.
    pub fn hash(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, &self.canonical()).as_ref())
    }

    /// Signs in place with `key`, named `key_name`.
    pub fn sign(&mut self, key: &Ed25519KeyPair, key_name: &str) {
        self.key = Some(key_name.to_owned());
        self.signature = Some(hex(key.sign(&self.canonical()).as_ref()));
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and maps of strings: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks the shape (format, file names); signature not checked.
    pub fn parse(payload: &[u8]) -> Result<Bundle, Refusal> {
        let malformed = |reason: String| Refusal::Malformed { reason };
        let bundle: Bundle =
            serde_json::from_slice(payload).map_err(|e| malformed(format!("not a bundle: {e}")))?;
        if bundle.format != FORMAT {
            return Err(malformed(format!(
                "format {} (this agent reads {FORMAT})",
                bundle.format
            )));
        }
        if bundle.rules.len() > MAX_FILES {
            return Err(malformed(format!("more than {MAX_FILES} rule files")));
        }
        for name in bundle.rules.keys() {
            check_name(name).map_err(malformed)?;
        }
        Ok(bundle)
    }

    /// Checks the signature against `trusted`: the key the bundle names if it names one,
    /// else any trusted key.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<(), Refusal> {
        let Some(signature) = &self.signature else {
            return Err(Refusal::Unsigned);
        };
        let bad = |reason: String| Refusal::BadSignature { reason };
        let signature = unhex(signature).ok_or_else(|| bad("signature is not hex".to_owned()))?;
        let message = self.canonical();
        let candidates: Vec<_> = match &self.key {
            Some(name) => trusted.named(name).into_iter().collect(),
            None => trusted.all().collect(),
        };
        if candidates.is_empty() {
            return Err(bad(match &self.key {
                Some(name) => format!("key `{name}` is not trusted"),
                None => "no trusted keys".to_owned(),
            }));
        }
        for public in candidates {
            if UnparsedPublicKey::new(&ED25519, public)
                .verify(&message, &signature)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(bad(format!(
            "does not verify with trusted key {}",
            self.key.as_deref().unwrap_or("(any)")
        )))
    }
}

/// A rule file name: one path segment of `[A-Za-z0-9._-]`, ending `.yaml` or `.yml`, not
/// starting with a dot (so nothing can be written outside the version's directory).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && (name.ends_with(".yaml") || name.ends_with(".yml"));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "rule file name `{name}`: must be one file name of letters, digits, `._-`, ending \
             .yaml or .yml"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::keys;

    fn bundle() -> Bundle {
        let mut rules = BTreeMap::new();
        rules.insert("a.yaml".to_owned(), "rules: []\n".to_owned());
        Bundle::new(3, "gateway/gw-1".to_owned(), rules)
    }

    fn trusted(dir: &std::path::Path) -> (Ed25519KeyPair, TrustedKeys) {
        let pair = keys::generate(dir, "ops").unwrap();
        let key = keys::load_signing_key(&pair.private).unwrap();
        (key, TrustedKeys::load(dir).unwrap())
    }

    #[test]
    fn a_signed_bundle_verifies_and_any_change_to_a_signed_field_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, trusted) = trusted(dir.path());
        let mut b = bundle();
        assert_eq!(b.verify(&trusted), Err(Refusal::Unsigned));
        b.sign(&key, "ops");
        let parsed = Bundle::parse(&b.to_json()).unwrap();
        assert_eq!(parsed.verify(&trusted), Ok(()));
        for tamper in [
            |b: &mut Bundle| b.version += 1,
            |b: &mut Bundle| b.target = "group/site=south".to_owned(),
            |b: &mut Bundle| {
                b.rules
                    .insert("a.yaml".to_owned(), "rules: [] \n".to_owned());
            },
            |b: &mut Bundle| b.config = Some(String::new()),
        ] {
            let mut changed = parsed.clone();
            tamper(&mut changed);
            assert!(matches!(
                changed.verify(&trusted),
                Err(Refusal::BadSignature { .. })
            ));
        }
        let mut unknown = parsed.clone();
        unknown.key = Some("intruder".to_owned());
        assert!(matches!(
            unknown.verify(&trusted),
            Err(Refusal::BadSignature { reason }) if reason.contains("not trusted")
        ));
    }

    #[test]
    fn a_key_not_in_the_trusted_directory_is_refused() {
        let trusted_dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let (_, trusted) = trusted(trusted_dir.path());
        let other = keys::generate(other_dir.path(), "ops").unwrap();
        let mut b = bundle();
        b.sign(&keys::load_signing_key(&other.private).unwrap(), "ops");
        assert!(matches!(
            b.verify(&trusted),
            Err(Refusal::BadSignature { .. })
        ));
    }

    #[test]
    fn file_names_that_could_leave_the_directory_are_malformed() {
        for name in ["../x.yaml", "a/b.yaml", ".hidden.yaml", "x.txt", ""] {
            let mut b = bundle();
            b.rules.insert(name.to_owned(), String::new());
            assert!(
                matches!(Bundle::parse(&b.to_json()), Err(Refusal::Malformed { .. })),
                "{name}"
            );
        }
        assert!(matches!(
            Bundle::parse(b"{\"format\": 1"),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn the_canonical_encoding_is_pinned() {
        // Changing it invalidates every signature in the field: this test says so loudly.
        // (The value was computed independently with Python's struct + hashlib.)
        assert_eq!(
            bundle().hash(),
            "61259b881f69787266d848c3a74c9471a52a952456fd555d9725de544ae82e01"
        );
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
    }
}
