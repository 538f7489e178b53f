//! `adasamp sample`: one token per row of a logits file, printed as one JSON line per row.

use std::io::Write;
use std::path::PathBuf;

use adasamp_sampling::sample_batch;
use anyhow::Result;
use clap::Args;

use crate::logits_io;
use crate::pipeline_args::PipelineArgs;

/// Options of `sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Input safetensors file with tensor `logits` (F32 [N, V]).
    #[arg(long, value_name = "IN.safetensors")]
    pub input: PathBuf,
    /// RNG seed; row r uses stream r of this seed, so results do not depend on batching.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also print the N most likely tokens of each row's final distribution.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top_n: usize,
}

/// Runs `sample`.
pub fn run(a: &SampleArgs) -> Result<()> {
    let p = a.pipeline.build()?;
    let l = logits_io::read(&a.input)?;
    let samples = sample_batch(&p, &l.data, l.vocab, a.seed, a.top_n)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (r, s) in samples.iter().enumerate() {
        let line = serde_json::json!({
            "row": r,
            "token": s.token,
            "prob": s.prob,
            "logprob": s.logprob,
            "top": s.top,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
