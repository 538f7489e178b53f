//! The fused CUDA forward of the SamplingNetwork and the SimpleDistributionAwareTransform
//! against the plain candle path on the same device.
//!
//! Built only with the `cuda` feature (CPU CI never compiles these). The tests that need a GPU
//! print `SKIPPED (no CUDA device): …` and return when `Device::new_cuda(0)` fails, so a run
//! without a device proves nothing about the kernels and says so. Inputs are fresh random
//! logits every run (the seed is printed), weights are the seeded initialisation plus Gaussian
//! noise (so LayerNorm affine parameters are not 1 / 0), and the fused path NaN-fills every
//! buffer its kernels write before they run.
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use adasamp_nets::gpu::fused::{COMPILED_CONFIGS, COMPILED_SIMPLE_HIDDEN};
use adasamp_nets::gpu::{FusedPrecision, FusedSampler};
use adasamp_nets::{LearnedSampler, NetsError, SamplerConfig};
use candle_core::{DType, Device, Tensor};
use gpu_common::{
    assert_names_row_1_token_41, cuda_and_rng, cuda_or_skip, inputs_with_a_bad_token, lm_logits,
    noisy_params,
};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance: `|fused − plain| ≤ TOL · max(|plain|, 1)`.
const TOL: f32 = 1e-3;
/// The same bound for the SamplingNetwork at [`FusedPrecision::F16`] (one f16 product per
/// matrix product, ~11 bits; measured worst 5.4e-4 on an H100): a documented, looser bound.
const TOL_F16: f32 = 2e-3;

/// Each precision with its tolerance.
const PRECISIONS: [(FusedPrecision, f32); 2] = [
    (FusedPrecision::SplitF16, TOL),
    (FusedPrecision::F16, TOL_F16),
];

/// A sampler with [`noisy_params`] weights, on `device`.
fn noisy_sampler(config: &SamplerConfig, seed: u64, device: &Device) -> LearnedSampler {
    let tensors = noisy_params(config, seed, device).into_iter().collect();
    LearnedSampler::from_tensors(config, tensors, DType::F32, device, "noisy test weights").unwrap()
}

/// [`lm_logits`] as a `[rows, vocab]` tensor on `device`.
fn logits(rows: usize, vocab: usize, masked: f64, rng: &mut ChaCha8Rng, device: &Device) -> Tensor {
    Tensor::from_vec(lm_logits(rows, vocab, masked, rng), (rows, vocab), device).unwrap()
}

fn assert_close(fused: &Tensor, plain: &Tensor, what: &str) {
    assert_close_within(fused, plain, what, TOL);
}

fn assert_close_within(fused: &Tensor, plain: &Tensor, what: &str, tol: f32) {
    let f = fused.to_vec2::<f32>().unwrap();
    let p = plain.to_vec2::<f32>().unwrap();
    let mut worst = 0.0f32;
    for (r, (fr, pr)) in f.iter().zip(&p).enumerate() {
        for (t, (&a, &b)) in fr.iter().zip(pr).enumerate() {
            if b == f32::NEG_INFINITY {
                assert_eq!(
                    a,
                    f32::NEG_INFINITY,
                    "{what}: row {r} token {t}: masked → {a}"
                );
                continue;
            }
            assert!(
                a.is_finite(),
                "{what}: row {r} token {t}: fused {a}, plain {b}"
            );
            let rel = (a - b).abs() / b.abs().max(1.0);
            assert!(
                rel <= tol,
                "{what}: row {r} token {t}: fused {a}, plain {b} (tolerance {tol:e})"
            );
            worst = worst.max(rel);
        }
    }
    eprintln!("{what}: worst relative difference {worst:.2e}");
}

/// The device, a seeded generator (seed printed) and the reference SamplingNetwork with noisy
/// weights; `None` (test skipped) without a CUDA device.
fn reference_network(test: &str) -> Option<(Device, ChaCha8Rng, LearnedSampler)> {
    let (device, seed, rng) = cuda_and_rng(test)?;
    let cfg = common::load_config("sampling_network.yaml");
    let sampler = noisy_sampler(&cfg, seed, &device);
    Some((device, rng, sampler))
}

/// `sampler`'s fused forward at `precision`, NaN-filling every buffer its kernels write.
fn poisoned(sampler: &LearnedSampler, precision: FusedPrecision) -> FusedSampler {
    FusedSampler::new(sampler)
        .unwrap()
        .with_poisoned_outputs(true)
        .with_precision(precision)
}

fn config(d: usize, heads: usize, d_ff: usize, blocks: usize, scale: bool) -> SamplerConfig {
    common::sn(d, d_ff, blocks, heads, scale)
}

#[test]
fn cuda_fused_forward_equals_plain_candle_for_every_compiled_shape() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused forward equality") else {
        return;
    };
    for (i, &(d, heads, _, d_ff)) in COMPILED_CONFIGS.iter().enumerate() {
        for scale in [true, false] {
            for blocks in [1, 4] {
                let cfg = config(d, heads, d_ff, blocks, scale);
                let sampler = noisy_sampler(&cfg, seed ^ i as u64, &device);
                // V not a multiple of the 16-token tile.
                let z = logits(3, 5_003, 0.2, &mut rng, &device);
                let plain = sampler.forward(&z).unwrap();
                for (precision, tol) in PRECISIONS {
                    let fused = poisoned(&sampler, precision);
                    assert_eq!(fused.launches(), blocks + 4);
                    let out = fused.forward(&z).unwrap();
                    assert_eq!(out.dims(), &[3, 5_003]);
                    assert_close_within(
                        &out,
                        &plain,
                        &format!(
                            "d {d} heads {heads} d_ff {d_ff} blocks {blocks} scale {scale} \
                             {precision:?}"
                        ),
                        tol,
                    );
                }
            }
        }
    }
}

#[test]
fn cuda_fused_simple_transform_equals_plain_candle_for_every_compiled_width() {
    let Some((device, seed, mut rng)) = cuda_and_rng("fused simple transform equality") else {
        return;
    };
    for &hidden in &COMPILED_SIMPLE_HIDDEN {
        for dynamic in [true, false] {
            let cfg = common::simple(hidden, dynamic);
            let sampler = noisy_sampler(&cfg, seed ^ hidden as u64, &device);
            let fused = FusedSampler::new(&sampler)
                .unwrap()
                .with_poisoned_outputs(true);
            assert_eq!(fused.launches(), 2);
            for (rows, vocab, masked) in [(3, 5_003, 0.2), (2, 128_256, 0.0)] {
                let z = logits(rows, vocab, masked, &mut rng, &device);
                let what = format!("simple h {hidden} dynamic {dynamic} V {vocab}");
                assert_close(
                    &fused.forward(&z).unwrap(),
                    &sampler.forward(&z).unwrap(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn cuda_fused_forward_equals_plain_candle_at_llama3_vocab() {
    let Some((device, mut rng, sampler)) = reference_network("fused forward at V = 128256") else {
        return;
    };
    let z = logits(4, 128_256, 0.0, &mut rng, &device);
    let plain = sampler.forward(&z).unwrap();
    for (precision, tol) in PRECISIONS {
        let fused = poisoned(&sampler, precision);
        assert_close_within(
            &fused.forward(&z).unwrap(),
            &plain,
            &format!("reference config, V 128256, {precision:?}"),
            tol,
        );
    }
    // One network for the two calls below: the first allocates its activation buffer, the
    // smaller one after it reuses that buffer (NaN-filled again first).
    let fused = FusedSampler::new(&sampler)
        .unwrap()
        .with_poisoned_outputs(true);
    let z = logits(3, 30_000, 0.1, &mut rng, &device);
    assert_close(
        &fused.forward(&z).unwrap(),
        &sampler.forward(&z).unwrap(),
        "reference config, V 30000 (activation buffer allocated)",
    );
    // A row with a single kept token: its output is finite there, -inf elsewhere.
    let mut row = vec![f32::NEG_INFINITY; 1000];
    row[17] = 2.5;
    let z = Tensor::from_vec(row, (1, 1000), &device).unwrap();
    assert_close(
        &fused.forward(&z).unwrap(),
        &sampler.forward(&z).unwrap(),
        "single kept token",
    );
}

/// Open limitation (docs/gpu.md, "Fused learned-sampler kernels"): rows whose finite logits lie
/// ~1e4 below the maximum (a "soft mask") make the encoder's hidden units ~1e7, past f16's
/// range; the kernels rescale by powers of two, but on an H100 the split-f16 output still
/// differed from plain candle by 2.2e-3 relative at the first token of the second row (the
/// first row within 1e-3; the check stops at the first miss). Kept as the reproducer:
/// `--ignored` runs it.
#[test]
#[ignore = "open limitation: split-f16 deviates ~2e-3 from plain candle on soft-masked logits (docs/gpu.md)"]
fn cuda_fused_forward_on_soft_masked_logits() {
    let Some((device, mut rng, sampler)) = reference_network("fused forward on soft-masked logits")
    else {
        return;
    };
    let fused = FusedSampler::new(&sampler)
        .unwrap()
        .with_poisoned_outputs(true);
    // Finite logits far below the row's maximum (a -1e4 "soft mask", as some models write):
    // |lp| ~ 1e4 makes the encoder's hidden units ~1e7, past f16's range unless the kernels
    // rescale them.
    let mut data = logits(2, 20_000, 0.1, &mut rng, &device)
        .to_vec2::<f32>()
        .unwrap();
    for row in &mut data {
        for x in row.iter_mut().step_by(7).skip(1) {
            if x.is_finite() {
                *x -= 1.0e4;
            }
        }
    }
    let z = Tensor::from_vec(data.concat(), (2, 20_000), &device).unwrap();
    assert_close(
        &fused.forward(&z).unwrap(),
        &sampler.forward(&z).unwrap(),
        "soft-masked logits at -1e4",
    );
}

#[test]
fn cuda_fused_forward_rejects_bad_rows_naming_row_and_token() {
    let Some(device) = cuda_or_skip("fused forward input errors") else {
        return;
    };
    let cfg = common::load_config("sampling_network_tiny.yaml");
    let sampler = LearnedSampler::seeded(&cfg, 0, DType::F32, &device).unwrap();
    let fused = FusedSampler::new(&sampler).unwrap();
    for (z, name) in inputs_with_a_bad_token(&device) {
        assert_names_row_1_token_41(&fused.forward(&z).unwrap_err(), name);
    }
    let z = Tensor::from_vec(vec![f32::NEG_INFINITY; 50], (1, 50), &device).unwrap();
    assert!(matches!(
        fused.forward(&z).unwrap_err(),
        NetsError::InvalidLogits { .. }
    ));
    let z = Tensor::zeros((2, 3, 4), DType::F32, &device).unwrap();
    assert!(matches!(
        fused.forward(&z).unwrap_err(),
        NetsError::BadShape { .. }
    ));
}

#[test]
fn fused_network_names_what_has_no_kernel() {
    // Runs without a GPU: the checks come before any device work.
    let cpu = Device::Cpu;
    let local = LearnedSampler::seeded(&common::local(8), 0, DType::F32, &cpu).unwrap();
    let err = FusedSampler::new(&local).unwrap_err().to_string();
    assert!(
        err.contains("architecture") && err.contains("local_probability_transform"),
        "{err}"
    );
    let odd = LearnedSampler::seeded(&common::simple(40, true), 0, DType::F32, &cpu).unwrap();
    let err = FusedSampler::new(&odd).unwrap_err().to_string();
    assert!(err.contains("hidden") && err.contains("40"), "{err}");
    let sn = LearnedSampler::seeded(&config(32, 4, 64, 1, true), 0, DType::F32, &cpu).unwrap();
    let err = FusedSampler::new(&sn).unwrap_err().to_string();
    assert!(err.contains("device") && err.contains("Cpu"), "{err}");
    let Some(device) = cuda_or_skip("fused shape without a kernel") else {
        return;
    };
    let odd = LearnedSampler::seeded(&config(24, 4, 64, 1, true), 0, DType::F32, &device).unwrap();
    let err = FusedSampler::new(&odd).unwrap_err().to_string();
    assert!(err.contains("d_model 24"), "{err}");
}
