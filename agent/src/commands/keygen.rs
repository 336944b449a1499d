//! `weir keygen`: writes an Ed25519 key pair for signing fleet bundles (`weir push --key`).
//! The `.pub` file goes into every gateway's trusted-keys directory; the `.key` file stays
//! with the operator (see `fleet::keys` for the format).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key's name: the files are <NAME>.key and <NAME>.pub, and gateways know the key by it.
    #[arg(long, default_value = "weir")]
    pub name: String,
    /// Where to write the two files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

pub fn main(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let files = crate::fleet::keys::generate(&args.dir, &args.name)?;
    println!("private key: {} (keep it secret)", files.private.display());
    println!(
        "public key:  {} (copy it into each gateway's trusted-keys directory)",
        files.public.display()
    );
    Ok(ExitCode::SUCCESS)
}
