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
    #[arg(long, conflicts_with = "teacher")]
    pub soft: bool,
    /// A pipeline file whose distribution (over the same logits) weighs the mixture.
    #[arg(long, value_name = "FILE", requires = "soft")]
    pub soft_pipeline: Option<PathBuf>,
    /// The pipeline of --soft-pipeline to use (needed when the file holds several).
    #[arg(long, value_name = "NAME", requires = "soft_pipeline")]
    pub soft_name: Option<String>,
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

impl SoftMode {
    /// The record's `soft` field: the pipeline weighing the mixture (null: the generation's).
    pub fn record_extra(&self) -> serde_json::Value {
        serde_json::json!({
            "soft_pipeline": self.pipeline.as_ref().map(|p| p.spec()),
        })
    }
}
