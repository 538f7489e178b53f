//! Distribution statistics used across the project: entropy, KL, JS, effective support size,
//! mass above a threshold. Inputs are probability vectors (f64, summing to 1).

use crate::error::{Result, SamplingError};

fn check(p: &[f64], what: &str) -> Result<()> {
    if p.is_empty() {
        return Err(SamplingError::Distribution(format!("{what} is empty")));
    }
    if let Some(i) = p.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(SamplingError::Distribution(format!(
            "{what}[{i}] = {} is not a probability",
            p[i]
        )));
    }
    let s: f64 = p.iter().sum();
    if (s - 1.0).abs() > 1e-4 {
        return Err(SamplingError::Distribution(format!(
            "{what} sums to {s}, not 1"
        )));
    }
    Ok(())
}

fn check_pair(p: &[f64], q: &[f64]) -> Result<()> {
    check(p, "p")?;
    check(q, "q")?;
    if p.len() != q.len() {
        return Err(SamplingError::Distribution(format!(
            "p has {} entries, q has {}",
            p.len(),
            q.len()
        )));
    }
    Ok(())
}

/// `softmax(logits)` in f64 (`-inf` ↦ 0). Errors on NaN, `+inf` or an all-`-inf` row.
pub fn softmax(logits: &[f32]) -> Result<Vec<f64>> {
    crate::row::validate_logits(logits, 0)?;
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = logits.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    Ok(e.into_iter().map(|x| x / z).collect())
}

/// Shannon entropy `H(p) = −Σ p log p` (nats; `0 log 0 = 0`).
pub fn entropy(p: &[f64]) -> Result<f64> {
    check(p, "p")?;
    Ok(-p
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>())
}

/// `KL(p‖q) = Σ p log(p/q)` (nats); `+inf` if q = 0 where p > 0.
pub fn kl(p: &[f64], q: &[f64]) -> Result<f64> {
    check_pair(p, q)?;
    let mut s = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        if a > 0.0 {
            if b == 0.0 {
                return Ok(f64::INFINITY);
            }
            s += a * (a / b).ln();
        }
    }
    Ok(s.max(0.0))
}

/// Jensen–Shannon divergence `½KL(p‖m) + ½KL(q‖m)`, `m = (p+q)/2` (nats, ≤ ln 2).
pub fn js(p: &[f64], q: &[f64]) -> Result<f64> {
    check_pair(p, q)?;
    let mut s = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let m = 0.5 * (a + b);
        if a > 0.0 {
            s += 0.5 * a * (a / m).ln();
        }
        if b > 0.0 {
            s += 0.5 * b * (b / m).ln();
        }
    }
    Ok(s.clamp(0.0, std::f64::consts::LN_2))
}

/// Effective support size `exp(H(p))` (perplexity): `n` for a uniform distribution over n tokens.
pub fn effective_support(p: &[f64]) -> Result<f64> {
    Ok(entropy(p)?.exp())
}

/// Inverse Simpson index `1 / Σ p²` (another effective support size).
pub fn inverse_simpson(p: &[f64]) -> Result<f64> {
    check(p, "p")?;
    Ok(1.0 / p.iter().map(|x| x * x).sum::<f64>())
}

/// Number of tokens with non-zero probability.
pub fn support_size(p: &[f64]) -> usize {
    p.iter().filter(|&&x| x > 0.0).count()
}

/// Total probability of the tokens with `p ≥ threshold`.
pub fn mass_above(p: &[f64], threshold: f64) -> Result<f64> {
    check(p, "p")?;
    Ok(p.iter().filter(|&&x| x >= threshold && x > 0.0).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        let u = vec![0.25; 4];
        assert!((entropy(&u).unwrap() - 4f64.ln()).abs() < 1e-12);
        assert!((effective_support(&u).unwrap() - 4.0).abs() < 1e-9);
        assert!((inverse_simpson(&u).unwrap() - 4.0).abs() < 1e-9);
        let p = [0.5, 0.5, 0.0];
        let q = [0.25, 0.25, 0.5];
        // KL = Σ 0.5 ln(0.5/0.25) = ln 2
        assert!((kl(&p, &q).unwrap() - 2f64.ln()).abs() < 1e-12);
        assert_eq!(kl(&q, &p).unwrap(), f64::INFINITY);
        // Disjoint supports: JS = ln 2.
        assert!((js(&[1.0, 0.0], &[0.0, 1.0]).unwrap() - 2f64.ln()).abs() < 1e-12);
        assert_eq!(js(&p, &p).unwrap(), 0.0);
        // Bernoulli(0.3) entropy
        let h = -(0.3f64 * 0.3f64.ln() + 0.7 * 0.7f64.ln());
        assert!((entropy(&[0.3, 0.7]).unwrap() - h).abs() < 1e-12);
        assert!((mass_above(&[0.6, 0.3, 0.1], 0.3).unwrap() - 0.9).abs() < 1e-12);
        assert_eq!(support_size(&p), 2);
        let s = softmax(&[0.0, 0.0, f32::NEG_INFINITY]).unwrap();
        assert_eq!(s, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(entropy(&[]).is_err());
        assert!(entropy(&[0.5, 0.6]).is_err());
        assert!(kl(&[1.0], &[0.5, 0.5]).is_err());
        assert!(entropy(&[f64::NAN, 1.0]).is_err());
        assert!(softmax(&[f32::NAN]).is_err());
    }
}
