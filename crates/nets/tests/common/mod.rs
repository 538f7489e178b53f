//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use adasamp_nets::{DistributionAwareConfig, LocalConfig, SamplerConfig, SamplingNetworkConfig};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `configs/samplers/<name>` in the repository.
pub fn config_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/samplers")
        .join(name)
}

pub fn load_config(name: &str) -> SamplerConfig {
    SamplerConfig::from_yaml_file(&config_path(name)).expect("config file")
}

pub fn local(hidden: usize) -> SamplerConfig {
    SamplerConfig::LocalProbabilityTransform(LocalConfig { hidden })
}

pub fn simple(hidden: usize, dynamic_truncation: bool) -> SamplerConfig {
    SamplerConfig::SimpleDistributionAwareTransform(DistributionAwareConfig {
        hidden,
        dynamic_truncation,
    })
}

pub fn sn(
    d_model: usize,
    d_ff: usize,
    n_blocks: usize,
    n_heads: usize,
    scale: bool,
) -> SamplerConfig {
    SamplerConfig::SamplingNetwork(SamplingNetworkConfig {
        d_model,
        d_ff,
        n_blocks,
        n_heads,
        scale,
        encoder_hidden: 32,
    })
}

/// Every architecture variant at a small size.
pub fn small_variants() -> Vec<SamplerConfig> {
    vec![
        local(16),
        simple(16, true),
        simple(16, false),
        sn(16, 32, 2, 2, true),
        sn(16, 32, 2, 4, false),
    ]
}

/// Normal(0, sigma) logits `[n, v]`; each entry is `-inf` with probability `mask_frac` but every
/// row keeps at least one finite entry; if `single_row` the last row keeps exactly one.
pub fn random_logits_vec(
    n: usize,
    v: usize,
    seed: u64,
    sigma: f64,
    mask_frac: f64,
    single_row: bool,
) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::with_capacity(n);
    for r in 0..n {
        let mut row: Vec<f64> = (0..v)
            .map(|_| {
                let u1: f64 = rng.random::<f64>().max(1e-300);
                let u2: f64 = rng.random::<f64>();
                sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        let keep = rng.random_range(0..v);
        for (i, x) in row.iter_mut().enumerate() {
            if i != keep && rng.random::<f64>() < mask_frac {
                *x = f64::NEG_INFINITY;
            }
        }
        if single_row && r == n - 1 {
            for (i, x) in row.iter_mut().enumerate() {
                if i != keep {
                    *x = f64::NEG_INFINITY;
                }
            }
        }
        rows.push(row);
    }
    rows
}

pub fn to_tensor(rows: &[Vec<f64>], dtype: DType) -> Tensor {
    let n = rows.len();
    let v = rows[0].len();
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (n, v), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

pub fn random_logits(n: usize, v: usize, seed: u64, mask_frac: f64, single_row: bool) -> Tensor {
    to_tensor(
        &random_logits_vec(n, v, seed, 3.0, mask_frac, single_row),
        DType::F32,
    )
}

/// A random permutation of `0..v`.
pub fn permutation(v: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<u32> = (0..v as u32).collect();
    for i in (1..v).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

/// Asserts `out` has `-inf` exactly where `input` has `-inf` and finite values elsewhere.
pub fn assert_masked_finite(input: &Tensor, out: &Tensor, what: &str) {
    let a = input
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let b = out.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(a.len(), b.len());
    for (r, (ra, rb)) in a.iter().zip(&b).enumerate() {
        for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
            if *x == f64::NEG_INFINITY {
                assert_eq!(
                    *y,
                    f64::NEG_INFINITY,
                    "{what}: row {r} col {i} masked in, {y} out"
                );
            } else {
                assert!(y.is_finite(), "{what}: row {r} col {i}: input {x} gave {y}");
            }
        }
    }
}

/// Max |a − b| over entries, requiring identical infinities.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(a.len(), b.len());
    let mut m: f64 = 0.0;
    for (x, y) in a.iter().zip(&b) {
        if x.is_infinite() || y.is_infinite() {
            assert_eq!(x, y, "infinity mismatch");
        } else {
            assert!(!x.is_nan() && !y.is_nan(), "NaN");
            m = m.max((x - y).abs());
        }
    }
    m
}
