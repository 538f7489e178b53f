//! The learned sampler as a sampling-core stage:
//!
//! ```yaml
//! pipelines:
//!   - name: learned_then_min_p
//!     processors:
//!       - {name: learned, params: {checkpoint: runs/sn/step-1000}}
//!       - {name: min_p, params: {min_p: 0.05}}
//! ```
//!
//! The `adasamp-sampling` crate has no ML framework, so the stage is registered into its external
//! stage registry at start-up with [`register_learned_stage`] (the `adasamp` binary does it in
//! `main`). `checkpoint` is a checkpoint directory ([`crate::checkpoint`]); a relative path is
//! resolved against the pipeline file's directory when the pipeline is loaded with
//! `PipelineSet::from_path`, else against the working directory.
//!
//! `apply` runs the [`FastSampler`] on the row's logits: a dense row in place (`-inf` = masked
//! token); a sparse row on its kept entries only — the tokens absent from a sparse row are `-inf`,
//! and the architectures treat masked tokens as absent from the vocabulary, so this is exactly
//! the dense result (the row stays sparse with the same ids).

use std::path::Path;
use std::sync::Arc;

use adasamp_sampling::row::validate_logits;
use adasamp_sampling::spec::{ParamReader, StageSpec, Value};
use adasamp_sampling::stages::{register_external, ExternalStage};
use adasamp_sampling::{Context, Row, SamplingError, Stage};

use crate::fast::FastSampler;

/// Stage name in pipeline files.
pub const LEARNED_STAGE: &str = "learned";

/// A learned sampler as a pipeline stage (weights shared between clones, scratch per clone).
#[derive(Debug, Clone)]
pub struct LearnedStage {
    pipeline: Arc<str>,
    fast: FastSampler,
}

impl LearnedStage {
    /// A stage running `fast`; `pipeline` names the pipeline in errors.
    pub fn new(fast: FastSampler, pipeline: &str) -> Self {
        Self {
            pipeline: pipeline.into(),
            fast,
        }
    }

    /// Builds the stage from its pipeline spec: parameter `checkpoint` (a directory, required).
    /// Errors name the pipeline, the stage and the parameter.
    pub fn from_spec(
        spec: &StageSpec,
        pipeline: &str,
        _index: usize,
    ) -> adasamp_sampling::Result<Self> {
        finish_checkpoint_only(spec, pipeline)?;
        let p = ParamReader::new(pipeline, LEARNED_STAGE, &spec.params);
        let dir = match spec.params.get("checkpoint") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                return Err(SamplingError::MissingParam {
                    pipeline: pipeline.to_string(),
                    stage: LEARNED_STAGE.to_string(),
                    param: "checkpoint".into(),
                })
            }
            Some(other) => {
                return Err(p.invalid(
                    "checkpoint",
                    format!("{other:?}"),
                    "expected a checkpoint directory path (a string)",
                ))
            }
        };
        let fast = FastSampler::load(Path::new(&dir))
            .map_err(|e| p.invalid("checkpoint", format!("{dir:?}"), &e.to_string()))?;
        Ok(Self::new(fast, pipeline))
    }

    /// The fast sampler this stage runs.
    pub fn sampler(&self) -> &FastSampler {
        &self.fast
    }
}

/// Rejects every parameter other than `checkpoint`.
fn finish_checkpoint_only(spec: &StageSpec, pipeline: &str) -> adasamp_sampling::Result<()> {
    match spec.params.keys().find(|k| k.as_str() != "checkpoint") {
        Some(k) => Err(SamplingError::UnknownParam {
            pipeline: pipeline.to_string(),
            stage: LEARNED_STAGE.to_string(),
            param: k.clone(),
            accepted: "checkpoint".into(),
        }),
        None => Ok(()),
    }
}

impl Stage for LearnedStage {
    fn name(&self) -> &'static str {
        LEARNED_STAGE
    }

    /// Replaces the row's logits by the learned sampler's output (see the module doc). The input
    /// row is checked first: a NaN or `+inf` entry, or no finite entry, is an error naming the
    /// row ([`Row::index`]) and the token.
    fn apply(&mut self, row: &mut Row, _ctx: &Context<'_>) -> adasamp_sampling::Result<()> {
        let index = row.index();
        let failed = |message: String| SamplingError::StageFailed {
            pipeline: self.pipeline.to_string(),
            stage: LEARNED_STAGE.to_string(),
            message: format!("row {index}: {message}"),
        };
        validate_logits(row.values(), index).map_err(|e| failed(input_problem(row, &e)))?;
        self.fast
            .apply(row.values_mut())
            .map_err(|e| failed(e.to_string()))
    }

    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// What is wrong with the stage's input row, naming the token id (a sparse row's entry `i` is
/// not token `i`); the caller prefixes the row index.
fn input_problem(row: &Row, e: &SamplingError) -> String {
    match *e {
        SamplingError::NanLogit { token, .. } => {
            format!("input logit of token {} is NaN", row.id_at(token))
        }
        SamplingError::PosInfLogit { token, .. } => {
            format!("input logit of token {} is +inf", row.id_at(token))
        }
        SamplingError::AllMasked { .. } => "every input logit is -inf (nothing to sample)".into(),
        SamplingError::EmptyRow { .. } => "the input row is empty".into(),
        ref other => format!("input row: {other}"),
    }
}

fn build(
    spec: &StageSpec,
    pipeline: &str,
    index: usize,
) -> adasamp_sampling::Result<Box<dyn Stage>> {
    Ok(Box::new(LearnedStage::from_spec(spec, pipeline, index)?))
}

/// Registers the `learned` stage (parameter `checkpoint`, a path resolved against the pipeline
/// file's directory) with the sampling core's external stage registry. Idempotent.
pub fn register_learned_stage() {
    register_external(ExternalStage {
        name: LEARNED_STAGE,
        params_help: "checkpoint: DIR (relative to the pipeline file)",
        path_params: &["checkpoint"],
        build,
    });
}
