//! Writes the labelled multivariate simulator corpus (see `weir_drivers::corpus`).
//!
//! `cargo run -p weir-drivers --example sim-corpus -- DIR [SEED]` (the shipped `data/sim/`
//! is seed 16).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: sim-corpus DIR [SEED]");
        return ExitCode::from(2);
    };
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        None => weir_drivers::corpus::SEED,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("bad seed: {e}");
            return ExitCode::from(2);
        }
    };
    match weir_drivers::corpus::write(&dir, seed) {
        Ok(()) => {
            println!("wrote the corpus for seed {seed} to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
