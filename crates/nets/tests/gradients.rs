//! Gradient checks in f64: candle's autograd through every layer, every architecture and the loss
//! against central finite differences, on tiny cases that include masked (`-inf`) tokens.

mod common;

use adasamp_nets::layers::{soft_truncation_gate, LayerNorm, LinearAttention, SwiGlu};
use adasamp_nets::{LearnedSampler, SamplerConfig, TruncatedLogitsLoss};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STEP: f64 = 1e-5;
const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-8;
/// Elements checked per parameter tensor (spread evenly over it).
const PER_TENSOR: usize = 6;

fn randn(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0))
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Overwrites every variable of `vm` (in name order) with seeded values: `U(-a, a)` around
/// 0 for most, around 1 for LayerNorm weights.
fn fill_varmap(vm: &VarMap, seed: u64) {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let mut t = randn(var.dims(), seed + i as u64, 0.6);
        if name.contains("ln") && name.ends_with("weight") {
            t = (t + 1.0).unwrap();
        }
        var.set(&t).unwrap();
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

/// Compares autograd gradients of `f` with central differences for every variable in `vars`.
fn check(what: &str, vars: &[(String, Var)], f: &dyn Fn() -> Tensor) {
    let out = f();
    let grads = out.backward().unwrap();
    let mut checked = 0;
    for (name, var) in vars {
        let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
            None => vec![0.0; var.elem_count()],
        };
        assert!(
            analytic.iter().all(|g| g.is_finite()),
            "{what}: non-finite gradient for {name}"
        );
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let n = base.len();
        let picks: Vec<usize> = if n <= PER_TENSOR {
            (0..n).collect()
        } else {
            (0..PER_TENSOR)
                .map(|k| k * (n - 1) / (PER_TENSOR - 1))
                .collect()
        };
        for i in picks {
            if !base[i].is_finite() {
                continue;
            }
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                scalar(&f())
            };
            let numeric = (eval(STEP) - eval(-STEP)) / (2.0 * STEP);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let a = analytic[i];
            assert!(
                (a - numeric).abs() <= ATOL + RTOL * a.abs().max(numeric.abs()).max(1.0),
                "{what}: d/d {name}[{i}]: autograd {a} vs finite difference {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{what}: nothing checked");
}

fn named_vars(vm: &VarMap) -> Vec<(String, Var)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Fixed random weights for a linear functional `Σ w ⊙ y` of a layer output.
fn functional(y: &Tensor, w: &Tensor) -> Tensor {
    (y * w).unwrap().sum_all().unwrap()
}

#[test]
fn swiglu_gradients() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let layer = SwiGlu::new(vb.pp("mlp"), 3, 6, 2).unwrap();
    fill_varmap(&vm, 1);
    let x = Var::from_tensor(&randn(&[2, 4, 3], 50, 1.5)).unwrap();
    let w = randn(&[2, 4, 2], 51, 1.0);
    let mut vars = named_vars(&vm);
    vars.push(("x".into(), x.clone()));
    check("SwiGLU", &vars, &|| {
        functional(&layer.forward(x.as_tensor()).unwrap(), &w)
    });
    // The concatenation-free context path equals SwiGLU([x, ctx]) and differentiates the same.
    let layer5 = SwiGlu::new(vb.pp("ctx"), 5, 6, 2).unwrap();
    fill_varmap(&vm, 2);
    let ctx = Var::from_tensor(&randn(&[2, 2], 52, 1.0)).unwrap();
    let cat = |x: &Tensor, c: &Tensor| {
        let cb = c.unsqueeze(1).unwrap().broadcast_as((2, 4, 2)).unwrap();
        Tensor::cat(&[x, &cb], 2).unwrap()
    };
    let a = layer5
        .forward_with_context(x.as_tensor(), ctx.as_tensor())
        .unwrap();
    let b = layer5
        .forward(&cat(x.as_tensor(), ctx.as_tensor()))
        .unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-12);
    let mut vars = named_vars(&vm);
    vars.push(("x".into(), x.clone()));
    vars.push(("ctx".into(), ctx.clone()));
    check("SwiGLU with context", &vars, &|| {
        functional(
            &layer5
                .forward_with_context(x.as_tensor(), ctx.as_tensor())
                .unwrap(),
            &w,
        )
    });
}

#[test]
fn gate_gradients() {
    let l = Var::from_tensor(&randn(&[2, 5], 60, 12.0)).unwrap();
    let s = Var::from_tensor(&Tensor::new(&[0.8f64], &Device::Cpu).unwrap()).unwrap();
    let tau = Var::from_tensor(&Tensor::new(&[3.0f64], &Device::Cpu).unwrap()).unwrap();
    let w = randn(&[2, 5], 61, 1.0);
    let vars = vec![
        ("l".to_string(), l.clone()),
        ("s".to_string(), s.clone()),
        ("tau".to_string(), tau.clone()),
    ];
    check("gate", &vars, &|| {
        functional(
            &soft_truncation_gate(l.as_tensor(), s.as_tensor(), tau.as_tensor()).unwrap(),
            &w,
        )
    });
    // Per-row (s, τ) as the dynamic gates use them.
    let s_row = Var::from_tensor(&randn(&[2, 1], 62, 1.0).abs().unwrap()).unwrap();
    let t_row = Var::from_tensor(&randn(&[2, 1], 63, 5.0)).unwrap();
    let vars = vec![
        ("l".to_string(), l.clone()),
        ("s_row".to_string(), s_row.clone()),
        ("tau_row".to_string(), t_row.clone()),
    ];
    check("gate (per row)", &vars, &|| {
        functional(
            &soft_truncation_gate(l.as_tensor(), s_row.as_tensor(), t_row.as_tensor()).unwrap(),
            &w,
        )
    });
}

#[test]
fn layer_norm_gradients() {
    let vm = VarMap::new();
    let ln = LayerNorm::new(
        VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu).pp("ln"),
        6,
    )
    .unwrap();
    fill_varmap(&vm, 3);
    let x = Var::from_tensor(&randn(&[2, 3, 6], 70, 2.0)).unwrap();
    let w = randn(&[2, 3, 6], 71, 1.0);
    let mut vars = named_vars(&vm);
    vars.push(("x".into(), x.clone()));
    check("LayerNorm", &vars, &|| {
        functional(&ln.forward(x.as_tensor()).unwrap(), &w)
    });
}

#[test]
fn linear_attention_gradients() {
    let vm = VarMap::new();
    let att = LinearAttention::new(
        VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu).pp("attn"),
        4,
        2,
    )
    .unwrap();
    fill_varmap(&vm, 4);
    let x = Var::from_tensor(&randn(&[2, 5, 4], 80, 1.5)).unwrap();
    let keep = Tensor::new(
        &[[1.0f64, 1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0]],
        &Device::Cpu,
    )
    .unwrap();
    let w = randn(&[2, 5, 4], 81, 1.0);
    let mut vars = named_vars(&vm);
    vars.push(("x".into(), x.clone()));
    check("LinearAttention", &vars, &|| {
        functional(&att.forward(x.as_tensor(), &keep).unwrap(), &w)
    });
}

/// Loss of a sampler's output against a truncated target, on rows with masked input tokens.
fn architecture_check(config: &SamplerConfig, seed: u64) {
    let vm = VarMap::new();
    let sampler = LearnedSampler::init(config, &vm, seed, DType::F64, &Device::Cpu).unwrap();
    fill_varmap(&vm, seed);
    let rows = random_logits_vec(3, 7, seed, 2.5, 0.25, true);
    let z = to_tensor(&rows, DType::F64);
    // Target: the input with its two lowest finite logits of each row also removed (but ≥ 1 kept).
    let target_rows: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            let mut finite: Vec<(usize, f64)> = row
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, x)| x.is_finite())
                .collect();
            finite.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
            let mut t = row.clone();
            for (i, _) in finite.iter().take(finite.len().saturating_sub(1).min(2)) {
                t[*i] = f64::NEG_INFINITY;
            }
            t
        })
        .collect();
    let target = to_tensor(&target_rows, DType::F64);
    let loss = TruncatedLogitsLoss::new(0.7).unwrap();
    let vars = named_vars(&vm);
    assert_eq!(vars.len(), sampler.named_parameters().len());
    check(&config.to_string(), &vars, &|| {
        loss.forward(&sampler.forward(&z).unwrap(), &target)
            .unwrap()
            .loss
    });
}

#[test]
fn local_transform_gradients() {
    architecture_check(&local(6), 1);
}

#[test]
fn distribution_aware_gradients() {
    architecture_check(&simple(5, true), 2);
    architecture_check(&simple(5, false), 3);
}

#[test]
fn sampling_network_gradients() {
    let mut c = sn(4, 6, 2, 2, true);
    if let SamplerConfig::SamplingNetwork(s) = &mut c {
        s.encoder_hidden = 6;
    }
    architecture_check(&c, 4);
    if let SamplerConfig::SamplingNetwork(s) = &mut c {
        s.scale = false;
        s.n_heads = 1;
    }
    architecture_check(&c, 5);
}

#[test]
fn loss_gradients_with_masked_predictions() {
    let ninf = f64::NEG_INFINITY;
    let target = Tensor::new(
        &[
            [1.0f64, ninf, 0.5, -2.0, ninf],
            [ninf, ninf, 3.0, ninf, ninf],
        ],
        &Device::Cpu,
    )
    .unwrap();
    // Prediction with -inf where the target is masked too (what a sampler emits for masked input).
    let pred = Var::from_tensor(
        &Tensor::new(
            &[[0.3f64, -1.0, 2.0, ninf, 0.2], [1.0, ninf, -0.5, 0.7, 2.0]],
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    // pred[0][3] = -inf where the target keeps the token: KL = +inf, as it must be.
    let loss = TruncatedLogitsLoss::new(1.3).unwrap();
    let out = loss.forward(pred.as_tensor(), &target).unwrap();
    assert_eq!(out.kl, f32::INFINITY);
    // With a finite prediction there: gradients finite everywhere and matching differences.
    let pred = Var::from_tensor(
        &Tensor::new(
            &[[0.3f64, -1.0, 2.0, -0.4, 0.2], [1.0, ninf, -0.5, 0.7, 2.0]],
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let vars = vec![("pred".to_string(), pred.clone())];
    check("TruncatedLogitsLoss", &vars, &|| {
        loss.forward(pred.as_tensor(), &target).unwrap().loss
    });
}

#[test]
#[should_panic(expected = "finite difference")]
fn the_checker_catches_a_wrong_gradient() {
    // d/dx Σ x² is 2x; detaching one factor makes autograd report x.
    let x = Var::from_tensor(&randn(&[3], 90, 1.0)).unwrap();
    let vars = vec![("x".to_string(), x.clone())];
    check("wrong", &vars, &|| {
        (x.as_tensor().detach() * x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
    });
}
