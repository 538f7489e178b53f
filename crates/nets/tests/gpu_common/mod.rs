//! Helpers shared by the fused-kernel GPU tests (`gpu_fused.rs`, `gpu_fused_training.rs`) and
//! the CPU test of the plain path's f32 against its f64 (`plain_f64.rs`): the device or a skip
//! notice, a fresh printed seed, noisy weights, LM-like random logits (plain, soft-masked, with
//! training targets), the plain candle forward and training step in a chosen dtype (the f64
//! reference), the error measures, and the bad-input check.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use adasamp_nets::{LearnedSampler, NetsError, SamplerConfig, TruncatedLogitsLoss};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
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

/// A seed from the clock, printed with the test's name so a failure can be replayed: setting
/// `ADASAMP_TEST_SEED` to a printed seed replays that run instead.
pub fn fresh_seed(test: &str) -> u64 {
    if let Ok(text) = std::env::var("ADASAMP_TEST_SEED") {
        let seed = text
            .parse()
            .unwrap_or_else(|e| panic!("ADASAMP_TEST_SEED = {text:?} is not a u64: {e}"));
        eprintln!("{test}: seed {seed} (replayed from ADASAMP_TEST_SEED)");
        return seed;
    }
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

/// Seeded weights plus N(0, 0.1²) noise on every parameter, on `device`, by name (in
/// construction order). The noise is drawn from a generator seeded with `seed` too, so one seed
/// gives the same weights on every device (a failing run can be replayed from its printed seed).
pub fn noisy_params(config: &SamplerConfig, seed: u64, device: &Device) -> Vec<(String, Tensor)> {
    let base = LearnedSampler::seeded(config, seed, DType::F32, device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e6f_6973_7921);
    base.named_parameters()
        .into_iter()
        .map(|(name, t)| {
            let noise: Vec<f32> = (0..t.elem_count())
                .map(|_| 0.1 * standard_normal(&mut rng))
                .collect();
            let noise = Tensor::from_vec(noise, t.shape(), device).unwrap();
            (name, (t + noise).unwrap())
        })
        .collect()
}

/// One N(0, 1) draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-12);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// LM-like logits `[rows, vocab]`, row-major: N(0, σ²) with σ ∈ [1, 4) per row, 8 tokens per
/// row boosted by 3 to 12, and about `masked` of the entries `-inf` (never a row's first).
pub fn lm_logits(rows: usize, vocab: usize, masked: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut z = Vec::with_capacity(rows * vocab);
    for _ in 0..rows {
        let sigma: f32 = rng.random_range(1.0..4.0);
        let start = z.len();
        z.extend((0..vocab).map(|_| sigma * standard_normal(rng)));
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

/// Distance below the row's other logits of the "soft-masked" entries of [`soft_mask`].
pub const SOFT_MASK_OFFSET: f32 = 1.0e4;

/// Turns LM-like logits `z` (row-major, rows of `vocab`) into "soft-masked" ones, as some models
/// write instead of `-inf`: every 7th finite entry of each row from the 2nd on is lowered by
/// [`SOFT_MASK_OFFSET`], so its log-probability is ~−1e4 (the encoder's hidden units ~1e7).
pub fn soft_mask(z: &mut [f32], vocab: usize) {
    for row in z.chunks_mut(vocab) {
        for x in row.iter_mut().step_by(7).skip(1) {
            if x.is_finite() {
                *x -= SOFT_MASK_OFFSET;
            }
        }
    }
}

/// LM-like logits `[rows, vocab]` ([`lm_logits`]) and their training targets: temperature 0.8,
/// then min_p 0.1 (tokens below a tenth of the top probability removed), `-inf` where the input
/// is.
pub fn logits_and_targets(
    rows: usize,
    vocab: usize,
    masked: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<f32>) {
    let z = lm_logits(rows, vocab, masked, rng);
    let t = targets_of(&z, vocab);
    (z, t)
}

/// The training targets of logits `z` (row-major, rows of `vocab`): temperature 0.8, then
/// min_p 0.1, `-inf` where the input is.
pub fn targets_of(z: &[f32], vocab: usize) -> Vec<f32> {
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
    t
}

/// The plain candle forward of `config` with weights `params` computed in `dtype` (weights and
/// logits converted exactly from f32), on `z`'s device: the output in `dtype`.
pub fn plain_forward(
    config: &SamplerConfig,
    params: &[(String, Tensor)],
    z: &Tensor,
    dtype: DType,
) -> Tensor {
    let sampler = LearnedSampler::from_tensors(
        config,
        params.iter().cloned().collect(),
        dtype,
        z.device(),
        "noisy test weights",
    )
    .unwrap();
    sampler.forward(&z.to_dtype(dtype).unwrap()).unwrap()
}

/// One plain candle training step.
pub struct PlainStep {
    /// `Σ_rows KL`.
    pub kl: f64,
    /// `Σ_rows penalty`.
    pub penalty: f64,
    /// The gradient of every parameter, by name, in the step's dtype.
    pub grads: BTreeMap<String, Tensor>,
}

/// `Σ KL`, `Σ penalty` and the gradients of `scale · Σ_rows (KL + γ·penalty)` by candle's
/// autograd of the plain path on `z`'s device, computed in f32 and in f64 (the reference; weights,
/// logits `z` and targets `t` converted exactly from f32), in that order.
pub fn plain_steps(
    config: &SamplerConfig,
    params: &[(String, Tensor)],
    z: &Tensor,
    t: &Tensor,
    gamma: f64,
    scale: f64,
) -> (PlainStep, PlainStep) {
    let step = |dtype: DType| {
        let varmap = VarMap::new();
        let sampler = LearnedSampler::trainable_from(
            config,
            params.iter().cloned(),
            &varmap,
            dtype,
            z.device(),
        )
        .unwrap();
        let pred = sampler.forward(&z.to_dtype(dtype).unwrap()).unwrap();
        let (kl, pen) = TruncatedLogitsLoss::new(gamma)
            .unwrap()
            .per_row(&pred, &t.to_dtype(dtype).unwrap())
            .unwrap();
        let total = ((&kl + (&pen * gamma).unwrap()).unwrap().sum_all().unwrap() * scale).unwrap();
        let store = total.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        let grads = data
            .iter()
            .map(|(k, v)| (k.clone(), store.get(v.as_tensor()).unwrap().clone()))
            .collect();
        PlainStep {
            kl: sum_f64(&kl),
            penalty: sum_f64(&pen),
            grads,
        }
    };
    (step(DType::F32), step(DType::F64))
}

/// The sum of `x`'s entries, accumulated in f64.
pub fn sum_f64(x: &Tensor) -> f64 {
    x.to_dtype(DType::F64)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// `x`'s entries, flattened, as f64.
pub fn flat_f64(x: &Tensor) -> Vec<f64> {
    x.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The largest relative difference of an output `[N, V]` from its reference:
/// `max |out − truth| / max(|truth|, 1)` over the finite entries, with where it is (`(row,
/// token)`). Panics (naming the entry and `what`) where one is `-inf` and the other is not, or
/// where `out` is not finite.
pub fn output_error(out: &Tensor, truth: &Tensor, what: &str) -> (f64, (usize, usize)) {
    let v = truth.dims2().unwrap().1;
    assert_eq!(out.dims(), truth.dims(), "{what}: shape");
    let (o, t) = (flat_f64(out), flat_f64(truth));
    let mut worst = (0.0f64, (0, 0));
    for (i, (&a, &b)) in o.iter().zip(&t).enumerate() {
        let at = (i / v, i % v);
        if b == f64::NEG_INFINITY {
            assert_eq!(a, b, "{what}: row {} token {}: masked → {a}", at.0, at.1);
            continue;
        }
        assert!(
            a.is_finite(),
            "{what}: row {} token {}: {a}, reference {b}",
            at.0,
            at.1
        );
        let rel = (a - b).abs() / b.abs().max(1.0);
        if rel > worst.0 {
            worst = (rel, at);
        }
    }
    worst
}

/// Floor of [`gradient_error`]: a fraction of the largest reference entry of a parameter.
/// Entries under it are sums of many terms cancelling to almost nothing, measured against the
/// floor instead of themselves: with a 1 % floor, on an H100 at V = 49,152, the f32 plain step
/// was 1.5e-3 from the f64 one (the fused step 5.3e-4); with 5 %, 3.8e-4 (fused 3.1e-4).
pub const GRADIENT_FLOOR: f64 = 5e-2;

/// The largest relative difference of gradients from their reference, over every parameter:
/// `|g − truth| / max(|truth|, floor · max|truth of that parameter|)` (entries that are sums of
/// many large cancelling terms are measured against a fraction `floor` of the parameter's scale),
/// with the entry's name. Panics (naming `what`) on different names or shapes or a non-finite
/// entry.
pub fn gradient_error(
    grads: &BTreeMap<String, Tensor>,
    truth: &BTreeMap<String, Tensor>,
    floor: f64,
    what: &str,
) -> (f64, String) {
    let mut worst = (0.0f64, String::new());
    for (name, g, t) in paired_gradients(grads, truth, what) {
        let top = t.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, (&a, &b)) in g.iter().zip(&t).enumerate() {
            let rel = (a - b).abs() / b.abs().max(floor * top).max(f64::MIN_POSITIVE);
            if rel > worst.0 {
                worst = (rel, format!("{name}[{i}]"));
            }
        }
    }
    worst
}

/// Every parameter's gradient and reference as f64 vectors, with its name. Panics (naming
/// `what`) on different names or shapes or a non-finite gradient entry.
fn paired_gradients<'a>(
    grads: &BTreeMap<String, Tensor>,
    truth: &'a BTreeMap<String, Tensor>,
    what: &str,
) -> Vec<(&'a str, Vec<f64>, Vec<f64>)> {
    assert_eq!(
        grads.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>(),
        "{what}: parameter names"
    );
    truth
        .iter()
        .map(|(name, t)| {
            let g = &grads[name];
            assert_eq!(g.dims(), t.dims(), "{what}: {name} shape");
            let (g, t) = (flat_f64(g), flat_f64(t));
            for (i, (&a, &b)) in g.iter().zip(&t).enumerate() {
                assert!(a.is_finite(), "{what}: {name}[{i}]: {a}, reference {b}");
            }
            (name.as_str(), g, t)
        })
        .collect()
}

/// The largest normwise relative difference of gradients from their reference over every
/// parameter: `‖g − truth‖₂ / ‖truth‖₂` (the usual relative error of a tensor: a wrong entry or
/// stride shows as O(1), the rounding of sums of many cancelling terms as the precision's
/// size), with the parameter's name. Panics (naming `what`) on different names or shapes or a
/// non-finite entry.
pub fn gradient_norm_error(
    grads: &BTreeMap<String, Tensor>,
    truth: &BTreeMap<String, Tensor>,
    what: &str,
) -> (f64, String) {
    let mut worst = (0.0f64, String::new());
    for (name, g, t) in paired_gradients(grads, truth, what) {
        let diff: f64 = g.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
        let norm: f64 = t.iter().map(|b| b * b).sum();
        let rel = diff.sqrt() / norm.sqrt().max(f64::MIN_POSITIVE);
        if rel > worst.0 {
            worst = (rel, name.to_string());
        }
    }
    worst
}

/// The relative difference `|a − truth| / max(|truth|, 1e-6)` of a loss sum.
pub fn loss_error(a: f64, truth: f64) -> f64 {
    (a - truth).abs() / truth.abs().max(1e-6)
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
