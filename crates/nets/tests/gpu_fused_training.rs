//! The fused CUDA training step of the SamplingNetwork (forward, TruncatedLogitsLoss,
//! backward) against candle's autograd of the plain path on the same device, computed in f64.
//!
//! Built only with the `cuda` feature (CPU CI never compiles these). The tests that need a GPU
//! print `SKIPPED (no CUDA device): …` and return when `Device::new_cuda(0)` fails, so a run
//! without a device proves nothing about the kernels and says so. Inputs are fresh random
//! logits every run (the seed is printed), targets the pipeline temperature 0.8 → min_p 0.1 of
//! them, weights the seeded initialisation plus Gaussian noise, and the fused path NaN-fills
//! every buffer its kernels and GEMMs write before they run.
//!
//! The reference is the plain path in f64 (weights, logits and targets converted exactly from
//! the f32 ones): bias and LayerNorm gradients are sums over all `N·V` tokens of terms that
//! largely cancel, where the f32 plain path's own rounding is of the size of the bound (on the
//! CPU at V = 49,152: 2.4e-3 of the measure below). Each check prints how far both the fused
//! step and the f32 plain step are from the f64 one and bounds the fused step's distance.
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use std::collections::BTreeMap;

use adasamp_nets::gpu::fused::COMPILED_CONFIGS;
use adasamp_nets::gpu::FusedTrainer;
use adasamp_nets::{LearnedSampler, NetsError, SamplerConfig};
use candle_core::{DType, Device, Tensor};
use gpu_common::{
    assert_names_row_1_token_41, cuda_and_rng, cuda_or_skip, gradient_error, gradient_norm_error,
    inputs_with_a_bad_token, lm_logits, logits_and_targets, loss_error, noisy_params, plain_steps,
    targets_of, PlainStep, GRADIENT_FLOOR,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of the loss sums and of the gradients (normwise per parameter).
const TOL: f64 = 1e-3;

/// Tolerance of the entrywise gradient measure ([`gradient_error`], 5 % floor): a guard against
/// a few wrong entries in a large tensor, which the normwise measure would average away.
const ENTRY_TOL: f64 = 1e-2;

/// Asserts every parameter's gradient within `TOL` normwise of the f64 plain step
/// (`‖fused − f64‖₂ / ‖f64‖₂`, [`gradient_norm_error`]) and every entry within `ENTRY_TOL ·
/// max(|f64|, GRADIENT_FLOOR · max|f64 of that parameter|)` ([`gradient_error`]), after printing
/// both measures for the fused and the f32 plain gradients. Entrywise at `TOL` is below what
/// these sums of ~10⁴ cancelling terms keep at ~22 bits: the fused step (split f16 products)
/// reached 1.1e-3 … 1.8e-3 on a few entries in about 1 of 5 fresh-seed runs on an H100, the f32
/// plain step up to 6.7e-4 itself.
fn assert_grads_close(
    fused: &BTreeMap<String, Tensor>,
    plain: &(PlainStep, PlainStep),
    what: &str,
) {
    let truth = &plain.1.grads;
    let (fused_err, at) = gradient_error(fused, truth, GRADIENT_FLOOR, what);
    let (f32_err, f32_at) = gradient_error(&plain.0.grads, truth, GRADIENT_FLOOR, what);
    let (fused_1, _) = gradient_error(fused, truth, 1e-2, what);
    let (f32_1, _) = gradient_error(&plain.0.grads, truth, 1e-2, what);
    let (between, _) = gradient_error(fused, &plain.0.grads, GRADIENT_FLOOR, what);
    let (fused_norm, norm_at) = gradient_norm_error(fused, truth, what);
    let (f32_norm, f32_norm_at) = gradient_norm_error(&plain.0.grads, truth, what);
    eprintln!(
        "{what}: worst gradient difference from the f64 plain step: normwise fused \
         {fused_norm:.2e} at {norm_at}, f32 plain {f32_norm:.2e} at {f32_norm_at}; entrywise \
         fused {fused_err:.2e} at {at} (1 % floor: {fused_1:.2e}), f32 plain {f32_err:.2e} at \
         {f32_at} (1 % floor: {f32_1:.2e}); fused from f32 plain {between:.2e}"
    );
    assert!(
        fused_norm <= TOL,
        "{what}: {norm_at}: fused {fused_norm:e} normwise from the f64 plain step (tolerance {TOL:e})"
    );
    assert!(
        fused_err <= ENTRY_TOL,
        "{what}: {at}: fused {fused_err:e} from the f64 plain step (entrywise tolerance {ENTRY_TOL:e})"
    );
}

/// Asserts a fused loss sum within `TOL` relative of the f64 plain one (printing both
/// paths' differences from it).
fn assert_loss_close(fused: f64, plain: (f64, f64), what: &str) {
    let (rel, f32_rel) = (loss_error(fused, plain.1), loss_error(plain.0, plain.1));
    eprintln!(
        "{what}: fused {fused}, f64 plain {} (fused {rel:.1e}, f32 plain {f32_rel:.1e})",
        plain.1
    );
    assert!(rel <= TOL, "{what}: fused {fused}, f64 plain {}", plain.1);
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
    let (z, t) = logits_and_targets(n, vocab, masked, rng);
    let trainer = FusedTrainer::new(config, device).unwrap();
    let what = format!("{config} N {n} V {vocab}");
    check_step(&trainer, config, &params, (z, t), vocab, rng, &what);
}

/// One poisoned fused step of `trainer` on row-major logits and targets `(z, t)` (rows of
/// `vocab`) against the plain step in f64 (loss sums and gradients); returns the positions the
/// fused step ran over.
fn check_step(
    trainer: &FusedTrainer,
    config: &SamplerConfig,
    params: &[(String, Tensor)],
    (z, t): (Vec<f32>, Vec<f32>),
    vocab: usize,
    rng: &mut ChaCha8Rng,
    what: &str,
) -> usize {
    let device = params[0].1.device();
    let n = z.len() / vocab;
    let z = Tensor::from_vec(z, (n, vocab), device).unwrap();
    let t = Tensor::from_vec(t, (n, vocab), device).unwrap();
    let (gamma, scale) = (rng.random_range(0.5..2.0), 1.0 / n as f64);
    let trainer = trainer.clone().with_poisoned_buffers(true);
    let fused = trainer.step(params, &z, &t, gamma, scale).unwrap();
    let plain = plain_steps(config, params, &z, &t, gamma, scale);
    assert_loss_close(fused.kl, (plain.0.kl, plain.1.kl), &format!("{what}: KL"));
    assert_loss_close(
        fused.penalty,
        (plain.0.penalty, plain.1.penalty),
        &format!("{what}: penalty"),
    );
    assert_grads_close(&fused.grads, &plain, what);
    fused.positions
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

/// Logits of `rows` rows as the replay cache stores them or coarser, with targets whose kept /
/// removed status and values differ between tokens of equal logit (so each unit's target sums
/// mix): row 0 rounded to f16, the others to multiples of 1/4 (a few hundred distinct values);
/// rows from `f32_from` on left in f32 (not all exact f16 values: run token by token).
fn f16_rows(
    rows: usize,
    vocab: usize,
    f32_from: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<f32>) {
    let mut z = lm_logits(rows, vocab, 0.1, rng);
    for (r, row) in z.chunks_mut(vocab).enumerate().take(f32_from) {
        for x in row.iter_mut().filter(|x| x.is_finite()) {
            *x = if r == 0 {
                half::f16::from_f32(*x).to_f32()
            } else {
                (*x * 4.0).round() / 4.0
            };
        }
    }
    let mut t = targets_of(&z, vocab);
    for row in t.chunks_mut(vocab) {
        // The row's top target token stays kept (a target keeps at least one token).
        let top = (0..vocab)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap_or(0);
        for (i, y) in row.iter_mut().enumerate() {
            if y.is_finite() && i != top {
                match rng.random_range(0..6) {
                    0 => *y = f32::NEG_INFINITY,
                    1 => *y += rng.random_range(-0.5..0.5),
                    _ => {}
                }
            }
        }
    }
    (z, t)
}

/// How far one fused step is from the f64 plain step: `(positions, KL, penalty, worst
/// normwise gradient difference)` (relative), printed under `what`.
fn distance_from_f64(
    trainer: &FusedTrainer,
    params: &[(String, Tensor)],
    (z, t): (&Tensor, &Tensor),
    (gamma, scale): (f64, f64),
    plain: &(PlainStep, PlainStep),
    what: &str,
) -> (usize, f64, f64, f64) {
    let trainer = trainer.clone().with_poisoned_buffers(true);
    let fused = trainer.step(params, z, t, gamma, scale).unwrap();
    let (norm, at) = gradient_norm_error(&fused.grads, &plain.1.grads, what);
    let (kl, pen) = (
        loss_error(fused.kl, plain.1.kl),
        loss_error(fused.penalty, plain.1.penalty),
    );
    eprintln!(
        "{what}: {} positions; from the f64 plain step: KL {kl:.1e}, penalty {pen:.1e}, \
         gradients normwise {norm:.2e} at {at}",
        fused.positions
    );
    (fused.positions, kl, pen, norm)
}

/// Grouping equal f16 logits changes only the summation order: the grouped step (default, and
/// with units of one token) is as far from the f64 plain step as the same kernels token by
/// token — within the tolerances, or no more than 25 % (gradients) / 2× (loss sums) further
/// where the token-by-token step itself is not (rows of repeated values: the split-f16 products
/// round every copy of a value the same way, so their errors add up instead of averaging out —
/// 1.7e-2 normwise on `blocks.0.attn.qkv.weight` for some rows rounded to ¼, grouping on or off).
#[test]
fn cuda_fused_training_groups_equal_f16_logits_exactly() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused training, grouped f16 rows") else {
        return;
    };
    let config = common::load_config("sampling_network.yaml");
    let params = noisy_params(&config, seed, &device);
    let trainer = FusedTrainer::new(&config, &device).unwrap();
    assert!(
        matches!(
            trainer.clone().with_max_unit_weight(0),
            Err(NetsError::InvalidConfig { .. })
        ),
        "max unit weight 0"
    );
    let (n, v) = (3, 20_000);
    // All rows grouped (the network runs over the most units of a row), then two grouped rows
    // next to one in f32 (its units are its tokens, the others padded to V).
    for f32_from in [n, 2] {
        let (z, t) = f16_rows(n, v, f32_from, &mut rng);
        let what = format!("{config} N {n} V {v}, f32 rows from {f32_from}");
        let z = Tensor::from_vec(z, (n, v), &device).unwrap();
        let t = Tensor::from_vec(t, (n, v), &device).unwrap();
        let loss = (rng.random_range(0.5..2.0), 1.0 / n as f64);
        let plain = plain_steps(&config, &params, &z, &t, loss.0, loss.1);
        let run = |tr: &FusedTrainer, how: &str| {
            distance_from_f64(
                tr,
                &params,
                (&z, &t),
                loss,
                &plain,
                &format!("{what}, {how}"),
            )
        };
        let tokens = run(&trainer.clone().with_grouping(false), "token by token");
        assert_eq!(tokens.0, n * v, "{what}: token by token");
        let single = trainer.clone().with_max_unit_weight(1).unwrap();
        for (tr, how) in [(&trainer, "grouped"), (&single, "units of one token")] {
            let (positions, kl, pen, norm) = run(tr, how);
            if f32_from == n {
                assert!(positions < n * v, "{what}, {how}: {positions} positions");
            } else {
                assert_eq!(positions, n * v, "{what}, {how}");
            }
            let loss_bound = |tok: f64| TOL.max(2.0 * tok + 1e-6);
            assert!(kl <= loss_bound(tokens.1), "{what}, {how}: KL {kl:e}");
            assert!(
                pen <= loss_bound(tokens.2),
                "{what}, {how}: penalty {pen:e}"
            );
            assert!(
                norm <= TOL.max(1.25 * tokens.3),
                "{what}, {how}: gradients {norm:e} normwise from f64 (token by token {:e})",
                tokens.3
            );
        }
    }
}

#[test]
fn cuda_fused_training_gives_no_gradient_for_a_row_with_infinite_kl() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused training, infinite KL row") else {
        return;
    };
    let config = common::load_config("sampling_network_tiny.yaml");
    let params = noisy_params(&config, seed, &device);
    let v = 700;
    let (z, t) = logits_and_targets(3, v, 0.1, &mut rng);
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
    let plain = plain_steps(&config, &params, &z2, &t2, 1.0, 0.5);
    assert_grads_close(&fused.grads, &plain, "rows 0 and 1 of 3");
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
