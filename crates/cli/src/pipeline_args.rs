//! Command-line choice of a sampling pipeline: a pipeline file (+ name), a preset, or flat flags.

use std::path::PathBuf;

use adasamp_sampling::{Pipeline, PipelineSet, SamplingConfig};
use anyhow::{Context, Result};
use clap::Args;

/// Which pipeline to run.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Pipeline file in the ASN YAML format (`pipelines: [{name, weight, processors}]`).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub pipeline: Option<PathBuf>,
    /// Name of the pipeline inside `--pipeline` (required when the file holds several).
    #[arg(long, value_name = "NAME", requires = "pipeline")]
    pub name: Option<String>,
    /// A preset instead of a file: creative, precise, balanced or deterministic.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Flat config (no file, no preset): temperature (0 = greedy).
    #[arg(long, conflicts_with_all = ["pipeline", "preset"])]
    pub temperature: Option<f64>,
    /// Flat config: top-k (0 = off).
    #[arg(long, conflicts_with_all = ["pipeline", "preset"])]
    pub top_k: Option<usize>,
    /// Flat config: top-p in (0, 1].
    #[arg(long, conflicts_with_all = ["pipeline", "preset"])]
    pub top_p: Option<f64>,
    /// Flat config: min-p in [0, 1].
    #[arg(long, conflicts_with_all = ["pipeline", "preset"])]
    pub min_p: Option<f64>,
    /// Flat config: repetition penalty (> 0, 1 = off).
    #[arg(long, conflicts_with_all = ["pipeline", "preset"])]
    pub repetition_penalty: Option<f64>,
    /// Greedy decoding (arg-max), with any of the above.
    #[arg(long)]
    pub greedy: bool,
}

impl PipelineArgs {
    /// Builds the chosen pipeline (a `greedy` stage is appended for `--greedy`).
    pub fn build(&self) -> Result<Pipeline> {
        let set = self.build_set()?;
        Ok(set.select(None)?.clone())
    }

    /// The candidate pipelines: the named one, every pipeline of the file (to choose from by
    /// weight), the preset, or the flat flags; `--greedy` appends a `greedy` stage to each.
    pub fn build_set(&self) -> Result<PipelineSet> {
        if let Some(path) = &self.pipeline {
            let set = PipelineSet::from_path(path)?;
            let chosen = match &self.name {
                Some(n) => vec![set.get(n)?.clone()],
                None => set.pipelines().to_vec(),
            };
            return Ok(PipelineSet::from_pipelines(
                chosen
                    .into_iter()
                    .map(|p| self.with_greedy(p))
                    .collect::<Result<Vec<_>>>()?,
            ));
        }
        Ok(PipelineSet::from_pipelines(vec![self.single()?]))
    }

    fn with_greedy(&self, p: Pipeline) -> Result<Pipeline> {
        if self.greedy && !p.spec().processors.iter().any(|s| s.name == "greedy") {
            let mut spec = p.spec().clone();
            spec.processors
                .push(adasamp_sampling::StageSpec::new("greedy", &[]));
            return Ok(Pipeline::from_spec(spec)?);
        }
        Ok(p)
    }

    fn single(&self) -> Result<Pipeline> {
        let p = if let Some(preset) = &self.preset {
            SamplingConfig::preset(preset)?.to_pipeline(preset)?
        } else {
            let d = SamplingConfig::default();
            let c = SamplingConfig {
                temperature: self.temperature.unwrap_or(d.temperature),
                top_k: self.top_k.unwrap_or(d.top_k),
                top_p: self.top_p.unwrap_or(d.top_p),
                min_p: self.min_p.unwrap_or(d.min_p),
                repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
                ..d
            };
            c.to_pipeline("cli").context("in the sampling flags")?
        };
        self.with_greedy(p)
    }
}
