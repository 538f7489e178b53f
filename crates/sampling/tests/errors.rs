//! Bad input gets a clear error naming pipeline, stage, parameter and value — at load time.

mod common;
use common::*;

use adasamp_sampling::{sample_batch, Context, Row, SamplingError};

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` should mention `{p}`");
    }
}

#[test]
fn out_of_range_parameters() {
    let cases = [
        (
            "[{name: temperature, params: {temperature: 0}}]",
            "temperature",
            "0",
        ),
        (
            "[{name: temperature, params: {temperature: -1.5}}]",
            "temperature",
            "-1.5",
        ),
        ("[{name: top_p, params: {top_p: 1.5}}]", "top_p", "1.5"),
        ("[{name: top_p, params: {top_p: 0}}]", "top_p", "0"),
        ("[{name: top_k, params: {top_k: 0}}]", "top_k", "0"),
        ("[{name: top_k, params: {top_k: 2.5}}]", "top_k", "2.5"),
        ("[{name: min_p, params: {min_p: 1.2}}]", "min_p", "1.2"),
        ("[{name: min_p, params: {min_p: -0.1}}]", "min_p", "-0.1"),
        ("[{name: typical, params: {mass: 0}}]", "mass", "0"),
        ("[{name: epsilon, params: {epsilon: 1.0}}]", "epsilon", "1"),
        ("[{name: eta, params: {epsilon: 0}}]", "epsilon", "0"),
        (
            "[{name: top_p, params: {top_p: 0.9, min_tokens_to_keep: 0}}]",
            "min_tokens_to_keep",
            "0",
        ),
        (
            "[{name: repetition_penalty, params: {penalty: 0}}]",
            "penalty",
            "0",
        ),
        (
            "[{name: temperature, params: {temperature: .nan}}]",
            "temperature",
            "NaN",
        ),
        (
            "[{name: dry, params: {multiplier: 1, base: 0.5}}]",
            "base",
            "0.5",
        ),
    ];
    for (yaml, param, value) in cases {
        let msg = build_error(yaml);
        assert_names(&msg, &["mypipe", param, value]);
    }
}

#[test]
fn wrong_types_unknown_names_and_missing_params() {
    assert_names(
        &build_error("[{name: top_p, params: {top_p: high}}]"),
        &["mypipe", "top_p", "high", "expected a number"],
    );
    assert_names(
        &build_error("[{name: top_q, params: {top_p: 0.9}}]"),
        &["mypipe", "unknown stage", "top_q", "top_p"],
    );
    assert_names(
        &build_error("[{name: top_p, params: {top_p: 0.9, topp: 1}}]"),
        &["mypipe", "top_p", "unknown parameter", "topp"],
    );
    assert_names(
        &build_error("[{name: top_p}]"),
        &["mypipe", "top_p", "missing"],
    );
    assert_names(
        &build_error("[{name: logit_bias, params: {bias: {abc: 1}}}]"),
        &["mypipe", "bias", "abc"],
    );
    assert_names(
        &build_error("[{name: min_tokens, params: {min_tokens: 3}}]"),
        &["eos_ids"],
    );
}

#[test]
fn malformed_files() {
    use adasamp_sampling::PipelineSet;
    for bad in [
        "pipelines: 3",
        "[1, 2]",
        "pipelines:\n  - processors: []",
        "pipelines: []",
        "pipelines:\n - {name: a}\n - {name: a}",
        "pipelines:\n - {name: a, weight: -1}",
    ] {
        assert!(
            PipelineSet::from_yaml(bad, Some("x.yaml")).is_err(),
            "{bad}"
        );
    }
    let e = PipelineSet::from_path(std::path::Path::new("/nonexistent/p.yaml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/p.yaml"));
    let set = PipelineSet::from_yaml("pipelines:\n - {name: a}\n - {name: b}", None).unwrap();
    assert_names(&set.get("c").unwrap_err().to_string(), &["c", "a, b"]);
    assert!(set.select(None).is_err());
}

#[test]
fn bad_logits() {
    let p = pipeline("[{name: top_p, params: {top_p: 0.9}}]");
    let e = sample_batch(&p, &[0.0, 1.0, 2.0, f32::NAN], 2, 0, 0).unwrap_err();
    assert_eq!(e, SamplingError::NanLogit { row: 1, token: 1 });
    let e = sample_batch(&p, &[f32::INFINITY, 1.0], 2, 0, 0).unwrap_err();
    assert_eq!(e, SamplingError::PosInfLogit { row: 0, token: 0 });
    let e = sample_batch(
        &p,
        &[0.0, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY],
        2,
        0,
        0,
    )
    .unwrap_err();
    assert_eq!(e, SamplingError::AllMasked { row: 1 });
    assert!(sample_batch(&p, &[0.0, 1.0, 2.0], 2, 0, 0).is_err());
    let mut row = Row::new();
    assert_eq!(
        row.load(&[], 4).unwrap_err(),
        SamplingError::EmptyRow { row: 4 }
    );
}

#[test]
fn pipeline_that_removes_everything_is_an_error() {
    let p = pipeline("[{name: logit_bias, params: {bias: {0: -.inf, 1: -.inf}}}]");
    let e = sample_batch(&p, &[1.0, 2.0], 2, 0, 0).unwrap_err();
    assert!(e.to_string().contains("removed every token"), "{e}");
    let mut p = pipeline("[{name: logit_bias, params: {bias: {9: 1.0}}}]");
    let mut row = Row::new();
    let mut out = vec![0.0; 2];
    let e = p
        .apply_dense(&[1.0, 2.0], 0, &Context::default(), &mut row, &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("token id 9"), "{e}");
}
