//! Building blocks shared by the architectures (SPEC §2), all dtype-generic (f32 for use, f64 for
//! gradient checks) and differentiable through candle's autograd.
//!
//! Every layer acts on the last axis only (per token); nothing here mixes tokens except
//! [`LinearAttention`], whose only cross-token operations are order-free sums over the
//! vocabulary axis. That is what makes the architectures permutation-equivariant.
//!
//! Weights are read from a [`VarBuilder`] by name (candle layout: `Linear` weight `[out, in]`,
//! bias `[out]`), with PyTorch-default init hints: `U(-1/√in, 1/√in)` for Linear weight and
//! bias, ones/zeros for LayerNorm (the seeded initialiser in [`crate::params`] honours them).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::error::Result;

/// `softplus(x) = log(1 + eˣ)`, computed stably as `relu(x) + log(1 + exp(−|x|))`
/// (= `max(x,0) + log1p(exp(−|x|))`). `softplus(+inf) = +inf`, `softplus(−inf) = 0`, never NaN
/// for non-NaN input; candle's autograd gives exactly ½ at 0 (relu′(0) = 1, |·|′(0) = 1).
/// Unary ops only (fast on large tensors).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    Ok((x.relu()? + tail)?)
}

/// `logsigmoid(x) = log(1/(1+e⁻ˣ)) = −softplus(−x)` (stable, see [`softplus`]).
/// `logsigmoid(−inf) = −inf` (not NaN), `logsigmoid(+inf) = 0`; gradient ½ at 0.
pub fn logsigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(softplus(&x.neg()?)?.neg()?)
}

/// The linear-attention feature map `φ(x) = elu(x) + 1`, computed exactly as
/// `relu(x) + exp(x − relu(x))` (= `max(x,0) + exp(min(x,0))`: no `eˣ − 1 + 1` cancellation,
/// always > 0; gradient 1 at 0 as it should be). For finite inputs (the attention's are).
pub fn elu_plus_one(x: &Tensor) -> Result<Tensor> {
    let r = x.relu()?;
    Ok((&r + (x - &r)?.exp()?)?)
}

/// Soft truncation gate (SPEC §2): `out = l' + logsigmoid(s·l' + τ)`.
///
/// `l` is `[N, V]`; `s` and `tau` broadcast against it (`[1]` for learned scalars, `[N, 1]` for
/// per-row values). With `s > 0` a `−inf` entry of `l` gives `−inf` (`s·(−inf) + τ = −inf`,
/// `logsigmoid(−inf) = −inf`, `−inf + −inf = −inf`), never NaN.
pub fn soft_truncation_gate(l: &Tensor, s: &Tensor, tau: &Tensor) -> Result<Tensor> {
    let z = l.broadcast_mul(s)?.broadcast_add(tau)?;
    Ok((l + logsigmoid(&z)?)?)
}

/// Init hint for a Linear layer's weight and bias: PyTorch's default `U(−1/√in, 1/√in)`.
pub fn linear_init(in_features: usize) -> Init {
    let bound = 1.0 / (in_features as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Affine map on the last axis: `y = x·Wᵀ + b`, `W: [out, in]`, `b: [out]`.
/// Parameters: `<prefix>.weight`, `<prefix>.bias`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Reads `weight [out, in]` and `bias [out]` from `vb` (init hint `U(−1/√in, 1/√in)`).
    pub fn new(vb: VarBuilder, in_features: usize, out_features: usize) -> Result<Self> {
        let init = linear_init(in_features);
        let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
        let bias = vb.get_with_hints(out_features, "bias", init)?;
        Ok(Self { weight, bias })
    }

    /// `x: [..., in] → [..., out]`, `y = x·Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (in_f, lead) = match dims.split_last() {
            Some((last, lead)) => (*last, lead.to_vec()),
            None => {
                return Err(crate::error::NetsError::shape(
                    "Linear input",
                    "at least one axis",
                    "a scalar",
                ))
            }
        };
        let m: usize = lead.iter().product();
        let out_f = self.weight.dim(0)?;
        let y = x
            .reshape((m, in_f))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        let mut out_dims = lead;
        out_dims.push(out_f);
        Ok(y.reshape(out_dims)?)
    }

    /// `Linear` applied to the per-token concatenation `[x_t, ctx]` of token features
    /// `x: [N, V, k]` with per-row context `ctx: [N, m]` (weight `[out, k + m]`), without
    /// materialising the concatenation: `y = x·W[:, :k]ᵀ + (ctx·W[:, k:]ᵀ + b)` broadcast over V.
    pub fn forward_with_context(&self, x: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let (n, v, k) = x.dims3()?;
        let m = ctx.dim(1)?;
        let out_f = self.weight.dim(0)?;
        // Contiguous copies: candle's CUDA matmul takes no strided (narrowed) operands.
        let w_x = self.weight.narrow(1, 0, k)?.contiguous()?;
        let w_c = self.weight.narrow(1, k, m)?.contiguous()?;
        let per_row = ctx.matmul(&w_c.t()?)?.broadcast_add(&self.bias)?; // [N, out]
        let y = x
            .reshape((n * v, k))?
            .matmul(&w_x.t()?)?
            .reshape((n, v, out_f))?
            .broadcast_add(&per_row.unsqueeze(1)?)?;
        Ok(y)
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

/// `SwiGLU(in, h, out)` (SPEC §2): hidden width `f = floor(2h/3)`;
/// `y = down(silu(gate(x)) ⊙ up(x))`, three [`Linear`]s with biases
/// (`gate, up: in→f`, `down: f→out`). Parameters `<prefix>.{gate,up,down}.{weight,bias}`.
#[derive(Clone, Debug)]
pub struct SwiGlu {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl SwiGlu {
    /// The hidden width `floor(2h/3)` of a `SwiGLU(·, h, ·)`.
    pub fn hidden_width(h: usize) -> usize {
        2 * h / 3
    }

    /// Reads the three Linear layers under `vb` (`gate`, `up`, `down`).
    pub fn new(vb: VarBuilder, in_features: usize, h: usize, out_features: usize) -> Result<Self> {
        let f = Self::hidden_width(h);
        Ok(Self {
            gate: Linear::new(vb.pp("gate"), in_features, f)?,
            up: Linear::new(vb.pp("up"), in_features, f)?,
            down: Linear::new(vb.pp("down"), f, out_features)?,
        })
    }

    /// `x: [..., in] → [..., out]`, `down(silu(gate(x)) ⊙ up(x))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?.silu()?;
        let u = self.up.forward(x)?;
        self.down.forward(&(g * u)?)
    }

    /// The SwiGLU of the per-token concatenation `[x_t, ctx]` (`x: [N, V, k]`, `ctx: [N, m]`,
    /// `in = k + m`) → `[N, V, out]`, without materialising the concatenation (see
    /// [`Linear::forward_with_context`]).
    pub fn forward_with_context(&self, x: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward_with_context(x, ctx)?.silu()?;
        let u = self.up.forward_with_context(x, ctx)?;
        self.down.forward(&(g * u)?)
    }
}

/// Layer normalisation over the last axis with learned affine parameters (PyTorch
/// `nn.LayerNorm(d)`): `y = (x − mean) / √(var + ε) ⊙ weight + bias`, biased variance,
/// `ε = 1e-5`. Parameters `<prefix>.weight` (init 1), `<prefix>.bias` (init 0).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

/// PyTorch's default LayerNorm epsilon.
pub const LAYER_NORM_EPS: f64 = 1e-5;

impl LayerNorm {
    /// Reads `weight [d]` and `bias [d]` from `vb`.
    pub fn new(vb: VarBuilder, d: usize) -> Result<Self> {
        let weight = vb.get_with_hints(d, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(d, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }

    /// `x: [..., d] → [..., d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?;
        Ok(y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// Non-causal multi-head linear attention over the vocabulary axis (SPEC §2):
/// `q, k, v` = the three consecutive `d`-wide chunks of `Linear(d→3d)(x)`; head `h` owns channels
/// `h·d/H .. (h+1)·d/H`; with `φ = elu + 1`,
/// `out_i = φ(q_i)ᵀ(Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j) + 1e-6)` per head, concatenated, then
/// `Linear(d→d)`. The sums over `j` run over the kept (unmasked) tokens only.
/// Parameters `<prefix>.qkv.{weight,bias}` (`[3d, d]`, `[3d]`), `<prefix>.out.{weight,bias}`.
///
/// Implementation: the per-head products are one `d×d` product `Σ_j φ(k_j) v_jᵀ` masked to its
/// block diagonal, so everything is a batched matmul (mathematically identical to per-head).
#[derive(Clone, Debug)]
pub struct LinearAttention {
    qkv: Linear,
    out: Linear,
    d: usize,
    /// `[d, d]` block-diagonal 0/1 matrix: 1 where both channels belong to the same head.
    head_mask: Tensor,
}

/// The `1e-6` added to the linear-attention denominator.
pub const ATTENTION_EPS: f64 = 1e-6;

impl LinearAttention {
    /// Reads `qkv` and `out` under `vb`; `d % n_heads == 0` is the caller's responsibility
    /// (checked by [`crate::SamplerConfig::validate`]).
    pub fn new(vb: VarBuilder, d: usize, n_heads: usize) -> Result<Self> {
        let qkv = Linear::new(vb.pp("qkv"), d, 3 * d)?;
        let out = Linear::new(vb.pp("out"), d, d)?;
        let head_mask = head_mask(d, n_heads, qkv.weight.dtype(), qkv.weight.device())?;
        Ok(Self {
            qkv,
            out,
            d,
            head_mask,
        })
    }

    /// `x: [N, V, d]`, `keep: [N, V]` (1 for tokens that take part in the sums over the
    /// vocabulary, 0 for masked ones) → `[N, V, d]`.
    pub fn forward(&self, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let d = self.d;
        let qkv = self.qkv.forward(x)?;
        let q = qkv.narrow(D::Minus1, 0, d)?.contiguous()?;
        let k = qkv.narrow(D::Minus1, d, d)?.contiguous()?;
        let v = qkv.narrow(D::Minus1, 2 * d, d)?.contiguous()?;
        let phi_q = elu_plus_one(&q)?;
        let phi_k = elu_plus_one(&k)?.broadcast_mul(&keep.unsqueeze(D::Minus1)?)?;
        // Σ_j φ(k_j) v_jᵀ for all channel pairs: [N, d, d], then keep only same-head pairs.
        let kv = phi_k.t()?.matmul(&v)?.broadcast_mul(&self.head_mask)?;
        let num = phi_q.matmul(&kv)?;
        let k_sum = phi_k.sum_keepdim(1)?; // [N, 1, d]
        let den = phi_q
            .broadcast_mul(&k_sum)?
            .broadcast_matmul(&self.head_mask)?;
        let att = num.div(&(den + ATTENTION_EPS)?)?;
        self.out.forward(&att)
    }
}

/// `[d, d]` 0/1 matrix with ones where channels `a` and `b` belong to the same head.
fn head_mask(d: usize, n_heads: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let width = (d / n_heads.max(1)).max(1);
    let data: Vec<f64> = (0..d * d)
        .map(|i| {
            if (i / d) / width == (i % d) / width {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(data, (d, d), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn softplus_logsigmoid_values_and_infinities() {
        let x = t(&[
            f64::NEG_INFINITY,
            -800.0,
            -3.0,
            0.0,
            2.5,
            800.0,
            f64::INFINITY,
        ]);
        let sp = softplus(&x).unwrap().to_vec1::<f64>().unwrap();
        let ls = logsigmoid(&x).unwrap().to_vec1::<f64>().unwrap();
        let exact_sp = |v: f64| {
            if v.is_infinite() {
                v.max(0.0)
            } else {
                v.max(0.0) + (-v.abs()).exp().ln_1p()
            }
        };
        for (i, v) in [
            f64::NEG_INFINITY,
            -800.0,
            -3.0,
            0.0,
            2.5,
            800.0,
            f64::INFINITY,
        ]
        .iter()
        .enumerate()
        {
            let e = exact_sp(*v);
            assert!(
                (sp[i] - e).abs() <= 1e-12 * e.abs().max(1.0) || sp[i] == e,
                "{v}: {}",
                sp[i]
            );
            let el = -exact_sp(-*v);
            assert!(
                (ls[i] - el).abs() <= 1e-12 * el.abs().max(1.0) || ls[i] == el,
                "{v}: {}",
                ls[i]
            );
        }
        assert_eq!(ls[0], f64::NEG_INFINITY);
        assert_eq!(ls[6], 0.0);
        assert_eq!(sp[0], 0.0);
        assert_eq!(sp[6], f64::INFINITY);
    }

    #[test]
    fn gate_maps_neg_inf_to_neg_inf() {
        let l = t(&[f64::NEG_INFINITY, -5.0, 0.0]).unsqueeze(0).unwrap();
        let s = t(&[0.7]);
        let tau = t(&[10.0]);
        let out = soft_truncation_gate(&l, &s, &tau)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(out[0], f64::NEG_INFINITY);
        let expect = -5.0 - (1.0 + (-(0.7 * -5.0 + 10.0f64)).exp()).ln();
        assert!((out[1] - expect).abs() < 1e-12);
        assert!(out[2].is_finite());
    }

    #[test]
    fn derivatives_at_zero_are_exact() {
        use candle_core::Var;
        type Op = fn(&Tensor) -> Result<Tensor>;
        let cases: [(Op, f64); 3] = [(softplus, 0.5), (logsigmoid, 0.5), (elu_plus_one, 1.0)];
        for (f, expect) in cases {
            let x = Var::from_tensor(&t(&[0.0])).unwrap();
            let y = f(x.as_tensor()).unwrap().sum_all().unwrap();
            let g = y.backward().unwrap();
            let d = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[0];
            assert_eq!(d, expect);
        }
    }

    #[test]
    fn elu_plus_one_matches_definition() {
        let x = t(&[-30.0, -1.0, 0.0, 0.5, 3.0]);
        let y = elu_plus_one(&x).unwrap().to_vec1::<f64>().unwrap();
        for (xi, yi) in [-30.0f64, -1.0, 0.0, 0.5, 3.0].iter().zip(y) {
            let e = if *xi > 0.0 { xi + 1.0 } else { xi.exp() };
            assert!((yi - e).abs() < 1e-15);
        }
    }

    #[test]
    fn head_mask_is_block_diagonal() {
        let m = head_mask(4, 2, DType::F64, &Device::Cpu)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert_eq!(
            m,
            vec![
                vec![1.0, 1.0, 0.0, 0.0],
                vec![1.0, 1.0, 0.0, 0.0],
                vec![0.0, 0.0, 1.0, 1.0],
                vec![0.0, 0.0, 1.0, 1.0]
            ]
        );
    }
}
