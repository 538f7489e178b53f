//! Every sampling stage, and the registry that builds one from its pipeline-file spec.

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
use crate::spec::{ParamReader, StageSpec};
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
    if STAGES.iter().any(|(n, _)| *n == stage.name) {
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

/// Names of all stages, with their parameters, as accepted in pipeline files.
pub const STAGES: &[(&str, &str)] = &[
    ("temperature", "temperature > 0"),
    ("top_k", "top_k ≥ 1, min_tokens_to_keep"),
    ("top_p", "top_p ∈ (0, 1], min_tokens_to_keep"),
    ("min_p", "min_p ∈ [0, 1], min_tokens_to_keep"),
    ("typical", "mass ∈ (0, 1], min_tokens_to_keep"),
    ("epsilon", "epsilon ∈ (0, 1), min_tokens_to_keep"),
    ("eta", "epsilon ∈ (0, 1), min_tokens_to_keep"),
    ("top_a", "top_a ∈ [0, 1], min_tokens_to_keep"),
    ("top_n_sigma", "n > 0"),
    (
        "xtc",
        "threshold = 0.1, probability = 0.5, seed = 0, min_tokens_to_keep",
    ),
    ("dynamic_temperature", "temp ≥ 0, range = 0, exponent = 1"),
    ("mirostat_v1", "tau = 5, eta = 0.1, m = 100"),
    ("mirostat_v2", "tau = 5, eta = 0.1"),
    (
        "repetition_penalty",
        "penalty > 0, last_n = -1 (whole history)",
    ),
    ("frequency_penalty", "penalty, last_n = 64"),
    ("presence_penalty", "penalty, last_n = 64"),
    (
        "dry",
        "multiplier ≥ 0, base = 1.75, allowed_length = 2, sequence_breakers = [], last_n = -1",
    ),
    ("logit_bias", "bias: {token_id: bias}"),
    ("no_repeat_ngram", "n ≥ 1"),
    ("min_tokens", "min_tokens ≥ 0, eos_ids"),
    ("greedy", "(none)"),
];

/// Builds stage `spec` (the `index`-th of pipeline `pipeline`), checking every parameter.
/// Names that are not built in are looked up among the [`register_external`] stages.
pub fn build_stage(spec: &StageSpec, pipeline: &str, index: usize) -> Result<Box<dyn Stage>> {
    let mut p = ParamReader::new(pipeline, &spec.name, &spec.params);
    let stage: Box<dyn Stage> = match spec.name.as_str() {
        "temperature" => Box::new(Temperature::from_params(&mut p)?),
        "top_k" => Box::new(TopK::from_params(&mut p)?),
        "top_p" => Box::new(TopP::from_params(&mut p)?),
        "min_p" => Box::new(MinP::from_params(&mut p)?),
        "typical" => Box::new(Typical::from_params(&mut p)?),
        "epsilon" => Box::new(Epsilon::from_params(&mut p)?),
        "eta" => Box::new(Eta::from_params(&mut p)?),
        "top_a" => Box::new(TopA::from_params(&mut p)?),
        "top_n_sigma" => Box::new(TopNSigma::from_params(&mut p)?),
        "xtc" => Box::new(Xtc::from_params(&mut p)?),
        "dynamic_temperature" => Box::new(DynamicTemperature::from_params(&mut p)?),
        "mirostat_v1" => Box::new(MirostatV1::from_params(&mut p)?),
        "mirostat_v2" => Box::new(MirostatV2::from_params(&mut p)?),
        "repetition_penalty" => Box::new(Penalty::from_params(PenaltyKind::Repetition, &mut p)?),
        "frequency_penalty" => Box::new(Penalty::from_params(PenaltyKind::Frequency, &mut p)?),
        "presence_penalty" => Box::new(Penalty::from_params(PenaltyKind::Presence, &mut p)?),
        "dry" => Box::new(Dry::from_params(&mut p)?),
        "logit_bias" => Box::new(LogitBias::from_params(&mut p)?),
        "no_repeat_ngram" => Box::new(NoRepeatNgram::from_params(&mut p)?),
        "min_tokens" => Box::new(MinTokens::from_params(&mut p)?),
        "greedy" => Box::new(Greedy::from_params(&mut p)?),
        other => {
            if let Some(ext) = external_stage(other) {
                return (ext.build)(spec, pipeline, index);
            }
            return Err(SamplingError::UnknownStage {
                pipeline: pipeline.to_string(),
                index,
                stage: other.to_string(),
                known: STAGES
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(external_stages().iter().map(|s| s.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    p.finish()?;
    Ok(stage)
}
