//! `adasamp apply`: a pipeline applied to every row of a logits file; removed tokens become
//! exactly `-inf`.

use std::path::PathBuf;

use adasamp_sampling::{Context, Row};
use anyhow::Result;
use clap::Args;

use crate::logits_io::{self, Logits};
use crate::pipeline_args::PipelineArgs;

/// Options of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Input safetensors file with tensor `logits` (F32 [N, V]).
    #[arg(long, value_name = "IN.safetensors")]
    pub input: PathBuf,
    /// Output safetensors file; receives tensor `logits` (F32 [N, V]).
    #[arg(long, value_name = "OUT.safetensors")]
    pub output: PathBuf,
}

/// Runs `apply`.
pub fn run(a: &ApplyArgs) -> Result<()> {
    let mut p = a.pipeline.build()?;
    let l = logits_io::read(&a.input)?;
    let mut out = Logits {
        rows: l.rows,
        vocab: l.vocab,
        data: vec![0.0; l.data.len()],
    };
    let mut row = Row::new();
    for r in 0..l.rows {
        p.reset();
        p.apply_dense(
            l.row(r),
            r,
            &Context::default(),
            &mut row,
            &mut out.data[r * l.vocab..(r + 1) * l.vocab],
        )?;
    }
    logits_io::write(&a.output, &out)?;
    eprintln!(
        "applied `{}` to {} rows × {} tokens → {}",
        p.name(),
        l.rows,
        l.vocab,
        a.output.display()
    );
    Ok(())
}
