//! Straightforward full-sort implementations of the ASN stages and of sampling: the oracle the
//! fast stages are tested against, and the baseline the benchmarks compare with. Same semantics
//! as the fast stages (ties at a boundary are kept), none of their tricks: every stage computes a
//! full softmax in f64 and sorts the whole row.

use crate::spec::StageSpec;

/// Probabilities `softmax(z)` in f64.
fn softmax(z: &[f32]) -> Vec<f64> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// Indices sorted by descending `key` (ties by ascending index).
fn order_desc(key: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..key.len()).collect();
    idx.sort_by(|&a, &b| key[b].total_cmp(&key[a]).then(a.cmp(&b)));
    idx
}

/// Walks `order` (best first) by groups of equal `key`; returns the key of the group at which the
/// cumulative `w` first reaches `target` (the last group's key if it never does).
fn crossing_key(order: &[usize], key: &[f64], w: &[f64], target: f64) -> f64 {
    let mut cum = 0.0;
    let mut i = 0;
    let mut last = f64::NEG_INFINITY;
    while i < order.len() {
        let k = key[order[i]];
        if k == f64::NEG_INFINITY {
            break;
        }
        while i < order.len() && key[order[i]] == k {
            cum += w[order[i]];
            i += 1;
        }
        last = k;
        if cum >= target {
            return k;
        }
    }
    last
}

fn kth_largest(z: &[f32], k: usize) -> f32 {
    let mut s: Vec<f32> = z.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    if s.is_empty() {
        return f32::NEG_INFINITY;
    }
    s[(k.max(1) - 1).min(s.len() - 1)]
}

fn mask_below(z: &mut [f32], t: f32) {
    for v in z.iter_mut() {
        if *v < t {
            *v = f32::NEG_INFINITY;
        }
    }
}

fn param(spec: &StageSpec, key: &str, default: f64) -> f64 {
    spec.params
        .get(key)
        .and_then(|v| v.as_f64())
        .unwrap_or(default)
}

/// Applies one ASN stage (temperature, top_k, top_p, min_p, typical, epsilon, eta, greedy) the
/// straightforward way. Returns `false` for a stage it does not implement.
pub fn apply_stage(spec: &StageSpec, z: &mut [f32]) -> bool {
    let keep = param(spec, "min_tokens_to_keep", 1.0) as usize;
    match spec.name.as_str() {
        "temperature" => {
            let t = param(spec, "temperature", 1.0) as f32;
            z.iter_mut().for_each(|v| *v /= t);
        }
        "top_k" => {
            let k = (param(spec, "top_k", 1.0) as usize).max(keep);
            let t = kth_largest(z, k);
            mask_below(z, t);
        }
        "top_p" => {
            let p = param(spec, "top_p", 1.0);
            if p < 1.0 {
                let probs = softmax(z);
                let key: Vec<f64> = z.iter().map(|&v| v as f64).collect();
                let t = crossing_key(&order_desc(&key), &key, &probs, p) as f32;
                mask_below(z, t.min(kth_largest(z, keep)));
            }
        }
        "min_p" => {
            let mp = param(spec, "min_p", 0.0);
            let probs = softmax(z);
            let pmax = probs.iter().cloned().fold(0.0, f64::max);
            let t = kth_largest(z, keep);
            for (v, p) in z.iter_mut().zip(&probs) {
                if *p < mp * pmax && *v < t {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        "epsilon" | "eta" => {
            let e = param(spec, "epsilon", 0.0);
            let probs = softmax(z);
            let thr = if spec.name == "eta" {
                let h: f64 = -probs
                    .iter()
                    .filter(|&&p| p > 0.0)
                    .map(|p| p * p.ln())
                    .sum::<f64>();
                e.min(e.sqrt() * (-h).exp())
            } else {
                e
            };
            let t = kth_largest(z, keep);
            for (v, p) in z.iter_mut().zip(&probs) {
                if *p < thr && *v < t {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        "typical" => {
            let mass = param(spec, "mass", 0.9);
            let probs = softmax(z);
            let h: f64 = -probs
                .iter()
                .filter(|&&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>();
            // key = −|−ln p − H| (larger is more typical)
            let key: Vec<f64> = probs
                .iter()
                .map(|&p| {
                    if p > 0.0 {
                        -(-p.ln() - h).abs()
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let order = order_desc(&key);
            let mut t = crossing_key(&order, &key, &probs, mass);
            if keep > 1 {
                t = t.min(key[order[(keep - 1).min(order.len() - 1)]]);
            }
            for (v, k) in z.iter_mut().zip(&key) {
                if *k < t {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        "greedy" => {
            let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let i = z.iter().position(|&v| v == m).unwrap_or(0);
            for (j, v) in z.iter_mut().enumerate() {
                if j != i {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        _ => return false,
    }
    true
}

/// Samples from `softmax(z)` with uniform `u`: full softmax, then a linear cumulative walk.
pub fn sample(z: &[f32], u: f64) -> usize {
    let p = softmax(z);
    let mut c = 0.0;
    for (i, &x) in p.iter().enumerate() {
        c += x;
        if c > u && x > 0.0 {
            return i;
        }
    }
    p.iter().rposition(|&x| x > 0.0).unwrap_or(0)
}
