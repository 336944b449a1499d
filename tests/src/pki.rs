//! Throwaway certificates for the TLS tests, made with the `openssl` command line tool.
//!
//! A test CA signs a broker certificate (for `127.0.0.1` and `localhost`) and a client
//! certificate; a second, unrelated "rogue" CA signs another broker certificate for the same
//! names, which an agent trusting only the test CA must refuse. EC P-256 keys: fast to make.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The files [`Pki::generate`] writes, all PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_ca: PathBuf,
    /// Signed by the rogue CA, for the same names as `server_cert`.
    pub rogue_server_cert: PathBuf,
    pub rogue_server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running `openssl` (install Debian's `openssl` package)")?;
    if !out.status.success() {
        bail!(
            "`openssl {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A self-signed CA `<name>.pem` with key `<name>.key`.
fn ca(dir: &Path, name: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

/// A leaf `<name>.pem`/`<name>.key` signed by CA `<ca>`, with the extensions in `ext`.
fn leaf(dir: &Path, name: &str, ca: &str, ext: &str) -> Result<()> {
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).context("writing an openssl extension file")?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-days",
            "2",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-extfile",
            &ext_file,
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
                          extendedKeyUsage=serverAuth\n\
                          basicConstraints=CA:FALSE\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";

impl Pki {
    /// Writes a fresh CA, broker and client certificates, and a rogue CA and broker, to `dir`.
    pub fn generate(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        ca(dir, "ca")?;
        leaf(dir, "server", "ca", SERVER_EXT)?;
        leaf(dir, "client", "ca", CLIENT_EXT)?;
        ca(dir, "rogue-ca")?;
        leaf(dir, "rogue-server", "rogue-ca", SERVER_EXT)?;
        let p = |f: &str| dir.join(f);
        Ok(Pki {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            rogue_ca: p("rogue-ca.pem"),
            rogue_server_cert: p("rogue-server.pem"),
            rogue_server_key: p("rogue-server.key"),
        })
    }
}
