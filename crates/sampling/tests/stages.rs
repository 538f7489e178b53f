//! Semantics of every stage on small hand-made rows, and of the fast ASN stages against the
//! full-sort reference on synthetic rows.

mod common;
use common::*;

use adasamp_sampling::reference;
use adasamp_sampling::synth::{row, RowKind};
use adasamp_sampling::StageSpec;

const NEG: f32 = f32::NEG_INFINITY;

#[test]
fn temperature_divides() {
    let out = run(
        &mut pipeline("[{name: temperature, params: {temperature: 2.0}}]"),
        &[2.0, -4.0, NEG],
        &[],
        0,
    );
    assert_eq!(out, vec![1.0, -2.0, NEG]);
}

#[test]
fn top_k_keeps_ties_at_the_boundary() {
    let z = [1.0, 5.0, 3.0, 3.0, 0.0, 3.0];
    let out = run(
        &mut pipeline("[{name: top_k, params: {top_k: 2}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![1, 2, 3, 5]);
    let out = run(
        &mut pipeline("[{name: top_k, params: {top_k: 1, min_tokens_to_keep: 2}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![1, 2, 3, 5]);
    let out = run(
        &mut pipeline("[{name: top_k, params: {top_k: 100}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(out, z.to_vec());
}

#[test]
fn top_p_keeps_the_crossing_token() {
    // p = [0.5, 0.3, 0.2] (ln-space logits)
    let z = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
    let p = |x: &str| {
        kept(&run(
            &mut pipeline(&format!("[{{name: top_p, params: {{top_p: {x}}}}}]")),
            &z,
            &[],
            0,
        ))
    };
    assert_eq!(p("0.5"), vec![0]);
    assert_eq!(p("0.51"), vec![0, 1]);
    assert_eq!(p("0.79"), vec![0, 1]);
    assert_eq!(p("0.81"), vec![0, 1, 2]);
    assert_eq!(p("0.1"), vec![0]);
    assert_eq!(p("1.0"), vec![0, 1, 2]);
    let out = run(
        &mut pipeline("[{name: top_p, params: {top_p: 0.1, min_tokens_to_keep: 2}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1]);
}

#[test]
fn min_p_is_relative_to_the_top_token() {
    // p ∝ [1, 0.2, 0.05]
    let z = [0.0, 0.2f32.ln(), 0.05f32.ln()];
    let out = run(
        &mut pipeline("[{name: min_p, params: {min_p: 0.1}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1]);
    let out = run(
        &mut pipeline("[{name: min_p, params: {min_p: 0.1, min_tokens_to_keep: 3}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1, 2]);
    let out = run(
        &mut pipeline("[{name: min_p, params: {min_p: 0.0}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1, 2]);
}

#[test]
fn epsilon_and_eta_floors() {
    let z = [0.6f32.ln(), 0.3f32.ln(), 0.09f32.ln(), 0.01f32.ln()];
    let out = run(
        &mut pipeline("[{name: epsilon, params: {epsilon: 0.05}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1, 2]);
    // H ≈ 0.938 nats: η = min(0.2, √0.2·e^−H) ≈ 0.175
    let out = run(
        &mut pipeline("[{name: eta, params: {epsilon: 0.2}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1]);
}

#[test]
fn typical_keeps_tokens_near_the_entropy() {
    // H of [0.4, 0.3, 0.2, 0.1] ≈ 1.2799; |−ln p − H|: 0.364, 0.076, 0.330, 1.023
    let z = [0.4f32.ln(), 0.3f32.ln(), 0.2f32.ln(), 0.1f32.ln()];
    let t = |m: &str| {
        kept(&run(
            &mut pipeline(&format!("[{{name: typical, params: {{mass: {m}}}}}]")),
            &z,
            &[],
            0,
        ))
    };
    assert_eq!(t("0.2"), vec![1]);
    assert_eq!(t("0.4"), vec![1, 2]);
    assert_eq!(t("0.6"), vec![0, 1, 2]);
    assert_eq!(t("0.95"), vec![0, 1, 2, 3]);
}

#[test]
fn top_a_top_n_sigma_and_greedy() {
    // p = [0.5, 0.3, 0.15, 0.05]; a·pmax² with a = 0.5 → 0.125
    let z = [0.5f32.ln(), 0.3f32.ln(), 0.15f32.ln(), 0.05f32.ln()];
    assert_eq!(
        kept(&run(
            &mut pipeline("[{name: top_a, params: {top_a: 0.5}}]"),
            &z,
            &[],
            0
        )),
        vec![0, 1, 2]
    );
    // mean 2, population σ = √2 → keep z ≥ 4 − 1·1.414
    let z2 = [0.0, 1.0, 2.0, 3.0, 4.0, NEG];
    assert_eq!(
        kept(&run(
            &mut pipeline("[{name: top_n_sigma, params: {n: 1.0}}]"),
            &z2,
            &[],
            0
        )),
        vec![3, 4]
    );
    assert_eq!(
        kept(&run(
            &mut pipeline("[{name: greedy}]"),
            &[1.0, 3.0, 3.0],
            &[],
            0
        )),
        vec![1]
    );
}

#[test]
fn xtc_removes_all_top_choices_but_the_least_likely() {
    // p ≈ [0.45, 0.35, 0.15, 0.05]: three tokens have p ≥ 0.1 → keep the least likely of them.
    let z = [0.45f32.ln(), 0.35f32.ln(), 0.15f32.ln(), 0.05f32.ln()];
    let out = run(
        &mut pipeline("[{name: xtc, params: {threshold: 0.1, probability: 1.0}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![2, 3]);
    let out = run(
        &mut pipeline("[{name: xtc, params: {threshold: 0.1, probability: 0.0}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1, 2, 3]);
    // Only one token above the threshold: no-op.
    let out = run(
        &mut pipeline("[{name: xtc, params: {threshold: 0.4, probability: 1.0}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(kept(&out), vec![0, 1, 2, 3]);
}

#[test]
fn dynamic_temperature_follows_entropy() {
    // Uniform over 4: normalised entropy 1 → T = temp + range = 2.
    let out = run(
        &mut pipeline("[{name: dynamic_temperature, params: {temp: 1.0, range: 1.0}}]"),
        &[2.0, 2.0, 2.0, 2.0],
        &[],
        0,
    );
    assert_eq!(out, vec![1.0; 4]);
    // range 0: plain temperature.
    let out = run(
        &mut pipeline("[{name: dynamic_temperature, params: {temp: 0.5}}]"),
        &[1.0, 2.0],
        &[],
        0,
    );
    assert_eq!(out, vec![2.0, 4.0]);
}

#[test]
fn penalties_use_the_window() {
    let z = [2.0, -2.0, 1.0, 0.5];
    let out = run(
        &mut pipeline("[{name: repetition_penalty, params: {penalty: 2.0}}]"),
        &z,
        &[0, 1, 1],
        3,
    );
    assert_eq!(out, vec![1.0, -4.0, 1.0, 0.5]);
    let out = run(
        &mut pipeline("[{name: frequency_penalty, params: {penalty: 0.5}}]"),
        &z,
        &[0, 1, 1],
        3,
    );
    assert_eq!(out, vec![1.5, -3.0, 1.0, 0.5]);
    let out = run(
        &mut pipeline("[{name: presence_penalty, params: {penalty: 0.5, last_n: 1}}]"),
        &z,
        &[0, 1, 2],
        3,
    );
    assert_eq!(out, vec![2.0, -2.0, 0.5, 0.5]);
}

#[test]
fn penalty_with_history_outside_vocab_is_an_error() {
    let mut p = pipeline("[{name: repetition_penalty, params: {penalty: 1.5}}]");
    let mut row = adasamp_sampling::Row::new();
    let mut out = vec![0.0; 3];
    let err = p
        .apply_dense(
            &[1.0, 2.0, 3.0],
            0,
            &adasamp_sampling::Context::new(&[7], 1),
            &mut row,
            &mut out,
        )
        .unwrap_err();
    assert!(err.to_string().contains("token id 7"), "{err}");
}

#[test]
fn dry_penalises_repeat_extensions() {
    // history: 1 2 3 9 1 2 → token 3 would extend the repeat "1 2" (L = 2).
    let z = [0.0f32; 10];
    let out = run(
        &mut pipeline("[{name: dry, params: {multiplier: 1.0, base: 2.0, allowed_length: 2}}]"),
        &z,
        &[1, 2, 3, 9, 1, 2],
        6,
    );
    assert_eq!(out[3], -1.0);
    assert!(out.iter().enumerate().all(|(i, v)| i == 3 || *v == 0.0));
    // longer repeat: 1 2 3 4 1 2 3 → token 4 has L = 3 → 2^(3−2) = 2
    let out = run(
        &mut pipeline("[{name: dry, params: {multiplier: 1.0, base: 2.0, allowed_length: 2}}]"),
        &z,
        &[1, 2, 3, 4, 1, 2, 3],
        7,
    );
    assert_eq!(out[4], -2.0);
    // a breaker (token 9) between the repeat and the end stops matching
    let out = run(&mut pipeline("[{name: dry, params: {multiplier: 1.0, base: 2.0, allowed_length: 2, sequence_breakers: [9]}}]"), &z, &[1, 2, 3, 1, 9, 2], 6);
    assert!(out.iter().all(|v| *v == 0.0));
    // multi-token breaker [5, 6] at the end: no penalty
    let out = run(&mut pipeline("[{name: dry, params: {multiplier: 1.0, base: 2.0, allowed_length: 1, sequence_breakers: [[5, 6]]}}]"), &z, &[5, 6, 1, 5, 6], 5);
    assert!(out.iter().all(|v| *v == 0.0));
    // same history without the breaker: token 1 extends "5 6" (L = 2)
    let out = run(
        &mut pipeline("[{name: dry, params: {multiplier: 1.0, base: 2.0, allowed_length: 1}}]"),
        &z,
        &[5, 6, 1, 5, 6],
        5,
    );
    assert_eq!(out[1], -2.0);
}

#[test]
fn token_rules() {
    let z = [0.0f32; 6];
    let out = run(
        &mut pipeline("[{name: logit_bias, params: {bias: {2: 1.5, 4: -.inf}}}]"),
        &z,
        &[],
        0,
    );
    assert_eq!(out, vec![0.0, 0.0, 1.5, 0.0, NEG, 0.0]);
    // history 1 2 3 1 2: trigram "1 2 3" exists → ban 3 after "1 2"
    let out = run(
        &mut pipeline("[{name: no_repeat_ngram, params: {n: 3}}]"),
        &z,
        &[1, 2, 3, 1, 2],
        5,
    );
    assert_eq!(kept(&out), vec![0, 1, 2, 4, 5]);
    let out = run(
        &mut pipeline("[{name: min_tokens, params: {min_tokens: 2, eos_ids: [5]}}]"),
        &z,
        &[1, 2, 3],
        2,
    );
    assert_eq!(out[5], NEG);
    let out = run(
        &mut pipeline("[{name: min_tokens, params: {min_tokens: 2, eos_ids: [5]}}]"),
        &z,
        &[1, 2, 3, 4],
        2,
    );
    assert_eq!(out[5], 0.0);
}

#[test]
fn mirostat_v2_updates_mu_from_the_sampled_token() {
    use adasamp_sampling::{Context, SequenceSampler};
    // p = [0.5, 0.25, 0.125, 0.125]: surprises 1, 2, 3, 3 bits; μ = 2τ = 4 keeps all.
    let z = [0.5f32.ln(), 0.25f32.ln(), 0.125f32.ln(), 0.125f32.ln()];
    let p = pipeline("[{name: mirostat_v2, params: {tau: 2.0, eta: 1.0}}, {name: greedy}]");
    let mut s = SequenceSampler::new(p, 0, 0, 0);
    let out = s.sample(&z, &Context::default(), 0).unwrap();
    assert_eq!(out.token, 0);
    // μ ← 4 − 1·(1 − 2) = 5; then with a peaked row μ keeps falling when surprise > τ.
    let dbg = format!("{:?}", s.pipeline().stages()[0]);
    let mu: f64 = dbg
        .split("mu: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|x| x.parse().ok())
        .expect(&dbg);
    assert!((mu - 5.0).abs() < 1e-6, "{dbg}");
}

#[test]
fn mirostat_v1_truncates() {
    let z: Vec<f32> = (0..1000).map(|i| -(i as f32 + 1.0).ln() * 1.1).collect();
    let out = run(
        &mut pipeline("[{name: mirostat_v1, params: {tau: 3.0, eta: 0.1}}]"),
        &z,
        &[],
        0,
    );
    let k = kept(&out).len();
    assert!((1..1000).contains(&k), "kept {k}");
}

/// The fast stages agree with the full-sort reference on every synthetic row kind.
#[test]
fn fast_stages_match_reference() {
    let cases: Vec<Vec<StageSpec>> = vec![
        vec![StageSpec::new("top_k", &[("top_k", 40.0)])],
        vec![StageSpec::new("top_k", &[("top_k", 1.0)])],
        vec![StageSpec::new("top_p", &[("top_p", 0.95)])],
        vec![
            StageSpec::new("top_p", &[("top_p", 0.5)]),
            StageSpec::new("min_p", &[("min_p", 0.01)]),
        ],
        vec![StageSpec::new("min_p", &[("min_p", 0.05)])],
        vec![StageSpec::new("typical", &[("mass", 0.9)])],
        vec![StageSpec::new(
            "typical",
            &[("mass", 0.2), ("min_tokens_to_keep", 5.0)],
        )],
        vec![StageSpec::new("epsilon", &[("epsilon", 3e-4)])],
        vec![StageSpec::new("eta", &[("epsilon", 1e-3)])],
        vec![
            StageSpec::new("top_k", &[("top_k", 40.0)]),
            StageSpec::new("top_p", &[("top_p", 0.95)]),
            StageSpec::new("min_p", &[("min_p", 0.05)]),
            StageSpec::new("temperature", &[("temperature", 0.8)]),
        ],
        vec![
            StageSpec::new("temperature", &[("temperature", 0.7)]),
            StageSpec::new("top_p", &[("top_p", 0.9)]),
        ],
    ];
    for kind in RowKind::ALL {
        for seed in 0..3 {
            let z = row(kind, 20000, seed);
            for specs in &cases {
                let fast = run(&mut from_specs(specs.clone()), &z, &[], 0);
                let mut slow = z.clone();
                for s in specs {
                    assert!(reference::apply_stage(s, &mut slow));
                }
                let (kf, ks) = (kept(&fast), kept(&slow));
                let only_fast: Vec<_> = kf.iter().filter(|i| !ks.contains(i)).take(5).collect();
                let only_slow: Vec<_> = ks.iter().filter(|i| !kf.contains(i)).take(5).collect();
                assert!(kf == ks, "{kind:?} seed {seed} {specs:?}: kept {} vs {}; only fast {only_fast:?}, only reference {only_slow:?}", kf.len(), ks.len());
                for (a, b) in fast.iter().zip(&slow) {
                    assert!(
                        a == b || (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                        "{a} vs {b}"
                    );
                }
            }
        }
    }
}
