//! `adasamp example`: a small example to try `apply` and `sample` on — synthetic logits rows and a
//! pipeline file.

use std::path::PathBuf;

use adasamp_engine::files::write_atomic;
use adasamp_sampling::synth::{self, RowKind};
use adasamp_sampling::{PipelineFile, PipelineSpec, StageSpec};
use anyhow::{bail, Result};
use clap::Args;

use crate::logits_io::{self, Logits};

/// Options of `example`.
#[derive(Debug, Args)]
pub struct ExampleArgs {
    /// Directory to write `logits.safetensors` and `pipelines.yaml` into.
    #[arg(long, default_value = "example")]
    pub output: PathBuf,
    /// Vocabulary size of the example rows.
    #[arg(long, default_value_t = 49152)]
    pub vocab: usize,
}

/// Runs `example`.
pub fn run(a: &ExampleArgs) -> Result<()> {
    let (dir, vocab) = (&a.output, a.vocab);
    if vocab < 2 {
        bail!("--vocab must be at least 2 (got {vocab})");
    }
    let data: Vec<f32> = RowKind::ALL
        .iter()
        .enumerate()
        .flat_map(|(i, &k)| synth::row(k, vocab, i as u64))
        .collect();
    let rows = RowKind::ALL.len();
    logits_io::write(
        &dir.join("logits.safetensors"),
        &Logits { rows, vocab, data },
    )?;
    let pipelines = PipelineFile {
        pipelines: vec![
            PipelineSpec {
                name: "min_p0.05".into(),
                weight: 1.0,
                processors: vec![StageSpec::new("min_p", &[("min_p", 0.05)])],
            },
            PipelineSpec {
                name: "temp0.8_top_p0.95".into(),
                weight: 1.0,
                processors: vec![
                    StageSpec::new("temperature", &[("temperature", 0.8)]),
                    StageSpec::new("top_p", &[("top_p", 0.95)]),
                ],
            },
            PipelineSpec {
                name: "llama_cpp_default".into(),
                weight: 1.0,
                processors: vec![
                    StageSpec::new("top_k", &[("top_k", 40.0)]),
                    StageSpec::new("top_p", &[("top_p", 0.95)]),
                    StageSpec::new("min_p", &[("min_p", 0.05)]),
                    StageSpec::new("temperature", &[("temperature", 0.8)]),
                ],
            },
        ],
    };
    write_atomic(&dir.join("pipelines.yaml"), pipelines.to_yaml().as_bytes())?;
    eprintln!(
        "wrote {}/logits.safetensors ({rows} rows: {}; V = {vocab}) and {}/pipelines.yaml",
        dir.display(),
        RowKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    Ok(())
}
