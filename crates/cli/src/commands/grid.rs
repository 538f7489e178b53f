//! `adasamp grid`: a heuristic grid (SPEC 1.4) as a pipeline YAML file.

use std::path::PathBuf;

use adasamp_engine::files::write_atomic;
use adasamp_sampling::grid::{filtered_grid, full_grid, Family};
use anyhow::Result;
use clap::Args;

/// Options of `grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    /// Model family whose official defaults join the grid: llama, gemma, qwen or none.
    #[arg(long, default_value = "none")]
    pub family: Family,
    /// The filtered grid (143 pipelines with a family) instead of the full one (396 / 384).
    #[arg(long)]
    pub filtered: bool,
    /// Output file (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `grid`.
pub fn run(a: &GridArgs) -> Result<()> {
    let g = if a.filtered {
        filtered_grid(a.family)
    } else {
        full_grid(a.family)
    };
    let yaml = g.to_yaml();
    match &a.output {
        Some(p) => {
            write_atomic(p, yaml.as_bytes())?;
            eprintln!("wrote {} pipelines to {}", g.pipelines.len(), p.display());
        }
        None => print!("{yaml}"),
    }
    Ok(())
}
