//! `adasamp verify`: keep the prompts whose candidates are complete (every pipeline of the grid
//! with every seed, each once), report the others (see `adasamp_curate::verify`).

use std::path::PathBuf;

use adasamp_curate::prompt::read_prompts;
use adasamp_curate::verify::{verify, Expected};
use adasamp_sampling::PipelineSet;
use anyhow::Result;
use clap::Args;

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Seeds every (prompt, pipeline) must have: 0..N.
    #[arg(long)]
    pub seeds: u64,
    /// The grid the candidates were generated with (pipeline YAML).
    #[arg(long, value_name = "FILE.yaml")]
    pub grid: PathBuf,
    /// Candidates to check.
    #[arg(long, default_value = "candidates.jsonl")]
    pub input: PathBuf,
    /// The clean file: the complete prompts' records (written atomically).
    #[arg(long, default_value = "clean.jsonl")]
    pub output: PathBuf,
    /// The prompt file, to report prompts with no candidate at all as well.
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: Option<PathBuf>,
}

/// Runs `verify`.
pub fn run(a: &VerifyArgs) -> Result<()> {
    let grid = PipelineSet::from_path(&a.grid)?;
    let expected = Expected {
        pipelines: grid
            .pipelines()
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
        seeds: a.seeds,
    };
    let prompt_ids: Vec<String> = match &a.prompts {
        Some(p) => read_prompts(p)?.into_iter().map(|p| p.id).collect(),
        None => Vec::new(),
    };
    let v = verify(&a.input, &a.output, &expected, &prompt_ids)?;
    eprintln!("{}", v.report);
    Ok(())
}
