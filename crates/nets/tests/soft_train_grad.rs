//! The soft-sampling loss's gradient in the LM head, on a tiny random model: at α < 1 it matches
//! central finite differences of the loss (the gradient flows through the fed mixtures
//! `p_tᵀW_E`), while the stop-gradient one (mixtures as constants) does not; at α = 1 the
//! differentiable loop gives the teacher-forced loss and gradient.

use std::path::PathBuf;

use adasamp_engine::random_model::{
    write_random_llama, ModelFormat, Preset, RandomModelSpec, WeightType,
};
use adasamp_nets::soft_train::{
    batch_loss, bptt, load_train_model, objective, SoftTrainModel, TrainModel, TrainSequence,
};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const V: usize = 300;

fn tiny(name: &str) -> (PathBuf, TrainModel) {
    let d = std::env::temp_dir().join(format!("adasamp-softgrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("tiny.gguf");
    let spec = RandomModelSpec {
        preset: Preset::Tiny,
        vocab: V,
        format: ModelFormat::Gguf,
        weights: WeightType::F16,
        seed: 11,
    };
    write_random_llama(&spec, &path, &|_, _| {}).unwrap();
    let tm = load_train_model(&path, 2, 32).unwrap();
    (d, tm)
}

/// Runs `f` on the tiny model with its head scaled by `head_scale` (the head passed to `f`).
fn with_tiny(name: &str, head_scale: f64, f: impl FnOnce(&mut SoftTrainModel<'_>, &Tensor)) {
    let (dir, tm) = tiny(name);
    let head0 = (&tm.head * head_scale).unwrap();
    let mut lm = tm.lm;
    let mut m = SoftTrainModel {
        model: lm.model.as_mut(),
        norm: tm.norm.clone(),
        frozen: tm.frozen.clone(),
        initial_head: head0.clone(),
    };
    f(&mut m, &head0);
    std::fs::remove_dir_all(&dir).ok();
}

fn batch() -> Vec<TrainSequence> {
    vec![
        TrainSequence {
            tokens: vec![1, 17, 200, 45, 99, 3, 260],
            prompt_len: 0,
        },
        TrainSequence {
            tokens: vec![1, 80, 81, 290, 12],
            prompt_len: 2,
        },
    ]
}

fn tempered(t: f64) -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: "tempered".into(),
        weight: 1.0,
        processors: vec![StageSpec::new("temperature", &[("temperature", t)])],
    })
    .unwrap()
}

fn loss(m: &mut SoftTrainModel<'_>, head: &Tensor, soft: &Pipeline, alpha: f64) -> f64 {
    let (l, _) = batch_loss(m, head, soft, &batch(), alpha).unwrap();
    l.to_scalar::<f32>().unwrap() as f64
}

/// `⟨g, dir⟩`.
fn dot(g: &Tensor, dir: &Tensor) -> f64 {
    (g * dir)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

/// A random direction with the head's shape and scale.
fn direction(head: &Tensor, seed: u64) -> Tensor {
    let (v, d) = head.dims2().unwrap();
    let scale = head
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..v * d)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect();
    Tensor::from_vec(x, (v, d), &Device::Cpu).unwrap()
}

#[test]
fn head_gradient_matches_finite_differences_through_the_mixtures() {
    // A head 8× the random one: peaked distributions, whose mixtures move with the head.
    with_tiny("fd", 8.0, |m, head0| {
        for (alpha, t) in [(0.0, 1.0), (0.3, 0.7)] {
            let soft = tempered(t);
            let var = Var::from_tensor(head0).unwrap();
            let (l, _) = batch_loss(m, var.as_tensor(), &soft, &batch(), alpha).unwrap();
            let g = l.backward().unwrap().get(var.as_tensor()).unwrap().clone();
            // The stop-gradient objective of before: the mixtures computed from a detached head.
            let var_old = Var::from_tensor(head0).unwrap();
            let inputs =
                objective::soft_inputs(m.model, &m.norm, head0, &soft, &batch(), alpha).unwrap();
            let l_old = objective::head_loss(var_old.as_tensor(), &inputs).unwrap();
            // Same value of the loss, whichever way it is computed.
            let (a, b) = (
                l.to_scalar::<f32>().unwrap(),
                l_old.to_scalar::<f32>().unwrap(),
            );
            assert!((a - b).abs() < 1e-4, "α {alpha}: {a} vs {b}");
            let g_old = l_old
                .backward()
                .unwrap()
                .get(var_old.as_tensor())
                .unwrap()
                .clone();
            for seed in 0..3 {
                let u = direction(head0, seed);
                let eps = 1e-2;
                let plus = loss(m, &(head0 + (&u * eps).unwrap()).unwrap(), &soft, alpha);
                let minus = loss(m, &(head0 - (&u * eps).unwrap()).unwrap(), &soft, alpha);
                let fd = (plus - minus) / (2.0 * eps);
                let (exact, old) = (dot(&g, &u), dot(&g_old, &u));
                eprintln!(
                "α {alpha} T {t} direction {seed}: finite difference {fd:.6}, gradient {exact:.6}, stop-gradient {old:.6}"
            );
                assert!(
                    (fd - exact).abs() <= 2e-3 * fd.abs().max(1e-2),
                    "α {alpha} direction {seed}: finite difference {fd} vs gradient {exact}"
                );
                assert!(
                    (fd - old).abs() > 10.0 * (fd - exact).abs().max(1e-5),
                    "α {alpha} direction {seed}: the stop-gradient {old} should miss {fd}"
                );
            }
        }
    });
}

#[test]
fn alpha_one_is_teacher_forcing_with_the_same_gradient() {
    with_tiny("tf", 1.0, |m, head0| {
        let soft = tempered(0.8);
        let var = Var::from_tensor(head0).unwrap();
        // Teacher forcing (batch_loss at α = 1 feeds the batch in one forward).
        let (l_tf, n) = batch_loss(m, var.as_tensor(), &soft, &batch(), 1.0).unwrap();
        let g_tf = l_tf
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .clone();
        // The differentiable one-position-per-step loop at α = 1.
        let (logits, targets) = bptt::soft_logits(
            &m.frozen,
            &m.norm,
            var.as_tensor(),
            &soft,
            0.8,
            &batch(),
            1.0,
        )
        .unwrap();
        assert_eq!(targets.len(), n);
        let t = Tensor::from_vec(targets, n, &Device::Cpu).unwrap();
        let l_loop = candle_nn::loss::cross_entropy(&logits, &t).unwrap();
        let g_loop = l_loop
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .clone();
        let (a, b) = (
            l_tf.to_scalar::<f32>().unwrap(),
            l_loop.to_scalar::<f32>().unwrap(),
        );
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        let diff = (&g_tf - &g_loop)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "gradients differ by {diff}");
    });
}
