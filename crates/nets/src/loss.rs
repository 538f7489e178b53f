//! [`TruncatedLogitsLoss`] (SPEC §2) and a plain-slice per-row divergence for analysis.
//!
//! With `mask = (target == −inf)`, `p_t = softmax(target)`, `log q = log_softmax(pred)`:
//! `KL = Σ_{¬mask} p_t (log p_t − log q)` (masked terms exactly 0, never NaN),
//! `penalty = Σ_{mask} q`, `loss = mean_rows(KL + γ·penalty)`.
//!
//! `pred` may itself hold `-inf` (a sampler outputs `-inf` for masked inputs): at a target-masked
//! position that contributes 0 to KL and 0 to the penalty; at a kept target position it makes the
//! KL `+inf` (the prediction excludes a token the target can produce). The masking uses
//! `where_cond`, so the discarded branch gets an exactly-zero gradient.

use adasamp_sampling::row::validate_logits;
use candle_core::{DType, Tensor, D};

use crate::error::{NetsError, Result};

/// The loss with its truncation-penalty weight `γ ≥ 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TruncatedLogitsLoss {
    /// Weight `γ` of the truncation penalty.
    pub gamma: f64,
}

/// One evaluation of the loss.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// Scalar (0-dim) `mean_rows(KL + γ·penalty)`, differentiable with respect to `pred`.
    pub loss: Tensor,
    /// Mean over rows of the KL term (for reporting).
    pub kl: f32,
    /// Mean over rows of the penalty term `Σ_{mask} q` (for reporting).
    pub penalty: f32,
}

/// `log_softmax` over the last axis: `x − max − log Σ exp(x − max)` (`-inf` entries stay `-inf`;
/// the row needs at least one finite entry).
fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let diff = x.broadcast_sub(&max)?;
    let lse = diff.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(diff.broadcast_sub(&lse)?)
}

impl TruncatedLogitsLoss {
    /// A loss with penalty weight `gamma` (finite, ≥ 0).
    pub fn new(gamma: f64) -> Result<Self> {
        if !gamma.is_finite() || gamma < 0.0 {
            return Err(NetsError::config("gamma", gamma, "must be finite and ≥ 0"));
        }
        Ok(Self { gamma })
    }

    /// Per-row `(KL [N], penalty [N])`, differentiable with respect to `pred`.
    /// `pred`, `target`: `[N, V]`, same shape; every target row needs a finite entry and no
    /// NaN / `+inf`.
    pub fn per_row(&self, pred: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
        if pred.dims() != target.dims() {
            return Err(NetsError::shape(
                "pred",
                format!("{:?} (the target's shape)", target.dims()),
                format!("{:?}", pred.dims()),
            ));
        }
        crate::arch::validate_logits(target).map_err(|e| match e {
            NetsError::InvalidLogits { source, .. } => NetsError::logits("target", *source),
            NetsError::BadShape {
                expected, found, ..
            } => NetsError::shape("target", expected, found),
            other => other,
        })?;
        let target = target.detach().to_dtype(pred.dtype())?;
        let mask = target.eq(f64::NEG_INFINITY)?;
        let lp_t_raw = log_softmax(&target)?;
        let p_t = lp_t_raw.exp()?;
        let zeros = p_t.zeros_like()?;
        let lp_t = mask.where_cond(&zeros, &lp_t_raw)?;
        let log_q = log_softmax(pred)?;
        let kl_terms = mask.where_cond(&zeros, &(&p_t * (&lp_t - &log_q)?)?)?;
        let q = log_q.exp()?;
        let penalty_terms = mask.where_cond(&q, &zeros)?;
        Ok((kl_terms.sum(D::Minus1)?, penalty_terms.sum(D::Minus1)?))
    }

    /// `mean_rows(KL + γ·penalty)` with both means reported as f32.
    pub fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<LossOutput> {
        let (kl, penalty) = self.per_row(pred, target)?;
        let loss = (&kl + (&penalty * self.gamma)?)?.mean(0)?;
        let scalar = |t: &Tensor| -> Result<f32> {
            Ok(t.mean(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()? as f32)
        };
        Ok(LossOutput {
            kl: scalar(&kl)?,
            penalty: scalar(&penalty)?,
            loss,
        })
    }
}

/// Per-row divergence of a prediction from a target (plain slices, no candle).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowDivergence {
    /// `KL(target ‖ pred) = Σ_{target kept} p_t (log p_t − log q)` in nats (`+inf` if `pred`
    /// excludes a token the target keeps with p_t > 0).
    pub kl: f64,
    /// `Σ_{target == −inf} q`: the predicted mass on tokens the target truncated.
    pub truncated_mass: f64,
}

fn log_softmax_slice(x: &[f32]) -> Option<Vec<f64>> {
    let max = x
        .iter()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    if !max.is_finite() {
        return None;
    }
    let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    Some(x.iter().map(|&v| v as f64 - lse).collect())
}

/// [`RowDivergence`] of one row, computed in f64. Both rows must have the same length, no NaN /
/// `+inf`, and at least one finite entry each.
pub fn row_divergence(target: &[f32], pred: &[f32]) -> Result<RowDivergence> {
    if target.len() != pred.len() {
        return Err(NetsError::shape(
            "pred row",
            format!("{} entries (the target's)", target.len()),
            pred.len().to_string(),
        ));
    }
    for (what, row) in [("target", target), ("pred", pred)] {
        validate_logits(row, 0).map_err(|e| NetsError::logits(what, e))?;
    }
    let all_masked =
        |what: &str| NetsError::logits(what, adasamp_sampling::SamplingError::AllMasked { row: 0 });
    let lp_t = log_softmax_slice(target).ok_or_else(|| all_masked("target"))?;
    let lq = log_softmax_slice(pred).ok_or_else(|| all_masked("pred"))?;
    let mut kl = 0.0;
    let mut truncated_mass = 0.0;
    for i in 0..target.len() {
        if target[i] == f32::NEG_INFINITY {
            truncated_mass += lq[i].exp();
        } else {
            let p = lp_t[i].exp();
            if p > 0.0 {
                kl += p * (lp_t[i] - lq[i]);
            }
        }
    }
    Ok(RowDivergence { kl, truncated_mass })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn hand_computed_example() {
        let ninf = f32::NEG_INFINITY;
        let target = [0.0f32, (3.0f32).ln(), ninf];
        let pred = [0.0f32, 0.0, 0.0];
        let r = row_divergence(&target, &pred).unwrap();
        let kl = 0.25 * (0.75f64).ln() + 0.75 * (2.25f64).ln();
        assert!((r.kl - kl).abs() < 1e-7, "{r:?}");
        assert!((r.truncated_mass - 1.0 / 3.0).abs() < 1e-7);

        let dev = Device::Cpu;
        let t = Tensor::new(&[target], &dev).unwrap();
        let p = Tensor::new(&[pred], &dev).unwrap();
        let out = TruncatedLogitsLoss::new(2.0)
            .unwrap()
            .forward(&p, &t)
            .unwrap();
        assert!((out.kl as f64 - kl).abs() < 1e-6);
        assert!((out.penalty as f64 - 1.0 / 3.0).abs() < 1e-6);
        let loss = out.loss.to_scalar::<f32>().unwrap() as f64;
        assert!((loss - (kl + 2.0 / 3.0)).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_inputs() {
        assert!(row_divergence(&[0.0], &[0.0, 1.0]).is_err());
        assert!(row_divergence(&[f32::NEG_INFINITY], &[0.0]).is_err());
        assert!(row_divergence(&[f32::NAN], &[0.0]).is_err());
        assert!(TruncatedLogitsLoss::new(-1.0).is_err());
        assert!(TruncatedLogitsLoss::new(f64::NAN).is_err());
    }
}
