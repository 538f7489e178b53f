//! Optimal sampling over two models on the default model (as both θ and the teacher, with
//! different system prompts; skipped when the model file is absent): α = 0 reproduces θ alone
//! and α = 1 the teacher alone, token for token, for a fixed seed; kl_symmetry runs end to end
//! with one diagnostics entry per token; every α method is verified by substitution on real
//! rows; different vocabularies are refused naming both sizes.

mod common;

use adasamp_engine::optimal::{
    check_vocabularies, generate_optimal, OptimalOptions, OptimalRequest,
};
use adasamp_engine::{generate, BackendChoice, EngineError, Feed, GenerationRequest, LoadedModel};
use adasamp_sampling::optimal::reference::Pair;
use adasamp_sampling::optimal::{AlphaMethod, AlphaStatus, MixOptions, Mixer};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};

const USER: &str = "Name three colours of the rainbow.";
const SYS_THETA: &str = "You are a terse assistant.";
const SYS_TEACHER: &str = "You are a poet who answers in verse.";

fn models() -> Option<(LoadedModel, LoadedModel)> {
    let a = common::default_model(BackendChoice::LlamaCpp, false)?;
    let b = common::default_model(BackendChoice::LlamaCpp, false)?;
    Some((a, b))
}

fn pipeline() -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: "t08p95".into(),
        weight: 1.0,
        processors: vec![
            StageSpec::new("temperature", &[("temperature", 0.8)]),
            StageSpec::new("top_p", &[("top_p", 0.95)]),
        ],
    })
    .unwrap()
}

fn request(prompt: Vec<u32>, seed: u64) -> GenerationRequest {
    GenerationRequest {
        prompt,
        pipeline: pipeline(),
        seed,
        max_new_tokens: 24,
        stop: vec![],
        logprobs: 0,
    }
}

fn fixed(alpha: f64) -> OptimalOptions {
    OptimalOptions {
        mix: MixOptions {
            method: AlphaMethod::Fixed,
            alpha,
            ..MixOptions::default()
        },
        force_teacher_first: false,
    }
}

#[test]
fn alpha_zero_is_theta_alone_and_alpha_one_the_teacher_alone() {
    let Some((mut th, mut te)) = models() else {
        return;
    };
    let p_theta = th.prompt_tokens(USER, Some(SYS_THETA), false).unwrap();
    let p_teacher = te.prompt_tokens(USER, Some(SYS_TEACHER), false).unwrap();
    assert_ne!(p_theta, p_teacher);
    for seed in [3, 11] {
        let req = || OptimalRequest {
            theta: request(p_theta.clone(), seed),
            teacher_prompt: p_teacher.clone(),
        };
        let (alone_theta, _) = generate(
            th.model.as_mut(),
            &th.tokenizer,
            vec![request(p_theta.clone(), seed)],
            &mut |_, _| {},
        )
        .unwrap();
        let (alone_teacher, _) = generate(
            te.model.as_mut(),
            &te.tokenizer,
            vec![request(p_teacher.clone(), seed)],
            &mut |_, _| {},
        )
        .unwrap();
        for (alpha, want) in [(0.0, &alone_theta[0]), (1.0, &alone_teacher[0])] {
            let got = generate_optimal(
                th.model.as_mut(),
                te.model.as_mut(),
                &th.tokenizer,
                vec![req()],
                &fixed(alpha),
                &mut |_, _| {},
            )
            .unwrap();
            assert_eq!(
                got[0].generation.tokens, want.tokens,
                "α = {alpha}, seed {seed}"
            );
            assert_eq!(got[0].generation.text, want.text);
            assert!(got[0].steps.iter().all(|s| s.alpha == alpha));
        }
        assert_ne!(
            alone_theta[0].tokens, alone_teacher[0].tokens,
            "the prompts must differ in effect"
        );
    }
}

#[test]
fn kl_symmetry_runs_end_to_end_with_diagnostics_per_token() {
    let Some((mut th, mut te)) = models() else {
        return;
    };
    let opts = OptimalOptions {
        mix: MixOptions {
            method: AlphaMethod::KlSymmetry,
            teacher_top_p: Some(0.98),
            ..MixOptions::default()
        },
        force_teacher_first: true,
    };
    let reqs: Vec<OptimalRequest> = (0..3)
        .map(|seed| OptimalRequest {
            theta: request(
                th.prompt_tokens(USER, Some(SYS_THETA), false).unwrap(),
                seed,
            ),
            teacher_prompt: te.prompt_tokens(USER, Some(SYS_TEACHER), false).unwrap(),
        })
        .collect();
    let mut streamed = vec![String::new(); 3];
    let out = generate_optimal(
        th.model.as_mut(),
        te.model.as_mut(),
        &th.tokenizer,
        reqs,
        &opts,
        &mut |i, t| streamed[i].push_str(t),
    )
    .unwrap();
    assert_eq!(out.len(), 3);
    for (i, g) in out.iter().enumerate() {
        assert!(!g.generation.tokens.is_empty());
        assert_eq!(g.steps.len(), g.generation.tokens.len());
        assert_eq!(g.summary.steps, g.steps.len());
        assert_eq!(g.steps[0].status, AlphaStatus::Forced);
        assert_eq!(streamed[i], g.generation.text);
        for s in &g.steps[1..] {
            assert!((0.0..=1.0).contains(&s.alpha), "{s:?}");
            assert!(
                matches!(
                    s.status,
                    AlphaStatus::Root | AlphaStatus::BracketEnd | AlphaStatus::Equal
                ),
                "{s:?}"
            );
            if s.status == AlphaStatus::Root {
                assert!(s.residual.abs() <= 1e-6);
            }
        }
        let mean = g.steps.iter().map(|s| s.alpha).sum::<f64>() / g.steps.len() as f64;
        assert!((g.summary.alpha_mean - mean).abs() < 1e-9);
    }
}

#[test]
fn every_method_checks_by_substitution_on_real_rows() {
    let Some((mut th, mut te)) = models() else {
        return;
    };
    let p_theta = th.prompt_tokens(USER, Some(SYS_THETA), false).unwrap();
    let p_teacher = te.prompt_tokens(USER, Some(SYS_TEACHER), false).unwrap();
    // Rows at the prompt's end and after a few shared tokens.
    let cont = th.tokenizer.encode(" Red, orange and", false).unwrap();
    let (a, b) = (
        th.model.new_sequence().unwrap(),
        te.model.new_sequence().unwrap(),
    );
    let mut rows = Vec::new();
    let mut fa = th.model.forward(&[Feed::tokens(a, &p_theta)]).unwrap();
    let mut fb = te.model.forward(&[Feed::tokens(b, &p_teacher)]).unwrap();
    rows.push((fa.last_row(0).to_vec(), fb.last_row(0).to_vec()));
    for t in &cont {
        fa = th
            .model
            .forward(&[Feed::tokens(a, std::slice::from_ref(t))])
            .unwrap();
        fb = te
            .model
            .forward(&[Feed::tokens(b, std::slice::from_ref(t))])
            .unwrap();
        rows.push((fa.last_row(0).to_vec(), fb.last_row(0).to_vec()));
    }
    let mut roots = 0;
    for (r, (zt, zs)) in rows.iter().enumerate() {
        let pair = Pair::new(zt, zs, None);
        for method in [
            AlphaMethod::KlSymmetry,
            AlphaMethod::ReverseKlSymmetry,
            AlphaMethod::EssBalance,
        ] {
            let mut m = Mixer::new(MixOptions {
                method,
                ..MixOptions::default()
            })
            .unwrap();
            let s = m.alpha(zt, zs, r).unwrap();
            let truth = pair.residual(method, s.alpha);
            match s.status {
                AlphaStatus::Root | AlphaStatus::Equal => {
                    roots += 1;
                    assert!(truth.abs() <= 1e-6, "row {r} {method}: {s:?} Δ = {truth}");
                }
                AlphaStatus::BracketEnd => {
                    let (x, y) = (pair.residual(method, 0.0), pair.residual(method, 1.0));
                    assert_eq!(x.signum(), y.signum(), "row {r} {method}: {s:?}");
                }
                other => panic!("row {r} {method}: {other:?}"),
            }
            if method != AlphaMethod::ReverseKlSymmetry {
                // KL and ESS roots always exist on [0, 1] and lie inside for differing rows.
                assert_eq!(s.status, AlphaStatus::Root, "row {r} {method}");
                assert!(s.alpha > 0.0 && s.alpha < 1.0, "row {r} {method}: {s:?}");
            }
        }
    }
    assert!(roots >= 2 * rows.len());
}

#[test]
fn different_vocabularies_are_refused_naming_both_sizes() {
    let e = check_vocabularies(49152, 128256).unwrap_err();
    assert!(matches!(
        e,
        EngineError::VocabMismatch {
            theta: 49152,
            teacher: 128256
        }
    ));
    let msg = e.to_string();
    assert!(msg.contains("49152") && msg.contains("128256"), "{msg}");
    assert!(check_vocabularies(49152, 49152).is_ok());
}
