//! TruncatedLogitsLoss: masked terms exactly zero, identity gives KL 0, hand-computed values,
//! agreement with the plain-slice row_divergence.

mod common;

use adasamp_nets::{row_divergence, TruncatedLogitsLoss};
use candle_core::{DType, Device, Tensor};
use common::*;

const NINF: f32 = f32::NEG_INFINITY;

#[test]
fn identity_prediction_has_zero_kl() {
    let target = random_logits(4, 300, 5, 0.5, true);
    let out = TruncatedLogitsLoss::new(5.0)
        .unwrap()
        .forward(&target, &target)
        .unwrap();
    assert!(out.kl.abs() < 1e-6, "{}", out.kl);
    assert_eq!(out.penalty, 0.0);
    let loss = out.loss.to_scalar::<f32>().unwrap();
    assert!(loss.abs() < 1e-6);
}

#[test]
fn masked_terms_are_exactly_zero() {
    let dev = Device::Cpu;
    let loss = TruncatedLogitsLoss::new(0.0).unwrap();
    // Same kept logits; what the prediction does at target-masked tokens only enters the penalty.
    let target = Tensor::new(&[[2.0f32, NINF, 1.0, NINF]], &dev).unwrap();
    for pred in [[[2.0f32, NINF, 1.0, NINF]], [[2.0f32, -50.0, 1.0, NINF]]] {
        let pred = Tensor::new(&pred, &dev).unwrap();
        let (kl, penalty) = loss.per_row(&pred, &target).unwrap();
        let kl = kl.to_vec1::<f32>().unwrap()[0];
        let penalty = penalty.to_vec1::<f32>().unwrap()[0];
        assert!(kl.is_finite() && penalty.is_finite());
        assert!(kl.abs() < 1e-6, "{kl}");
    }
    // Prediction that puts mass on masked tokens: KL counts the renormalisation (−log m), the
    // penalty the mass m' on them.
    let pred = Tensor::new(&[[2.0f32, 2.0, 1.0, 1.0]], &dev).unwrap();
    let (kl, penalty) = loss.per_row(&pred, &target).unwrap();
    let kl = kl.to_vec1::<f32>().unwrap()[0] as f64;
    let penalty = penalty.to_vec1::<f32>().unwrap()[0] as f64;
    let (e2, e1) = (2f64.exp(), 1f64.exp());
    let kept_mass = (e2 + e1) / (2.0 * e2 + 2.0 * e1);
    assert!((kl - (-kept_mass.ln())).abs() < 1e-6, "{kl}");
    assert!((penalty - (1.0 - kept_mass)).abs() < 1e-6, "{penalty}");
}

#[test]
fn hand_computed_two_rows() {
    let dev = Device::Cpu;
    // Row 0: p_t = (1/4, 3/4, 0), q = (1/3, 1/3, 1/3).
    // Row 1: p_t = (1, 0, 0) (single kept token), q = softmax(0, ln 2, ln 3) = (1/6, 2/6, 3/6).
    let target = Tensor::new(&[[0.0f32, 3f32.ln(), NINF], [7.0, NINF, NINF]], &dev).unwrap();
    let pred = Tensor::new(&[[1.0f32, 1.0, 1.0], [0.0, 2f32.ln(), 3f32.ln()]], &dev).unwrap();
    let kl0 = 0.25 * (0.75f64).ln() + 0.75 * (2.25f64).ln();
    let kl1 = (6f64).ln();
    let pen0 = 1.0 / 3.0;
    let pen1 = 5.0 / 6.0;
    let gamma = 2.5;
    let out = TruncatedLogitsLoss::new(gamma)
        .unwrap()
        .forward(&pred, &target)
        .unwrap();
    assert!((out.kl as f64 - (kl0 + kl1) / 2.0).abs() < 1e-6);
    assert!((out.penalty as f64 - (pen0 + pen1) / 2.0).abs() < 1e-6);
    let expect = (kl0 + kl1 + gamma * (pen0 + pen1)) / 2.0;
    assert!((out.loss.to_scalar::<f32>().unwrap() as f64 - expect).abs() < 1e-5);
    // The same from the plain-slice function.
    let r0 = row_divergence(&[0.0, 3f32.ln(), NINF], &[1.0, 1.0, 1.0]).unwrap();
    let r1 = row_divergence(&[7.0, NINF, NINF], &[0.0, 2f32.ln(), 3f32.ln()]).unwrap();
    assert!((r0.kl - kl0).abs() < 1e-6 && (r0.truncated_mass - pen0).abs() < 1e-6);
    assert!((r1.kl - kl1).abs() < 1e-6 && (r1.truncated_mass - pen1).abs() < 1e-6);
}

#[test]
fn tensor_loss_matches_row_divergence_on_random_rows() {
    let target = random_logits(3, 500, 9, 0.6, true);
    let pred = random_logits(3, 500, 10, 0.0, false);
    let loss = TruncatedLogitsLoss::new(1.0).unwrap();
    let (kl, pen) = loss.per_row(&pred, &target).unwrap();
    let kl = kl.to_vec1::<f32>().unwrap();
    let pen = pen.to_vec1::<f32>().unwrap();
    let t = target.to_vec2::<f32>().unwrap();
    let p = pred.to_vec2::<f32>().unwrap();
    for r in 0..3 {
        let d = row_divergence(&t[r], &p[r]).unwrap();
        assert!(
            (kl[r] as f64 - d.kl).abs() < 1e-4 * d.kl.max(1.0),
            "{} vs {}",
            kl[r],
            d.kl
        );
        assert!((pen[r] as f64 - d.truncated_mass).abs() < 1e-5);
    }
}

#[test]
fn shape_mismatch_and_bad_targets_are_errors() {
    let dev = Device::Cpu;
    let loss = TruncatedLogitsLoss::new(1.0).unwrap();
    let a = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let b = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
    assert!(loss.forward(&a, &b).is_err());
    let all_masked = Tensor::new(&[[NINF, NINF]], &dev).unwrap();
    let p = Tensor::zeros((1, 2), DType::F32, &dev).unwrap();
    let e = loss.forward(&p, &all_masked).unwrap_err().to_string();
    assert!(e.contains("target") && e.contains("row 0"), "{e}");
}
