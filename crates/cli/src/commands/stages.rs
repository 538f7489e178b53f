//! `adasamp stages`: every stage with its parameters.

use adasamp_sampling::stages::{external_stages, STAGES};
use anyhow::Result;

/// Runs `stages`.
pub fn run() -> Result<()> {
    for (name, params) in STAGES {
        println!("{name:<22} {params}");
    }
    for s in external_stages() {
        println!("{:<22} {}", s.name, s.params_help);
    }
    Ok(())
}
