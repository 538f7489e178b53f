//! `adasamp label verify`: verifiable rewards on candidate records (resumable).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Options of `label verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Candidate records (JSONL), e.g. the clean file of `adasamp verify`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the labelled records go (JSONL); an interrupted run's file is resumed.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs `label verify`.
pub fn run(a: &VerifyArgs) -> Result<()> {
    let report = adasamp_curate::verifiable::label::label_verified(&a.input, &a.output)?;
    eprintln!("{report}");
    Ok(())
}
