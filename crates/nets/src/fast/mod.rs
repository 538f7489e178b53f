//! Fast CPU inference: [`FastSampler`] runs any learned sampler on `f32` logits rows in place,
//! one thread, with every buffer preallocated (a warm sampler allocates nothing per row).
//!
//! It computes exactly the forward of [`crate::arch`] (same formulas, same `-inf` semantics) in
//! hand-written f32 code:
//!
//! - `lp = log_softmax(z)` with `Σ exp` in f64; masked (`-inf`) tokens are **dropped** before the
//!   networks run (the candle forward computes them on a sentinel and overwrites them: the kept
//!   tokens' outputs are the same, see [`crate::arch`]) and get `-inf` back at the end;
//! - tokens are processed in tiles of [`TILE`] so the per-token activations stay in L1/L2;
//! - every per-token Linear is a register-blocked `[tile, in] × [in, out]` product over weights
//!   packed as `[in, out]` (AVX2 `f32x8` micro-tiles of 6 tokens × 16 outputs), SwiGLU's gate and
//!   up are one product, silu is fused with the gating product, a per-row context (the
//!   distribution statistics, the pooled `c`) folds into a per-row bias;
//! - the linear attention makes two passes per block over the token features `x` (kept for all
//!   tokens, `V × d`): pass 1 computes `q`, `k`, `v` per tile, stores `φ(q)` and accumulates
//!   `Σ_j φ(k_j)v_jᵀ` and `Σ_j φ(k_j)` per head (f64 across tiles); pass 2 computes each head's
//!   numerators `φ(q)·KV_h` and denominator `φ(q)·k_sum_h` (8-wide heads: one `f32x8` FMA per
//!   input, `kernels::attention_heads8`; other widths: one product with the block-diagonal
//!   `[d, d + heads]` matrix `[KV | k_sum]`), then output projection, residual, LN, SwiGLU
//!   feed-forward, residual, LN.
//!
//! The LocalProbabilityTransform is a scalar function of `lp` once its weights are fixed: it
//! runs on a cubic table of that function built and verified when the weights are packed
//! ([`scalar_table`]: within 1e-5·max(1, |out|) of the exact f64 function on `lp ∈ [−96, 0]`,
//! tokens outside that range evaluated exactly).
//!
//! [`grad`] is the training counterpart: forward, loss and backward of every network on the same
//! kernels ([`FastGrad`]).
//!
//! Outputs match the candle forward to f32 rounding (≈1e-6 relative, the local table ≤ 1e-5;
//! the tests bound `|fast − candle| ≤ 1e-4·max(1, |candle|)`), with `-inf` exactly at the
//! masked tokens.

pub mod flops;
pub mod grad;
mod kernels;
mod scalar_table;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use adasamp_sampling::math;
use adasamp_sampling::row::checked_max;
use candle_core::{DType, Device, Tensor};

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::layers::{SwiGlu, ATTENTION_EPS, LAYER_NORM_EPS};
use crate::sampler::LearnedSampler;
use kernels::{
    elu_plus_one, gate, gemm, layer_norm, pad8, silu, softplus, AlignedBuf, Packed, LANES,
};
use scalar_table::ScalarTable;

pub use flops::FlopCount;
pub use grad::{BatchGrad, FastGrad, GradRows, ParamLayout, RowLoss, SliceRows, TargetRow};

/// Tokens per tile of the per-token layers.
pub const TILE: usize = 60;
/// Tokens per tile of the LocalProbabilityTransform (scalar per-token state only).
const LOCAL_TILE: usize = 256;

/// Parameters by name as flat f32 vectors with their shapes.
struct Params {
    map: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Params {
    fn new(params: &[(String, Tensor)]) -> Result<Self> {
        let map = params
            .iter()
            .map(|(name, t)| {
                let v = t
                    .to_device(&Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                Ok((name.clone(), (t.dims().to_vec(), v)))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self { map })
    }

    /// The parameter `name` with `numel` elements.
    fn get(&self, name: &str, numel: usize) -> Result<&[f32]> {
        let (shape, v) = self
            .map
            .get(name)
            .ok_or_else(|| NetsError::MissingParameter {
                origin: "fast sampler weights".into(),
                name: name.to_string(),
                expected: vec![numel],
                architecture: "the fast sampler".into(),
                hint: String::new(),
            })?;
        if v.len() != numel {
            return Err(NetsError::shape(
                format!("fast sampler parameter `{name}`"),
                format!("{numel} values"),
                format!("{shape:?} ({} values)", v.len()),
            ));
        }
        Ok(v)
    }

    fn scalar(&self, name: &str) -> Result<f32> {
        Ok(self.get(name, 1)?[0])
    }
}

/// `SwiGLU(in, h, out)` evaluated on one vector (per-row heads on the pooled `c`).
#[derive(Debug)]
struct SmallSwiGlu {
    inp: usize,
    f: usize,
    out: usize,
    gate_w: Vec<f32>,
    gate_b: Vec<f32>,
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    down_w: Vec<f32>,
    down_b: Vec<f32>,
}

impl SmallSwiGlu {
    fn new(p: &Params, prefix: &str, inp: usize, h: usize, out: usize) -> Result<Self> {
        let f = SwiGlu::hidden_width(h);
        let g = |n: &str, len| p.get(&format!("{prefix}.{n}"), len).map(<[f32]>::to_vec);
        Ok(Self {
            inp,
            f,
            out,
            gate_w: g("gate.weight", f * inp)?,
            gate_b: g("gate.bias", f)?,
            up_w: g("up.weight", f * inp)?,
            up_b: g("up.bias", f)?,
            down_w: g("down.weight", out * f)?,
            down_b: g("down.bias", out)?,
        })
    }

    /// `out[o] = down_b[o] + Σ_j down_w[o, j]·silu(gate(x)_j)·up(x)_j` (`out.len() == self.out`).
    fn eval(&self, x: &[f32], out: &mut [f32]) {
        out[..self.out].copy_from_slice(&self.down_b);
        for j in 0..self.f {
            let row = j * self.inp..(j + 1) * self.inp;
            let g = self.gate_b[j]
                + x.iter()
                    .zip(&self.gate_w[row.clone()])
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            let u = self.up_b[j]
                + x.iter()
                    .zip(&self.up_w[row])
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            let hj = silu(g) * u;
            for (o, v) in out.iter_mut().enumerate().take(self.out) {
                *v += self.down_w[o * self.f + j] * hj;
            }
        }
    }
}

/// `SwiGLU(k + m, h, 1)` over token features `[tile, k]` plus a per-row context of `m` values:
/// gate and up in one packed product (`gate` in columns `0..f`, `up` in `f_pad..f_pad + f`),
/// the context folded into a per-row bias, `down` a dot product.
#[derive(Debug)]
struct ContextSwiGlu {
    gu: Packed,
    /// `[2·f_pad, m]`: context weights per packed output column.
    ctx_w: Vec<f32>,
    m: usize,
    f_pad: usize,
    down: Vec<f32>,
    down_b: f32,
}

impl ContextSwiGlu {
    fn new(p: &Params, prefix: &str, k: usize, m: usize, h: usize) -> Result<Self> {
        let f = SwiGlu::hidden_width(h);
        let f_pad = pad8(f);
        let inp = k + m;
        let mut gu = Packed::zeros(k, 2 * f_pad);
        let mut ctx_w = vec![0.0; 2 * f_pad * m];
        for (col0, name) in [(0, "gate"), (f_pad, "up")] {
            let w = p.get(&format!("{prefix}.{name}.weight"), f * inp)?;
            let b = p.get(&format!("{prefix}.{name}.bias"), f)?;
            gu.put(col0, w, f, inp, 0, Some(b));
            for o in 0..f {
                for i in 0..m {
                    ctx_w[(col0 + o) * m + i] = w[o * inp + k + i];
                }
            }
        }
        let mut down = vec![0.0; f_pad];
        down[..f].copy_from_slice(p.get(&format!("{prefix}.down.weight"), f)?);
        Ok(Self {
            gu,
            ctx_w,
            m,
            f_pad,
            down,
            down_b: p.scalar(&format!("{prefix}.down.bias"))?,
        })
    }

    /// Per-row bias `b + W_ctx·ctx` into `out` (`2·f_pad` entries).
    fn row_bias(&self, ctx: &[f32], out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate().take(2 * self.f_pad) {
            let w = &self.ctx_w[c * self.m..(c + 1) * self.m];
            *o = self.gu.b[c] + w.iter().zip(ctx).map(|(a, b)| a * b).sum::<f32>();
        }
    }

    /// `res[t] = down·(silu(g_t) ⊙ u_t) + down_b` for the `rows` tokens of `x` (row stride
    /// `ldx`); `buf` is scratch of `rows·2·f_pad`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &[f32],
        ldx: usize,
        rows: usize,
        bias: &[f32],
        buf: &mut [f32],
        res: &mut [f32],
    ) {
        let ld = 2 * self.f_pad;
        gemm(x, ldx, rows, &self.gu, bias, buf, ld);
        silu_mul_rows(buf, ld, rows, self.f_pad);
        for (t, r) in res.iter_mut().enumerate().take(rows) {
            *r = dot8(&buf[t * ld..t * ld + self.f_pad], &self.down) + self.down_b;
        }
    }
}

/// In each of `rows` rows of stride `ld`: `row[j] = silu(row[j])·row[f_pad + j]`, `j < f_pad`.
#[inline]
fn silu_mul_rows(buf: &mut [f32], ld: usize, rows: usize, f_pad: usize) {
    for row in buf.chunks_exact_mut(ld).take(rows) {
        let (g, u) = row.split_at_mut(f_pad);
        for (g, u) in g.iter_mut().zip(&u[..f_pad]) {
            *g = silu(*g) * *u;
        }
    }
}

/// `Σ a_i·b_i` over equal lengths that are multiples of 8 (f32x8 lanes, then a horizontal sum).
#[inline]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    use wide::f32x8;
    let mut acc = f32x8::ZERO;
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        let x: [f32; LANES] = x.try_into().unwrap_or_default();
        let y: [f32; LANES] = y.try_into().unwrap_or_default();
        acc = f32x8::from(x).mul_add(f32x8::from(y), acc);
    }
    acc.reduce_add()
}

/// `SwiGLU(k, h, out)` over token features, all per token: gate|up packed, `down` packed.
#[derive(Debug)]
struct TokenSwiGlu {
    gu: Packed,
    f: usize,
    f_pad: usize,
    down: Packed,
}

impl TokenSwiGlu {
    fn new(p: &Params, prefix: &str, k: usize, h: usize, out: usize) -> Result<Self> {
        let f = SwiGlu::hidden_width(h);
        let f_pad = pad8(f);
        let mut gu = Packed::zeros(k, 2 * f_pad);
        for (col0, name) in [(0, "gate"), (f_pad, "up")] {
            let w = p.get(&format!("{prefix}.{name}.weight"), f * k)?;
            let b = p.get(&format!("{prefix}.{name}.bias"), f)?;
            gu.put(col0, w, f, k, 0, Some(b));
        }
        let mut down = Packed::zeros(f, pad8(out));
        down.put(
            0,
            p.get(&format!("{prefix}.down.weight"), out * f)?,
            out,
            f,
            0,
            Some(p.get(&format!("{prefix}.down.bias"), out)?),
        );
        Ok(Self { gu, f, f_pad, down })
    }
}

/// The encoder `SwiGLU(1, e, d)`: gate/up are per-unit scalars (padded to `f_pad`), `down` packed.
#[derive(Debug)]
struct Encoder {
    gate_w: Vec<f32>,
    gate_b: Vec<f32>,
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    f: usize,
    f_pad: usize,
    down: Packed,
}

/// One post-LN block's weights.
#[derive(Debug)]
struct Block {
    qkv: Packed,
    out: Packed,
    ln1_w: Vec<f32>,
    ln1_b: Vec<f32>,
    ffn: TokenSwiGlu,
    ln2_w: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// (s, τ) of the SimpleDistributionAwareTransform.
#[derive(Debug)]
enum SimpleTruncation {
    /// `softplus(W·[max lp, H] + b)`, `W` `[2, 2]` row-major.
    Dynamic { w: [f32; 4], b: [f32; 2] },
    /// Fixed `(softplus(s_raw), softplus(τ_raw))`.
    Static { s: f32, tau: f32 },
}

/// The LocalProbabilityTransform's weights: `SwiGLU(1, h, 1)` per token (`f` hidden units) and
/// the gate's scalars.
#[derive(Debug)]
struct LocalNet {
    gate_w: Vec<f32>,
    gate_b: Vec<f32>,
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    down_w: Vec<f32>,
    down_b: f32,
    s: f32,
    tau: f32,
}

#[derive(Debug)]
enum Arch {
    Local {
        net: LocalNet,
        /// The whole transform as a verified cubic table of `lp` ([`LocalNet::table`]); `None`
        /// when the weights vary too fast to tabulate, then every token is evaluated exactly.
        table: Option<ScalarTable>,
    },
    Simple {
        local_w: Vec<f32>,
        local_b: Vec<f32>,
        h_pad: usize,
        mlp: ContextSwiGlu,
        truncation: SimpleTruncation,
    },
    Sampling(Box<SamplingNet>),
}

#[derive(Debug)]
struct SamplingNet {
    d: usize,
    d_pad: usize,
    heads: usize,
    hw: usize,
    encoder: Encoder,
    blocks: Vec<Block>,
    transform: ContextSwiGlu,
    scale: Option<SmallSwiGlu>,
    truncation: SmallSwiGlu,
}

/// The weights of a sampler laid out for the fast path (shared between [`FastSampler`] clones).
#[derive(Debug)]
pub struct FastWeights {
    config: SamplerConfig,
    arch: Arch,
}

impl FastWeights {
    /// Packs the named parameters (see [`crate::sampler`] for the names) of `config`.
    pub fn new(config: &SamplerConfig, params: &[(String, Tensor)]) -> Result<Self> {
        config.validate()?;
        let p = Params::new(params)?;
        let arch = match config {
            SamplerConfig::LocalProbabilityTransform(c) => {
                let f = SwiGlu::hidden_width(c.hidden);
                let v = |n: &str, len| p.get(n, len).map(<[f32]>::to_vec);
                let net = LocalNet {
                    gate_w: v("mlp.gate.weight", f)?,
                    gate_b: v("mlp.gate.bias", f)?,
                    up_w: v("mlp.up.weight", f)?,
                    up_b: v("mlp.up.bias", f)?,
                    down_w: v("mlp.down.weight", f)?,
                    down_b: p.scalar("mlp.down.bias")?,
                    s: p.scalar("truncation.scale")?,
                    tau: p.scalar("truncation.threshold")?,
                };
                let table = net.table();
                Arch::Local { net, table }
            }
            SamplerConfig::SimpleDistributionAwareTransform(c) => {
                let h = c.hidden;
                let h_pad = pad8(h);
                let mut local_w = vec![0.0; h_pad];
                let mut local_b = vec![0.0; h_pad];
                local_w[..h].copy_from_slice(p.get("local.weight", h)?);
                local_b[..h].copy_from_slice(p.get("local.bias", h)?);
                let mut mlp = ContextSwiGlu::new(&p, "mlp", h, 2, h)?;
                // The features are read with row stride h_pad: pad the packed rows.
                if h_pad != h {
                    let mut gu = Packed::zeros(h_pad, mlp.gu.n_pad);
                    gu.w[..h * mlp.gu.n_pad].copy_from_slice(&mlp.gu.w);
                    gu.b.copy_from_slice(&mlp.gu.b);
                    mlp.gu = gu;
                }
                let truncation = if c.dynamic_truncation {
                    let w = p.get("truncation.weight", 4)?;
                    let b = p.get("truncation.bias", 2)?;
                    SimpleTruncation::Dynamic {
                        w: [w[0], w[1], w[2], w[3]],
                        b: [b[0], b[1]],
                    }
                } else {
                    SimpleTruncation::Static {
                        s: softplus(p.scalar("truncation.scale_raw")?),
                        tau: softplus(p.scalar("truncation.threshold_raw")?),
                    }
                };
                Arch::Simple {
                    local_w,
                    local_b,
                    h_pad,
                    mlp,
                    truncation,
                }
            }
            SamplerConfig::SamplingNetwork(c) => {
                let d = c.d_model;
                let d_pad = pad8(d);
                let fe = SwiGlu::hidden_width(c.encoder_hidden);
                let fe_pad = pad8(fe);
                let padded = |n: &str| -> Result<Vec<f32>> {
                    let mut v = vec![0.0; fe_pad];
                    v[..fe].copy_from_slice(p.get(n, fe)?);
                    Ok(v)
                };
                let mut down = Packed::zeros(fe, d_pad);
                down.put(
                    0,
                    p.get("encoder.down.weight", d * fe)?,
                    d,
                    fe,
                    0,
                    Some(p.get("encoder.down.bias", d)?),
                );
                let encoder = Encoder {
                    gate_w: padded("encoder.gate.weight")?,
                    gate_b: padded("encoder.gate.bias")?,
                    up_w: padded("encoder.up.weight")?,
                    up_b: padded("encoder.up.bias")?,
                    f: fe,
                    f_pad: fe_pad,
                    down,
                };
                let blocks = (0..c.n_blocks)
                    .map(|i| {
                        let pre = format!("blocks.{i}");
                        let qw = p.get(&format!("{pre}.attn.qkv.weight"), 3 * d * d)?;
                        let qb = p.get(&format!("{pre}.attn.qkv.bias"), 3 * d)?;
                        let mut qkv = Packed::zeros(d, 3 * d_pad);
                        for part in 0..3 {
                            qkv.put(
                                part * d_pad,
                                &qw[part * d * d..(part + 1) * d * d],
                                d,
                                d,
                                0,
                                Some(&qb[part * d..(part + 1) * d]),
                            );
                        }
                        let mut out = Packed::zeros(d, d_pad);
                        out.put(
                            0,
                            p.get(&format!("{pre}.attn.out.weight"), d * d)?,
                            d,
                            d,
                            0,
                            Some(p.get(&format!("{pre}.attn.out.bias"), d)?),
                        );
                        let v = |n: &str| p.get(&format!("{pre}.{n}"), d).map(<[f32]>::to_vec);
                        Ok(Block {
                            qkv,
                            out,
                            ln1_w: v("ln1.weight")?,
                            ln1_b: v("ln1.bias")?,
                            ffn: TokenSwiGlu::new(&p, &format!("{pre}.ffn"), d, c.d_ff, d)?,
                            ln2_w: v("ln2.weight")?,
                            ln2_b: v("ln2.bias")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let scale = if c.scale {
                    Some(SmallSwiGlu::new(&p, "scale", d, d / 2, 1)?)
                } else {
                    None
                };
                Arch::Sampling(Box::new(SamplingNet {
                    d,
                    d_pad,
                    heads: c.n_heads,
                    hw: d / c.n_heads,
                    encoder,
                    blocks,
                    transform: ContextSwiGlu::new(&p, "transform", d, d, d)?,
                    scale,
                    truncation: SmallSwiGlu::new(&p, "truncation", d, d / 2, 2)?,
                }))
            }
        };
        Ok(Self {
            config: config.clone(),
            arch,
        })
    }
}

/// Range of `lp` the LocalProbabilityTransform's table covers: tokens below it (`p < e^{−96}`)
/// are evaluated exactly.
const LOCAL_TABLE_LO: f32 = -96.0;
/// Allowed table error relative to `max(1, |out|)`: about what the exact f32 evaluation's own
/// rounding over the hidden units amounts to.
const LOCAL_TABLE_TOLERANCE: f64 = 1e-5;

impl LocalNet {
    /// The transform as a function of `lp` alone, in f64 with its derivative:
    /// `m(l) = Σ_j w_d,j·silu(g_j)·u_j + b_d` with `g_j = w_g,j·l + b_g,j`, `u_j = w_u,j·l + b_u,j`;
    /// `l' = l + m(l)`; `out = l' + logsigmoid(s·l' + τ)`;
    /// `dout/dl = (1 + m'(l))·(1 + s·σ(−(s·l' + τ)))`, `silu'(g) = σ(g)·(1 + g·(1 − σ(g)))`.
    fn exact(&self, l: f64) -> (f64, f64) {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (mut m, mut dm) = (self.down_b as f64, 0.0);
        for j in 0..self.gate_w.len() {
            let (wg, wu, wd) = (
                self.gate_w[j] as f64,
                self.up_w[j] as f64,
                self.down_w[j] as f64,
            );
            let g = wg.mul_add(l, self.gate_b[j] as f64);
            let u = wu.mul_add(l, self.up_b[j] as f64);
            let sg = sigmoid(g);
            let silu = g * sg;
            m += wd * silu * u;
            dm += wd * (sg * (1.0 + g * (1.0 - sg)) * wg * u + silu * wu);
        }
        let lq = l + m;
        let a = (self.s as f64).mul_add(lq, self.tau as f64);
        let logsigmoid = a.min(0.0) - (-a.abs()).exp().ln_1p();
        (
            lq + logsigmoid,
            (1.0 + dm) * (1.0 + self.s as f64 * sigmoid(-a)),
        )
    }

    /// The verified table of [`LocalNet::exact`] on `[LOCAL_TABLE_LO, 1/64]` (steps 1/16 down
    /// to 1/512), or `None` if the weights vary too fast for that.
    fn table(&self) -> Option<ScalarTable> {
        ScalarTable::build(
            |l| self.exact(l),
            LOCAL_TABLE_LO,
            1.0 / 64.0,
            1.0 / 16.0,
            1.0 / 512.0,
            LOCAL_TABLE_TOLERANCE,
        )
    }

    /// The exact f32 forward of one tile of `lp` into `out` (`acc`: scratch of the tile's
    /// length).
    fn forward_tile(&self, lp: &[f32], acc: &mut [f32], out: &mut [f32]) {
        acc.fill(0.0);
        for j in 0..self.gate_w.len() {
            let (wg, bg, wu, bu, wd) = (
                self.gate_w[j],
                self.gate_b[j],
                self.up_w[j],
                self.up_b[j],
                self.down_w[j],
            );
            for (a, &l) in acc.iter_mut().zip(lp) {
                let g = wg.mul_add(l, bg);
                let u = wu.mul_add(l, bu);
                *a = (silu(g) * u).mul_add(wd, *a);
            }
        }
        for ((o, a), &l) in out.iter_mut().zip(acc.iter()).zip(lp) {
            *o = gate(l + (a + self.down_b), self.s, self.tau);
        }
    }
}

impl FastWeights {
    /// The number of intervals of the verified cubic table the LocalProbabilityTransform runs
    /// on (see [`scalar_table`]), `None` for the other architectures or when it is evaluated
    /// exactly.
    pub fn tabulated_intervals(&self) -> Option<usize> {
        match &self.arch {
            Arch::Local { table, .. } => table.as_ref().map(ScalarTable::intervals),
            _ => None,
        }
    }
}

/// Reusable buffers of one [`FastSampler`]; they grow to the largest vocabulary seen.
#[derive(Debug, Default)]
struct Scratch {
    lp: AlignedBuf,
    ids: Vec<u32>,
    out: AlignedBuf,
    x: AlignedBuf,
    q: AlignedBuf,
    t1: AlignedBuf,
    t2: AlignedBuf,
    t3: AlignedBuf,
    bias: AlignedBuf,
    kv_tile: AlignedBuf,
    ksum32: AlignedBuf,
    kv: Vec<f64>,
    ksum: Vec<f64>,
    att: Option<Packed>,
    c: AlignedBuf,
}

/// A learned sampler's fast inference path: weights shared (`Arc`) between clones, scratch owned.
///
/// [`FastSampler::apply`] transforms one logits row in place; after the first row of a given
/// vocabulary size it allocates nothing. Single-threaded, CPU, f32.
#[derive(Debug)]
pub struct FastSampler {
    weights: Arc<FastWeights>,
    scratch: Scratch,
}

impl Clone for FastSampler {
    /// Shares the weights; the clone gets its own (empty) scratch.
    fn clone(&self) -> Self {
        Self::from_weights(self.weights.clone())
    }
}

impl FastSampler {
    /// The fast path of `sampler` (its weights are copied to f32 and packed).
    pub fn new(sampler: &LearnedSampler) -> Result<Self> {
        Self::from_parameters(sampler.config(), &sampler.named_parameters())
    }

    /// The fast path of `config` with the given named parameters.
    pub fn from_parameters(config: &SamplerConfig, params: &[(String, Tensor)]) -> Result<Self> {
        Ok(Self::from_weights(Arc::new(FastWeights::new(
            config, params,
        )?)))
    }

    /// Loads the checkpoint directory `dir` (checked as by [`crate::checkpoint::load`]).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::new(&LearnedSampler::load(dir, DType::F32, &Device::Cpu)?)
    }

    /// A sampler over already packed, shared weights.
    pub fn from_weights(weights: Arc<FastWeights>) -> Self {
        Self {
            weights,
            scratch: Scratch::default(),
        }
    }

    /// The shared packed weights.
    pub fn weights(&self) -> &Arc<FastWeights> {
        &self.weights
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.weights.config
    }

    /// Applies the sampler to `rows` rows of `vocab` logits stored row-major in `logits`.
    pub fn apply_batch(&mut self, logits: &mut [f32], vocab: usize) -> Result<()> {
        if vocab == 0 || !logits.chunks_exact(vocab).remainder().is_empty() {
            return Err(NetsError::shape(
                "logits batch",
                format!("whole rows of vocabulary {vocab}"),
                format!("{} values", logits.len()),
            ));
        }
        for (r, row) in logits.chunks_exact_mut(vocab).enumerate() {
            self.apply_row(row, r)?;
        }
        Ok(())
    }

    /// Transforms one raw logits row in place into the sampler's output logits: `-inf` stays
    /// `-inf` (masked token), every other entry becomes finite. Errors on an empty row, NaN or
    /// `+inf` entries, or a row with no finite entry.
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<()> {
        self.apply_row(logits, 0)
    }

    /// [`FastSampler::apply`] on row `index` of a batch (`index` names the row in errors).
    pub fn apply_row(&mut self, logits: &mut [f32], index: usize) -> Result<()> {
        let m = checked_max(logits, index).map_err(|e| NetsError::logits("input logits", e))?;
        let n = self.prepare(logits, m)?;
        let weights = self.weights.clone();
        let s = &mut self.scratch;
        s.out.grow(n);
        match &weights.arch {
            Arch::Local { net, table } => {
                let mut acc = [0.0f32; LOCAL_TILE];
                for (lp, out) in s.lp[..n]
                    .chunks(LOCAL_TILE)
                    .zip(s.out.chunks_mut(LOCAL_TILE))
                {
                    if let Some(table) = table {
                        // Tabulated unless some token lies outside the table's range.
                        let mut all = true;
                        for (o, &l) in out.iter_mut().zip(lp) {
                            match table.eval(l) {
                                Some(y) => *o = y,
                                None => all = false,
                            }
                        }
                        if all {
                            continue;
                        }
                    }
                    net.forward_tile(lp, &mut acc[..lp.len()], out);
                }
            }
            Arch::Simple {
                local_w,
                local_b,
                h_pad,
                mlp,
                truncation,
            } => {
                let lp = &s.lp[..n];
                let lp_max = s.c[0];
                // H = −Σ p·lp over the kept tokens (f64).
                let entropy = -lp.iter().map(|&l| (math::exp(l) * l) as f64).sum::<f64>() as f32;
                let stats = [lp_max, entropy];
                let (sc, tau) = match truncation {
                    SimpleTruncation::Dynamic { w, b } => (
                        softplus(b[0] + (w[0] * stats[0] + w[1] * stats[1])),
                        softplus(b[1] + (w[2] * stats[0] + w[3] * stats[1])),
                    ),
                    SimpleTruncation::Static { s, tau } => (*s, *tau),
                };
                let ld = mlp.gu.n_pad;
                s.bias.grow(ld);
                mlp.row_bias(&stats, &mut s.bias);
                s.t1.grow(TILE * h_pad);
                s.t2.grow(TILE * ld);
                let mut res = [0.0f32; TILE];
                for (lp, out) in lp.chunks(TILE).zip(s.out.chunks_mut(TILE)) {
                    let rows = lp.len();
                    for (t, &l) in lp.iter().enumerate() {
                        let f = &mut s.t1[t * h_pad..(t + 1) * h_pad];
                        for ((f, w), b) in f.iter_mut().zip(local_w).zip(local_b) {
                            *f = silu(w.mul_add(l, *b));
                        }
                    }
                    mlp.forward(&s.t1, *h_pad, rows, &s.bias, &mut s.t2, &mut res);
                    for ((o, &m), &l) in out.iter_mut().zip(&res).zip(lp) {
                        *o = gate(l + m, sc, tau);
                    }
                }
            }
            Arch::Sampling(net) => net.forward(n, s),
        }
        // Scatter back: dense rows directly, otherwise through the kept ids (masked stay -inf).
        if n == logits.len() {
            logits.copy_from_slice(&s.out[..n]);
        } else {
            for (&id, &o) in s.ids[..n].iter().zip(&s.out[..n]) {
                logits[id as usize] = o;
            }
        }
        Ok(())
    }

    /// Writes (for a row already validated, whose largest logit is `m`) `lp` of its kept tokens to `scratch.lp` (their ids to
    /// `scratch.ids` when some are masked) and `max lp` to `scratch.c[0]`; returns the number of
    /// kept tokens.
    fn prepare(&mut self, z: &[f32], m: f32) -> Result<usize> {
        let lse = math::sum_exp(z, m).ln() as f32;
        let s = &mut self.scratch;
        s.lp.grow(z.len());
        s.c.grow(1);
        s.c[0] = -lse;
        let kept = math::count_finite(z);
        if kept == z.len() {
            for (l, &x) in s.lp.iter_mut().zip(z) {
                *l = (x - m) - lse;
            }
        } else {
            if s.ids.len() < z.len() {
                s.ids.resize(z.len(), 0);
            }
            let mut j = 0;
            for (i, &x) in z.iter().enumerate() {
                if x > f32::NEG_INFINITY {
                    s.lp[j] = (x - m) - lse;
                    s.ids[j] = i as u32;
                    j += 1;
                }
            }
        }
        Ok(kept)
    }
}

impl SamplingNet {
    /// Runs the network on the `n` kept tokens of `s.lp`, writing `s.out[..n]`.
    fn forward(&self, n: usize, s: &mut Scratch) {
        let (d, dp) = (self.d, self.d_pad);
        s.x.grow(n * dp);
        s.q.grow(n * dp);
        let ffn_ld = self.blocks.first().map_or(0, |b| b.ffn.gu.n_pad);
        let att_ld = dp + pad8(self.heads);
        let wide = (3 * dp)
            .max(ffn_ld)
            .max(att_ld)
            .max(self.transform.gu.n_pad)
            .max(self.encoder.f_pad);
        s.t1.grow(TILE * wide);
        s.t2.grow(TILE * dp.max(wide));
        s.t3.grow(TILE * dp);
        s.c.grow(d.max(1));
        s.bias.grow(self.transform.gu.n_pad.max(dp));
        s.kv_tile.grow(d * self.hw);
        s.ksum32.grow(d);
        if s.kv.len() < d * self.hw {
            s.kv.resize(d * self.hw, 0.0);
        }
        if s.ksum.len() < dp {
            s.ksum.resize(dp, 0.0);
        }
        if s.att.as_ref().is_none_or(|a| a.k != d || a.n_pad != att_ld) {
            s.att = Some(Packed::zeros(d, att_ld));
        }

        // Encoder: x = down(silu(g·lp + bg) ⊙ (u·lp + bu)).
        let enc = &self.encoder;
        for (tile, lp) in s.lp[..n].chunks(TILE).enumerate() {
            let rows = lp.len();
            let fp = enc.f_pad;
            for (t, &l) in lp.iter().enumerate() {
                let h = &mut s.t1[t * fp..(t + 1) * fp];
                for ((((h, gw), gb), uw), ub) in h
                    .iter_mut()
                    .zip(&enc.gate_w)
                    .zip(&enc.gate_b)
                    .zip(&enc.up_w)
                    .zip(&enc.up_b)
                {
                    *h = silu(gw.mul_add(l, *gb)) * uw.mul_add(l, *ub);
                }
            }
            let x = &mut s.x[tile * TILE * dp..(tile * TILE + rows) * dp];
            gemm(&s.t1, fp, rows, &enc.down, &enc.down.b, x, dp);
        }
        debug_assert!(enc.f <= enc.f_pad);

        for b in &self.blocks {
            self.block(b, n, s);
        }

        // Pool c = mean_V x (f64), then the per-row heads.
        let c64 = &mut s.ksum[..dp];
        c64.fill(0.0);
        for row in s.x[..n * dp].chunks_exact(dp) {
            for (a, &v) in c64.iter_mut().zip(&row[..d]) {
                *a += v as f64;
            }
        }
        for (c, a) in s.c.iter_mut().zip(c64.iter()).take(d) {
            *c = (*a / n as f64) as f32;
        }
        let c = &s.c[..d];
        let mult = match &self.scale {
            Some(sc) => {
                let mut o = [0.0f32; 1];
                sc.eval(c, &mut o);
                Some(softplus(o[0]))
            }
            None => None,
        };
        let mut st = [0.0f32; 2];
        self.truncation.eval(c, &mut st);
        let (sc, tau) = (softplus(st[0]), softplus(st[1]));
        self.transform.row_bias(c, &mut s.bias);
        let mut res = [0.0f32; TILE];
        for (tile, (lp, out)) in s.lp[..n]
            .chunks(TILE)
            .zip(s.out.chunks_mut(TILE))
            .enumerate()
        {
            let rows = lp.len();
            let x = &s.x[tile * TILE * dp..(tile * TILE + rows) * dp];
            self.transform
                .forward(x, dp, rows, &s.bias, &mut s.t1, &mut res);
            for ((o, &m), &l) in out.iter_mut().zip(&res).zip(lp) {
                let l = match mult {
                    Some(k) => (l + m) * k,
                    None => l + m,
                };
                *o = gate(l, sc, tau);
            }
        }
    }

    /// One post-LN block over all `n` token features in `s.x`.
    fn block(&self, b: &Block, n: usize, s: &mut Scratch) {
        let (d, dp, hw, heads) = (self.d, self.d_pad, self.hw, self.heads);
        let qld = 3 * dp;
        for v in s.kv.iter_mut() {
            *v = 0.0;
        }
        for v in s.ksum.iter_mut() {
            *v = 0.0;
        }
        // Pass 1: q, k, v per tile; store φ(q); accumulate Σ φ(k)vᵀ per head and Σ φ(k).
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            let x = &s.x[start * dp..(start + rows) * dp];
            let buf = &mut s.t1[..rows * qld];
            gemm(x, dp, rows, &b.qkv, &b.qkv.b, buf, qld);
            for (t, row) in buf.chunks_exact_mut(qld).enumerate() {
                for v in row[..2 * dp].iter_mut() {
                    *v = elu_plus_one(*v);
                }
                s.q[(start + t) * dp..(start + t + 1) * dp].copy_from_slice(&row[..dp]);
                for (a, &v) in s.ksum.iter_mut().zip(&row[dp..dp + d]) {
                    *a += v as f64;
                }
            }
            let kvt = &mut s.kv_tile[..d * hw];
            kvt.fill(0.0);
            for h in 0..heads {
                let kv = &mut kvt[h * hw * hw..(h + 1) * hw * hw];
                if hw % LANES == 0 {
                    kernels::outer_accumulate(buf, qld, rows, dp + h * hw, 2 * dp + h * hw, hw, kv);
                } else {
                    for row in buf.chunks_exact(qld) {
                        for i in 0..hw {
                            let k = row[dp + h * hw + i];
                            for j in 0..hw {
                                kv[i * hw + j] += k * row[2 * dp + h * hw + j];
                            }
                        }
                    }
                }
            }
            for (a, &v) in s.kv.iter_mut().zip(kvt.iter()) {
                *a += v as f64;
            }
        }
        // Heads 8 wide: a per-head kernel on f32 copies of KV and k_sum. Otherwise [KV | k_sum]
        // as one block-diagonal [d, dp + heads] matrix through the general product.
        let per_head = hw == LANES;
        if per_head {
            for (a, &v) in s.kv_tile.iter_mut().zip(s.kv.iter()).take(d * hw) {
                *a = v as f32;
            }
            for (a, &v) in s.ksum32.iter_mut().zip(s.ksum.iter()).take(d) {
                *a = v as f32;
            }
        } else {
            let att = s.att.as_mut().expect("allocated in forward");
            let ald = att.n_pad;
            att.w.fill(0.0);
            for h in 0..heads {
                for i in 0..hw {
                    let a = h * hw + i;
                    for j in 0..hw {
                        att.w[a * ald + h * hw + j] = s.kv[h * hw * hw + i * hw + j] as f32;
                    }
                    att.w[a * ald + dp + h] = s.ksum[a] as f32;
                }
            }
        }
        let att = s.att.as_ref().expect("allocated in forward");
        let ald = att.n_pad;
        let ffn = &b.ffn;
        let fld = ffn.gu.n_pad;
        let eps = ATTENTION_EPS as f32;
        let ln_eps = LAYER_NORM_EPS as f32;
        // Pass 2: attention output, out-projection, residual + LN1, SwiGLU FFN, residual + LN2.
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            let q = &s.q[start * dp..(start + rows) * dp];
            let nd_ld = if per_head { dp } else { ald };
            let nd = &mut s.t1[..rows * nd_ld];
            if per_head {
                kernels::attention_heads8(q, dp, rows, heads, &s.kv_tile, &s.ksum32, eps, nd, dp);
            } else {
                gemm(q, dp, rows, att, &att.b, nd, ald);
                for row in nd.chunks_exact_mut(ald) {
                    let (num, den) = row.split_at_mut(dp);
                    // Per head: its hw numerators over one denominator.
                    for (head, &den) in num[..d].chunks_exact_mut(hw).zip(&den[..heads]) {
                        let den = den + eps;
                        for v in head {
                            *v /= den;
                        }
                    }
                }
            }
            let o = &mut s.t3[..rows * dp];
            gemm(nd, nd_ld, rows, &b.out, &b.out.b, o, dp);
            let x = &mut s.x[start * dp..(start + rows) * dp];
            for (xr, or) in x.chunks_exact_mut(dp).zip(o.chunks_exact(dp)) {
                for (a, &v) in xr[..d].iter_mut().zip(&or[..d]) {
                    *a += v;
                }
                layer_norm(&mut xr[..d], &b.ln1_w, &b.ln1_b, ln_eps);
            }
            let gu = &mut s.t2[..rows * fld];
            gemm(x, dp, rows, &ffn.gu, &ffn.gu.b, gu, fld);
            silu_mul_rows(gu, fld, rows, ffn.f_pad);
            let y = &mut s.t3[..rows * dp];
            debug_assert!(ffn.f <= ffn.f_pad);
            gemm(gu, fld, rows, &ffn.down, &ffn.down.b, y, dp);
            for (xr, yr) in x.chunks_exact_mut(dp).zip(y.chunks_exact(dp)) {
                for (a, &v) in xr[..d].iter_mut().zip(&yr[..d]) {
                    *a += v;
                }
                layer_norm(&mut xr[..d], &b.ln2_w, &b.ln2_b, ln_eps);
            }
        }
    }
}
