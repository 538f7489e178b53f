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
