//! Property: random rows (NaN, ±inf, all `-inf`, subnormals, huge magnitudes, empty) through
//! random pipelines (any stage, parameters in and out of range) either give a valid distribution
//! or an error — never a panic, never a draw from a non-finite distribution.

mod common;

use adasamp_sampling::spec::{Mapping, Value};
use adasamp_sampling::stages::STAGES;
use adasamp_sampling::{
    sample_batch, Context, Pipeline, PipelineSpec, Row, Sample, SamplingError, SequenceSampler,
    StageSpec,
};
use proptest::prelude::*;

/// Parameter names each stage reads (plus a misspelling for every stage).
fn param_names(stage: &str) -> &'static [&'static str] {
    match stage {
        "temperature" => &["temperature"],
        "top_k" => &["top_k", "min_tokens_to_keep"],
        "top_p" => &["top_p", "min_tokens_to_keep"],
        "min_p" => &["min_p", "min_tokens_to_keep"],
        "typical" => &["mass", "min_tokens_to_keep"],
        "epsilon" | "eta" => &["epsilon", "min_tokens_to_keep"],
        "top_a" => &["top_a", "min_tokens_to_keep"],
        "top_n_sigma" => &["n"],
        "xtc" => &["threshold", "probability", "seed", "min_tokens_to_keep"],
        "dynamic_temperature" => &["temp", "range", "exponent"],
        "mirostat_v1" => &["tau", "eta", "m"],
        "mirostat_v2" => &["tau", "eta"],
        "repetition_penalty" | "frequency_penalty" | "presence_penalty" => &["penalty", "last_n"],
        "dry" => &[
            "multiplier",
            "base",
            "allowed_length",
            "sequence_breakers",
            "last_n",
        ],
        "logit_bias" => &["bias"],
        "no_repeat_ngram" => &["n"],
        "min_tokens" => &["min_tokens", "eos_ids"],
        "pipeline" => &["processors"],
        _ => &[],
    }
}

/// Numbers in and out of every stage's range, and the awkward ones.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => prop::sample::select(vec![
            0.0, 1e-300, 1e-40, 1e-3, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 1.5, 2.0, 3.0, 5.0, 40.0,
            100.0, 1e30, 1e300, -0.5, -1.0, -2.0, -1e300, f64::NAN, f64::INFINITY,
            f64::NEG_INFINITY,
        ]),
        4 => 0.0f64..1.0,
        2 => -2.0f64..3.0,
        2 => (-3i64..60).prop_map(|i| i as f64),
    ]
}

fn number_value(x: f64) -> Value {
    Value::Number(x.into())
}

/// A parameter value: mostly numbers, sometimes id lists, maps, strings, null.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => number().prop_map(number_value),
        1 => prop::collection::vec(0u64..400, 0..4)
            .prop_map(|v| Value::Sequence(v.into_iter().map(|x| Value::Number(x.into())).collect())),
        1 => prop::collection::vec((0u64..400, number()), 0..4).prop_map(|v| {
            let mut m = Mapping::new();
            for (k, x) in v {
                m.insert(Value::Number(k.into()), number_value(x));
            }
            Value::Mapping(m)
        }),
        1 => Just(Value::String("high".into())),
        1 => Just(Value::Null),
        1 => Just(Value::Sequence(vec![Value::Sequence(vec![])])),
    ]
}

/// A stage spec: any stage name (or an unknown one), a random subset of its parameters with
/// random values, sometimes an unknown parameter; nested pipelines hold random stages.
fn stage_spec() -> impl Strategy<Value = StageSpec> {
    stage_of().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            3 => stage_of(),
            1 => prop::collection::vec(inner, 0..3).prop_map(|specs| {
                StageSpec::new("pipeline", &[]).with(
                    "processors",
                    serde_yaml_ng::to_value(specs).expect("specs serialise"),
                )
            }),
        ]
    })
}

fn stage_of() -> BoxedStrategy<StageSpec> {
    let mut names: Vec<&'static str> = STAGES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "pipeline")
        .collect();
    names.push("no_such_stage");
    (
        prop::sample::select(names),
        prop::collection::vec((0usize..8, value()), 0..5),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(name, params, junk)| {
            let keys = param_names(name);
            let mut spec = StageSpec::new(name, &[]);
            for (k, v) in params {
                if !keys.is_empty() {
                    spec = spec.with(keys[k % keys.len()], v);
                }
            }
            if junk {
                spec = spec.with("min_q", number_value(0.1));
            }
            spec
        })
        .boxed()
}

/// Logit values: ordinary ones, `-inf`, subnormals, zero and huge magnitudes.
fn logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        40 => -20.0f32..20.0,
        6 => Just(f32::NEG_INFINITY),
        2 => prop::sample::select(vec![1e-45f32, -1e-45, 1e-40, -3e-39, 0.0, -0.0]),
        1 => prop::sample::select(vec![3.4e38f32, -3.4e38, 1e30, -1e30, f32::MAX, f32::MIN]),
    ]
}

/// Rows: random length (sometimes empty), sometimes entirely `-inf`, a quarter of them with a NaN
/// or `+inf` somewhere.
fn logits_row() -> impl Strategy<Value = Vec<f32>> {
    let clean = prop_oneof![
        10 => prop::collection::vec(logit(), 1..120),
        // Long enough for the SIMD bodies of the kernels.
        4 => prop::collection::vec(logit(), 120..700),
        1 => Just(Vec::new()),
        1 => (1usize..70).prop_map(|n| vec![f32::NEG_INFINITY; n]),
    ];
    (
        clean,
        prop::option::weighted(0.25, (any::<prop::sample::Index>(), any::<bool>())),
    )
        .prop_map(|(mut z, bad)| {
            if let (Some((at, nan)), false) = (bad, z.is_empty()) {
                let i = at.index(z.len());
                z[i] = if nan { f32::NAN } else { f32::INFINITY };
            }
            z
        })
}

/// Checks a sample and the distribution it was drawn from.
fn check_sample(s: &Sample, probs: &[(u32, f32)], vocab: usize) -> Result<(), TestCaseError> {
    prop_assert!(!probs.is_empty(), "empty distribution");
    let mut total = 0.0f64;
    for &(id, p) in probs {
        prop_assert!(p.is_finite() && p >= 0.0, "token {id}: p = {p}");
        prop_assert!((id as usize) < vocab);
        total += p as f64;
    }
    prop_assert!((total - 1.0).abs() < 1e-3, "sum {total}");
    prop_assert!((s.token as usize) < vocab);
    prop_assert!(s.prob.is_finite() && s.prob > 0.0, "chosen p = {}", s.prob);
    prop_assert!(s.logprob.is_finite());
    let p = probs.iter().find(|(id, _)| *id == s.token).map(|x| x.1);
    prop_assert_eq!(
        p,
        Some(s.prob),
        "the chosen token has no mass in the distribution"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_row_through_any_pipeline_is_a_distribution_or_an_error(
        z in logits_row(),
        specs in prop::collection::vec(stage_spec(), 0..4),
        history in prop::collection::vec(0u32..400, 0..40),
        prompt_len in 0usize..50,
        seed in any::<u64>(),
    ) {
        let Ok(p) = Pipeline::from_spec(PipelineSpec { name: "p".into(), weight: 1.0, processors: specs }) else {
            return Ok(());
        };
        // The spec round-trips through YAML to an equal pipeline file.
        let set = adasamp_sampling::PipelineSet::from_pipelines(vec![p.clone()]);
        prop_assert_eq!(adasamp_sampling::PipelineFile::from_yaml(&set.to_yaml(), None).unwrap(), set.to_file());

        // apply_dense: finite logits with one token kept, or an error.
        let ctx = Context::new(&history, prompt_len);
        let mut row = Row::new();
        let mut out = vec![0.0; z.len()];
        if p.clone().apply_dense(&z, 0, &ctx, &mut row, &mut out).is_ok() {
            prop_assert!(out.iter().all(|v| !v.is_nan() && *v != f32::INFINITY));
            prop_assert!(out.iter().any(|v| v.is_finite()));
        }

        // Split steps and `sample` over a few tokens (stateful stages move).
        let mut s = SequenceSampler::new(p.clone(), seed, 0, 3);
        let mut whole = SequenceSampler::new(p.clone(), seed, 0, 3);
        let mut h = history.clone();
        for i in 0..3 {
            let ctx = Context::new(&h, prompt_len);
            let expect = whole.sample(&z, &ctx, i);
            let probs: Vec<(u32, f32)> = match s.distribution(&z, &ctx, i) {
                Ok(d) => d.iter().map(|t| (t.id, t.prob)).collect(),
                Err(e) => {
                    prop_assert_eq!(expect.unwrap_err(), e);
                    break;
                }
            };
            let got = s.draw().unwrap();
            s.accept(got.token);
            check_sample(&got, &probs, z.len())?;
            prop_assert_eq!(&expect.unwrap(), &got);
            h.push(got.token);
        }

        // A batch of two rows.
        if !z.is_empty() {
            let batch: Vec<f32> = z.iter().chain(z.iter().rev()).copied().collect();
            if let Ok(samples) = sample_batch(&p, &batch, z.len(), seed, 2) {
                prop_assert_eq!(samples.len(), 2);
                for smp in &samples {
                    prop_assert!(smp.prob.is_finite() && smp.prob > 0.0);
                }
            }
        }
    }
}

#[test]
fn every_stage_after_a_stage_that_leaves_one_or_no_token() {
    // Stages run on rows that earlier stages emptied or cut to one token: an error
    // ("removed every token") or the one token, never a panic.
    let ban_all = StageSpec::new("logit_bias", &[]).with(
        "bias",
        serde_yaml_ng::from_str("{0: -.inf, 1: -.inf, 2: -.inf, 3: -.inf, 4: -.inf, 5: -.inf}")
            .unwrap(),
    );
    for spec in common::every_stage() {
        for first in [ban_all.clone(), StageSpec::new("greedy", &[])] {
            for z in [
                vec![0.5f32, 2.0, -1.0, 2.0, f32::NEG_INFINITY, 0.0],
                vec![3.4e38, -3.4e38, 1e-45, 0.0, -1e30, 1.0],
            ] {
                let p = common::from_specs(vec![first.clone(), spec.clone()]);
                let mut s = SequenceSampler::new(p, 0, 0, 2);
                let mut h = vec![1u32, 3];
                for i in 0..3 {
                    match s.sample(&z, &Context::new(&h, 1), i) {
                        Ok(smp) => {
                            assert!(
                                first.name == "greedy",
                                "{}: sampled from nothing",
                                spec.name
                            );
                            assert!(smp.prob > 0.0 && smp.prob.is_finite());
                            h.push(smp.token);
                        }
                        // Banning stages may remove the one token greedy kept; a temperature
                        // below 1 overflows 3.4e38.
                        Err(e) => assert!(
                            matches!(
                                e,
                                SamplingError::NothingLeft { .. }
                                    | SamplingError::NonFiniteOutput { .. }
                            ),
                            "{} after {}: {e}",
                            spec.name,
                            first.name
                        ),
                    }
                }
            }
        }
    }
}
