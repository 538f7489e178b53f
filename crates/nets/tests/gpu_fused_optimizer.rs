//! The trainer's fused-engine optimizer step on the GPU: the parameters packed once and reused
//! by every micro-batch pass ([`FusedTrainer::pack`], [`FusedTrainer::step_packed`]), and the
//! fused AdamW kernel ([`AdamW::step_fused`]) against the candle AdamW ([`AdamW::step`]).
//!
//! Built only with the `cuda` feature. The tests that need a GPU print
//! `SKIPPED (no CUDA device): …` and return when `Device::new_cuda(0)` fails. Inputs are fresh
//! random values every run (the seed is printed).
#![cfg(feature = "cuda")]

mod common;
mod gpu_common;

use std::collections::BTreeMap;

use adasamp_nets::checkpoint::AdamWState;
use adasamp_nets::gpu::FusedTrainer;
use adasamp_nets::train::AdamW;
use adasamp_nets::NetsError;
use candle_core::{DType, Device, Tensor, Var};
use gpu_common::{cuda_and_rng, lm_logits, noisy_params};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of the fused AdamW against candle's.
const ADAMW_TOL: f64 = 1e-6;
/// Entries smaller than this fraction of their tensor's largest are compared against that
/// fraction (a value near zero after a cancelling subtraction carries the rounding of its
/// terms, ~1e-7 of their size, in either path).
const ADAMW_FLOOR: f64 = 1e-3;

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Worst `|a − b| / max(|b|, floor · max|b|)` over the entries of `a` and `b`, asserting it is
/// at most `tol`; also returns how many entries are bit-identical.
fn assert_close(a: &Tensor, b: &Tensor, tol: f64, floor: f64, what: &str) -> (f64, usize) {
    assert_eq!(a.dims(), b.dims(), "{what}: shape");
    let (a, b) = (flat(a), flat(b));
    let top = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut worst = 0.0f64;
    let mut same = 0;
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        assert!(x.is_finite(), "{what}[{i}]: {x} (reference {y})");
        let rel = (x - y).abs() / y.abs().max(floor * top).max(f64::MIN_POSITIVE);
        assert!(
            rel <= tol,
            "{what}[{i}]: {x}, reference {y} (max |reference| {top})"
        );
        worst = worst.max(rel);
        same += usize::from(x.to_bits() == y.to_bits());
    }
    (worst, same)
}

/// Values for tensors of the given shapes, uniform in [-2, 2).
fn vars_of(shapes: &[Vec<usize>], rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    shapes
        .iter()
        .map(|s| {
            let n: usize = s.iter().product();
            (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
        })
        .collect()
}

/// Variables of the given shapes and values on `device`, named `p0`, `p1`, ….
fn make_vars(shapes: &[Vec<usize>], values: &[Vec<f32>], device: &Device) -> BTreeMap<String, Var> {
    shapes
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (s, v))| {
            let t = Tensor::from_vec(v.clone(), s.as_slice(), device).unwrap();
            (format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

#[test]
fn cuda_fused_adamw_equals_candle_adamw_over_several_steps() {
    let Some((device, _seed, mut rng)) = cuda_and_rng("fused AdamW") else {
        return;
    };
    // Shapes of the reference SamplingNetwork's kinds of parameters, a scalar, one larger than
    // a launch's blocks cover at once (strided), and p5 that never gets a gradient.
    let shapes: Vec<Vec<usize>> = vec![
        vec![96, 33],
        vec![21, 64],
        vec![1],
        vec![2, 10],
        vec![300_001],
        vec![7, 3],
    ];
    let init = vars_of(&shapes, &mut rng);
    let plain_vars = make_vars(&shapes, &init, &device);
    let fused_vars = make_vars(&shapes, &init, &device);
    let state = AdamWState {
        weight_decay: 0.01,
        ..AdamWState::default()
    };
    let mut plain = AdamW::new(state.clone());
    let mut fused = AdamW::new(state);
    let mut worst = 0.0f64;
    let (mut same, mut total) = (0usize, 0usize);
    for step in 0..6 {
        let lr = 2e-3 * (1.0 + step as f64) / 6.0;
        let grads: BTreeMap<String, Tensor> = shapes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .map(|(i, s)| {
                // Gradients of very different sizes per tensor (1e-4 … 10).
                let size = 10f32.powi(rng.random_range(-4..=1));
                let n: usize = s.iter().product();
                let v: Vec<f32> = (0..n)
                    .map(|_| size * rng.random_range(-1.0f32..1.0))
                    .collect();
                let t = Tensor::from_vec(v, s.as_slice(), &device).unwrap();
                (format!("p{i}"), t)
            })
            .collect();
        plain.step(&plain_vars, &grads, lr).unwrap();
        fused.step_fused(&fused_vars, &grads, lr).unwrap();
        assert_eq!(plain.state().t, fused.state().t);
        for (name, pv) in &plain_vars {
            let what = format!("step {step}: {name}");
            let checks = [
                (fused_vars[name].as_tensor(), pv.as_tensor(), "parameter"),
                (&fused.moments().m[name], &plain.moments().m[name], "m"),
                (&fused.moments().v[name], &plain.moments().v[name], "v"),
            ];
            for (a, b, part) in checks {
                let (w, s) = assert_close(a, b, ADAMW_TOL, ADAMW_FLOOR, &format!("{what} {part}"));
                worst = worst.max(w);
                same += s;
                total += a.elem_count();
            }
        }
    }
    eprintln!(
        "fused AdamW vs candle over 6 steps: worst relative difference {worst:.2e}, \
         {same} of {total} entries bit-identical"
    );
}

#[test]
fn cuda_fused_adamw_rejects_mismatched_gradients_naming_them() {
    let Some((device, _seed, mut rng)) = cuda_and_rng("fused AdamW, bad gradient") else {
        return;
    };
    let shapes = vec![vec![4, 3]];
    let vars = make_vars(&shapes, &vars_of(&shapes, &mut rng), &device);
    let mut opt = AdamW::new(AdamWState::default());
    let bad = BTreeMap::from([(
        "p0".to_string(),
        Tensor::zeros((3, 4), DType::F32, &device).unwrap(),
    )]);
    let err = opt.step_fused(&vars, &bad, 1e-3).unwrap_err();
    assert!(
        matches!(&err, NetsError::BadShape { what, .. } if what.contains("p0")),
        "{err}"
    );
}

/// LM-like logits `[n, vocab]` and targets (temperature 0.8, then min_p 0.1) on `device`.
fn inputs(n: usize, vocab: usize, rng: &mut ChaCha8Rng, device: &Device) -> (Tensor, Tensor) {
    let z = lm_logits(n, vocab, 0.1, rng);
    let mut t = vec![f32::NEG_INFINITY; z.len()];
    for (zr, tr) in z.chunks(vocab).zip(t.chunks_mut(vocab)) {
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (&x, y) in zr.iter().zip(tr.iter_mut()) {
            if x > f32::NEG_INFINITY && (x - m) / 0.8 >= 0.1f32.ln() {
                *y = x / 0.8;
            }
        }
    }
    (
        Tensor::from_vec(z, (n, vocab), device).unwrap(),
        Tensor::from_vec(t, (n, vocab), device).unwrap(),
    )
}

#[test]
fn cuda_parameters_packed_once_serve_every_pass() {
    let Some((device, seed, mut rng)) = cuda_and_rng("packed parameters reused") else {
        return;
    };
    for (config, vocab) in [
        (common::load_config("sampling_network.yaml"), 4_099),
        (common::load_config("sampling_network_tiny.yaml"), 3_001),
    ] {
        let params = noisy_params(&config, seed, &device);
        let (z, t) = inputs(4, vocab, &mut rng, &device);
        let trainer = FusedTrainer::new(&config, &device)
            .unwrap()
            .with_poisoned_buffers(true);
        let whole = trainer.step(&params, &z, &t, 1.0, 0.25).unwrap();
        // The same rows in two passes over one packing, gradients summed as the trainer does.
        let packed = trainer.pack(&params).unwrap();
        let mut kl = 0.0;
        let mut sum: BTreeMap<String, Tensor> = BTreeMap::new();
        for (start, len) in [(0, 1), (1, 3)] {
            let step = trainer
                .step_packed(
                    &packed,
                    &z.narrow(0, start, len).unwrap(),
                    &t.narrow(0, start, len).unwrap(),
                    1.0,
                    0.25,
                )
                .unwrap();
            kl += step.kl;
            for (name, g) in step.grads {
                let g = match sum.remove(&name) {
                    Some(a) => (a + g).unwrap(),
                    None => g,
                };
                sum.insert(name, g);
            }
        }
        assert!(
            (kl - whole.kl).abs() <= 1e-5 * whole.kl.abs().max(1e-6),
            "{config}: KL {kl} in passes, {} whole",
            whole.kl
        );
        assert_eq!(
            sum.keys().collect::<Vec<_>>(),
            whole.grads.keys().collect::<Vec<_>>()
        );
        let mut worst = 0.0f64;
        for (name, g) in &whole.grads {
            // f32 atomics sum in another order: the training test's bound.
            let (w, _) = assert_close(&sum[name], g, 1e-3, 5e-2, &format!("{config}: {name}"));
            worst = worst.max(w);
        }
        eprintln!("{config}: passes over one packing vs one step: worst {worst:.2e}");
        // A packing of another configuration is refused, naming it.
        let other = common::load_config(if vocab == 4_099 {
            "sampling_network_tiny.yaml"
        } else {
            "sampling_network.yaml"
        });
        let other_packed = FusedTrainer::new(&other, &device)
            .unwrap()
            .pack(&noisy_params(&other, seed, &device))
            .unwrap();
        let err = trainer
            .step_packed(&other_packed, &z, &t, 1.0, 0.25)
            .unwrap_err();
        assert!(
            matches!(&err, NetsError::BadShape { what, .. } if what.contains("packed")),
            "{err}"
        );
    }
}
