//! Floating-point operations per token of each architecture (the useful work of the forward,
//! per kept token; per-row terms such as the heads on the pooled `c` are O(1) per row and left
//! out).
//!
//! Convention: a multiply-add of a Linear layer (or of the attention's `φ(k)vᵀ` / `φ(q)ᵀKV`
//! products) counts 2 ([`FlopCount::matmul`]); every other per-token operation — an activation
//! (silu, φ, logsigmoid, each counted as 1 however it is evaluated), a gating product, a
//! residual add, a LayerNorm step — counts 1 ([`FlopCount::elementwise`]). Padding and the
//! block-diagonal zeros the fast path multiplies through are not counted. With `f(h) = ⌊2h/3⌋`:
//!
//! | architecture | matmul | elementwise |
//! |---|---|---|
//! | local(h) | `6f` (gate, up: 1→f; down: f→1) | `2f + 5` (silu, gating, residual, gate ×4) |
//! | simple(h) | `2h + 4hf + 2f` (local 1→h; gate, up: h→f, the 2 statistics fold into a per-row bias; down f→1) | `h + 2f + 7` (2 for the entropy term) |
//! | sampling(d, d_ff, B, H, e) | `4f_e + 2f_e·d` + B·(`6d² + 4d²/H + 2d + 2d² + 6d·f_ff`) + `4d·f_d + 2f_d` | `2f_e` + B·(`2d` (φ) `+ 2d` (k-sum, division) `+ 16d` (2 residuals + 2 LayerNorms) `+ 2f_ff`) + `d` (pool) `+ 2f_d + 6` |
//!
//! with `f_e = f(encoder_hidden)`, `f_ff = f(d_ff)`, `f_d = f(d)`; per block: `qkv` `6d²`,
//! `Σφ(k)vᵀ` and `φ(q)ᵀKV` `2·2d·(d/H)`, the denominators `2d`, the output projection `2d²`,
//! the feed-forward `4d·f_ff + 2f_ff·d`.

use crate::config::SamplerConfig;
use crate::layers::SwiGlu;

/// FLOPs per token of one forward, split into matrix products and elementwise work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlopCount {
    /// 2 per multiply-add of the per-token linear maps.
    pub matmul: u64,
    /// 1 per other per-token operation.
    pub elementwise: u64,
}

impl FlopCount {
    /// `matmul + elementwise`.
    pub fn total(&self) -> u64 {
        self.matmul + self.elementwise
    }
}

impl SamplerConfig {
    /// FLOPs per (kept) token of this architecture's forward; formulas in [`crate::fast::flops`].
    pub fn flops_per_token(&self) -> FlopCount {
        let f = |h: usize| SwiGlu::hidden_width(h) as u64;
        match self {
            SamplerConfig::LocalProbabilityTransform(c) => {
                let f = f(c.hidden);
                FlopCount {
                    matmul: 6 * f,
                    elementwise: 2 * f + 5,
                }
            }
            SamplerConfig::SimpleDistributionAwareTransform(c) => {
                let h = c.hidden as u64;
                let f = f(c.hidden);
                FlopCount {
                    matmul: 2 * h + 4 * h * f + 2 * f,
                    elementwise: h + 2 * f + 7,
                }
            }
            SamplerConfig::SamplingNetwork(c) => {
                let d = c.d_model as u64;
                let heads = c.n_heads.max(1) as u64;
                let blocks = c.n_blocks as u64;
                let (fe, ff, fd) = (f(c.encoder_hidden), f(c.d_ff), f(c.d_model));
                let block_mm = 6 * d * d + 4 * d * (d / heads) + 2 * d + 2 * d * d + 6 * d * ff;
                let block_ew = 2 * d + 2 * d + 16 * d + 2 * ff;
                FlopCount {
                    matmul: 4 * fe + 2 * fe * d + blocks * block_mm + 4 * d * fd + 2 * fd,
                    elementwise: 2 * fe + blocks * block_ew + d + 2 * fd + 6,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_counts() {
        let c = SamplerConfig::from_yaml_str(
            "architecture: local_probability_transform\nhidden: 64\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.flops_per_token().matmul, 6 * 42);
        let c = SamplerConfig::from_yaml_str(
            "architecture: sampling_network\nd_model: 32\nd_ff: 64\nn_blocks: 4\nn_heads: 4\nscale: true\n",
            "t",
        )
        .unwrap();
        let f = c.flops_per_token();
        // 4·21 + 2·21·32 + 4·(6144 + 1024 + 64 + 2048 + 8064) + 4·32·21 + 42
        assert_eq!(f.matmul, 84 + 1344 + 4 * 17344 + 2688 + 42);
    }
}
