//! The three learned-sampler architectures of SPEC §2 and the input handling they share.
//!
//! # Masked (`-inf`) input logits
//!
//! A raw logit of `-inf` marks a token that cannot be produced. Every architecture treats such a
//! token as **absent from the vocabulary**:
//!
//! 1. [`prepare`] computes `lp = log_softmax(z)` (masked entries are `-inf` there) and replaces the
//!    masked entries by the finite sentinel [`MASKED_LP_SENTINEL`] (`0.0`) so the per-token
//!    networks never see an infinity (an MLP on `-inf` gives NaN). It also returns the 0/1 `keep`
//!    weights.
//! 2. Every reduction over the vocabulary (the attention sums `Σ_j φ(k_j)v_jᵀ`, `Σ_j φ(k_j)`, the
//!    pool `c`, the entropy) runs over kept tokens only: the masked terms are multiplied by an
//!    exact 0 (finite × 0 = 0), the mean divides by the number of kept tokens. The sentinel's value
//!    therefore never influences any kept token's output.
//! 3. [`finish`] writes `-inf` at every masked position of the output (`where_cond`, so the
//!    gradient into the sentinel branch is exactly 0).
//!
//! Consequences: masked in ⇒ `-inf` out, unmasked in ⇒ finite out, a row with a single kept token
//! works (its log-probability is 0, entropy 0); the output for the kept tokens equals the output
//! for the same row with the masked tokens deleted. A row whose every entry is `-inf`, or any
//! NaN / `+inf` entry, is rejected with [`NetsError::InvalidLogits`].

pub mod distribution_aware;
pub mod local;
pub mod sampling_network;

use candle_core::{DType, Tensor, D};

use candle_nn::VarBuilder;

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};

pub use distribution_aware::SimpleDistributionAwareTransform;
pub use local::LocalProbabilityTransform;
pub use sampling_network::SamplingNetwork;

/// One of the three architectures, built from a configuration (crate-internal dispatch; the
/// parameter manifest and [`crate::LearnedSampler`] both build one).
#[derive(Clone, Debug)]
pub(crate) enum Net {
    Local(LocalProbabilityTransform),
    DistributionAware(SimpleDistributionAwareTransform),
    Sampling(SamplingNetwork),
}

impl Net {
    /// Builds the architecture of `config`, reading its parameters from `vb`.
    pub(crate) fn new(config: &SamplerConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match config {
            SamplerConfig::LocalProbabilityTransform(c) => {
                Net::Local(LocalProbabilityTransform::new(vb, c)?)
            }
            SamplerConfig::SimpleDistributionAwareTransform(c) => {
                Net::DistributionAware(SimpleDistributionAwareTransform::new(vb, c)?)
            }
            SamplerConfig::SamplingNetwork(c) => Net::Sampling(SamplingNetwork::new(vb, c)?),
        })
    }

    /// The architecture's forward pass on prepared inputs.
    pub(crate) fn forward(&self, prepared: &Prepared) -> Result<Tensor> {
        match self {
            Net::Local(n) => n.forward(prepared),
            Net::DistributionAware(n) => n.forward(prepared),
            Net::Sampling(n) => n.forward(prepared),
        }
    }
}

/// Value that replaces `lp = -inf` (masked tokens) before the per-token networks run. Any finite
/// value gives identical outputs for the kept tokens (see the module doc).
pub const MASKED_LP_SENTINEL: f64 = 0.0;

/// The per-row quantities every architecture starts from; computed without gradient.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// `[N, V]`: `log_softmax(z)` at kept tokens, [`MASKED_LP_SENTINEL`] at masked ones.
    pub lp: Tensor,
    /// `[N, V]` `u8`: 1 where the input logit is `-inf`.
    pub mask: Tensor,
    /// `[N, V]` in the model dtype: 1.0 at kept tokens, 0.0 at masked ones.
    pub keep: Tensor,
    /// `[N, V]`: `p = softmax(z)` (exactly 0 at masked tokens).
    pub p: Tensor,
    /// `[N, 1]`: `max lp = −log Σ exp(z − max z)`.
    pub lp_max: Tensor,
}

/// `(N, V)` of a logits matrix `z: [N, V]` with N ≥ 1 and V ≥ 1, else [`NetsError::BadShape`].
pub fn logits_dims(z: &Tensor) -> Result<(usize, usize)> {
    let (n, v) = z.dims2().map_err(|_| {
        NetsError::shape(
            "logits",
            "a [rows, vocabulary] matrix",
            format!("{:?}", z.dims()),
        )
    })?;
    if n == 0 || v == 0 {
        return Err(NetsError::shape(
            "logits",
            "at least one row and one column",
            format!("[{n}, {v}]"),
        ));
    }
    Ok((n, v))
}

/// Checks `z` (`[N, V]`, N ≥ 1, V ≥ 1, no NaN / `+inf`, at least one finite entry per row). A
/// bad row is reported by [`adasamp_sampling::row::validate_logits`] (row and token named).
pub fn validate_logits(z: &Tensor) -> Result<(usize, usize)> {
    let (n, v) = logits_dims(z)?;
    let bad = (z.ne(z)?.to_dtype(DType::F64)? + z.eq(f64::INFINITY)?.to_dtype(DType::F64)?)?
        .sum_all()?
        .to_scalar::<f64>()?;
    let finite = z
        .gt(f64::NEG_INFINITY)?
        .to_dtype(DType::F64)?
        .sum(1)?
        .to_vec1::<f64>()?;
    if bad > 0.0 || finite.contains(&0.0) {
        // Only on the error path: find the first bad row on the CPU, named by the one check.
        let rows = z.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for (r, row) in rows.iter().enumerate() {
            adasamp_sampling::row::validate_logits(row, r)
                .map_err(|e| NetsError::logits("input logits", e))?;
        }
    }
    Ok((n, v))
}

/// Validates `z` ([`validate_logits`]) and computes [`Prepared`] from `z.detach()`:
/// `lp = z − max z − log Σ exp(z − max z)`, `p = exp(lp)`, masked `lp` → sentinel.
pub fn prepare(z: &Tensor) -> Result<Prepared> {
    validate_logits(z)?;
    let z = z.detach();
    let mask = z.eq(f64::NEG_INFINITY)?;
    let max = z.max_keepdim(D::Minus1)?;
    let diff = z.broadcast_sub(&max)?;
    let lse = diff.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let lp_true = diff.broadcast_sub(&lse)?;
    let p = lp_true.exp()?;
    let sentinel = (lp_true.zeros_like()? + MASKED_LP_SENTINEL)?;
    let lp = mask.where_cond(&sentinel, &lp_true)?;
    let keep = (mask.to_dtype(z.dtype())?.neg()? + 1.0)?;
    let lp_max = lse.neg()?;
    Ok(Prepared {
        lp,
        mask,
        keep,
        p,
        lp_max,
    })
}

/// Writes `-inf` at the masked positions of `out` (`[N, V]`).
pub fn finish(out: &Tensor, prepared: &Prepared) -> Result<Tensor> {
    let neg_inf = Tensor::new(f64::NEG_INFINITY, out.device())?
        .to_dtype(out.dtype())?
        .broadcast_as(out.shape())?;
    Ok(prepared.mask.where_cond(&neg_inf, out)?)
}

/// Mean over the kept tokens: `x: [N, V, d]`, `keep: [N, V]` → `[N, d]`,
/// `c = Σ_j keep_j x_j / Σ_j keep_j`.
pub fn masked_mean_over_vocab(x: &Tensor, keep: &Tensor) -> Result<Tensor> {
    let num = x.broadcast_mul(&keep.unsqueeze(D::Minus1)?)?.sum(1)?;
    let den = keep.sum_keepdim(1)?;
    Ok(num.broadcast_div(&den)?)
}
