//! `adasamp score`: z-normalised labels combined by weights into one score per generation, the
//! top k per (prompt, seed) kept — the training file (see `adasamp_curate::score`).

use std::path::PathBuf;

use adasamp_curate::score::{score, score_grid, Diversity, Quality, ScoreOptions, Weights};
use anyhow::Result;
use clap::Args;

/// Options of `score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Labelled candidate records (JSONL).
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: PathBuf,
    /// The training file to write; with --grid, a directory receiving one file per grid point.
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
    /// Weights a,b,c of diversity, quality and verifiable, each on its grid
    /// (a ∈ {.1,.3,.5,.7,.9}, b ∈ {.5,.6,.7,.8,.9}, c ∈ {.1,.3,.5,.7,.9}).
    #[arg(long, default_value = "0.1,0.9,0.9", conflicts_with = "grid")]
    pub weights: String,
    /// Score at every grid point (125) and write one training file per point into --output
    /// (score_a<a>_b<b>_c<c>.jsonl), to compare samplers trained on each weighting.
    #[arg(long)]
    pub grid: bool,
    /// Generations kept per (prompt, seed).
    #[arg(long, default_value_t = 1)]
    pub top_k: usize,
    /// Diversity label: log-embedding-entropy, embedding-entropy, log-self-bleu or self-bleu
    /// (self-BLEU enters negated: less overlap = more diverse).
    #[arg(long, default_value = "log-embedding-entropy")]
    pub diversity: String,
    /// Quality label: rating (the tournament's Bradley–Terry rating) or reward (a scorer's).
    #[arg(long, default_value = "rating")]
    pub quality: String,
    /// Keep verifiable generations that are not correct, scored with their reward (by default
    /// a group with verifiable rewards keeps only correct generations).
    #[arg(long)]
    pub no_verifiable_filter: bool,
}

/// Runs `score`.
pub fn run(a: &ScoreArgs) -> Result<()> {
    let opts = ScoreOptions {
        top_k: a.top_k,
        diversity: a.diversity.parse::<Diversity>()?,
        quality: a.quality.parse::<Quality>()?,
        verifiable_filter: !a.no_verifiable_filter,
    };
    let report = if a.grid {
        score_grid(&a.input, &a.output, &opts)?
    } else {
        score(&a.input, &a.output, &a.weights.parse::<Weights>()?, &opts)?
    };
    println!("{report}");
    Ok(())
}
