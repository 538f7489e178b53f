//! LocalProbabilityTransform forward + backward (SPEC §2, [`crate::arch::local`]).
//!
//! Per token `x = lp`: `g_j = w_g,j·x + b_g,j`, `u_j = w_u,j·x + b_u,j`,
//! `h_j = silu(g_j)·u_j`, `l = x + Σ_j w_d,j·h_j + b_d`, `out = l + logsigmoid(s·l + τ)`.
//! Backward with `δ = ∂L/∂out`, `σₙ = σ(−(s·l + τ))`: `δl = δ·(1 + s·σₙ)`, `∂s += δ·l·σₙ`,
//! `∂τ += δ·σₙ`, `∂b_d += δl`, `∂w_d,j += δl·h_j`, `δg_j = δl·w_d,j·u_j·silu'(g_j)`,
//! `δu_j = δl·w_d,j·silu(g_j)`, `∂w_g,j += δg_j·x`, `∂b_g,j += δg_j` (same for up),
//! `∂x = δl + Σ_j (δg_j·w_g,j + δu_j·w_u,j)`, with `silu'(g) = σ(g)·(1 + g·(1 − σ(g)))`.

use super::{dot, dsilu8, sigmoid, sigmoid8, sum, vload, vstore, Acc, RowBufs, FLUSH_TILES};
use crate::config::LocalConfig;
use crate::error::Result;
use crate::fast::grad::ParamLayout;
use crate::fast::kernels::{gate, silu, AlignedBuf, LANES};
use crate::layers::SwiGlu;
use wide::f32x8;

/// Tokens per tile.
const TILE: usize = 256;

/// The weights and where their gradients go.
#[derive(Debug)]
pub(super) struct Net {
    gate_w: Vec<f32>,
    gate_b: Vec<f32>,
    up_w: Vec<f32>,
    up_b: Vec<f32>,
    down_w: Vec<f32>,
    down_b: f32,
    s: f32,
    tau: f32,
    /// Offsets of gate.weight, gate.bias, up.weight, up.bias, down.weight (each `f` long),
    /// down.bias, scale, threshold.
    off: [usize; 8],
}

/// Per-thread buffers.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    pub(super) rows: RowBufs,
    /// `l` (before the gate) per kept token.
    l: AlignedBuf,
    /// Gradient sums of gate.w, gate.b, up.w, up.b, down.w (`f` each, in that order).
    acc: Acc,
    /// Σ δl (down.bias), Σ δ·l·σₙ (s), Σ δ·σₙ (τ).
    scalars: [f64; 3],
}

impl Net {
    pub(super) fn new(c: &LocalConfig, layout: &ParamLayout, flat: &[f32]) -> Result<Self> {
        let f = SwiGlu::hidden_width(c.hidden);
        let names = [
            ("mlp.gate.weight", f),
            ("mlp.gate.bias", f),
            ("mlp.up.weight", f),
            ("mlp.up.bias", f),
            ("mlp.down.weight", f),
            ("mlp.down.bias", 1),
            ("truncation.scale", 1),
            ("truncation.threshold", 1),
        ];
        let mut off = [0; 8];
        for (o, (name, len)) in off.iter_mut().zip(names) {
            *o = layout.offset(name, len)?;
        }
        let v = |k: usize| flat[off[k]..off[k] + f].to_vec();
        Ok(Self {
            gate_w: v(0),
            gate_b: v(1),
            up_w: v(2),
            up_b: v(3),
            down_w: v(4),
            down_b: flat[off[5]],
            s: flat[off[6]],
            tau: flat[off[7]],
            off,
        })
    }

    pub(super) fn forward(&self, ws: &mut Workspace, n: usize) {
        ws.l.grow(n);
        let rows = &mut ws.rows;
        for ((x, l), out) in rows.lp[..n]
            .chunks(TILE)
            .zip(ws.l.chunks_mut(TILE))
            .zip(rows.out.chunks_mut(TILE))
        {
            let l = &mut l[..x.len()];
            l.fill(0.0);
            for j in 0..self.gate_w.len() {
                let (wg, bg, wu, bu, wd) = (
                    self.gate_w[j],
                    self.gate_b[j],
                    self.up_w[j],
                    self.up_b[j],
                    self.down_w[j],
                );
                for (a, &x) in l.iter_mut().zip(x) {
                    let g = wg.mul_add(x, bg);
                    let u = wu.mul_add(x, bu);
                    *a = (silu(g) * u).mul_add(wd, *a);
                }
            }
            for ((o, l), &x) in out.iter_mut().zip(l.iter_mut()).zip(x) {
                *l = x + (*l + self.down_b);
                *o = gate(*l, self.s, self.tau);
            }
        }
    }

    pub(super) fn backward(&self, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        let f = self.gate_w.len();
        ws.acc.reset(5 * f);
        ws.scalars = [0.0; 3];
        let (s, tau) = (self.s, self.tau);
        let mut dl = [0.0f32; TILE];
        let mut ls = [0.0f32; TILE];
        let mut sn = [0.0f32; TILE];
        let mut h = [0.0f32; TILE];
        let mut dg = [0.0f32; TILE];
        let mut du = [0.0f32; TILE];
        let rows = &mut ws.rows;
        for (tile, start) in (0..n).step_by(TILE).enumerate() {
            let len = TILE.min(n - start);
            let x = &rows.lp[start..start + len];
            let dx = &mut rows.dlp[start..start + len];
            let (dl, ls, sn) = (&mut dl[..len], &mut ls[..len], &mut sn[..len]);
            for t in 0..len {
                let l = ws.l[start + t];
                let d = rows.dout[start + t];
                let sig = sigmoid(-s.mul_add(l, tau));
                sn[t] = d * sig;
                ls[t] = l;
                dl[t] = d * s.mul_add(sig, 1.0);
            }
            ws.scalars[0] += sum(dl) as f64;
            ws.scalars[1] += dot(sn, ls) as f64;
            ws.scalars[2] += sum(sn) as f64;
            dx.copy_from_slice(dl);
            let (h, dg, du) = (&mut h[..len], &mut dg[..len], &mut du[..len]);
            for j in 0..f {
                let (wg, bg, wu, bu, wd) = (
                    self.gate_w[j],
                    self.gate_b[j],
                    self.up_w[j],
                    self.up_b[j],
                    self.down_w[j],
                );
                let (wg8, bg8, wu8, bu8, wd8) = (
                    f32x8::splat(wg),
                    f32x8::splat(bg),
                    f32x8::splat(wu),
                    f32x8::splat(bu),
                    f32x8::splat(wd),
                );
                let whole = len - len % LANES;
                for t in (0..whole).step_by(LANES) {
                    let x8 = vload(x, t);
                    let g = wg8.mul_add(x8, bg8);
                    let u = wu8.mul_add(x8, bu8);
                    let sg = sigmoid8(g);
                    let si = g * sg;
                    let dh = vload(dl, t) * wd8;
                    vstore(h, t, si * u);
                    let dgv = dh * u * dsilu8(g, sg);
                    let duv = dh * si;
                    vstore(dg, t, dgv);
                    vstore(du, t, duv);
                    let d = dgv.mul_add(wg8, duv.mul_add(wu8, vload(dx, t)));
                    vstore(dx, t, d);
                }
                for t in whole..len {
                    let g = wg.mul_add(x[t], bg);
                    let u = wu.mul_add(x[t], bu);
                    let sg = sigmoid(g);
                    let si = g * sg;
                    let dh = dl[t] * wd;
                    h[t] = si * u;
                    dg[t] = dh * u * sg * g.mul_add(1.0 - sg, 1.0);
                    du[t] = dh * si;
                    dx[t] = dg[t].mul_add(wg, du[t].mul_add(wu, dx[t]));
                }
                let a = &mut ws.acc.v32;
                a[j] += dot(dg, x);
                a[f + j] += sum(dg);
                a[2 * f + j] += dot(du, x);
                a[3 * f + j] += sum(du);
                a[4 * f + j] += dot(dl, h);
            }
            if (tile + 1) % FLUSH_TILES == 0 {
                ws.acc.flush();
            }
        }
        ws.acc.flush();
        for k in 0..5 {
            for j in 0..f {
                grad[self.off[k] + j] += ws.acc.v64[k * f + j];
            }
        }
        for k in 0..3 {
            grad[self.off[5 + k]] += ws.scalars[k];
        }
    }
}
