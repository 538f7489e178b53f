//! `adasamp label overlap`: the overlap labels of candidate records against a token index.

use std::path::PathBuf;

use adasamp_curate::index::{self, label_overlap, Index, OverlapOptions};
use anyhow::Result;
use clap::Args;

/// Options of `label overlap`.
#[derive(Debug, Args)]
pub struct OverlapArgs {
    /// The index directory (`adasamp index build`).
    #[arg(long)]
    pub index: PathBuf,
    /// Candidate records (JSONL).
    #[arg(long)]
    pub input: PathBuf,
    /// Labelled records (JSONL; an interrupted run's file is resumed).
    #[arg(long)]
    pub output: PathBuf,
    /// The longest n-gram of the greedy walk.
    #[arg(long, default_value_t = index::DEFAULT_MAX_N)]
    pub max_n: usize,
    /// The index's tokenizer, if it has moved since the build.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

/// Runs `label overlap` and prints its report.
pub fn run(a: &OverlapArgs) -> Result<()> {
    let index = Index::open(&a.index)?;
    let tok = index::tokenizer::load_matching(
        &index.header().tokenizer,
        a.tokenizer.as_deref(),
        &mut |m: &str| eprintln!("{m}"),
    )?;
    let opts = OverlapOptions { max_n: a.max_n };
    let report = label_overlap(&index, &tok, &a.input, &a.output, &opts)?;
    println!("{report}");
    Ok(())
}
