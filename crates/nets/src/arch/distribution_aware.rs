//! SimpleDistributionAwareTransform(h, dynamic_truncation) (SPEC §2).
//!
//! Per row, without gradient: stats `[max lp, H]`, `H = −Σ p·lp` over kept tokens. Per token:
//! `f = silu(Linear(1→h)(lp))`, `mod = SwiGLU(h+2, h, 1)([f, max lp, H])`, `l' = lp + mod`. Gate
//! `out = l' + logsigmoid(s·l' + τ)` with
//! - dynamic: `(s, τ) = softplus(Linear(2→2)([max lp, H]))` per row;
//! - static: `s = softplus(s_raw)`, `τ = softplus(τ_raw)`, learned raw scalars initialised to
//!   0.5413 and 10.0 (so `s ≈ 1.0`, `τ ≈ 10.0`).
//!
//! Parameters: `local.{weight,bias}`, `mlp.{gate,up,down}.{weight,bias}`, and either
//! `truncation.{weight,bias}` (dynamic, `[2, 2]`, `[2]`) or `truncation.scale_raw` `[1]` and
//! `truncation.threshold_raw` `[1]` (static).

use candle_core::{Tensor, D};
use candle_nn::{Init, VarBuilder};

use super::{finish, Prepared};
use crate::config::DistributionAwareConfig;
use crate::error::Result;
use crate::layers::{soft_truncation_gate, softplus, Linear, SwiGlu};

/// Initial raw (pre-softplus) value of the static gate scale.
pub const INIT_SCALE_RAW: f64 = 0.5413;
/// Initial raw (pre-softplus) value of the static gate threshold.
pub const INIT_THRESHOLD_RAW: f64 = 10.0;

#[derive(Clone, Debug)]
enum Truncation {
    Dynamic(Linear),
    Static {
        scale_raw: Tensor,
        threshold_raw: Tensor,
    },
}

/// The SimpleDistributionAwareTransform network.
#[derive(Clone, Debug)]
pub struct SimpleDistributionAwareTransform {
    local: Linear,
    mlp: SwiGlu,
    truncation: Truncation,
}

/// `[N, 2]` per-row statistics `[max lp, H]` with `H = −Σ_{kept} p·lp` (detached).
pub fn distribution_stats(prepared: &Prepared) -> Result<Tensor> {
    // Masked tokens have p = 0 and lp = sentinel (finite), so they add exactly 0.
    let entropy = (&prepared.p * &prepared.lp)?
        .sum_keepdim(D::Minus1)?
        .neg()?;
    Ok(Tensor::cat(&[&prepared.lp_max, &entropy], D::Minus1)?.detach())
}

impl SimpleDistributionAwareTransform {
    /// Reads the parameters from `vb` (names in the module doc).
    pub fn new(vb: VarBuilder, config: &DistributionAwareConfig) -> Result<Self> {
        let h = config.hidden;
        let local = Linear::new(vb.pp("local"), 1, h)?;
        let mlp = SwiGlu::new(vb.pp("mlp"), h + 2, h, 1)?;
        let t = vb.pp("truncation");
        let truncation = if config.dynamic_truncation {
            Truncation::Dynamic(Linear::new(t, 2, 2)?)
        } else {
            Truncation::Static {
                scale_raw: t.get_with_hints(1, "scale_raw", Init::Const(INIT_SCALE_RAW))?,
                threshold_raw: t.get_with_hints(
                    1,
                    "threshold_raw",
                    Init::Const(INIT_THRESHOLD_RAW),
                )?,
            }
        };
        Ok(Self {
            local,
            mlp,
            truncation,
        })
    }

    /// `[N, V]` prepared input → `[N, V]` new logits (`-inf` at masked tokens).
    pub fn forward(&self, prepared: &Prepared) -> Result<Tensor> {
        let lp = &prepared.lp;
        let stats = distribution_stats(prepared)?;
        let features = self.local.forward(&lp.unsqueeze(D::Minus1)?)?.silu()?;
        // mlp([f_t, max lp, H]) without materialising the [N, V, h+2] concatenation.
        let modification = self
            .mlp
            .forward_with_context(&features, &stats)?
            .squeeze(D::Minus1)?;
        let l = (lp + modification)?;
        let (s, tau) = match &self.truncation {
            Truncation::Dynamic(head) => {
                let st = softplus(&head.forward(&stats)?)?;
                (st.narrow(1, 0, 1)?, st.narrow(1, 1, 1)?)
            }
            Truncation::Static {
                scale_raw,
                threshold_raw,
            } => (softplus(scale_raw)?, softplus(threshold_raw)?),
        };
        let out = soft_truncation_gate(&l, &s, &tau)?;
        finish(&out, prepared)
    }
}
