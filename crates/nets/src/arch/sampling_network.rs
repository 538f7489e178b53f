//! SamplingNetwork(d_model, d_ff, n_blocks, n_heads, scale) (SPEC §2).
//!
//! ```text
//! x   = SwiGLU(1, 32, d)(lp)                         per token            [N, V, d]
//! for each block:  x = LN1(x + Attn(x));  x = LN2(x + SwiGLU(d, d_ff, d)(x))   (post-LN)
//! c   = mean over kept tokens of x                                        [N, d]
//! l_mod = SwiGLU(2d, d, 1)([x, c])                   per token            [N, V]
//! mult  = softplus(SwiGLU(d, d/2, 1)(c)) if scale, else exactly 1        [N, 1]
//! l'    = mult · (lp + l_mod)
//! (s, τ) = softplus(SwiGLU(d, d/2, 2)(c))                                 [N, 1] each
//! out   = l' + logsigmoid(s·l' + τ)
//! ```
//! `Attn` is [`LinearAttention`] (non-causal, over the vocabulary axis, `φ = elu + 1`,
//! denominator `+ 1e-6`, then `Linear(d→d)`); LN is [`LayerNorm`] (ε = 1e-5).
//!
//! Parameters: `encoder.*`, `blocks.{i}.attn.qkv.*`, `blocks.{i}.attn.out.*`, `blocks.{i}.ln1.*`,
//! `blocks.{i}.ffn.{gate,up,down}.*`, `blocks.{i}.ln2.*`, `transform.*` (the `l_mod` head),
//! `scale.*` (only with `scale: true`), `truncation.*`.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::{finish, masked_mean_over_vocab, Prepared};
use crate::config::SamplingNetworkConfig;
use crate::error::Result;
use crate::layers::{soft_truncation_gate, softplus, LayerNorm, LinearAttention, SwiGlu};

/// One post-LN block: `x = LN1(x + Attn(x)); x = LN2(x + FFN(x))`.
#[derive(Clone, Debug)]
pub struct Block {
    attn: LinearAttention,
    ln1: LayerNorm,
    ffn: SwiGlu,
    ln2: LayerNorm,
}

impl Block {
    /// Reads `attn`, `ln1`, `ffn`, `ln2` under `vb`.
    pub fn new(vb: VarBuilder, d: usize, d_ff: usize, n_heads: usize) -> Result<Self> {
        Ok(Self {
            attn: LinearAttention::new(vb.pp("attn"), d, n_heads)?,
            ln1: LayerNorm::new(vb.pp("ln1"), d)?,
            ffn: SwiGlu::new(vb.pp("ffn"), d, d_ff, d)?,
            ln2: LayerNorm::new(vb.pp("ln2"), d)?,
        })
    }

    /// `x: [N, V, d]`, `keep: [N, V]` → `[N, V, d]`.
    pub fn forward(&self, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let x = self.ln1.forward(&(x + self.attn.forward(x, keep)?)?)?;
        self.ln2.forward(&(&x + self.ffn.forward(&x)?)?)
    }
}

/// The SamplingNetwork.
#[derive(Clone, Debug)]
pub struct SamplingNetwork {
    encoder: SwiGlu,
    blocks: Vec<Block>,
    transform: SwiGlu,
    scale: Option<SwiGlu>,
    truncation: SwiGlu,
}

impl SamplingNetwork {
    /// Reads the parameters from `vb` (names in the module doc).
    pub fn new(vb: VarBuilder, config: &SamplingNetworkConfig) -> Result<Self> {
        let d = config.d_model;
        let encoder = SwiGlu::new(vb.pp("encoder"), 1, config.encoder_hidden, d)?;
        let blocks = (0..config.n_blocks)
            .map(|i| Block::new(vb.pp("blocks").pp(i), d, config.d_ff, config.n_heads))
            .collect::<Result<Vec<_>>>()?;
        let transform = SwiGlu::new(vb.pp("transform"), 2 * d, d, 1)?;
        let scale = if config.scale {
            Some(SwiGlu::new(vb.pp("scale"), d, d / 2, 1)?)
        } else {
            None
        };
        let truncation = SwiGlu::new(vb.pp("truncation"), d, d / 2, 2)?;
        Ok(Self {
            encoder,
            blocks,
            transform,
            scale,
            truncation,
        })
    }

    /// `[N, V]` prepared input → `[N, V]` new logits (`-inf` at masked tokens).
    pub fn forward(&self, prepared: &Prepared) -> Result<Tensor> {
        let lp = &prepared.lp;
        let keep = &prepared.keep;
        let mut x = self.encoder.forward(&lp.unsqueeze(D::Minus1)?)?;
        for block in &self.blocks {
            x = block.forward(&x, keep)?;
        }
        let c = masked_mean_over_vocab(&x, keep)?; // [N, d]
                                                   // transform([x_t, c]) without materialising the [N, V, 2d] concatenation.
        let l_mod = self
            .transform
            .forward_with_context(&x, &c)?
            .squeeze(D::Minus1)?;
        let mut l = (lp + l_mod)?;
        if let Some(scale) = &self.scale {
            let mult = softplus(&scale.forward(&c)?)?; // [N, 1]
            l = l.broadcast_mul(&mult)?;
        }
        let st = softplus(&self.truncation.forward(&c)?)?; // [N, 2]
        let out = soft_truncation_gate(&l, &st.narrow(1, 0, 1)?, &st.narrow(1, 1, 1)?)?;
        finish(&out, prepared)
    }
}
