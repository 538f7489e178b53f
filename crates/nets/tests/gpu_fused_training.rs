//! The fused CUDA training step of the SamplingNetwork (forward, TruncatedLogitsLoss,
//! backward) against candle's autograd of the plain path on the same device.
//!
//! Built only with the `cuda` feature (CPU CI never compiles these). The tests that need a GPU
//! print `SKIPPED (no CUDA device): …` and return when `Device::new_cuda(0)` fails, so a run
//! without a device proves nothing about the kernels and says so. Inputs are fresh random
//! logits every run (the seed is printed), targets the pipeline temperature 0.8 → min_p 0.1 of
//! them, weights the seeded initialisation plus Gaussian noise, and the fused path NaN-fills
//! every buffer its kernels and GEMMs write before they run.
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use std::collections::BTreeMap;

use adasamp_nets::gpu::fused::COMPILED_CONFIGS;
use adasamp_nets::gpu::FusedTrainer;
use adasamp_nets::{LearnedSampler, NetsError, SamplerConfig, TruncatedLogitsLoss};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gpu_common::{
    assert_names_row_1_token_41, cuda_and_rng, cuda_or_skip, inputs_with_a_bad_token, lm_logits,
    noisy_params,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of the loss sums.
const TOL: f64 = 1e-3;
/// A gradient entry passes when `|fused − plain| ≤ TOL · max(|plain|, FLOOR · max|plain|)`,
/// the maximum over the parameter's entries: entries that are sums of large terms cancelling to
/// almost nothing carry the rounding of those terms in either path (on an H100 at V = 49,152
/// with a floor of 1 %: a `qkv` key-bias entry 1/155 of its tensor's largest, a sum over 196,608
/// tokens, differed by 1.7e-3 of the floor, 2e-8 absolute).
const FLOOR: f64 = 5e-2;

/// LM-like logits `[rows, vocab]` ([`lm_logits`]) and their targets: temperature 0.8, then
/// min_p 0.1 (tokens below a tenth of the top probability removed), `-inf` where the input is.
fn rows(rows: usize, vocab: usize, masked: f64, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<f32>) {
    let z = lm_logits(rows, vocab, masked, rng);
    let mut t = vec![f32::NEG_INFINITY; z.len()];
    for (zr, tr) in z.chunks(vocab).zip(t.chunks_mut(vocab)) {
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (&x, y) in zr.iter().zip(tr.iter_mut()) {
            // p / p_max ≥ 0.1 at temperature 0.8.
            if x > f32::NEG_INFINITY && (x - m) / 0.8 >= 0.1f32.ln() {
                *y = x / 0.8;
            }
        }
    }
    (z, t)
}

/// `(Σ KL, Σ penalty, gradients)` of `scale · Σ_rows (KL + γ·penalty)` by candle's autograd.
fn plain_step(
    config: &SamplerConfig,
    params: &[(String, Tensor)],
    z: &Tensor,
    t: &Tensor,
    gamma: f64,
    scale: f64,
) -> (f64, f64, BTreeMap<String, Tensor>) {
    let varmap = VarMap::new();
    let sampler = LearnedSampler::trainable_from(
        config,
        params.iter().cloned(),
        &varmap,
        DType::F32,
        z.device(),
    )
    .unwrap();
    let pred = sampler.forward(z).unwrap();
    let (kl, pen) = TruncatedLogitsLoss::new(gamma)
        .unwrap()
        .per_row(&pred, t)
        .unwrap();
    let total = ((&kl + (&pen * gamma).unwrap()).unwrap().sum_all().unwrap() * scale).unwrap();
    let store = total.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let grads = data
        .iter()
        .map(|(k, v)| (k.clone(), store.get(v.as_tensor()).unwrap().clone()))
        .collect();
    let s = |x: &Tensor| {
        x.to_dtype(DType::F64)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    (s(&kl), s(&pen), grads)
}

fn assert_grads_close(
    fused: &BTreeMap<String, Tensor>,
    plain: &BTreeMap<String, Tensor>,
    what: &str,
) {
    assert_eq!(
        fused.keys().collect::<Vec<_>>(),
        plain.keys().collect::<Vec<_>>(),
        "{what}: parameter names"
    );
    let flat = |t: &Tensor| -> Vec<f64> {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let mut worst = (0.0f64, String::new());
    for (name, p) in plain {
        let f = &fused[name];
        assert_eq!(f.dims(), p.dims(), "{what}: {name} shape");
        let (f, p) = (flat(f), flat(p));
        let top = p.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, (&a, &b)) in f.iter().zip(&p).enumerate() {
            assert!(a.is_finite(), "{what}: {name}[{i}]: fused {a}, plain {b}");
            let rel = (a - b).abs() / b.abs().max(FLOOR * top).max(f64::MIN_POSITIVE);
            assert!(
                rel <= TOL,
                "{what}: {name}[{i}]: fused {a}, plain {b} (max |plain| {top})"
            );
            if rel > worst.0 {
                worst = (rel, format!("{name}[{i}]"));
            }
        }
    }
    eprintln!(
        "{what}: worst gradient difference {:.2e} at {}",
        worst.0, worst.1
    );
}

fn assert_loss_close(fused: f64, plain: f64, what: &str) {
    let rel = (fused - plain).abs() / plain.abs().max(1e-6);
    assert!(rel <= TOL, "{what}: fused {fused}, plain {plain}");
}

fn check(
    config: &SamplerConfig,
    seed: u64,
    n: usize,
    vocab: usize,
    masked: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
) {
    let params = noisy_params(config, seed, device);
    let (z, t) = rows(n, vocab, masked, rng);
    let z = Tensor::from_vec(z, (n, vocab), device).unwrap();
    let t = Tensor::from_vec(t, (n, vocab), device).unwrap();
    let (gamma, scale) = (rng.random_range(0.5..2.0), 1.0 / n as f64);
    let trainer = FusedTrainer::new(config, device)
        .unwrap()
        .with_poisoned_buffers(true);
    let fused = trainer.step(&params, &z, &t, gamma, scale).unwrap();
    let (kl, pen, grads) = plain_step(config, &params, &z, &t, gamma, scale);
    let what = format!("{config} N {n} V {vocab}");
    eprintln!(
        "{what}: KL {} / {kl}, penalty {} / {pen}",
        fused.kl, fused.penalty
    );
    assert_loss_close(fused.kl, kl, &format!("{what}: KL"));
    assert_loss_close(fused.penalty, pen, &format!("{what}: penalty"));
    assert_grads_close(&fused.grads, &grads, &what);
}

#[test]
fn cuda_fused_training_step_equals_candle_autograd_for_every_compiled_shape() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused training equality") else {
        return;
    };
    for (i, &(d, heads, _, d_ff)) in COMPILED_CONFIGS.iter().enumerate() {
        for (blocks, scale) in [(1, false), (3, true)] {
            let config = common::sn(d, d_ff, blocks, heads, scale);
            // V not a multiple of the 128-thread block, a fifth of the tokens masked.
            check(&config, seed ^ i as u64, 3, 5_003, 0.2, &mut rng, &device);
        }
    }
}

#[test]
fn cuda_fused_training_step_equals_candle_autograd_at_smollm2_vocab() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused training at V = 49152") else {
        return;
    };
    let config = common::load_config("sampling_network.yaml");
    check(&config, seed, 4, 49_152, 0.0, &mut rng, &device);
}

#[test]
fn cuda_fused_training_gives_no_gradient_for_a_row_with_infinite_kl() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused training, infinite KL row") else {
        return;
    };
    let config = common::load_config("sampling_network_tiny.yaml");
    let params = noisy_params(&config, seed, &device);
    let v = 700;
    let (z, t) = rows(3, v, 0.1, &mut rng);
    let mut z_bad = z.clone();
    let mut t_bad = t.clone();
    // Row 2: the input masks token 5, which the target keeps.
    z_bad[2 * v + 5] = f32::NEG_INFINITY;
    let top = t[2 * v..3 * v]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    t_bad[2 * v + 5] = top - 1.0;
    let zt = Tensor::from_vec(z_bad, (3, v), &device).unwrap();
    let tt = Tensor::from_vec(t_bad, (3, v), &device).unwrap();
    let trainer = FusedTrainer::new(&config, &device)
        .unwrap()
        .with_poisoned_buffers(true);
    let fused = trainer.step(&params, &zt, &tt, 1.0, 0.5).unwrap();
    assert_eq!(fused.kl, f64::INFINITY);
    let z2 = Tensor::from_vec(z[..2 * v].to_vec(), (2, v), &device).unwrap();
    let t2 = Tensor::from_vec(t[..2 * v].to_vec(), (2, v), &device).unwrap();
    let (_, _, grads) = plain_step(&config, &params, &z2, &t2, 1.0, 0.5);
    assert_grads_close(&fused.grads, &grads, "rows 0 and 1 of 3");
}

#[test]
fn cuda_fused_training_rejects_bad_inputs_naming_them() {
    let Some(device) = cuda_or_skip("fused training input errors") else {
        return;
    };
    let config = common::load_config("sampling_network_tiny.yaml");
    let params = LearnedSampler::seeded(&config, 0, DType::F32, &device)
        .unwrap()
        .named_parameters();
    let trainer = FusedTrainer::new(&config, &device).unwrap();
    let good = Tensor::from_vec(vec![0.5f32; 2 * 300], (2, 300), &device).unwrap();
    for (x, name) in inputs_with_a_bad_token(&device) {
        let err = trainer.step(&params, &x, &good, 1.0, 1.0).unwrap_err();
        assert_names_row_1_token_41(&err, name);
        let err = trainer.step(&params, &good, &x, 1.0, 1.0).unwrap_err();
        assert!(err.to_string().contains("target"), "{name} target: {err}");
    }
    let short = Tensor::zeros((2, 299), DType::F32, &device).unwrap();
    let err = trainer.step(&params, &good, &short, 1.0, 1.0).unwrap_err();
    assert!(matches!(err, NetsError::BadShape { .. }), "{err}");
    let err = trainer.step(&params, &good, &good, -1.0, 1.0).unwrap_err();
    assert!(err.to_string().contains("gamma"), "{err}");
    let missing: Vec<_> = params[1..].to_vec();
    let err = trainer.step(&missing, &good, &good, 1.0, 1.0).unwrap_err();
    assert!(err.to_string().contains(&params[0].0), "{err}");
}

#[test]
fn fused_trainer_names_what_has_no_kernel() {
    // Runs without a GPU: the checks come before any device work.
    let cpu = Device::Cpu;
    let err = FusedTrainer::new(&common::simple(64, true), &cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("architecture"), "{err}");
    let err = FusedTrainer::new(&common::sn(24, 64, 1, 4, true), &cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("d_model 24"), "{err}");
    let err = FusedTrainer::new(&common::sn(32, 64, 1, 4, true), &cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("device") && err.contains("Cpu"), "{err}");
    assert!(FusedTrainer::supports(&common::sn(32, 64, 4, 4, true)));
    assert!(!FusedTrainer::supports(&common::simple(64, true)));
}
