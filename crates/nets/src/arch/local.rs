//! LocalProbabilityTransform(h) (SPEC §2): per token `l' = lp + SwiGLU(1, h, 1)(lp)`, then the
//! soft truncation gate `out = l' + logsigmoid(s·l' + τ)` with learned scalars `s` (init 1.0) and
//! `τ` (init 10.0), used as they are (no softplus).
//!
//! Parameters: `mlp.{gate,up,down}.{weight,bias}`, `truncation.scale` `[1]`,
//! `truncation.threshold` `[1]`.

use candle_core::{Tensor, D};
use candle_nn::{Init, VarBuilder};

use super::{finish, Prepared};
use crate::config::LocalConfig;
use crate::error::Result;
use crate::layers::{soft_truncation_gate, SwiGlu};

/// Initial value of the gate scale `s`.
pub const INIT_SCALE: f64 = 1.0;
/// Initial value of the gate threshold `τ`.
pub const INIT_THRESHOLD: f64 = 10.0;

/// The LocalProbabilityTransform network.
#[derive(Clone, Debug)]
pub struct LocalProbabilityTransform {
    mlp: SwiGlu,
    scale: Tensor,
    threshold: Tensor,
}

impl LocalProbabilityTransform {
    /// Reads the parameters from `vb` (names in the module doc).
    pub fn new(vb: VarBuilder, config: &LocalConfig) -> Result<Self> {
        let mlp = SwiGlu::new(vb.pp("mlp"), 1, config.hidden, 1)?;
        let t = vb.pp("truncation");
        let scale = t.get_with_hints(1, "scale", Init::Const(INIT_SCALE))?;
        let threshold = t.get_with_hints(1, "threshold", Init::Const(INIT_THRESHOLD))?;
        Ok(Self {
            mlp,
            scale,
            threshold,
        })
    }

    /// `[N, V]` prepared input → `[N, V]` new logits (`-inf` at masked tokens).
    pub fn forward(&self, prepared: &Prepared) -> Result<Tensor> {
        let lp = &prepared.lp;
        let modification = self
            .mlp
            .forward(&lp.unsqueeze(D::Minus1)?)?
            .squeeze(D::Minus1)?;
        let l = (lp + modification)?;
        let out = soft_truncation_gate(&l, &self.scale, &self.threshold)?;
        finish(&out, prepared)
    }
}
