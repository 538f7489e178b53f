//! Bad input gets a clear error naming pipeline, stage, parameter and value — at load time.

mod common;
use common::*;

use adasamp_sampling::{sample_batch, Context, Row, SamplingError, SequenceSampler};

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

#[test]
fn a_nan_or_inf_logit_anywhere_in_a_long_row_is_refused_by_every_entry_point() {
    // Rows longer than the SIMD body (32 lanes): the NaN used to slip past `Row::load` there, so
    // a temperature-only pipeline drew from NaN probabilities.
    let p = pipeline("[{name: temperature, params: {temperature: 0.7}}]");
    for (bad, pos) in [
        (f32::NAN, 5usize),
        (f32::NAN, 70),
        (f32::INFINITY, 40),
        (f32::NAN, 99),
    ] {
        let mut z: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.3).collect();
        z[pos] = bad;
        let want = if bad.is_nan() {
            SamplingError::NanLogit { row: 3, token: pos }
        } else {
            SamplingError::PosInfLogit { row: 3, token: pos }
        };
        let mut row = Row::new();
        assert_eq!(row.load(&z, 3).unwrap_err(), want);
        let mut out = vec![0.0; z.len()];
        assert_eq!(
            p.clone()
                .apply_dense(&z, 3, &Context::default(), &mut row, &mut out)
                .unwrap_err(),
            want
        );
        let mut s = SequenceSampler::new(p.clone(), 0, 0, 0);
        assert_eq!(s.sample(&z, &Context::default(), 3).unwrap_err(), want);
        assert_eq!(
            s.distribution(&z, &Context::default(), 3).unwrap_err(),
            want
        );
        let mut batch = vec![0.5f32; 300];
        batch.extend_from_slice(&z);
        let e = sample_batch(&p, &batch, 100, 0, 0).unwrap_err();
        assert_eq!(e, want);
        assert_eq!(adasamp_sampling::validate_logits(&z, 3).unwrap_err(), want);
    }
}

#[test]
fn a_stage_that_overflows_to_inf_is_an_error_not_a_draw() {
    // 3e38 / 0.5 overflows f32: the final distribution is not finite.
    let mut z = vec![0.0f32; 64];
    z[40] = 3e38;
    let p = pipeline("[{name: temperature, params: {temperature: 0.5}}]");
    let want = SamplingError::NonFiniteOutput {
        row: 2,
        token: 40,
        value: f32::INFINITY,
    };
    let mut s = SequenceSampler::new(p.clone(), 0, 0, 0);
    assert_eq!(s.sample(&z, &Context::default(), 2).unwrap_err(), want);
    let mut row = Row::new();
    let mut out = vec![0.0; 64];
    assert_eq!(
        p.clone()
            .apply_dense(&z, 2, &Context::default(), &mut row, &mut out)
            .unwrap_err(),
        want
    );
    row.load(&z, 2).unwrap();
    p.clone().apply(&mut row, &Context::default()).unwrap();
    assert_eq!(adasamp_sampling::draw(&mut row, 0.5, 0).unwrap_err(), want);
    // A temperature that rounds to 0 in f32 is refused when the pipeline is built.
    let msg = build_error("[{name: temperature, params: {temperature: 1e-300}}]");
    assert!(
        msg.contains("1e-300") && msg.contains("temperature"),
        "{msg}"
    );
    let msg = build_error("[{name: logit_bias, params: {bias: {3: 1e300}}}]");
    assert!(msg.contains("bias"), "{msg}");
}

#[test]
fn apply_dense_refuses_a_pipeline_that_removes_everything_and_a_wrong_output_length() {
    let mut p = pipeline("[{name: logit_bias, params: {bias: {0: -.inf, 1: -.inf}}}]");
    let mut row = Row::new();
    let mut out = vec![0.0; 2];
    let e = p
        .apply_dense(&[1.0, 2.0], 0, &Context::default(), &mut row, &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("removed every token"), "{e}");
    let mut short = vec![0.0; 1];
    assert!(p
        .apply_dense(&[1.0, 2.0], 0, &Context::default(), &mut row, &mut short)
        .is_err());
}

#[test]
fn an_unknown_parameter_is_named_beside_the_missing_one() {
    let msg = build_error("[{name: min_p, params: {min_q: 0.1}}]");
    assert_names(
        &msg,
        &[
            "mypipe",
            "min_p",
            "unknown parameter `min_q`",
            "missing",
            "`min_p`",
        ],
    );
    let e = adasamp_sampling::PipelineSet::from_yaml(
        "pipelines:\n  - name: a\n    processors: [{name: min_p, params: {min_q: 0.1}}]\n",
        None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        SamplingError::UnknownAndMissingParams {
            unknown: Box::new(SamplingError::UnknownParam {
                pipeline: "a".into(),
                stage: "min_p".into(),
                param: "min_q".into(),
                accepted: "min_p, min_tokens_to_keep".into(),
            }),
            missing: "min_p".into(),
        }
    );
    // Only missing, or only unknown: the error of each kind, as before.
    assert_names(
        &build_error("[{name: top_p, params: {min_tokens_to_keep: 2}}]"),
        &["missing required parameter `top_p`"],
    );
    assert_names(
        &build_error("[{name: top_k, params: {top_k: 2, k: 3}}]"),
        &["unknown parameter `k`"],
    );
    // Stages that read several required parameters.
    assert_names(
        &build_error("[{name: min_tokens, params: {min_token: 3, eos_ids: [2]}}]"),
        &["min_token", "missing", "min_tokens"],
    );
    assert_names(
        &build_error("[{name: dynamic_temperature, params: {tmp: 0.8}}]"),
        &["tmp", "missing", "temp"],
    );
}

#[test]
fn a_nan_or_inf_a_stage_writes_is_named_by_draw() {
    // What an external stage (e.g. a learned sampler) could leave in the row.
    for (bad, pos) in [(f32::NAN, 70usize), (f32::INFINITY, 3), (f32::NAN, 0)] {
        let mut row = Row::new();
        row.load(&vec![0.25f32; 100], 5).unwrap();
        row.exp_scratch();
        row.values_mut()[pos] = bad;
        match adasamp_sampling::draw(&mut row, 0.5, 0).unwrap_err() {
            SamplingError::NonFiniteOutput { row, token, value } => {
                assert_eq!((row, token as usize), (5, pos));
                assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => panic!("{other}"),
        }
        assert!(row.check_output().is_err());
    }
}
