//! The fast training engine (`FastGrad`) against candle's autograd (in f64) and against finite
//! differences; permutation equivariance of its gradients; determinism across thread counts.

mod common;

use std::collections::BTreeMap;

use adasamp_nets::fast::{SliceRows, TargetRow};
use adasamp_nets::{FastGrad, LearnedSampler, SamplerConfig, TruncatedLogitsLoss};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance against candle's f64 autograd.
const RTOL: f64 = 1e-4;
/// Floor of the reference norm in [`compare`], relative to the network's largest tensor norm.
const FLOOR: f64 = 5e-3;

/// Seeded weights `U(−a, a)` for every parameter (LayerNorm weights around 1), as f32 tensors,
/// so the gates and heads sit in a non-trivial regime.
fn random_params(config: &SamplerConfig, seed: u64, a: f64) -> Vec<(String, Tensor)> {
    let base = LearnedSampler::seeded(config, seed, DType::F32, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    base.named_parameters()
        .into_iter()
        .map(|(name, t)| {
            let n = t.elem_count();
            let centre = if name.contains("ln") && name.ends_with("weight") {
                1.0
            } else {
                0.0
            };
            let v: Vec<f32> = (0..n)
                .map(|_| (centre + a * (rng.random::<f64>() * 2.0 - 1.0)) as f32)
                .collect();
            (name, Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap())
        })
        .collect()
}

/// A target per row derived from the raw row: temperature 0.8, then every token below
/// `max − cut` removed (cut random per row, some rows keep everything), so targets keep only
/// input-kept tokens.
fn targets_for(logits: &[Vec<f64>], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    logits
        .iter()
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let cut = if rng.random::<f64>() < 0.25 {
                f64::INFINITY
            } else {
                1.0 + 6.0 * rng.random::<f64>()
            };
            row.iter()
                .map(|&x| {
                    if x >= m - cut {
                        (x / 0.8) as f32
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect()
        })
        .collect()
}

fn sparse(t: &[f32]) -> (Vec<u32>, Vec<f32>) {
    t.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as u32, *v))
        .unzip()
}

/// candle's gradient (f64) of `scale·Σ_rows (KL + γ·penalty)` with the same weights, and the
/// summed KL and penalty.
fn candle_grads(
    config: &SamplerConfig,
    params: &[(String, Tensor)],
    logits: &[Vec<f32>],
    targets: &[Vec<f32>],
    gamma: f64,
    scale: f64,
) -> (BTreeMap<String, Vec<f64>>, f64, f64) {
    let vm = VarMap::new();
    let sampler = LearnedSampler::trainable_from(
        config,
        params.iter().cloned(),
        &vm,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let to64 = |rows: &[Vec<f32>]| {
        let v: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect();
        to_tensor(&v, DType::F64)
    };
    let pred = sampler.forward(&to64(logits)).unwrap();
    let loss = TruncatedLogitsLoss::new(gamma).unwrap();
    let (kl, pen) = loss.per_row(&pred, &to64(targets)).unwrap();
    let total = ((&kl + (&pen * gamma).unwrap()).unwrap().sum_all().unwrap() * scale).unwrap();
    let store = total.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let grads = data
        .iter()
        .map(|(name, var)| {
            let g = match store.get(var.as_tensor()) {
                Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                None => vec![0.0; var.elem_count()],
            };
            (name.clone(), g)
        })
        .collect();
    let s = |t: &Tensor| t.sum_all().unwrap().to_scalar::<f64>().unwrap();
    (grads, s(&kl), s(&pen))
}

fn as_f32(rows: &[Vec<f64>]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect()
}

/// Per parameter tensor: `‖fast − ref‖₂ ≤ RTOL · max(‖ref‖₂, FLOOR·G)`, `G` the largest tensor
/// gradient norm of the network, and every element within
/// `RTOL·max(|ref_i| + max|ref|, FLOOR·G)`. The floor (an absolute error of 5e-7·G, a few f32
/// roundoffs of the gradient's scale) matters only for tensors whose gradient is a sum that
/// cancels by more than ~200× (the last layer's output bias: `Σ_tokens ∂L/∂out = 0` exactly for
/// a softmax loss): the fast path keeps per-token gradients in f32 (unit roundoff 6e-8), so such
/// a sum is only known to ~1e-7·G. Returns the largest tensor-wise relative error (against the
/// floored norm).
fn compare(
    what: &str,
    fast: &FastGrad,
    grad: &[f64],
    reference: &BTreeMap<String, Vec<f64>>,
) -> f64 {
    let norm = |v: &[f64]| v.iter().map(|b| b * b).sum::<f64>().sqrt();
    let g_max = reference.values().map(|r| norm(r)).fold(0.0f64, f64::max);
    let mut worst: f64 = 0.0;
    for (name, _, g) in fast.named(grad) {
        let r = &reference[name];
        let scale = r.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{what}: candle's gradient of {name} is zero");
        let dn = g
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let rn = norm(r);
        let rel = dn / rn.max(FLOOR * g_max);
        assert!(
            rel <= RTOL,
            "{what}: d/d {name}: relative error {rel:e} (‖Δ‖ {dn:e}, ‖ref‖ {rn:e}, largest tensor norm {g_max:e})"
        );
        for (i, (a, b)) in g.iter().zip(r).enumerate() {
            assert!(
                (a - b).abs() <= RTOL * (b.abs() + scale).max(FLOOR * g_max),
                "{what}: d/d {name}[{i}]: fast {a:e} vs candle {b:e} (tensor max {scale:e})"
            );
        }
        worst = worst.max(rel);
    }
    worst
}

fn check_against_candle(config: &SamplerConfig, v: usize, n: usize, seed: u64, mask: f64) {
    let logits64 = random_logits_vec(n, v, seed + 1, 3.0, mask, false);
    check_rows_against_candle(config, logits64, seed);
}

/// Rows of exact f16 values with many repeats (quarter steps): the fast engine groups equal
/// logits into one unit ([`FastGrad::batch`]).
fn quantised_rows(n: usize, v: usize, seed: u64, mask: f64) -> Vec<Vec<f64>> {
    random_logits_vec(n, v, seed, 3.0, mask, false)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|x| {
                    if x.is_finite() {
                        (x * 4.0).round() / 4.0
                    } else {
                        x
                    }
                })
                .collect()
        })
        .collect()
}

fn check_rows_against_candle(config: &SamplerConfig, logits64: Vec<Vec<f64>>, seed: u64) {
    let (n, v) = (logits64.len(), logits64[0].len());
    let params = random_params(config, seed, 0.6);
    let logits = as_f32(&logits64);
    let targets = targets_for(&logits64, seed + 2);
    let (gamma, scale) = (0.7, 1.0 / n as f64);
    let (reference, kl, pen) = candle_grads(config, &params, &logits, &targets, gamma, scale);
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    for sparse_targets in [false, true] {
        let sp: Vec<(Vec<u32>, Vec<f32>)> = targets.iter().map(|t| sparse(t)).collect();
        let rows: Vec<TargetRow> = if sparse_targets {
            sp.iter()
                .map(|(ids, logits)| TargetRow::Sparse { ids, logits })
                .collect()
        } else {
            targets.iter().map(|t| TargetRow::Dense(t)).collect()
        };
        let mut fast = FastGrad::new(config, 2).unwrap();
        fast.set_parameters(&params).unwrap();
        let out = fast
            .batch(&SliceRows::new(v, &flat, &rows).unwrap(), gamma, scale)
            .unwrap();
        let what = format!("{config} V {v} sparse {sparse_targets}");
        assert!(
            (out.kl - kl).abs() <= 1e-5 * kl.abs().max(1.0),
            "{what}: KL {} vs {kl}",
            out.kl
        );
        assert!(
            (out.penalty - pen).abs() <= 1e-5 * pen.abs().max(1e-3),
            "{what}: penalty {} vs {pen}",
            out.penalty
        );
        let worst = compare(&what, &fast, &out.grad, &reference);
        eprintln!("{what}: largest tensor-wise relative gradient error {worst:e}");
    }
}

/// Rows whose logits repeat (exact f16 values) run grouped: the same gradients as candle's,
/// and as the same rows one by one without grouping.
#[test]
fn grouped_rows_match_candle_and_ungrouped_rows() {
    for config in [
        local(16),
        simple(16, true),
        simple(16, false),
        sn(16, 32, 2, 2, true),
        sn(16, 32, 2, 4, false),
    ] {
        let (n, v) = (3, 900);
        let rows = quantised_rows(n, v, 40, 0.1);
        let distinct: std::collections::BTreeSet<u64> = rows[0]
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| x.to_bits())
            .collect();
        assert!(distinct.len() * 5 < v, "{} distinct logits", distinct.len());
        check_rows_against_candle(&config, rows.clone(), 41);
        // Grouped batch = Σ ungrouped rows.
        let params = random_params(&config, 41, 0.6);
        let logits = as_f32(&rows);
        let targets = targets_for(&rows, 43);
        let flat: Vec<f32> = logits.iter().flatten().copied().collect();
        let tr: Vec<TargetRow> = targets.iter().map(|t| TargetRow::Dense(t)).collect();
        let mut fast = FastGrad::new(&config, 2).unwrap();
        fast.set_parameters(&params).unwrap();
        let batch = fast
            .batch(&SliceRows::new(v, &flat, &tr).unwrap(), 1.0, 1.0)
            .unwrap();
        let mut one_by_one = vec![0.0; fast.layout().len()];
        let mut kl = 0.0;
        for (l, t) in logits.iter().zip(&tr) {
            kl += fast.row(l, *t, 1.0, 1.0, &mut one_by_one, None).unwrap().kl;
        }
        assert!(
            (batch.kl - kl).abs() <= 1e-5 * kl,
            "{config}: KL {} vs {kl}",
            batch.kl
        );
        let gmax = one_by_one.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, (a, b)) in batch.grad.iter().zip(&one_by_one).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * gmax,
                "{config}: gradient {i}: grouped {a} vs token by token {b}"
            );
        }
    }
}

#[test]
fn local_gradients_match_candle() {
    check_against_candle(&local(16), 300, 4, 10, 0.1);
    // Several tiles and flushes of the f32 partial sums, dense rows.
    check_against_candle(&local(64), 6000, 2, 11, 0.0);
}

#[test]
fn simple_gradients_match_candle() {
    for dynamic in [true, false] {
        check_against_candle(&simple(16, dynamic), 300, 4, 20, 0.1);
        check_against_candle(&simple(24, dynamic), 3000, 2, 21, 0.0);
    }
}

#[test]
fn sampling_network_gradients_match_candle() {
    // 8-wide heads (the per-head attention kernel) and 4-wide ones (the general path).
    check_against_candle(&sn(16, 32, 2, 2, true), 300, 3, 30, 0.1);
    check_against_candle(&sn(16, 32, 2, 4, false), 300, 3, 31, 0.1);
    // Several tiles and flushes, the reference block width.
    check_against_candle(&sn(32, 64, 2, 4, true), 1500, 2, 32, 0.0);
}

/// `scale·(KL + γ·penalty)` of one row through the fast engine (f64 sums of f32 terms).
fn fast_loss(fast: &mut FastGrad, logits: &[f32], target: TargetRow, gamma: f64) -> f64 {
    let mut g = vec![0.0; fast.layout().len()];
    let l = fast.row(logits, target, gamma, 1.0, &mut g, None).unwrap();
    l.kl + gamma * l.penalty
}

fn finite_differences(config: &SamplerConfig) {
    let v = 40;
    let params = random_params(config, 5, 0.5);
    let logits64 = random_logits_vec(1, v, 6, 2.0, 0.1, false);
    let logits = as_f32(&logits64)[0].clone();
    let target = targets_for(&logits64, 7)[0].clone();
    let gamma = 0.5;
    let mut fast = FastGrad::new(config, 1).unwrap();
    fast.set_parameters(&params).unwrap();
    let mut grad = vec![0.0; fast.layout().len()];
    fast.row(
        &logits,
        TargetRow::Dense(&target),
        gamma,
        1.0,
        &mut grad,
        None,
    )
    .unwrap();
    let names: Vec<(String, Vec<usize>, Vec<f64>)> = fast
        .named(&grad)
        .map(|(n, s, g)| (n.to_string(), s.to_vec(), g.to_vec()))
        .collect();
    let h = 2e-3f32;
    let mut checked = 0;
    for (name, shape, g) in names {
        let (idx, base) = params
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| (i, params[i].1.clone()))
            .unwrap();
        let base: Vec<f32> = base.flatten_all().unwrap().to_vec1().unwrap();
        for i in [0, base.len() / 2, base.len() - 1] {
            let mut eval = |delta: f32| {
                let mut p = params.clone();
                let mut w = base.clone();
                w[i] += delta;
                p[idx].1 = Tensor::from_vec(w, shape.as_slice(), &Device::Cpu).unwrap();
                fast.set_parameters(&p).unwrap();
                fast_loss(&mut fast, &logits, TargetRow::Dense(&target), gamma)
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h as f64);
            let a = g[i];
            assert!(
                (a - numeric).abs() <= 2e-4 + 5e-3 * a.abs().max(numeric.abs()),
                "{config}: d/d {name}[{i}]: fast {a} vs finite difference {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
}

#[test]
fn gradients_match_finite_differences_on_a_tiny_vocabulary() {
    for c in [
        local(12),
        simple(12, true),
        simple(12, false),
        sn(8, 16, 2, 1, true),
        sn(8, 16, 1, 2, false),
    ] {
        finite_differences(&c);
    }
}

/// Permuting the row (input and target) permutes `∂/∂lp` and leaves the parameter gradient
/// unchanged (up to summation order).
#[test]
fn gradients_are_permutation_equivariant() {
    for config in [
        local(16),
        simple(16, true),
        simple(16, false),
        sn(16, 32, 2, 2, true),
        sn(16, 32, 2, 4, false),
    ] {
        let v = 700;
        let params = random_params(&config, 3, 0.6);
        let logits64 = random_logits_vec(1, v, 4, 3.0, 0.1, false);
        let logits = as_f32(&logits64)[0].clone();
        let target = targets_for(&logits64, 5)[0].clone();
        let perm = permutation(v, 6);
        let pl: Vec<f32> = perm.iter().map(|&i| logits[i as usize]).collect();
        let pt: Vec<f32> = perm.iter().map(|&i| target[i as usize]).collect();
        let mut fast = FastGrad::new(&config, 1).unwrap();
        fast.set_parameters(&params).unwrap();
        let len = fast.layout().len();
        let (mut g1, mut g2) = (vec![0.0; len], vec![0.0; len]);
        let (mut d1, mut d2) = (vec![0.0f32; v], vec![0.0f32; v]);
        let a = fast
            .row(
                &logits,
                TargetRow::Dense(&target),
                1.0,
                1.0,
                &mut g1,
                Some(&mut d1),
            )
            .unwrap();
        let b = fast
            .row(&pl, TargetRow::Dense(&pt), 1.0, 1.0, &mut g2, Some(&mut d2))
            .unwrap();
        assert!((a.kl - b.kl).abs() < 1e-6 * a.kl.max(1.0));
        let dmax = d1.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(dmax > 0.0);
        for (k, &i) in perm.iter().enumerate() {
            let (x, y) = (d1[i as usize], d2[k]);
            assert!(
                (x - y).abs() <= 1e-5 * dmax,
                "{config}: ∂/∂lp of token {i}: {x} vs {y} after the permutation"
            );
            if logits[i as usize] == f32::NEG_INFINITY {
                assert_eq!(y, 0.0);
            }
        }
        let gmax = g1.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (x, y) in g1.iter().zip(&g2) {
            assert!((x - y).abs() <= 1e-5 * gmax, "{config}: {x} vs {y}");
        }
    }
}

/// `∂/∂lp` equals candle's autograd with `lp` as a leaf (statistics held fixed).
#[test]
fn input_gradients_match_candle() {
    use adasamp_nets::arch::{
        prepare, LocalProbabilityTransform, SamplingNetwork, SimpleDistributionAwareTransform,
    };
    use candle_core::Var;
    use candle_nn::VarBuilder;
    for config in [
        local(16),
        simple(16, true),
        simple(16, false),
        sn(16, 32, 2, 2, true),
        sn(16, 32, 2, 4, false),
    ] {
        let v = 200;
        let params = random_params(&config, 8, 0.6);
        let logits64 = random_logits_vec(1, v, 9, 3.0, 0.1, false);
        let logits = as_f32(&logits64)[0].clone();
        let target = targets_for(&logits64, 10)[0].clone();
        let mut fast = FastGrad::new(&config, 1).unwrap();
        fast.set_parameters(&params).unwrap();
        let mut g = vec![0.0; fast.layout().len()];
        let mut dlp = vec![0.0f32; v];
        fast.row(
            &logits,
            TargetRow::Dense(&target),
            1.0,
            1.0,
            &mut g,
            Some(&mut dlp),
        )
        .unwrap();

        let tensors = params
            .iter()
            .map(|(k, t)| (k.clone(), t.to_dtype(DType::F64).unwrap()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F64, &Device::Cpu);
        let z = to_tensor(&logits64, DType::F64);
        let z = z
            .to_dtype(DType::F32)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let mut prepared = prepare(&z).unwrap();
        let lp = Var::from_tensor(&prepared.lp).unwrap();
        prepared.lp = lp.as_tensor().clone();
        let out = match &config {
            SamplerConfig::LocalProbabilityTransform(c) => LocalProbabilityTransform::new(vb, c)
                .unwrap()
                .forward(&prepared),
            SamplerConfig::SimpleDistributionAwareTransform(c) => {
                SimpleDistributionAwareTransform::new(vb, c)
                    .unwrap()
                    .forward(&prepared)
            }
            SamplerConfig::SamplingNetwork(c) => {
                SamplingNetwork::new(vb, c).unwrap().forward(&prepared)
            }
        }
        .unwrap();
        let t = Tensor::from_vec(
            target.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            (1, v),
            &Device::Cpu,
        )
        .unwrap();
        let (kl, pen) = TruncatedLogitsLoss::new(1.0)
            .unwrap()
            .per_row(&out, &t)
            .unwrap();
        let store = (kl + pen).unwrap().sum_all().unwrap().backward().unwrap();
        let reference: Vec<f64> = store
            .get(lp.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let rmax = reference.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (i, (&a, &b)) in dlp.iter().zip(&reference).enumerate() {
            assert!(
                (a as f64 - b).abs() <= RTOL * b.abs().max(1e-2 * rmax),
                "{config}: ∂/∂lp[{i}]: fast {a} vs candle {b}"
            );
        }
    }
}

/// The batch gradient is the same bit for bit on 1, 2 and 3 threads.
#[test]
fn batch_gradients_do_not_depend_on_the_thread_count() {
    for config in [simple(16, true), sn(16, 32, 2, 2, true)] {
        thread_count_independence(&config);
    }
}

fn thread_count_independence(config: &SamplerConfig) {
    let params = random_params(config, 1, 0.6);
    let (n, v) = (7, 500);
    let logits64 = random_logits_vec(n, v, 2, 3.0, 0.05, false);
    let logits: Vec<f32> = as_f32(&logits64).into_iter().flatten().collect();
    let targets = targets_for(&logits64, 3);
    let rows: Vec<TargetRow> = targets.iter().map(|t| TargetRow::Dense(t)).collect();
    let slice = SliceRows::new(v, &logits, &rows).unwrap();
    let run = |threads| {
        let mut fast = FastGrad::new(config, threads).unwrap();
        fast.set_parameters(&params).unwrap();
        fast.batch(&slice, 1.0, 0.25).unwrap()
    };
    let one = run(1);
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn bad_rows_are_typed_errors() {
    let config = local(8);
    let mut fast = FastGrad::new(&config, 1).unwrap();
    let mut g = vec![0.0; fast.layout().len()];
    // No weights yet.
    assert!(fast
        .row(
            &[0.0, 1.0],
            TargetRow::Dense(&[0.0, 1.0]),
            1.0,
            1.0,
            &mut g,
            None
        )
        .is_err());
    fast.set_parameters(&random_params(&config, 1, 0.5))
        .unwrap();
    let nan = [0.0, f32::NAN];
    let e = fast
        .row(&nan, TargetRow::Dense(&[0.0, 1.0]), 1.0, 1.0, &mut g, None)
        .unwrap_err();
    assert!(e.to_string().contains("input logits"), "{e}");
    let e = fast
        .row(
            &[0.0, 1.0],
            TargetRow::Dense(&[0.0]),
            1.0,
            1.0,
            &mut g,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("target row"), "{e}");
    let e = fast
        .row(
            &[0.0, 1.0],
            TargetRow::Sparse {
                ids: &[1, 0],
                logits: &[0.0, 0.0],
            },
            1.0,
            1.0,
            &mut g,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("ascending"), "{e}");
    let e = fast
        .row(
            &[0.0, 1.0],
            TargetRow::Dense(&[f32::NEG_INFINITY, f32::NEG_INFINITY]),
            1.0,
            1.0,
            &mut g,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("target"), "{e}");
    // A target keeping a token the input masks: infinite KL, no gradient.
    let l = fast
        .row(
            &[0.0, f32::NEG_INFINITY],
            TargetRow::Dense(&[0.0, 0.0]),
            1.0,
            1.0,
            &mut g,
            None,
        )
        .unwrap();
    assert_eq!(l.kl, f64::INFINITY);
    assert!(g.iter().all(|&x| x == 0.0));
    assert!(FastGrad::new(&config, 0).is_err());
    let t = [0.0f32; 3];
    let targets = [TargetRow::Dense(&t)];
    assert!(SliceRows::new(3, &[0.0; 5], &targets).is_err());
    assert!(SliceRows::new(0, &[], &[]).is_err());
    assert!(fast
        .row(&[0.0], TargetRow::Dense(&[0.0]), -1.0, 1.0, &mut g, None)
        .is_err());
}
