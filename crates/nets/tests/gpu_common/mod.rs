//! Helpers shared by the fused-kernel GPU tests (`gpu_fused.rs`, `gpu_fused_training.rs`): the
//! device or a skip notice, a fresh printed seed, noisy weights, LM-like random logits and the
//! bad-input check.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use adasamp_nets::{LearnedSampler, NetsError, SamplerConfig};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// CUDA device 0, or `None` after printing `SKIPPED (no CUDA device): <test>: <why>`.
pub fn cuda_or_skip(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED (no CUDA device): {test}: {e}");
            None
        }
    }
}

/// A seed from the clock, printed with the test's name so a failure can be replayed.
pub fn fresh_seed(test: &str) -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("{test}: seed {seed}");
    seed
}

/// The CUDA device, a fresh seed (printed) and a generator seeded with it; `None` (test
/// skipped) without a CUDA device.
pub fn cuda_and_rng(test: &str) -> Option<(Device, u64, ChaCha8Rng)> {
    let device = cuda_or_skip(test)?;
    let seed = fresh_seed(test);
    Some((device, seed, ChaCha8Rng::seed_from_u64(seed)))
}

/// Seeded weights plus N(0, 0.1²) noise on every parameter, on `device`, by name.
pub fn noisy_params(config: &SamplerConfig, seed: u64, device: &Device) -> Vec<(String, Tensor)> {
    let base = LearnedSampler::seeded(config, seed, DType::F32, device).unwrap();
    base.named_parameters()
        .into_iter()
        .map(|(name, t)| {
            let noise = (t.randn_like(0.0, 1.0).unwrap() * 0.1).unwrap();
            (name, (t + noise).unwrap())
        })
        .collect()
}

/// LM-like logits `[rows, vocab]`, row-major: N(0, σ²) with σ ∈ [1, 4) per row, 8 tokens per
/// row boosted by 3 to 12, and about `masked` of the entries `-inf` (never a row's first).
pub fn lm_logits(rows: usize, vocab: usize, masked: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut z = Vec::with_capacity(rows * vocab);
    for _ in 0..rows {
        let sigma: f32 = rng.random_range(1.0..4.0);
        let start = z.len();
        z.extend((0..vocab).map(|_| {
            let u1: f32 = rng.random::<f32>().max(1e-12);
            let u2: f32 = rng.random();
            sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        }));
        for _ in 0..8 {
            let i = rng.random_range(start..start + vocab);
            z[i] += rng.random_range(3.0..12.0);
        }
        for x in &mut z[start + 1..] {
            if rng.random_bool(masked) {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    z
}

/// `[2, 300]` inputs of 0.5 on `device` with one bad entry at row 1, token 41: NaN, then
/// `+inf`, each with its name.
pub fn inputs_with_a_bad_token(device: &Device) -> [(Tensor, &'static str); 2] {
    [(f32::NAN, "NaN"), (f32::INFINITY, "+inf")].map(|(bad, name)| {
        let mut data = vec![0.5f32; 2 * 300];
        data[300 + 41] = bad;
        (Tensor::from_vec(data, (2, 300), device).unwrap(), name)
    })
}

/// Asserts `err` is [`NetsError::InvalidLogits`] naming row 1 and token 41 (the bad entry of
/// [`inputs_with_a_bad_token`]; `name` says which).
pub fn assert_names_row_1_token_41(err: &NetsError, name: &str) {
    assert!(
        matches!(err, NetsError::InvalidLogits { .. }),
        "{name}: {err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("row 1") && msg.contains("token 41"),
        "{name}: {msg}"
    );
}
