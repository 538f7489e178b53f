//! Helpers shared by the sampling integration tests.
#![allow(dead_code)]

use adasamp_sampling::{Context, Pipeline, PipelineSet, Row, StageSpec};

/// A one-pipeline set from YAML processors text (`[ {name: .., params: {..}}, ... ]`).
pub fn pipeline(processors: &str) -> Pipeline {
    let yaml = format!("pipelines:\n  - name: t\n    processors: {processors}\n");
    PipelineSet::from_yaml(&yaml, None).unwrap().pipelines()[0].clone()
}

/// Builds a pipeline from specs.
pub fn from_specs(specs: Vec<StageSpec>) -> Pipeline {
    Pipeline::from_spec(adasamp_sampling::PipelineSpec {
        name: "t".into(),
        weight: 1.0,
        processors: specs,
    })
    .unwrap()
}

/// Applies `p` to `z` with `history` (all prompt) and returns the dense result.
pub fn run(p: &mut Pipeline, z: &[f32], history: &[u32], prompt_len: usize) -> Vec<f32> {
    let mut row = Row::new();
    let mut out = vec![0.0; z.len()];
    p.apply_dense(z, 0, &Context::new(history, prompt_len), &mut row, &mut out)
        .unwrap();
    out
}

/// Indices of kept (finite) entries.
pub fn kept(z: &[f32]) -> Vec<usize> {
    z.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, _)| i)
        .collect()
}

/// The error message of building a pipeline from processors YAML.
pub fn build_error(processors: &str) -> String {
    let yaml = format!("pipelines:\n  - name: mypipe\n    processors: {processors}\n");
    PipelineSet::from_yaml(&yaml, None).unwrap_err().to_string()
}

/// One valid spec of every built-in stage (a nested `pipeline` included), with parameters that
/// make each act on synthetic rows (XTC acts half the time).
pub fn every_stage() -> Vec<StageSpec> {
    let yaml = |s: &str| serde_yaml_ng::from_str(s).unwrap();
    vec![
        StageSpec::new("temperature", &[("temperature", 0.7)]),
        StageSpec::new("top_k", &[("top_k", 40.0)]),
        StageSpec::new("top_p", &[("top_p", 0.9)]),
        StageSpec::new("min_p", &[("min_p", 0.05)]),
        StageSpec::new("typical", &[("mass", 0.9)]),
        StageSpec::new("epsilon", &[("epsilon", 1e-3)]),
        StageSpec::new("eta", &[("epsilon", 1e-3)]),
        StageSpec::new("top_a", &[("top_a", 0.2)]),
        StageSpec::new("top_n_sigma", &[("n", 1.0)]),
        StageSpec::new("xtc", &[("threshold", 0.05), ("probability", 0.5), ("seed", 3.0)]),
        StageSpec::new("dynamic_temperature", &[("temp", 0.8), ("range", 0.5)]),
        StageSpec::new("mirostat_v1", &[("tau", 3.0), ("eta", 0.5)]),
        StageSpec::new("mirostat_v2", &[("tau", 3.0), ("eta", 0.5)]),
        StageSpec::new("repetition_penalty", &[("penalty", 1.3)]),
        StageSpec::new("frequency_penalty", &[("penalty", 0.5)]),
        StageSpec::new("presence_penalty", &[("penalty", 0.5)]),
        StageSpec::new("dry", &[("multiplier", 0.8), ("allowed_length", 1.0)]),
        StageSpec::new("logit_bias", &[]).with("bias", yaml("{1: 2.0, 5: -.inf}")),
        StageSpec::new("no_repeat_ngram", &[("n", 2.0)]),
        StageSpec::new("min_tokens", &[("min_tokens", 3.0)]).with("eos_ids", yaml("[0, 2]")),
        StageSpec::new("greedy", &[]),
        StageSpec::new("pipeline", &[]).with(
            "processors",
            yaml("[{name: mirostat_v2, params: {tau: 2.5}}, {name: xtc, params: {threshold: 0.05, probability: 0.5, seed: 9}}]"),
        ),
    ]
}
