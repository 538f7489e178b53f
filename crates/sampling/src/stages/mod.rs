//! Every sampling stage, and the registry that builds one from its pipeline-file spec: the
//! built-in table [`BUILTIN_STAGES`] (each name declared once) and the stages registered at run
//! time by other crates ([`register_external`]).

mod dry;
mod epsilon;
mod greedy;
mod min_p;
mod mirostat;
mod penalties;
mod temperature;
mod token_rules;
mod top_a;
mod top_k;
mod top_n_sigma;
mod top_p;
mod typical;
mod xtc;

pub use dry::Dry;
pub use epsilon::{Epsilon, Eta};
pub use greedy::Greedy;
pub use min_p::MinP;
pub use mirostat::{MirostatV1, MirostatV2};
pub use penalties::{Penalty, PenaltyKind};
pub use temperature::{DynamicTemperature, Temperature};
pub use token_rules::{LogitBias, MinTokens, NoRepeatNgram};
pub use top_a::TopA;
pub use top_k::TopK;
pub use top_n_sigma::TopNSigma;
pub use top_p::TopP;
pub use typical::Typical;
pub use xtc::Xtc;

use std::sync::RwLock;

use crate::error::{Result, SamplingError};
use crate::pipeline::Pipeline;
use crate::spec::{ParamReader, PipelineSpec, StageSpec};
use crate::stage::Stage;

/// Builds an external stage from its spec, the pipeline's name and the stage's index in it.
/// Errors should name the pipeline, the stage and the parameter (e.g.
/// [`SamplingError::InvalidParam`]); unknown parameters should be rejected
/// ([`ParamReader::finish`]).
pub type ExternalStageBuilder = fn(&StageSpec, &str, usize) -> Result<Box<dyn Stage>>;

/// A stage implemented outside this crate (e.g. the learned samplers of `adasamp-nets`, which
/// need an ML framework this crate must not depend on), registered at start-up with
/// [`register_external`].
#[derive(Clone, Copy, Debug)]
pub struct ExternalStage {
    /// The stage name in pipeline files.
    pub name: &'static str,
    /// Its parameters, for listings (as in [`STAGES`]).
    pub params_help: &'static str,
    /// Parameters holding file-system paths: [`crate::PipelineSet::from_path`] resolves a
    /// relative path given there against the pipeline file's directory.
    pub path_params: &'static [&'static str],
    /// The builder.
    pub build: ExternalStageBuilder,
}

static EXTERNAL: RwLock<Vec<ExternalStage>> = RwLock::new(Vec::new());

/// Registers (or replaces, by name) an external stage: from then on [`build_stage`] builds
/// stages of that name with it. Built-in names cannot be overridden (returns `false`).
pub fn register_external(stage: ExternalStage) -> bool {
    if builtin_stage(stage.name).is_some() {
        return false;
    }
    let mut reg = EXTERNAL.write().unwrap_or_else(|e| e.into_inner());
    reg.retain(|s| s.name != stage.name);
    reg.push(stage);
    true
}

/// The registered external stages, in registration order.
pub fn external_stages() -> Vec<ExternalStage> {
    EXTERNAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The registered external stage called `name`, if any.
pub fn external_stage(name: &str) -> Option<ExternalStage> {
    EXTERNAL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|s| s.name == name)
        .copied()
}

/// Stage name of a nested pipeline in pipeline files: `{name: pipeline, params: {processors:
/// [..]}}` applies its processors in order, as one stage.
pub const PIPELINE_STAGE: &str = "pipeline";

/// Builds a built-in stage from its parameters (the reader knows the pipeline and stage names).
pub type BuiltinBuilder = fn(&mut ParamReader) -> Result<Box<dyn Stage>>;

/// A stage of this crate: its name in pipeline files, its parameters (for listings) and its
/// builder. [`BUILTIN_STAGES`] is the one table of them; each name is the stage type's own
/// constant (`Temperature::NAME`, …), which its [`Stage::name`] returns too.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinStage {
    /// The stage name in pipeline files.
    pub name: &'static str,
    /// Its parameters, for listings.
    pub params_help: &'static str,
    /// The builder.
    pub build: BuiltinBuilder,
}

/// Every built-in stage, in listing order.
pub const BUILTIN_STAGES: &[BuiltinStage] = &[
    BuiltinStage {
        name: Temperature::NAME,
        params_help: "temperature > 0",
        build: |p| Ok(Box::new(Temperature::from_params(p)?)),
    },
    BuiltinStage {
        name: TopK::NAME,
        params_help: "top_k ≥ 1, min_tokens_to_keep",
        build: |p| Ok(Box::new(TopK::from_params(p)?)),
    },
    BuiltinStage {
        name: TopP::NAME,
        params_help: "top_p ∈ (0, 1], min_tokens_to_keep",
        build: |p| Ok(Box::new(TopP::from_params(p)?)),
    },
    BuiltinStage {
        name: MinP::NAME,
        params_help: "min_p ∈ [0, 1], min_tokens_to_keep",
        build: |p| Ok(Box::new(MinP::from_params(p)?)),
    },
    BuiltinStage {
        name: Typical::NAME,
        params_help: "mass ∈ (0, 1], min_tokens_to_keep",
        build: |p| Ok(Box::new(Typical::from_params(p)?)),
    },
    BuiltinStage {
        name: Epsilon::NAME,
        params_help: "epsilon ∈ (0, 1), min_tokens_to_keep",
        build: |p| Ok(Box::new(Epsilon::from_params(p)?)),
    },
    BuiltinStage {
        name: Eta::NAME,
        params_help: "epsilon ∈ (0, 1), min_tokens_to_keep",
        build: |p| Ok(Box::new(Eta::from_params(p)?)),
    },
    BuiltinStage {
        name: TopA::NAME,
        params_help: "top_a ∈ [0, 1], min_tokens_to_keep",
        build: |p| Ok(Box::new(TopA::from_params(p)?)),
    },
    BuiltinStage {
        name: TopNSigma::NAME,
        params_help: "n > 0",
        build: |p| Ok(Box::new(TopNSigma::from_params(p)?)),
    },
    BuiltinStage {
        name: Xtc::NAME,
        params_help: "threshold = 0.1, probability = 0.5, seed = 0, min_tokens_to_keep",
        build: |p| Ok(Box::new(Xtc::from_params(p)?)),
    },
    BuiltinStage {
        name: DynamicTemperature::NAME,
        params_help: "temp ≥ 0, range = 0, exponent = 1",
        build: |p| Ok(Box::new(DynamicTemperature::from_params(p)?)),
    },
    BuiltinStage {
        name: MirostatV1::NAME,
        params_help: "tau = 5, eta = 0.1, m = 100",
        build: |p| Ok(Box::new(MirostatV1::from_params(p)?)),
    },
    BuiltinStage {
        name: MirostatV2::NAME,
        params_help: "tau = 5, eta = 0.1",
        build: |p| Ok(Box::new(MirostatV2::from_params(p)?)),
    },
    BuiltinStage {
        name: PenaltyKind::Repetition.name(),
        params_help: "penalty > 0, last_n = -1 (whole history)",
        build: |p| Ok(Box::new(Penalty::from_params(PenaltyKind::Repetition, p)?)),
    },
    BuiltinStage {
        name: PenaltyKind::Frequency.name(),
        params_help: "penalty, last_n = 64",
        build: |p| Ok(Box::new(Penalty::from_params(PenaltyKind::Frequency, p)?)),
    },
    BuiltinStage {
        name: PenaltyKind::Presence.name(),
        params_help: "penalty, last_n = 64",
        build: |p| Ok(Box::new(Penalty::from_params(PenaltyKind::Presence, p)?)),
    },
    BuiltinStage {
        name: Dry::NAME,
        params_help:
            "multiplier ≥ 0, base = 1.75, allowed_length = 2, sequence_breakers = [], last_n = -1",
        build: |p| Ok(Box::new(Dry::from_params(p)?)),
    },
    BuiltinStage {
        name: LogitBias::NAME,
        params_help: "bias: {token_id: bias}",
        build: |p| Ok(Box::new(LogitBias::from_params(p)?)),
    },
    BuiltinStage {
        name: NoRepeatNgram::NAME,
        params_help: "n ≥ 1",
        build: |p| Ok(Box::new(NoRepeatNgram::from_params(p)?)),
    },
    BuiltinStage {
        name: MinTokens::NAME,
        params_help: "min_tokens ≥ 0, eos_ids",
        build: |p| Ok(Box::new(MinTokens::from_params(p)?)),
    },
    BuiltinStage {
        name: Greedy::NAME,
        params_help: "(none)",
        build: |p| Ok(Box::new(Greedy::from_params(p)?)),
    },
    BuiltinStage {
        name: PIPELINE_STAGE,
        params_help: "processors: [stages] (a nested pipeline, applied as one stage)",
        build: build_nested_pipeline,
    },
];

/// Names of all built-in stages, with their parameters, as accepted in pipeline files (derived
/// from [`BUILTIN_STAGES`]).
pub const STAGES: &[(&str, &str)] = &{
    let mut out = [("", ""); BUILTIN_STAGES.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (BUILTIN_STAGES[i].name, BUILTIN_STAGES[i].params_help);
        i += 1;
    }
    out
};

/// The built-in stage called `name`, if any.
pub fn builtin_stage(name: &str) -> Option<&'static BuiltinStage> {
    BUILTIN_STAGES.iter().find(|s| s.name == name)
}

/// Pipelines nested deeper than this are refused (a bound on recursion).
pub const MAX_NESTING: usize = 8;

/// The `pipeline` stage: `{processors}` built as a pipeline named `outer[index]`.
fn build_nested_pipeline(p: &mut ParamReader) -> Result<Box<dyn Stage>> {
    let processors = p.stage_specs("processors")?;
    if p.depth >= MAX_NESTING {
        return Err(p.invalid(
            "processors",
            format!("(nesting depth {})", p.depth + 1),
            &format!("pipelines nest at most {MAX_NESTING} deep"),
        ));
    }
    let spec = PipelineSpec {
        name: format!("{}[{}]", p.pipeline(), p.index),
        weight: 1.0,
        processors,
    };
    Ok(Box::new(Pipeline::from_spec_at_depth(spec, p.depth + 1)?))
}

/// Builds stage `spec` (the `index`-th of pipeline `pipeline`), checking every parameter.
/// Names that are not built in are looked up among the [`register_external`] stages.
pub fn build_stage(spec: &StageSpec, pipeline: &str, index: usize) -> Result<Box<dyn Stage>> {
    build_stage_at_depth(spec, pipeline, index, 0)
}

/// [`build_stage`] for a stage of a pipeline nested `depth` deep.
pub(crate) fn build_stage_at_depth(
    spec: &StageSpec,
    pipeline: &str,
    index: usize,
    depth: usize,
) -> Result<Box<dyn Stage>> {
    if let Some(b) = builtin_stage(&spec.name) {
        let mut p = ParamReader::deferring(pipeline, &spec.name, &spec.params, index, depth);
        let stage = (b.build)(&mut p)?;
        p.finish()?;
        return Ok(stage);
    }
    if let Some(ext) = external_stage(&spec.name) {
        return (ext.build)(spec, pipeline, index);
    }
    Err(SamplingError::UnknownStage {
        pipeline: pipeline.to_string(),
        index,
        stage: spec.name.clone(),
        known: BUILTIN_STAGES
            .iter()
            .map(|s| s.name)
            .chain(external_stages().iter().map(|s| s.name))
            .collect::<Vec<_>>()
            .join(", "),
    })
}
