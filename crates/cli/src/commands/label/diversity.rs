//! `adasamp label diversity`: self-BLEU and embedding entropy per (prompt, pipeline) group
//! across seeds (resumable).

use std::path::PathBuf;

use adasamp_curate::diversity::{label_diversity, DiversityOptions};
use anyhow::Result;
use clap::Args;

/// Options of `label diversity`.
#[derive(Debug, Args)]
pub struct DiversityArgs {
    /// Candidate records (JSONL), e.g. the clean file of `adasamp verify`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the labelled records go (JSONL); an interrupted run's file is resumed.
    #[arg(long)]
    pub output: PathBuf,
    /// A sentence-transformers model directory (BERT, mean pooling); default: all-MiniLM-L6-v2,
    /// fetched into $ADASAMP_HOME (`adasamp model fetch embedder`).
    #[arg(long)]
    pub embedder: Option<PathBuf>,
    /// Texts per embedding forward pass.
    #[arg(long, default_value_t = adasamp_curate::diversity::embed::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Label only groups whose prompt's checks include `diversity` (the others are written
    /// without the labels).
    #[arg(long)]
    pub only_checked: bool,
}

/// Runs `label diversity`.
pub fn run(a: &DiversityArgs) -> Result<()> {
    let options = DiversityOptions {
        embedder: a.embedder.clone(),
        batch_size: a.batch_size,
        only_checked: a.only_checked,
    };
    let report = label_diversity(&a.input, &a.output, &options, &mut |m: &str| {
        eprintln!("{m}")
    })?;
    eprintln!("{report}");
    Ok(())
}
