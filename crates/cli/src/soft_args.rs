//! Command-line options of soft sampling (`generate --soft`): which pipeline's distribution
//! weighs the fed embedding mixture.

use std::path::PathBuf;

use adasamp_sampling::{Pipeline, PipelineSet};
use anyhow::{Context, Result};
use clap::Args;

/// Options of soft sampling.
#[derive(Debug, Args, Clone)]
pub struct SoftArgs {
    /// Soft sampling: each decode step feeds the mixture pᵀ·W_E of input embeddings (p: the
    /// generation pipeline's distribution, or --soft-pipeline's) instead of the sampled token's
    /// embedding; the sampled tokens are still the text.
    #[arg(long, conflicts_with_all = ["teacher", "drafter"])]
    pub soft: bool,
    /// A pipeline file whose distribution (over the same logits) weighs the mixture.
    #[arg(long, value_name = "FILE", requires = "soft")]
    pub soft_pipeline: Option<PathBuf>,
    /// The pipeline of --soft-pipeline to use (needed when the file holds several).
    #[arg(long, value_name = "NAME", requires = "soft_pipeline")]
    pub soft_name: Option<String>,
    /// Replace the model's LM head with one trained by `soft-train` (its checkpoint directory);
    /// runs on candle.
    #[arg(long, value_name = "DIR", conflicts_with = "teacher")]
    pub lm_head: Option<PathBuf>,
}

/// Soft sampling, as chosen on the command line.
#[derive(Debug, Clone)]
pub struct SoftMode {
    /// The pipeline weighing the mixture (`None`: the generation pipeline).
    pub pipeline: Option<Pipeline>,
}

impl SoftArgs {
    /// The chosen soft mode (`None` without `--soft`).
    pub fn mode(&self) -> Result<Option<SoftMode>> {
        if !self.soft {
            return Ok(None);
        }
        let pipeline = match &self.soft_pipeline {
            Some(path) => {
                let set = PipelineSet::from_path(path)
                    .with_context(|| format!("reading the soft pipeline {}", path.display()))?;
                Some(set.select(self.soft_name.as_deref())?.clone())
            }
            None => None,
        };
        Ok(Some(SoftMode { pipeline }))
    }
}

/// Loads the model at `path` (default model when `None`) on candle with the LM head of the
/// `soft-train` checkpoint `dir` in place of its own.
pub fn load_with_head(
    path: Option<&std::path::Path>,
    dir: &std::path::Path,
    opts: adasamp_engine::LoadOptions,
) -> Result<adasamp_engine::LoadedModel> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => adasamp_engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}"))?,
    };
    let (mut model, tokenizer, chat) = adasamp_engine::load::load_candle(&path, opts.candle())?;
    let head = adasamp_nets::soft_train::load_head(dir)
        .with_context(|| format!("reading the LM head of {}", dir.display()))?;
    model.set_head(head)?;
    eprintln!("LM head from {}", dir.display());
    Ok(adasamp_engine::LoadedModel {
        model: Box::new(model),
        tokenizer,
        chat,
        path,
    })
}

impl SoftMode {
    /// The record's `soft` field: the pipeline weighing the mixture (null: the generation's).
    pub fn record_extra(&self) -> serde_json::Value {
        serde_json::json!({
            "soft_pipeline": self.pipeline.as_ref().map(|p| p.spec()),
        })
    }
}
