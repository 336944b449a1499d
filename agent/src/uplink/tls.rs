//! TLS for the uplink: the broker's certificate is verified against the configured CA, and
//! a client certificate is presented when one is configured (mutual TLS).
//!
//! rustls with its `ring` provider, built here rather than through rumqttc's PEM helpers, for
//! two reasons: the provider is chosen explicitly (no aws-lc, no OpenSSL: both hurt ARM cross
//! builds), and every file is read and checked when the agent starts, so a missing or bad
//! file is an error naming that file, not a reconnect loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `uplink.tls:` in the agent config. Relative paths are resolved against the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to. The broker
    /// is checked against the uplink `host` (a DNS name or an IP address in its certificate).
    pub ca_file: PathBuf,
    /// PEM certificate chain presented to the broker (mutual TLS); needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the client certificate.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Resolves every path with `resolve` (relative to the config file).
    pub fn resolve_paths(&mut self, resolve: impl Fn(&Path) -> PathBuf) {
        self.ca_file = resolve(&self.ca_file);
        for path in [&mut self.client_cert_file, &mut self.client_key_file]
            .into_iter()
            .flatten()
        {
            *path = resolve(path);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("uplink.tls.{field}: cannot read `{}`: {source}", path.display())]
    Read {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("uplink.tls.{field}: `{}` holds no PEM certificate", path.display())]
    NoCertificate { field: &'static str, path: PathBuf },
    #[error("uplink.tls.{field}: `{}` is not valid PEM: {reason}", path.display())]
    BadPem {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("uplink.tls.ca_file: `{}`: certificate not usable as a CA: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "uplink.tls.client_key_file: `{}` holds no private key (PEM PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("uplink.tls: client_cert_file and client_key_file must be given together")]
    HalfClientAuth,
    #[error(
        "uplink.tls: the client certificate `{}` and key `{}` cannot be used together: {source}",
        cert.display(),
        key.display()
    )]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("uplink.tls: no usable TLS protocol version: {source}")]
    Protocol { source: rustls::Error },
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            field,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            field,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads every configured file and builds the client configuration.
pub fn client_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates("ca_file", &cfg.ca_file)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: cfg.ca_file.clone(),
            source,
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Protocol { source })?
        .with_root_certificates(roots);
    match (&cfg.client_cert_file, &cfg.client_key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates("client_cert_file", cert)?;
            let pem = read("client_key_file", key)?;
            let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    TlsError::NoKey { path: key.clone() }
                }
                e => TlsError::BadPem {
                    field: "client_key_file",
                    path: key.clone(),
                    reason: e.to_string(),
                },
            })?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsError::ClientAuth {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })
        }
        _ => Err(TlsError::HalfClientAuth),
    }
}

/// A short operator-facing reason for a failed TLS connection, or `None` if `e` is not one.
///
/// rustls reports a rejected certificate as an I/O error wrapping a `rustls::Error`; this
/// digs it out so the log says "certificate not trusted" rather than "I/O: invalid data".
pub fn describe(e: &rumqttc::ConnectionError) -> Option<String> {
    let rumqttc::ConnectionError::Tls(tls) = e else {
        return None;
    };
    let inner = match tls {
        rumqttc::TlsError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        rumqttc::TlsError::TLS(e) => Some(e),
        _ => None,
    };
    Some(match inner {
        Some(rustls::Error::InvalidCertificate(reason)) => format!(
            "the broker's certificate was rejected ({reason:?}): it must be signed by a CA in \
             uplink.tls.ca_file and name the uplink host"
        ),
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the broker refused the TLS handshake ({alert:?}): check the client certificate \
             (uplink.tls.client_cert_file) against the broker's CA"
        ),
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {tls}"),
    })
}
