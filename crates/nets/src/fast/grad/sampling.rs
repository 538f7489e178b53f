//! SamplingNetwork forward + backward (SPEC §2, [`crate::arch::sampling_network`]).
//!
//! Forward (kept tokens only, tiles of [`TILE`]): encoder `x₀ = SwiGLU(1, e, d)(lp)`; per block
//! `b`, pass 1 computes `φ(q), φ(k), v` and the sums `KV_h = Σ φ(k)vᵀ`, `ks_h = Σ φ(k)` (f64
//! across tiles), pass 2 the attention output `a = φ(q)ᵀKV_h / (φ(q)·ks_h + 1e-6)`, `o = a·W_o`,
//! `x₁ = LN1(x + o)`, `x_{b+1} = LN2(x₁ + FFN(x₁))`. Every block input `x_b`, `KV_b` and `ks_b`
//! are kept for the backward. Then `c = mean x_B`, `mult = softplus(scale(c))`,
//! `(s, τ) = softplus(truncation(c))`, `l_mod = transform([x_B, c])`, `u = lp + l_mod`,
//! `l = mult·u`, `out = l + logsigmoid(s·l + τ)`.
//!
//! Backward, one pass per vocabulary-wide reduction:
//! 1. head pass: `δl = δ·(1 + s·σ(−(s·l + τ)))`, `∂mult = Σ δl·u`, `δu = mult·δl` (also the
//!    direct part of `∂lp`), the transform's backward per tile gives `∂x_B` and, through its
//!    context columns, `∂c`; the heads' backward (`∂s`, `∂τ`, `∂mult` through softplus) adds to
//!    `∂c`; the pool gives every token `∂c / n`;
//! 2. per block, in reverse, pass A recomputes the block's tile from `x_b` and runs LN2, the
//!    feed-forward, LN1 and the output projection backward, then the attention's:
//!    `δnum = δa / den`, `δden = −(δa·a) / den`, `δφ(q) = KV_h·δnum + δden·ks_h`, and sums
//!    `δKV_h = Σ φ(q)δnumᵀ`, `δks_h = Σ δden·φ(q)` over the vocabulary; pass B recomputes
//!    `φ(k), v` and forms `δφ(k) = δKV_h·v + δks_h`, `δv = δKV_hᵀφ(k)`, then `∂W_qkv` and
//!    `∂x_b = δy₁ + δqkv·W_qkv`; `φ'(x) = min(φ(x), 1)`;
//! 3. the encoder's backward gives the rest of `∂lp`.
//!
//! LayerNorm backward: `δy = r·(δx̂ − mean(δx̂) − x̂·mean(δx̂ ⊙ x̂))` with `δx̂ = δ ⊙ w`,
//! `r = 1/√(var + ε)`.

use super::{
    dot, dsilu8, sigmoid, sigmoid8, silu8, sum, vload, vstore, Acc, Layer, LayerAcc, Part, RowBufs,
    FLUSH_TILES,
};
use crate::config::SamplingNetworkConfig;
use crate::error::Result;
use crate::fast::grad::ParamLayout;
use crate::fast::kernels::{
    self, elu_plus_one, gate, gemm, layer_norm_keep, pad8, AlignedBuf, Packed, LANES,
};
use crate::layers::{SwiGlu, ATTENTION_EPS, LAYER_NORM_EPS};
use wide::f32x8;

/// Tokens per tile.
const TILE: usize = 60;

/// `SwiGLU(in, h, out)` on one per-row vector, in f64 (the scale and truncation heads).
#[derive(Debug)]
struct Head {
    inp: usize,
    f: usize,
    out: usize,
    gw: Vec<f64>,
    gb: Vec<f64>,
    uw: Vec<f64>,
    ub: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
    /// Offsets of gate.weight, gate.bias, up.weight, up.bias, down.weight, down.bias.
    off: [usize; 6],
}

impl Head {
    fn new(
        layout: &ParamLayout,
        flat: &[f32],
        prefix: &str,
        inp: usize,
        h: usize,
        out: usize,
    ) -> Result<Self> {
        let f = SwiGlu::hidden_width(h);
        let names = [
            ("gate.weight", f * inp),
            ("gate.bias", f),
            ("up.weight", f * inp),
            ("up.bias", f),
            ("down.weight", out * f),
            ("down.bias", out),
        ];
        let mut off = [0; 6];
        let mut vals: Vec<Vec<f64>> = Vec::with_capacity(6);
        for (k, (name, len)) in names.iter().enumerate() {
            off[k] = layout.offset(&format!("{prefix}.{name}"), *len)?;
            vals.push(
                flat[off[k]..off[k] + len]
                    .iter()
                    .map(|&x| x as f64)
                    .collect(),
            );
        }
        let mut it = vals.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(Self {
            inp,
            f,
            out,
            gw: next(),
            gb: next(),
            uw: next(),
            ub: next(),
            dw: next(),
            db: next(),
            off,
        })
    }

    /// `y = down(silu(gate(x)) ⊙ up(x))`, keeping `g` and `u` (each `f` long).
    fn forward(&self, x: &[f64], g: &mut [f64], u: &mut [f64], y: &mut [f64]) {
        for j in 0..self.f {
            let row = j * self.inp..(j + 1) * self.inp;
            g[j] = self.gb[j]
                + x.iter()
                    .zip(&self.gw[row.clone()])
                    .map(|(a, b)| a * b)
                    .sum::<f64>();
            u[j] = self.ub[j] + x.iter().zip(&self.uw[row]).map(|(a, b)| a * b).sum::<f64>();
        }
        for (o, y) in y.iter_mut().enumerate().take(self.out) {
            *y = self.db[o]
                + (0..self.f)
                    .map(|j| self.dw[o * self.f + j] * silu64(g[j]) * u[j])
                    .sum::<f64>();
        }
    }

    /// Backward of [`Head::forward`] from `dy`: parameter gradients into `grad`, `∂x` added to
    /// `dx`.
    fn backward(
        &self,
        x: &[f64],
        g: &[f64],
        u: &[f64],
        dy: &[f64],
        dx: &mut [f64],
        grad: &mut [f64],
    ) {
        let [gw, gb, uw, ub, dw, db] = self.off;
        for o in 0..self.out {
            grad[db + o] += dy[o];
        }
        for j in 0..self.f {
            let sg = 1.0 / (1.0 + (-g[j]).exp());
            let si = g[j] * sg;
            let mut dh = 0.0;
            for o in 0..self.out {
                grad[dw + o * self.f + j] += dy[o] * si * u[j];
                dh += dy[o] * self.dw[o * self.f + j];
            }
            let dg = dh * u[j] * sg * (1.0 + g[j] * (1.0 - sg));
            let du = dh * si;
            grad[gb + j] += dg;
            grad[ub + j] += du;
            for i in 0..self.inp {
                grad[gw + j * self.inp + i] += dg * x[i];
                grad[uw + j * self.inp + i] += du * x[i];
                dx[i] += dg * self.gw[j * self.inp + i] + du * self.uw[j * self.inp + i];
            }
        }
    }
}

fn silu64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// One post-LN block's weights.
#[derive(Debug)]
struct Block {
    /// q | k | v over `d` inputs (columns `0`, `dp`, `2dp`).
    qkv: Layer,
    /// The q columns alone (pass A) and the k | v columns (pass B), with their biases.
    q: Packed,
    kv: Packed,
    out: Layer,
    ln1: [Vec<f32>; 2],
    ln1_off: [usize; 2],
    gu: Layer,
    down: Layer,
    ln2: [Vec<f32>; 2],
    ln2_off: [usize; 2],
}

/// The weights and where their gradients go.
#[derive(Debug)]
pub(super) struct Net {
    d: usize,
    dp: usize,
    heads: usize,
    hw: usize,
    fep: usize,
    ffp: usize,
    ftp: usize,
    /// Encoder gate/up per-unit weights and biases (padded to `fep`) and their offsets.
    enc: [Vec<f32>; 4],
    enc_off: [usize; 4],
    fe: usize,
    enc_down: Layer,
    blocks: Vec<Block>,
    /// The transform's per-token part (gate | up over `x`), its context weights `[2·ftp, d]`,
    /// `down` (padded to `ftp`) and their offsets.
    transform: Layer,
    t_ctx: Vec<f32>,
    t_down: Vec<f32>,
    t_down_b: f32,
    t_down_off: [usize; 2],
    scale: Option<Head>,
    truncation: Head,
}

/// Per-thread buffers.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    pub(super) rows: RowBufs,
    /// Block inputs `x_0 .. x_B`, `n × dp` each.
    xs: AlignedBuf,
    phiq: AlignedBuf,
    /// `u = lp + l_mod` per token.
    u: AlignedBuf,
    /// `∂x` of the current block output / input, `n × dp`.
    dx: AlignedBuf,
    /// Pass A → pass B: `δq` and `δy₁` per token.
    dq: AlignedBuf,
    dy1: AlignedBuf,
    /// Per block: `KV` (`d × hw`) and `ks` (`dp`) as f32.
    kv32: AlignedBuf,
    ks32: AlignedBuf,
    kv64: Vec<f64>,
    ks64: Vec<f64>,
    /// Per block (heads not 8 wide): `[KV | ks]` as one block-diagonal matrix.
    att: Vec<Packed>,
    /// Backward matrices: `KVᵀ` (for `δφ(q)`), `δKVᵀ` with bias `δks` (for `δφ(k)`), `δKV`.
    m_kvt: Option<Packed>,
    m_dkvt: Option<Packed>,
    m_dkv: Option<Packed>,
    /// The same three matrices per head (`[heads, hw, hw]`), for 8-wide heads.
    compact: [AlignedBuf; 3],
    t: [AlignedBuf; 12],
    rt: [AlignedBuf; 2],
    bias: AlignedBuf,
    acc: [LayerAcc; 4],
    ln_acc: [Acc; 2],
    small: Acc,
    dkv: Acc,
    dks: Acc,
    /// `∂c` and `∂c / n` (the pool's backward).
    dc: Vec<f64>,
    uniform: AlignedBuf,
    /// Per-row state: `c` (f64), the heads' intermediates, `(mult, s, τ)`, pre-softplus values.
    c: Vec<f64>,
    head_g: Vec<f64>,
    head_u: Vec<f64>,
    mult: f32,
    st: [f32; 2],
    raw: [f64; 3],
}

impl Net {
    pub(super) fn new(
        c: &SamplingNetworkConfig,
        layout: &ParamLayout,
        flat: &[f32],
    ) -> Result<Self> {
        let d = c.d_model;
        let dp = pad8(d);
        let fe = SwiGlu::hidden_width(c.encoder_hidden);
        let fep = pad8(fe);
        let ff = SwiGlu::hidden_width(c.d_ff);
        let ffp = pad8(ff);
        let ft = SwiGlu::hidden_width(d);
        let ftp = pad8(ft);
        let off = |name: &str, len: usize| layout.offset(name, len);
        let linear = |name: &str, col0, out, in_total, in_start| -> Result<Part> {
            Ok(Part {
                col0,
                out,
                in_total,
                in_start,
                w_off: off(&format!("{name}.weight"), out * in_total)?,
                b_off: Some(off(&format!("{name}.bias"), out)?),
            })
        };
        let mut enc_off = [0; 4];
        let mut enc: [Vec<f32>; 4] = Default::default();
        for (k, name) in ["gate.weight", "gate.bias", "up.weight", "up.bias"]
            .iter()
            .enumerate()
        {
            enc_off[k] = off(&format!("encoder.{name}"), fe)?;
            let mut v = vec![0.0; fep];
            v[..fe].copy_from_slice(&flat[enc_off[k]..enc_off[k] + fe]);
            enc[k] = v;
        }
        let enc_down = Layer::new(flat, fe, dp, vec![linear("encoder.down", 0, d, fe, 0)?]);
        let blocks = (0..c.n_blocks)
            .map(|i| -> Result<Block> {
                let pre = format!("blocks.{i}");
                let w_off = off(&format!("{pre}.attn.qkv.weight"), 3 * d * d)?;
                let b_off = off(&format!("{pre}.attn.qkv.bias"), 3 * d)?;
                let parts = (0..3)
                    .map(|p| Part {
                        col0: p * dp,
                        out: d,
                        in_total: d,
                        in_start: 0,
                        w_off: w_off + p * d * d,
                        b_off: Some(b_off + p * d),
                    })
                    .collect();
                let qkv = Layer::new(flat, d, 3 * dp, parts);
                let mut q = Packed::zeros(d, dp);
                let mut kv = Packed::zeros(d, 2 * dp);
                for i in 0..d {
                    q.w[i * dp..(i + 1) * dp]
                        .copy_from_slice(&qkv.fwd.w[i * 3 * dp..i * 3 * dp + dp]);
                    kv.w[i * 2 * dp..(i + 1) * 2 * dp]
                        .copy_from_slice(&qkv.fwd.w[i * 3 * dp + dp..(i + 1) * 3 * dp]);
                }
                q.b.copy_from_slice(&qkv.fwd.b[..dp]);
                kv.b.copy_from_slice(&qkv.fwd.b[dp..]);
                let ln = |name: &str| -> Result<([Vec<f32>; 2], [usize; 2])> {
                    let w = off(&format!("{pre}.{name}.weight"), d)?;
                    let b = off(&format!("{pre}.{name}.bias"), d)?;
                    Ok(([flat[w..w + d].to_vec(), flat[b..b + d].to_vec()], [w, b]))
                };
                let (ln1, ln1_off) = ln("ln1")?;
                let (ln2, ln2_off) = ln("ln2")?;
                Ok(Block {
                    qkv,
                    q,
                    kv,
                    out: Layer::new(
                        flat,
                        d,
                        dp,
                        vec![linear(&format!("{pre}.attn.out"), 0, d, d, 0)?],
                    ),
                    ln1,
                    ln1_off,
                    gu: Layer::new(
                        flat,
                        d,
                        2 * ffp,
                        vec![
                            linear(&format!("{pre}.ffn.gate"), 0, ff, d, 0)?,
                            linear(&format!("{pre}.ffn.up"), ffp, ff, d, 0)?,
                        ],
                    ),
                    down: Layer::new(
                        flat,
                        ff,
                        dp,
                        vec![linear(&format!("{pre}.ffn.down"), 0, d, ff, 0)?],
                    ),
                    ln2,
                    ln2_off,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let t_parts = vec![
            linear("transform.gate", 0, ft, 2 * d, 0)?,
            linear("transform.up", ftp, ft, 2 * d, 0)?,
        ];
        let mut t_ctx = vec![0.0; 2 * ftp * d];
        for p in &t_parts {
            for o in 0..ft {
                for m in 0..d {
                    t_ctx[(p.col0 + o) * d + m] = flat[p.w_off + o * 2 * d + d + m];
                }
            }
        }
        let transform = Layer::new(flat, d, 2 * ftp, t_parts);
        let t_down_off = [
            off("transform.down.weight", ft)?,
            off("transform.down.bias", 1)?,
        ];
        let mut t_down = vec![0.0; ftp];
        t_down[..ft].copy_from_slice(&flat[t_down_off[0]..t_down_off[0] + ft]);
        let scale = if c.scale {
            Some(Head::new(layout, flat, "scale", d, d / 2, 1)?)
        } else {
            None
        };
        Ok(Self {
            d,
            dp,
            heads: c.n_heads,
            hw: d / c.n_heads,
            fep,
            ffp,
            ftp,
            enc,
            enc_off,
            fe,
            enc_down,
            blocks,
            transform,
            t_ctx,
            t_down,
            t_down_b: flat[t_down_off[1]],
            t_down_off,
            scale,
            truncation: Head::new(layout, flat, "truncation", d, d / 2, 2)?,
        })
    }

    /// Whether the attention runs per 8-wide head ([`kernels::attention_heads8`]).
    fn per_head(&self) -> bool {
        self.hw == LANES
    }

    /// Grows every buffer for `n` kept tokens.
    fn grow(&self, ws: &mut Workspace, n: usize) {
        let (d, dp, hw, nb) = (self.d, self.dp, self.hw, self.blocks.len());
        ws.xs.grow((nb + 1) * n * dp);
        ws.phiq.grow(n * dp);
        ws.u.grow(n);
        ws.dx.grow(n * dp);
        ws.dq.grow(n * dp);
        ws.dy1.grow(n * dp);
        ws.kv32.grow(nb * d * hw);
        ws.ks32.grow(nb * dp);
        let ald = dp + pad8(self.heads);
        let wide = (3 * dp)
            .max(2 * self.ffp)
            .max(2 * self.ftp)
            .max(ald)
            .max(self.fep);
        for t in ws.t.iter_mut() {
            t.grow(TILE * wide);
        }
        for r in ws.rt.iter_mut() {
            r.grow(TILE);
        }
        ws.bias.grow(2 * self.ftp);
        if !self.per_head()
            && (ws.att.len() != nb || ws.att.first().is_some_and(|a| a.k != d || a.n_pad != ald))
        {
            ws.att = (0..nb).map(|_| Packed::zeros(d, ald)).collect();
        }
        for c in ws.compact.iter_mut() {
            c.grow(d * hw);
        }
        for m in [&mut ws.m_kvt, &mut ws.m_dkvt, &mut ws.m_dkv] {
            if m.as_ref().is_none_or(|p| p.k != d || p.n_pad != dp) {
                *m = Some(Packed::zeros(d, dp));
            }
        }
        ws.c.resize(d, 0.0);
        let f = SwiGlu::hidden_width(d / 2);
        ws.head_g.resize(2 * f, 0.0);
        ws.head_u.resize(2 * f, 0.0);
    }

    /// Encoder hidden units of a tile: `H[t, j] = silu(g)·u` into `h` (row stride `fep`).
    fn encoder_hidden(&self, lp: &[f32], h: &mut [f32]) {
        let fep = self.fep;
        let [gw, gb, uw, ub] = &self.enc;
        for (t, &l) in lp.iter().enumerate() {
            let l8 = f32x8::splat(l);
            for j in (0..fep).step_by(LANES) {
                let g = vload(gw, j).mul_add(l8, vload(gb, j));
                let u = vload(uw, j).mul_add(l8, vload(ub, j));
                vstore(h, t * fep + j, silu8(g) * u);
            }
        }
    }

    /// `out = x·M + b` for a block-diagonal per-head matrix: `packed` (dense `[d, dp]` with its
    /// bias) in general, `per_head` (`[heads, 8, 8]`, same bias) when the heads are 8 wide.
    #[allow(clippy::too_many_arguments)]
    fn block_diag(
        &self,
        packed: &Packed,
        per_head: &[f32],
        x: &[f32],
        ldx: usize,
        rows: usize,
        out: &mut [f32],
        ldo: usize,
    ) {
        if self.per_head() {
            let b = &packed.b[..self.d];
            let bias = b.iter().any(|&v| v != 0.0).then_some(b);
            kernels::heads8_product(x, ldx, rows, self.heads, per_head, bias, out, ldo);
        } else {
            gemm(x, ldx, rows, packed, &packed.b, out, ldo);
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// The attention output `a` (row stride `dp`) of `rows` tokens' `φ(q)` with block `b`'s sums;
    /// `tmp` is scratch for the general (not 8-wide) heads.
    fn attend(
        &self,
        ws_kv: &[f32],
        ws_ks: &[f32],
        att: Option<&Packed>,
        phiq: &[f32],
        rows: usize,
        a: &mut [f32],
        tmp: &mut [f32],
    ) {
        let (d, dp, hw, heads) = (self.d, self.dp, self.hw, self.heads);
        let eps = ATTENTION_EPS as f32;
        match att {
            None => kernels::attention_heads8(phiq, dp, rows, heads, ws_kv, ws_ks, eps, a, dp),
            Some(att) => {
                let ald = att.n_pad;
                gemm(phiq, dp, rows, att, &att.b, tmp, ald);
                for t in 0..rows {
                    let row = &tmp[t * ald..(t + 1) * ald];
                    let out = &mut a[t * dp..(t + 1) * dp];
                    for h in 0..heads {
                        let den = row[dp + h] + eps;
                        for j in h * hw..(h + 1) * hw {
                            out[j] = row[j] / den;
                        }
                    }
                    out[d..].fill(0.0);
                }
            }
        }
    }

    pub(super) fn forward(&self, ws: &mut Workspace, n: usize) {
        let (d, dp) = (self.d, self.dp);
        self.grow(ws, n);
        // Encoder.
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            let [h, ..] = &mut ws.t;
            self.encoder_hidden(&ws.rows.lp[start..start + rows], h);
            let x = &mut ws.xs[start * dp..(start + rows) * dp];
            gemm(
                h,
                self.fep,
                rows,
                &self.enc_down.fwd,
                &self.enc_down.fwd.b,
                x,
                dp,
            );
        }
        for b in 0..self.blocks.len() {
            self.block_forward(b, ws, n);
        }
        // Pool and heads.
        let nb = self.blocks.len();
        let xb = &ws.xs[nb * n * dp..(nb + 1) * n * dp];
        // c = Σ_units weight·x / (kept tokens).
        ws.c.fill(0.0);
        for (row, &w) in xb.chunks_exact(dp).zip(&ws.rows.weight[..n]) {
            for (a, &v) in ws.c.iter_mut().zip(&row[..d]) {
                *a += (w * v) as f64;
            }
        }
        for a in ws.c.iter_mut() {
            *a /= ws.rows.kept as f64;
        }
        let f = SwiGlu::hidden_width(d / 2);
        let (g, u) = (&mut ws.head_g, &mut ws.head_u);
        let mut y = [0.0f64; 2];
        ws.raw[0] = match &self.scale {
            Some(h) => {
                h.forward(&ws.c, &mut g[..f], &mut u[..f], &mut y[..1]);
                y[0]
            }
            None => 0.0,
        };
        ws.mult = if self.scale.is_some() {
            softplus64(ws.raw[0]) as f32
        } else {
            1.0
        };
        self.truncation
            .forward(&ws.c, &mut g[f..], &mut u[f..], &mut y);
        ws.raw[1] = y[0];
        ws.raw[2] = y[1];
        ws.st = [softplus64(y[0]) as f32, softplus64(y[1]) as f32];
        let ld = 2 * self.ftp;
        for col in 0..ld {
            let w = &self.t_ctx[col * d..(col + 1) * d];
            ws.bias[col] = self.transform.fwd.b[col]
                + w.iter().zip(&ws.c).map(|(a, b)| *a as f64 * b).sum::<f64>() as f32;
        }
        let (mult, [s, tau]) = (ws.mult, ws.st);
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            let x = &ws.xs[(nb * n + start) * dp..(nb * n + start + rows) * dp];
            let [gu, ..] = &mut ws.t;
            gemm(x, dp, rows, &self.transform.fwd, &ws.bias, gu, ld);
            for t in 0..rows {
                let row = &mut gu[t * ld..(t + 1) * ld];
                for j in (0..self.ftp).step_by(LANES) {
                    let h = silu8(vload(row, j)) * vload(row, self.ftp + j);
                    vstore(row, j, h);
                }
                let m = dot(&row[..self.ftp], &self.t_down) + self.t_down_b;
                let i = start + t;
                let u = ws.rows.lp[i] + m;
                ws.u[i] = u;
                ws.rows.out[i] = gate(mult * u, s, tau);
            }
        }
    }

    /// Block `b` over all tokens: `x_{b+1}` from `x_b`, keeping `KV_b`, `ks_b`.
    fn block_forward(&self, b: usize, ws: &mut Workspace, n: usize) {
        let (d, dp, hw, heads) = (self.d, self.dp, self.hw, self.heads);
        let blk = &self.blocks[b];
        let qld = 3 * dp;
        ws.kv64.clear();
        ws.kv64.resize(d * hw, 0.0);
        ws.ks64.clear();
        ws.ks64.resize(dp, 0.0);
        let (xs_in, xs_out) = ws.xs.split_at_mut((b + 1) * n * dp);
        let x_in = &xs_in[b * n * dp..];
        let x_out = &mut xs_out[..n * dp];
        let [qkv, kvt, a, o, gu, fo, ..] = &mut ws.t;
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            let buf = &mut qkv[..rows * qld];
            gemm(
                &x_in[start * dp..(start + rows) * dp],
                dp,
                rows,
                &blk.qkv.fwd,
                &blk.qkv.fwd.b,
                buf,
                qld,
            );
            for (t, row) in buf.chunks_exact_mut(qld).enumerate() {
                for v in row[..2 * dp].iter_mut() {
                    *v = elu_plus_one(*v);
                }
                ws.phiq[(start + t) * dp..(start + t + 1) * dp].copy_from_slice(&row[..dp]);
                // A unit counts as many times as the tokens it stands for in Σ φ(k)vᵀ, Σ φ(k).
                let w = ws.rows.weight[start + t];
                for v in row[dp..2 * dp].iter_mut() {
                    *v *= w;
                }
                for (acc, &v) in ws.ks64.iter_mut().zip(&row[dp..dp + d]) {
                    *acc += v as f64;
                }
            }
            let kv = &mut kvt[..d * hw];
            kv.fill(0.0);
            for h in 0..heads {
                let kvh = &mut kv[h * hw * hw..(h + 1) * hw * hw];
                if hw % LANES == 0 {
                    kernels::outer_accumulate(
                        buf,
                        qld,
                        rows,
                        dp + h * hw,
                        2 * dp + h * hw,
                        hw,
                        kvh,
                    );
                } else {
                    for row in buf.chunks_exact(qld) {
                        for i in 0..hw {
                            let k = row[dp + h * hw + i];
                            for j in 0..hw {
                                kvh[i * hw + j] += k * row[2 * dp + h * hw + j];
                            }
                        }
                    }
                }
            }
            for (acc, &v) in ws.kv64.iter_mut().zip(kv.iter()) {
                *acc += v as f64;
            }
        }
        let kv32 = &mut ws.kv32[b * d * hw..(b + 1) * d * hw];
        for (a, &v) in kv32.iter_mut().zip(&ws.kv64) {
            *a = v as f32;
        }
        let ks32 = &mut ws.ks32[b * dp..(b + 1) * dp];
        for (a, &v) in ks32.iter_mut().zip(&ws.ks64) {
            *a = v as f32;
        }
        if !self.per_head() {
            let att = &mut ws.att[b];
            let ald = att.n_pad;
            att.w.fill(0.0);
            for h in 0..heads {
                for i in 0..hw {
                    let r = h * hw + i;
                    for j in 0..hw {
                        att.w[r * ald + h * hw + j] = kv32[h * hw * hw + i * hw + j];
                    }
                    att.w[r * ald + dp + h] = ks32[r];
                }
            }
        }
        let att = if self.per_head() {
            None
        } else {
            Some(&ws.att[b])
        };
        let (kv32, ks32) = (
            &ws.kv32[b * d * hw..(b + 1) * d * hw],
            &ws.ks32[b * dp..(b + 1) * dp],
        );
        let ln_eps = LAYER_NORM_EPS as f32;
        let fld = 2 * self.ffp;
        for start in (0..n).step_by(TILE) {
            let rows = TILE.min(n - start);
            self.attend(
                kv32,
                ks32,
                att,
                &ws.phiq[start * dp..(start + rows) * dp],
                rows,
                a,
                kvt,
            );
            gemm(a, dp, rows, &blk.out.fwd, &blk.out.fwd.b, o, dp);
            let x = &mut x_out[start * dp..(start + rows) * dp];
            x.copy_from_slice(&x_in[start * dp..(start + rows) * dp]);
            for (t, xr) in x.chunks_exact_mut(dp).enumerate() {
                for (v, &w) in xr[..d].iter_mut().zip(&o[t * dp..t * dp + d]) {
                    *v += w;
                }
                layer_norm_keep(
                    &mut xr[..d],
                    &blk.ln1[0],
                    &blk.ln1[1],
                    ln_eps,
                    &mut qkv[..d],
                );
            }
            gemm(x, dp, rows, &blk.gu.fwd, &blk.gu.fwd.b, gu, fld);
            for row in gu.chunks_exact_mut(fld).take(rows) {
                for j in (0..self.ffp).step_by(LANES) {
                    let h = silu8(vload(row, j)) * vload(row, self.ffp + j);
                    vstore(row, j, h);
                }
            }
            gemm(gu, fld, rows, &blk.down.fwd, &blk.down.fwd.b, fo, dp);
            for (t, xr) in x.chunks_exact_mut(dp).enumerate() {
                for (v, &w) in xr[..d].iter_mut().zip(&fo[t * dp..t * dp + d]) {
                    *v += w;
                }
                layer_norm_keep(
                    &mut xr[..d],
                    &blk.ln2[0],
                    &blk.ln2[1],
                    ln_eps,
                    &mut qkv[..d],
                );
            }
        }
    }

    pub(super) fn backward(&self, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        let (d, dp) = (self.d, self.dp);
        let nb = self.blocks.len();
        let ld = 2 * self.ftp;
        let (mult, [s, tau]) = (ws.mult, ws.st);
        // 1. Head pass.
        ws.acc[0].reset(&self.transform);
        ws.small.reset(self.ftp + 1);
        let (mut gs, mut gt, mut gm) = (0f64, 0f64, 0f64);
        for (tile, start) in (0..n).step_by(TILE).enumerate() {
            let rows = TILE.min(n - start);
            let x = &ws.xs[(nb * n + start) * dp..(nb * n + start + rows) * dp];
            let [gu, dgu, dlm, snl, sn, dlu, ..] = &mut ws.t;
            for t in 0..rows {
                let i = start + t;
                let u = ws.u[i];
                let l = mult * u;
                let dout = ws.rows.dout[i];
                let sig = sigmoid(-s.mul_add(l, tau));
                let dl = dout * s.mul_add(sig, 1.0);
                snl[t] = dout * sig * l;
                sn[t] = dout * sig;
                dlu[t] = dl * u;
                dlm[t] = mult * dl;
                ws.rows.dlp[i] = dlm[t];
            }
            gs += sum(&snl[..rows]) as f64;
            gt += sum(&sn[..rows]) as f64;
            gm += sum(&dlu[..rows]) as f64;
            gemm(x, dp, rows, &self.transform.fwd, &ws.bias, gu, ld);
            let (acc_down, acc_db) = ws.small.v32.split_at_mut(self.ftp);
            for t in 0..rows {
                let row = &gu[t * ld..(t + 1) * ld];
                let drow = &mut dgu[t * ld..(t + 1) * ld];
                let dm = f32x8::splat(dlm[t]);
                let ftp = self.ftp;
                for j in (0..ftp).step_by(LANES) {
                    let (g, u) = (vload(row, j), vload(row, ftp + j));
                    let sg = sigmoid8(g);
                    let si = g * sg;
                    vstore(acc_down, j, (si * u).mul_add(dm, vload(acc_down, j)));
                    let dh = dm * vload(&self.t_down, j);
                    vstore(drow, j, dh * u * dsilu8(g, sg));
                    vstore(drow, ftp + j, dh * si);
                }
            }
            acc_db[0] += sum(&dlm[..rows]);
            ws.acc[0].add(&self.transform, x, dp, dgu, ld, rows);
            let dx = &mut ws.dx[start * dp..(start + rows) * dp];
            gemm(
                dgu,
                ld,
                rows,
                &self.transform.bwd,
                &self.transform.bwd.b,
                dx,
                dp,
            );
            if (tile + 1) % FLUSH_TILES == 0 {
                ws.acc[0].flush();
                ws.small.flush();
            }
        }
        ws.small.flush();
        ws.acc[0].scatter(&self.transform, grad);
        let dc = &mut ws.dc;
        dc.clear();
        dc.resize(d, 0.0);
        for p in &self.transform.parts {
            for o in 0..p.out {
                let gb = ws.acc[0].b.v64[p.col0 + o];
                for m in 0..d {
                    grad[p.w_off + o * 2 * d + d + m] += gb * ws.c[m];
                    dc[m] += gb * self.t_ctx[(p.col0 + o) * d + m] as f64;
                }
            }
        }
        for j in 0..self.ftp.min(self.transform.parts[0].out) {
            grad[self.t_down_off[0] + j] += ws.small.v64[j];
        }
        grad[self.t_down_off[1]] += ws.small.v64[self.ftp];
        let f = SwiGlu::hidden_width(d / 2);
        let dr = [gs * sigmoid64(ws.raw[1]), gt * sigmoid64(ws.raw[2])];
        self.truncation
            .backward(&ws.c, &ws.head_g[f..], &ws.head_u[f..], &dr, dc, grad);
        if let Some(h) = &self.scale {
            let dr = [gm * sigmoid64(ws.raw[0])];
            h.backward(&ws.c, &ws.head_g[..f], &ws.head_u[..f], &dr, dc, grad);
        }
        // The pool: every token gets ∂c / (kept tokens), a unit that many times its weight.
        let uniform = &mut ws.uniform;
        uniform.grow(dp);
        for (u, g) in uniform.iter_mut().zip(dc.iter()) {
            *u = (*g / ws.rows.kept as f64) as f32;
        }
        for (row, &w) in ws.dx[..n * dp]
            .chunks_exact_mut(dp)
            .zip(&ws.rows.weight[..n])
        {
            for (a, &u) in row.iter_mut().zip(uniform.iter()) {
                *a = w.mul_add(u, *a);
            }
        }
        // 2. Blocks, last first.
        for b in (0..nb).rev() {
            self.block_backward(b, ws, n, grad);
        }
        // 3. Encoder.
        self.encoder_backward(ws, n, grad);
    }

    fn encoder_backward(&self, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        let (dp, fep) = (self.dp, self.fep);
        ws.acc[0].reset(&self.enc_down);
        ws.small.reset(4 * fep);
        let [gw, gb, uw, ub] = &self.enc;
        for (tile, start) in (0..n).step_by(TILE).enumerate() {
            let rows = TILE.min(n - start);
            let lp = &ws.rows.lp[start..start + rows];
            let [h, dh, ..] = &mut ws.t;
            self.encoder_hidden(lp, h);
            let dx = &ws.dx[start * dp..(start + rows) * dp];
            ws.acc[0].add(&self.enc_down, h, fep, dx, dp, rows);
            gemm(
                dx,
                dp,
                rows,
                &self.enc_down.bwd,
                &self.enc_down.bwd.b,
                dh,
                fep,
            );
            let a = &mut ws.small.v32[..];
            for (t, &l) in lp.iter().enumerate() {
                let l8 = f32x8::splat(l);
                let mut dl = f32x8::ZERO;
                for j in (0..fep).step_by(LANES) {
                    let (gw, uw) = (vload(gw, j), vload(uw, j));
                    let g = gw.mul_add(l8, vload(gb, j));
                    let u = uw.mul_add(l8, vload(ub, j));
                    let sg = sigmoid8(g);
                    let si = g * sg;
                    let dhj = vload(dh, t * fep + j);
                    let dg = dhj * u * dsilu8(g, sg);
                    let du = dhj * si;
                    vstore(a, j, dg.mul_add(l8, vload(a, j)));
                    vstore(a, fep + j, vload(a, fep + j) + dg);
                    vstore(a, 2 * fep + j, du.mul_add(l8, vload(a, 2 * fep + j)));
                    vstore(a, 3 * fep + j, vload(a, 3 * fep + j) + du);
                    dl = dg.mul_add(gw, du.mul_add(uw, dl));
                }
                ws.rows.dlp[start + t] += dl.reduce_add();
            }
            if (tile + 1) % FLUSH_TILES == 0 {
                ws.acc[0].flush();
                ws.small.flush();
            }
        }
        ws.small.flush();
        ws.acc[0].scatter(&self.enc_down, grad);
        for k in 0..4 {
            for j in 0..self.fe {
                grad[self.enc_off[k] + j] += ws.small.v64[k * fep + j];
            }
        }
    }

    /// Block `b`'s backward: `ws.dx` holds `∂x_{b+1}` on entry and `∂x_b` on exit.
    fn block_backward(&self, b: usize, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        let (d, dp, hw, heads) = (self.d, self.dp, self.hw, self.heads);
        let blk = &self.blocks[b];
        let (ffp, fld) = (self.ffp, 2 * self.ffp);
        let ln_eps = LAYER_NORM_EPS as f32;
        let eps = ATTENTION_EPS as f32;
        for (acc, layer) in ws
            .acc
            .iter_mut()
            .zip([&blk.qkv, &blk.out, &blk.gu, &blk.down])
        {
            acc.reset(layer);
        }
        ws.ln_acc[0].reset(2 * d);
        ws.ln_acc[1].reset(2 * d);
        ws.dkv.reset(d * hw);
        ws.dks.reset(d);
        let kv32 = &ws.kv32[b * d * hw..(b + 1) * d * hw];
        let ks32 = &ws.ks32[b * dp..(b + 1) * dp];
        // KVᵀ block-diagonal: m[j, a] = KV_h[a, j].
        let m_kvt = ws.m_kvt.as_mut().expect("grown");
        m_kvt.w.fill(0.0);
        for h in 0..heads {
            for i in 0..hw {
                for j in 0..hw {
                    let v = kv32[h * hw * hw + i * hw + j];
                    m_kvt.w[(h * hw + j) * dp + h * hw + i] = v;
                    ws.compact[0][h * hw * hw + j * hw + i] = v;
                }
            }
        }
        let att = if self.per_head() {
            None
        } else {
            Some(&ws.att[b])
        };
        let x_in = &ws.xs[b * n * dp..(b + 1) * n * dp];
        let m_kvt = ws.m_kvt.as_ref().expect("grown");
        // Pass A.
        {
            let [phiq, a, o, x1, xh1, gu, hf, fo, xh2, t9, t10, t11] = &mut ws.t;
            let [r1, r2] = &mut ws.rt;
            for (tile, start) in (0..n).step_by(TILE).enumerate() {
                let rows = TILE.min(n - start);
                let x0 = &x_in[start * dp..(start + rows) * dp];
                // Recompute the block's forward on the tile.
                gemm(x0, dp, rows, &blk.q, &blk.q.b, phiq, dp);
                for v in phiq[..rows * dp].iter_mut() {
                    *v = elu_plus_one(*v);
                }
                self.attend(kv32, ks32, att, phiq, rows, a, t9);
                gemm(a, dp, rows, &blk.out.fwd, &blk.out.fwd.b, o, dp);
                for t in 0..rows {
                    let xr = &mut x1[t * dp..(t + 1) * dp];
                    for ((x, &a), &b) in xr.iter_mut().zip(&x0[t * dp..]).zip(&o[t * dp..]) {
                        *x = a + b;
                    }
                    r1[t] = layer_norm_keep(
                        &mut xr[..d],
                        &blk.ln1[0],
                        &blk.ln1[1],
                        ln_eps,
                        &mut xh1[t * dp..t * dp + d],
                    );
                }
                gemm(x1, dp, rows, &blk.gu.fwd, &blk.gu.fwd.b, gu, fld);
                for (h, row) in hf
                    .chunks_exact_mut(ffp)
                    .zip(gu.chunks_exact(fld))
                    .take(rows)
                {
                    for j in (0..ffp).step_by(LANES) {
                        vstore(h, j, silu8(vload(row, j)) * vload(row, ffp + j));
                    }
                }
                gemm(hf, ffp, rows, &blk.down.fwd, &blk.down.fwd.b, fo, dp);
                for t in 0..rows {
                    let y = &mut fo[t * dp..(t + 1) * dp];
                    for (y, &x) in y.iter_mut().zip(&x1[t * dp..(t + 1) * dp]) {
                        *y += x;
                    }
                    r2[t] = layer_norm_keep(
                        &mut y[..d],
                        &blk.ln2[0],
                        &blk.ln2[1],
                        ln_eps,
                        &mut xh2[t * dp..t * dp + d],
                    );
                }
                // LN2 backward: δy₂ (into t9, reusing the attention scratch).
                let dy2 = &mut t9[..rows * dp];
                let dx = &ws.dx[start * dp..(start + rows) * dp];
                ln_backward(
                    dx,
                    xh2,
                    r2,
                    &blk.ln2[0],
                    d,
                    dp,
                    rows,
                    dy2,
                    &mut ws.ln_acc[1].v32,
                );
                // Feed-forward backward.
                ws.acc[3].add(&blk.down, hf, ffp, dy2, dp, rows);
                gemm(dy2, dp, rows, &blk.down.bwd, &blk.down.bwd.b, t10, ffp);
                for ((row, dh), drow) in gu
                    .chunks_exact(fld)
                    .zip(t10.chunks_exact(ffp))
                    .zip(t11.chunks_exact_mut(fld))
                    .take(rows)
                {
                    for j in (0..ffp).step_by(LANES) {
                        let (g, u) = (vload(row, j), vload(row, ffp + j));
                        let sg = sigmoid8(g);
                        let dh = vload(dh, j);
                        vstore(drow, j, dh * u * dsilu8(g, sg));
                        vstore(drow, ffp + j, dh * g * sg);
                    }
                }
                ws.acc[2].add(&blk.gu, x1, dp, t11, fld, rows);
                // δx₁ = δy₂ + δgu·W_guᵀ (into o, free now).
                gemm(t11, fld, rows, &blk.gu.bwd, &blk.gu.bwd.b, o, dp);
                for (v, &w) in o[..rows * dp].iter_mut().zip(dy2.iter()) {
                    *v += w;
                }
                // LN1 backward: δy₁ (= δ of the attention output projection).
                let dy1 = &mut ws.dy1[start * dp..(start + rows) * dp];
                ln_backward(
                    o,
                    xh1,
                    r1,
                    &blk.ln1[0],
                    d,
                    dp,
                    rows,
                    dy1,
                    &mut ws.ln_acc[0].v32,
                );
                ws.acc[1].add(&blk.out, a, dp, dy1, dp, rows);
                // δa = δy₁·W_oᵀ (into x1, free now).
                gemm(dy1, dp, rows, &blk.out.bwd, &blk.out.bwd.b, x1, dp);
                // Attention: δnum (into xh1), δden per head (into hf).
                for t in 0..rows {
                    for h in 0..heads {
                        let r = t * dp + h * hw..t * dp + (h + 1) * hw;
                        let den = dot(&phiq[r.clone()], &ks32[h * hw..(h + 1) * hw]) + eps;
                        let inv = 1.0 / den;
                        hf[t * heads + h] = -dot(&x1[r.clone()], &a[r.clone()]) * inv;
                        for k in r {
                            xh1[k] = x1[k] * inv;
                        }
                    }
                }
                // δφ(q) = δnum·KVᵀ + δden·ks (into xh2).
                self.block_diag(m_kvt, &ws.compact[0], xh1, dp, rows, xh2, dp);
                let dkv = &mut ws.dkv.v32;
                let dks = &mut ws.dks.v32;
                for t in 0..rows {
                    for h in 0..heads {
                        let dden = hf[t * heads + h];
                        let r = h * hw..(h + 1) * hw;
                        for (((g, &k), a), &p) in xh2[t * dp + r.start..t * dp + r.end]
                            .iter_mut()
                            .zip(&ks32[r.clone()])
                            .zip(dks[r.clone()].iter_mut())
                            .zip(&phiq[t * dp + r.start..t * dp + r.end])
                        {
                            *g = dden.mul_add(k, *g);
                            *a = dden.mul_add(p, *a);
                        }
                    }
                }
                for h in 0..heads {
                    let acc = &mut dkv[h * hw * hw..(h + 1) * hw * hw];
                    if hw % LANES == 0 {
                        kernels::gemm_tn_acc(
                            &phiq[h * hw..],
                            dp,
                            hw,
                            &xh1[h * hw..],
                            dp,
                            hw,
                            rows,
                            acc,
                            hw,
                        );
                    } else {
                        for t in 0..rows {
                            for i in 0..hw {
                                let p = phiq[t * dp + h * hw + i];
                                for j in 0..hw {
                                    acc[i * hw + j] =
                                        p.mul_add(xh1[t * dp + h * hw + j], acc[i * hw + j]);
                                }
                            }
                        }
                    }
                }
                // δq = δφ(q) ⊙ min(φ(q), 1).
                let dq = &mut ws.dq[start * dp..(start + rows) * dp];
                for ((o, &g), &p) in dq.iter_mut().zip(xh2.iter()).zip(phiq.iter()) {
                    *o = g * p.min(1.0);
                }
                if (tile + 1) % FLUSH_TILES == 0 {
                    for acc in ws.acc.iter_mut() {
                        acc.flush();
                    }
                    for acc in ws.ln_acc.iter_mut() {
                        acc.flush();
                    }
                    ws.dkv.flush();
                    ws.dks.flush();
                }
            }
        }
        ws.dkv.flush();
        ws.dks.flush();
        // δKVᵀ with bias δks (for δφ(k)) and δKV (for δv), block-diagonal.
        {
            let m_dkvt = ws.m_dkvt.as_mut().expect("grown");
            m_dkvt.w.fill(0.0);
            m_dkvt.b.fill(0.0);
            for (a, &g) in m_dkvt.b.iter_mut().zip(&ws.dks.v64) {
                *a = g as f32;
            }
            let m_dkv = ws.m_dkv.as_mut().expect("grown");
            m_dkv.w.fill(0.0);
            for h in 0..heads {
                for i in 0..hw {
                    for j in 0..hw {
                        let g = ws.dkv.v64[h * hw * hw + i * hw + j] as f32;
                        m_dkvt.w[(h * hw + j) * dp + h * hw + i] = g;
                        m_dkv.w[(h * hw + i) * dp + h * hw + j] = g;
                        ws.compact[1][h * hw * hw + j * hw + i] = g;
                        ws.compact[2][h * hw * hw + i * hw + j] = g;
                    }
                }
            }
        }
        let (m_dkvt, m_dkv) = (
            ws.m_dkvt.as_ref().expect("grown"),
            ws.m_dkv.as_ref().expect("grown"),
        );
        // Pass B.
        {
            let [kv, dqkv, dphik, ..] = &mut ws.t;
            let qld = 3 * dp;
            for (tile, start) in (0..n).step_by(TILE).enumerate() {
                let rows = TILE.min(n - start);
                let x0 = &x_in[start * dp..(start + rows) * dp];
                gemm(x0, dp, rows, &blk.kv, &blk.kv.b, kv, 2 * dp);
                for t in 0..rows {
                    for v in kv[t * 2 * dp..t * 2 * dp + dp].iter_mut() {
                        *v = elu_plus_one(*v);
                    }
                }
                // δφ(k) = δKV·v + δks; δv = δKVᵀ·φ(k).
                let [_, c1, c2] = &ws.compact;
                self.block_diag(m_dkvt, c1, &kv[dp..], 2 * dp, rows, dphik, dp);
                self.block_diag(m_dkv, c2, kv, 2 * dp, rows, &mut dqkv[2 * dp..], qld);
                // δφ(k), δv come from the vocabulary-wide sums, the same for every token of a
                // unit: the unit's total is its weight times them.
                for t in 0..rows {
                    let w = ws.rows.weight[start + t];
                    let row = &mut dqkv[t * qld..(t + 1) * qld];
                    row[..dp].copy_from_slice(&ws.dq[(start + t) * dp..(start + t + 1) * dp]);
                    for ((o, &g), &p) in row[dp..2 * dp]
                        .iter_mut()
                        .zip(&dphik[t * dp..(t + 1) * dp])
                        .zip(&kv[t * 2 * dp..t * 2 * dp + dp])
                    {
                        *o = w * (g * p.min(1.0));
                    }
                    for o in row[2 * dp..].iter_mut() {
                        *o *= w;
                    }
                }
                ws.acc[0].add(&blk.qkv, x0, dp, dqkv, qld, rows);
                let dx = &mut ws.dx[start * dp..(start + rows) * dp];
                gemm(dqkv, qld, rows, &blk.qkv.bwd, &blk.qkv.bwd.b, dx, dp);
                for (v, &w) in dx.iter_mut().zip(&ws.dy1[start * dp..(start + rows) * dp]) {
                    *v += w;
                }
                if (tile + 1) % FLUSH_TILES == 0 {
                    ws.acc[0].flush();
                }
            }
        }
        for (acc, layer) in ws
            .acc
            .iter_mut()
            .zip([&blk.qkv, &blk.out, &blk.gu, &blk.down])
        {
            acc.scatter(layer, grad);
        }
        for (acc, off) in ws.ln_acc.iter_mut().zip([blk.ln1_off, blk.ln2_off]) {
            acc.flush();
            for k in 0..d {
                grad[off[0] + k] += acc.v64[k];
                grad[off[1] + k] += acc.v64[d + k];
            }
        }
    }
}

/// LayerNorm backward over `rows` tokens (row stride `dp`, `d` channels): from `dout`, the
/// normalised `xhat` and `rstd`, writes `δy = r·(δx̂ − mean(δx̂) − x̂·mean(δx̂ ⊙ x̂))`
/// (`δx̂ = dout ⊙ w`) to `dy` (padding zeroed) and adds `Σ dout ⊙ x̂` (weight) and `Σ dout`
/// (bias) to `acc` (`2d`).
#[allow(clippy::too_many_arguments)]
fn ln_backward(
    dout: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    d: usize,
    dp: usize,
    rows: usize,
    dy: &mut [f32],
    acc: &mut [f32],
) {
    let (aw, ab) = acc.split_at_mut(d);
    for t in 0..rows {
        let g = &dout[t * dp..t * dp + d];
        let xh = &xhat[t * dp..t * dp + d];
        let out = &mut dy[t * dp..(t + 1) * dp];
        let (o, pad) = out.split_at_mut(d);
        // δx̂ = g ⊙ w into `o` first.
        for ((o, &g), &w) in o.iter_mut().zip(g).zip(w) {
            *o = g * w;
        }
        let m1 = sum(o) / d as f32;
        let m2 = dot(o, xh) / d as f32;
        for ((((o, &g), &x), aw), ab) in o
            .iter_mut()
            .zip(g)
            .zip(xh)
            .zip(aw.iter_mut())
            .zip(ab.iter_mut())
        {
            *aw = g.mul_add(x, *aw);
            *ab += g;
            *o = rstd[t] * (*o - m1 - x * m2);
        }
        pad.fill(0.0);
    }
}
