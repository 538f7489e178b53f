//! SimpleDistributionAwareTransform forward + backward (SPEC §2,
//! [`crate::arch::distribution_aware`]).
//!
//! Per row the statistics `st = [max lp, H]` (no gradient) and `(s, τ)`; per token `x = lp`:
//! `a = w_l·x + b_l` (h wide), `F = silu(a)`, `[G | U] = F·W_guᵀ + (b_gu + W_ctx·st)`,
//! `Hh = silu(G) ⊙ U`, `l = x + w_d·Hh + b_d`, `out = l + logsigmoid(s·l + τ)`.
//!
//! Backward with `δ = ∂L/∂out`, `σₙ = σ(−(s·l + τ))`: `δl = δ·(1 + s·σₙ)`; `∂s = Σ δ·l·σₙ`,
//! `∂τ = Σ δ·σₙ`, then through softplus (`σ` of the raw value) into the static scalars or the
//! dynamic head `Linear(2→2)(st)`; `∂w_d += δl·Hh`, `∂b_d += δl`;
//! `δG = δl·w_d ⊙ U ⊙ silu'(G)`, `δU = δl·w_d ⊙ silu(G)`; `∂W_gu += Fᵀ·[δG|δU]` (per tile),
//! `∂b_gu += Σ [δG|δU]`, and the context columns `∂W_ctx = (Σ_tokens [δG|δU]) ⊗ st`;
//! `δF = [δG|δU]·W_gu`, `δa = δF ⊙ silu'(a)`, `∂w_l += δa·x`, `∂b_l += δa`,
//! `∂x = δl + δa·w_l`. The gate|up pre-activations of every token are kept from the forward.

use super::{
    dot, dsilu8, sigmoid, sigmoid8, silu8, sum, vload, vstore, Acc, Layer, LayerAcc, Part, RowBufs,
    FLUSH_TILES,
};
use crate::config::DistributionAwareConfig;
use crate::error::Result;
use crate::fast::grad::ParamLayout;
use crate::fast::kernels::{gate, gemm, pad8, softplus, AlignedBuf, LANES};
use crate::layers::SwiGlu;
use adasamp_sampling::math;
use wide::f32x8;

/// Tokens per tile.
const TILE: usize = 60;

#[derive(Debug)]
enum Truncation {
    /// `(s, τ) = softplus(W·st + b)`; offsets of `W` (`[2, 2]`) and `b`.
    Dynamic {
        w: [f32; 4],
        b: [f32; 2],
        w_off: usize,
        b_off: usize,
    },
    /// `(s, τ) = softplus(raw)`; offsets of the two raw scalars.
    Static { raw: [f32; 2], off: [usize; 2] },
}

/// The weights and where their gradients go.
#[derive(Debug)]
pub(super) struct Net {
    h: usize,
    hp: usize,
    f: usize,
    fp: usize,
    local_w: Vec<f32>,
    local_b: Vec<f32>,
    /// gate (columns `0..f`) | up (`fp..fp + f`) over the `h` features.
    gu: Layer,
    /// `[2·fp, 2]`: the two statistics' weights per packed column.
    ctx_w: Vec<f32>,
    down: Vec<f32>,
    down_b: f32,
    truncation: Truncation,
    /// Offsets of local.weight, local.bias, down.weight, down.bias.
    off: [usize; 4],
}

/// Per-thread buffers.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    pub(super) rows: RowBufs,
    /// `l` per kept token.
    l: AlignedBuf,
    /// `[G | U]` per kept token (`2·fp` wide).
    gu: AlignedBuf,
    feat: AlignedBuf,
    dsilu: AlignedBuf,
    dgu: AlignedBuf,
    dfeat: AlignedBuf,
    hh: AlignedBuf,
    da: AlignedBuf,
    bias: AlignedBuf,
    acc_gu: LayerAcc,
    /// down.weight (`fp`), local.weight (`hp`), local.bias (`hp`).
    acc: Acc,
    /// Σ δl, Σ δ·l·σₙ, Σ δ·σₙ.
    scalars: [f64; 3],
    stats: [f32; 2],
    /// Pre-softplus `(s, τ)`, and `(s, τ)`.
    raw: [f32; 2],
    st: [f32; 2],
}

impl Net {
    pub(super) fn new(
        c: &DistributionAwareConfig,
        layout: &ParamLayout,
        flat: &[f32],
    ) -> Result<Self> {
        let h = c.hidden;
        let hp = pad8(h);
        let f = SwiGlu::hidden_width(h);
        let fp = pad8(f);
        let lw = layout.offset("local.weight", h)?;
        let lb = layout.offset("local.bias", h)?;
        let mut local_w = vec![0.0; hp];
        let mut local_b = vec![0.0; hp];
        local_w[..h].copy_from_slice(&flat[lw..lw + h]);
        local_b[..h].copy_from_slice(&flat[lb..lb + h]);
        let mut parts = Vec::new();
        let mut ctx_w = vec![0.0; 2 * fp * 2];
        for (col0, name) in [(0, "gate"), (fp, "up")] {
            let w_off = layout.offset(&format!("mlp.{name}.weight"), f * (h + 2))?;
            let b_off = layout.offset(&format!("mlp.{name}.bias"), f)?;
            parts.push(Part {
                col0,
                out: f,
                in_total: h + 2,
                in_start: 0,
                w_off,
                b_off: Some(b_off),
            });
            for o in 0..f {
                for m in 0..2 {
                    ctx_w[(col0 + o) * 2 + m] = flat[w_off + o * (h + 2) + h + m];
                }
            }
        }
        let gu = Layer::new(flat, h, 2 * fp, parts);
        let dw = layout.offset("mlp.down.weight", f)?;
        let db = layout.offset("mlp.down.bias", 1)?;
        let mut down = vec![0.0; fp];
        down[..f].copy_from_slice(&flat[dw..dw + f]);
        let truncation = if c.dynamic_truncation {
            let w_off = layout.offset("truncation.weight", 4)?;
            let b_off = layout.offset("truncation.bias", 2)?;
            Truncation::Dynamic {
                w: [
                    flat[w_off],
                    flat[w_off + 1],
                    flat[w_off + 2],
                    flat[w_off + 3],
                ],
                b: [flat[b_off], flat[b_off + 1]],
                w_off,
                b_off,
            }
        } else {
            let off = [
                layout.offset("truncation.scale_raw", 1)?,
                layout.offset("truncation.threshold_raw", 1)?,
            ];
            Truncation::Static {
                raw: [flat[off[0]], flat[off[1]]],
                off,
            }
        };
        Ok(Self {
            h,
            hp,
            f,
            fp,
            local_w,
            local_b,
            gu,
            ctx_w,
            down,
            down_b: flat[db],
            truncation,
            off: [lw, lb, dw, db],
        })
    }

    /// `F = silu(w_l·x + b_l)` of a tile into `feat` (and `silu'` into `dsilu` if given).
    fn features(&self, x: &[f32], feat: &mut [f32], mut dsilu: Option<&mut [f32]>) {
        let hp = self.hp;
        for (t, &x) in x.iter().enumerate() {
            let x8 = f32x8::splat(x);
            let row = t * hp;
            for k in (0..hp).step_by(LANES) {
                let a = vload(&self.local_w, k).mul_add(x8, vload(&self.local_b, k));
                let sg = sigmoid8(a);
                match dsilu.as_deref_mut() {
                    None => vstore(feat, row + k, silu8(a)),
                    Some(ds) => {
                        vstore(feat, row + k, a * sg);
                        vstore(ds, row + k, dsilu8(a, sg));
                    }
                }
            }
        }
    }

    pub(super) fn forward(&self, ws: &mut Workspace, n: usize, lse: f32) {
        let (hp, fp) = (self.hp, self.fp);
        let ld = 2 * fp;
        let lp = &ws.rows.lp[..n];
        // H = −Σ_tokens p·lp: each unit counts as often as the tokens it stands for.
        let entropy = -lp
            .iter()
            .zip(&ws.rows.weight[..n])
            .map(|(&l, &w)| (w * (math::exp(l) * l)) as f64)
            .sum::<f64>() as f32;
        let st = [-lse, entropy];
        let raw = match &self.truncation {
            Truncation::Dynamic { w, b, .. } => [
                b[0] + (w[0] * st[0] + w[1] * st[1]),
                b[1] + (w[2] * st[0] + w[3] * st[1]),
            ],
            Truncation::Static { raw, .. } => *raw,
        };
        let (s, tau) = (softplus(raw[0]), softplus(raw[1]));
        ws.stats = st;
        ws.raw = raw;
        ws.st = [s, tau];
        ws.bias.grow(ld);
        for c in 0..ld {
            ws.bias[c] =
                self.gu.fwd.b[c] + (self.ctx_w[2 * c] * st[0] + self.ctx_w[2 * c + 1] * st[1]);
        }
        ws.l.grow(n);
        ws.gu.grow(n * ld);
        ws.feat.grow(TILE * hp);
        ws.hh.grow(TILE * fp);
        for start in (0..n).step_by(TILE) {
            let len = TILE.min(n - start);
            let x = &ws.rows.lp[start..start + len];
            self.features(x, &mut ws.feat, None);
            let gu = &mut ws.gu[start * ld..(start + len) * ld];
            gemm(&ws.feat, hp, len, &self.gu.fwd, &ws.bias, gu, ld);
            for t in 0..len {
                let row = &gu[t * ld..(t + 1) * ld];
                let hh = &mut ws.hh[t * fp..(t + 1) * fp];
                for j in (0..fp).step_by(LANES) {
                    vstore(hh, j, silu8(vload(row, j)) * vload(row, fp + j));
                }
                let l = x[t] + (dot(hh, &self.down) + self.down_b);
                ws.l[start + t] = l;
                ws.rows.out[start + t] = gate(l, s, tau);
            }
        }
    }

    pub(super) fn backward(&self, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        let (h, hp, f, fp) = (self.h, self.hp, self.f, self.fp);
        let ld = 2 * fp;
        let [s, tau] = ws.st;
        ws.acc_gu.reset(&self.gu);
        ws.acc.reset(fp + 2 * hp);
        ws.scalars = [0.0; 3];
        ws.dsilu.grow(TILE * hp);
        ws.dgu.grow(TILE * ld);
        ws.dfeat.grow(TILE * hp);
        let mut dl = [0.0f32; TILE];
        let mut sn = [0.0f32; TILE];
        ws.da.grow(hp);
        for (tile, start) in (0..n).step_by(TILE).enumerate() {
            let len = TILE.min(n - start);
            let x = &ws.rows.lp[start..start + len];
            let ls = &ws.l[start..start + len];
            for t in 0..len {
                let d = ws.rows.dout[start + t];
                let sig = sigmoid(-s.mul_add(ls[t], tau));
                sn[t] = d * sig;
                dl[t] = d * s.mul_add(sig, 1.0);
            }
            ws.scalars[0] += sum(&dl[..len]) as f64;
            ws.scalars[1] += dot(&sn[..len], ls) as f64;
            ws.scalars[2] += sum(&sn[..len]) as f64;
            self.features(x, &mut ws.feat, Some(&mut ws.dsilu));
            let gu = &ws.gu[start * ld..(start + len) * ld];
            let (acc_down, acc_local) = ws.acc.v32.split_at_mut(fp);
            for t in 0..len {
                let row = &gu[t * ld..(t + 1) * ld];
                let drow = &mut ws.dgu[t * ld..(t + 1) * ld];
                let dlt = f32x8::splat(dl[t]);
                for j in (0..fp).step_by(LANES) {
                    let (g, u) = (vload(row, j), vload(row, fp + j));
                    let sg = sigmoid8(g);
                    let si = g * sg;
                    vstore(acc_down, j, (si * u).mul_add(dlt, vload(acc_down, j)));
                    let dh = dlt * vload(&self.down, j);
                    vstore(drow, j, dh * u * dsilu8(g, sg));
                    vstore(drow, fp + j, dh * si);
                }
            }
            ws.acc_gu.add(&self.gu, &ws.feat, hp, &ws.dgu, ld, len);
            gemm(
                &ws.dgu,
                ld,
                len,
                &self.gu.bwd,
                &self.gu.bwd.b,
                &mut ws.dfeat,
                hp,
            );
            let (acc_lw, acc_lb) = acc_local.split_at_mut(hp);
            for t in 0..len {
                let df = &ws.dfeat[t * hp..(t + 1) * hp];
                let ds = &ws.dsilu[t * hp..(t + 1) * hp];
                let da = &mut ws.da[..hp];
                let xt = x[t];
                for ((((a, &f), &g), lw), lb) in da
                    .iter_mut()
                    .zip(df)
                    .zip(ds)
                    .zip(acc_lw.iter_mut())
                    .zip(acc_lb.iter_mut())
                {
                    *a = f * g;
                    *lw = a.mul_add(xt, *lw);
                    *lb += *a;
                }
                ws.rows.dlp[start + t] = dl[t] + dot(da, &self.local_w);
            }
            if (tile + 1) % FLUSH_TILES == 0 {
                ws.acc_gu.flush();
                ws.acc.flush();
            }
        }
        ws.acc.flush();
        ws.acc_gu.scatter(&self.gu, grad);
        // Context columns: Σ_tokens [δG|δU] (the bias gradient) times each statistic.
        for p in &self.gu.parts {
            for o in 0..f {
                let gb = ws.acc_gu.b.v64[p.col0 + o];
                for m in 0..2 {
                    grad[p.w_off + o * (h + 2) + h + m] += gb * ws.stats[m] as f64;
                }
            }
        }
        let [lw, lb, dw, db] = self.off;
        let a = &ws.acc.v64;
        for j in 0..f {
            grad[dw + j] += a[j];
        }
        for k in 0..h {
            grad[lw + k] += a[fp + k];
            grad[lb + k] += a[fp + hp + k];
        }
        grad[db] += ws.scalars[0];
        let d_raw = [
            ws.scalars[1] * sigmoid(ws.raw[0]) as f64,
            ws.scalars[2] * sigmoid(ws.raw[1]) as f64,
        ];
        match &self.truncation {
            Truncation::Dynamic { w_off, b_off, .. } => {
                for r in 0..2 {
                    grad[b_off + r] += d_raw[r];
                    for m in 0..2 {
                        grad[w_off + 2 * r + m] += d_raw[r] * ws.stats[m] as f64;
                    }
                }
            }
            Truncation::Static { off, .. } => {
                grad[off[0]] += d_raw[0];
                grad[off[1]] += d_raw[1];
            }
        }
    }
}
