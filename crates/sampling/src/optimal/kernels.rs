//! The fused passes of the α solvers over a (θ, teacher) pair. `log π_θ` and the log-ratio
//! `d = log π_t − log π_θ` are kept in f64 (computed exactly from the f32 logits, up to the
//! normalising constants). The preparation passes, the tilts of `kl_symmetry` ([`moments`]) and
//! the ESS pass ([`ess_pass`]) compute their exponentials in f64 on 4 lanes
//! ([`math::exp_f64x4`], relative error ≤ 5e-10) and sum them in f64 lanes; the fallback ESS
//! pass for rows with extreme log-ratios ([`two_tilts`]) computes f32 exponentials with
//! [`math::exp`] (≤ 2 ulp) from the f64 exponent. Buffers are padded to a multiple of 8 with
//! `lp = -inf`, `d = 0` (weight 0, or `e^-700` where an f64 exponential is clamped).
//!
//! [`two_tilts`] computes its exponentials for a chunk of [`EXP_CHUNK`] entries into a stack
//! buffer in one plain loop (which LLVM vectorises and interleaves), then sums over the chunk.

use wide::{f64x4, CmpGe, CmpGt};

use crate::math;

/// Entries whose exponentials are computed into a stack buffer before they are summed.
const EXP_CHUNK: usize = 256;

/// Exponents are raised to this before [`math::exp`]: below it the result (and the polynomial's
/// intermediate `y·2^n`) would be subnormal, which x86 cores compute in slow microcode. The
/// weight `e^-80 ≈ 1.8e-35` it gives a removed or negligible token is far below the rounding of
/// any sum it enters (a pass whose sum is below `1e-20` is redone with the exact maximum as its
/// shift, which makes the largest weight 1).
const EXP_FLOOR: f32 = -80.0;

/// `exp(max(x, EXP_FLOOR))`.
#[inline(always)]
fn exp_floored(x: f32) -> f32 {
    math::exp(x.max(EXP_FLOOR))
}

/// `e^a` for an f64 exponent: [`exp_floored`] of `a` rounded to f32, times `1 + (a − f32(a))`
/// (the first-order correction of that rounding, so only `exp`'s own ≤ 2 ulp remain).
#[inline(always)]
fn exp_f64_arg(a: f64) -> f32 {
    // Floored first: a removed token's -inf exponent must not make the correction NaN.
    let a = a.max(EXP_FLOOR as f64);
    let af = a as f32;
    exp_floored(af) * (1.0 + (a - af as f64) as f32)
}

/// `x` rounded up to a multiple of 8.
pub(crate) fn padded(x: usize) -> usize {
    x.div_ceil(8) * 8
}

/// Horizontal sum of 4 lanes.
#[inline(always)]
fn hsum(a: [f64; 4]) -> f64 {
    (a[0] + a[1]) + (a[2] + a[3])
}

/// `[Σ w, Σ w·d, Σ w²]` of one chunk, in 4 f64 lanes each (lengths a multiple of 4).
#[inline(always)]
fn chunk_sums(w: &[f32], d: &[f64]) -> [f64; 3] {
    let mut acc = [[0.0f64; 4]; 3];
    for (wc, dc) in w.chunks_exact(4).zip(d.chunks_exact(4)) {
        for l in 0..4 {
            let wv = wc[l] as f64;
            acc[0][l] += wv;
            acc[1][l] += wv * dc[l];
            acc[2][l] += wv * wv;
        }
    }
    acc.map(hsum)
}

/// `max` over the kept entries of `zθ` (those with `zt ≥ tau`, both finite).
pub(crate) fn masked_max(theta: &[f32], teacher: &[f32], tau: f32) -> f32 {
    let t = tau.max(f32::MIN);
    let mut acc = [f32::NEG_INFINITY; 8];
    let (qc, tc) = (theta.chunks_exact(8), teacher.chunks_exact(8));
    let (qr, tr) = (qc.remainder(), tc.remainder());
    for (q, z) in qc.zip(tc) {
        for l in 0..8 {
            let v = if z[l] >= t { q[l] } else { f32::NEG_INFINITY };
            acc[l] = if v > acc[l] { v } else { acc[l] };
        }
    }
    let mut m = acc.into_iter().fold(f32::NEG_INFINITY, f32::max);
    for (&q, &z) in qr.iter().zip(tr) {
        if z >= t && q > m {
            m = q;
        }
    }
    m
}

/// Pass A on 4 entries (see [`prepare`]): writes `lp`, `d`, `ex`, `ey` and adds
/// `[ex, ey, ex·x, ey·y]` and the kept count into the accumulators.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn prepare4(
    zq: f64x4,
    zt: f64x4,
    [t, mq, mt]: [f64x4; 3],
    lp: &mut [f64],
    d: &mut [f64],
    ex: &mut [f64],
    ey: &mut [f64],
    acc: &mut [f64x4; 5],
) {
    let ninf = f64x4::splat(f64::NEG_INFINITY);
    let zero = f64x4::splat(0.0);
    let kept = zt.cmp_ge(t) & zq.cmp_gt(ninf);
    let (x, y) = (kept.blend(zq - mq, zero), kept.blend(zt - mt, zero));
    let (wx, wy) = (
        kept.blend(math::exp_f64x4(x), zero),
        kept.blend(math::exp_f64x4(y), zero),
    );
    lp.copy_from_slice(&kept.blend(x, ninf).to_array());
    d.copy_from_slice(&(y - x).to_array());
    ex.copy_from_slice(&wx.to_array());
    ey.copy_from_slice(&wy.to_array());
    acc[0] += wx;
    acc[1] += wy;
    acc[2] = wx.mul_add(x, acc[2]);
    acc[3] = wy.mul_add(y, acc[3]);
    acc[4] += kept & f64x4::splat(1.0);
}

/// Pass A. For the kept entries (`zt ≥ tau`, both finite): `x = zθ − mθ`, `y = zt − mt` (in
/// f64) and their weights `e^x`, `e^y` ([`math::exp_f64x4`]); removed entries get `x = -inf`,
/// weight 0. Writes `x` into `lp`, `y − x` (0 off the support) into `d`, the weights into `ex`,
/// `ey` (each of length `padded(V)`, the padding removed entries) and returns
/// `[Σex, Σey, Σex·x, Σey·y]` and the number of kept entries.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    theta: &[f32],
    teacher: &[f32],
    tau: f32,
    m_theta: f32,
    m_teacher: f32,
    lp: &mut [f64],
    d: &mut [f64],
    ex: &mut [f64],
    ey: &mut [f64],
) -> ([f64; 4], usize) {
    let v = theta.len().min(teacher.len());
    let consts = [
        f64x4::splat(tau.max(f32::MIN) as f64),
        f64x4::splat(m_theta as f64),
        f64x4::splat(m_teacher as f64),
    ];
    let wide = |z: &[f32]| f64x4::new([z[0] as f64, z[1] as f64, z[2] as f64, z[3] as f64]);
    let mut acc = [f64x4::splat(0.0); 5];
    let whole = v / 4 * 4;
    let rows = theta[..whole]
        .chunks_exact(4)
        .zip(teacher[..whole].chunks_exact(4));
    let outs = lp
        .chunks_exact_mut(4)
        .zip(d.chunks_exact_mut(4))
        .zip(ex.chunks_exact_mut(4).zip(ey.chunks_exact_mut(4)));
    let mut outs = outs.into_iter();
    for ((q, t), ((l, dd), (wx, wy))) in rows.zip(outs.by_ref()) {
        prepare4(wide(q), wide(t), consts, l, dd, wx, wy, &mut acc);
    }
    // The partial chunk and the padding: removed entries (θ's logit -inf).
    for (j, ((l, dd), (wx, wy))) in outs.enumerate() {
        let (mut q, mut t) = ([f32::NEG_INFINITY; 4], [f32::NEG_INFINITY; 4]);
        for k in 0..4 {
            if let (Some(&a), Some(&b)) =
                (theta.get(whole + 4 * j + k), teacher.get(whole + 4 * j + k))
            {
                (q[k], t[k]) = (a, b);
            }
        }
        prepare4(wide(&q), wide(&t), consts, l, dd, wx, wy, &mut acc);
    }
    let s = acc.map(|a| a.reduce_add());
    ([s[0], s[1], s[2], s[3]], s[4] as usize)
}

/// Pass B: `lp = x − c` (`log π_θ` on the support) and `d = (y − x) − k` (`log π_t − log π_θ`,
/// 0 off the support), for `c = ln Σ e^x` and `k = c_t − c_θ`. Returns
/// `[Σex·d, Σex·d², Σey·d, Σey·d²]` and `max_i (lp_i + b·d_i)` for `b = −1, 0, 1, 2`.
pub(crate) fn finish(
    c: f64,
    k: f64,
    lp: &mut [f64],
    d: &mut [f64],
    ex: &[f64],
    ey: &[f64],
) -> ([f64; 4], [f64; 4]) {
    let mut acc = [f64x4::splat(0.0); 4];
    let mut mx = [f64x4::splat(f64::NEG_INFINITY); 4];
    let (c, k) = (f64x4::splat(c), f64x4::splat(k));
    let (ninf, zero) = (f64x4::splat(f64::NEG_INFINITY), f64x4::splat(0.0));
    let lanes_mut = lp
        .chunks_exact_mut(4)
        .zip(d.chunks_exact_mut(4))
        .zip(ex.chunks_exact(4).zip(ey.chunks_exact(4)));
    for ((lc, dc), (xc, yc)) in lanes_mut {
        let l0 = lanes(lc, 0);
        let kept = l0.cmp_gt(ninf);
        let lv = l0 - c;
        let dv = kept.blend(lanes(dc, 0) - k, zero);
        lc.copy_from_slice(&lv.to_array());
        dc.copy_from_slice(&dv.to_array());
        let (xd, yd) = (lanes(xc, 0) * dv, lanes(yc, 0) * dv);
        acc[0] += xd;
        acc[1] = xd.mul_add(dv, acc[1]);
        acc[2] += yd;
        acc[3] = yd.mul_add(dv, acc[3]);
        mx[0] = mx[0].fast_max(lv - dv);
        mx[1] = mx[1].fast_max(lv);
        mx[2] = mx[2].fast_max(lv + dv);
        mx[3] = mx[3].fast_max(dv.mul_add(f64x4::splat(2.0), lv));
    }
    let m = mx.map(|m| m.to_array().into_iter().fold(f64::NEG_INFINITY, f64::max));
    (acc.map(|a| a.reduce_add()), m)
}

/// `max_i (lp_i + a·d_i)`.
pub(crate) fn max_tilted(lp: &[f64], d: &[f64], a: f64) -> f64 {
    let mut acc = [f64::NEG_INFINITY; 4];
    for (lc, dc) in lp.chunks_exact(4).zip(d.chunks_exact(4)) {
        for l in 0..4 {
            let v = dc[l].mul_add(a, lc[l]);
            acc[l] = if v > acc[l] { v } else { acc[l] };
        }
    }
    acc.into_iter().fold(f64::NEG_INFINITY, f64::max)
}

/// With `w_i = e^{lp_i + a·d_i − shift}` (in f64, [`math::exp_f64x4`]): `[Σw, Σw·d, Σw·d²]`
/// (lengths a multiple of 8).
pub(crate) fn moments(lp: &[f64], d: &[f64], a: f64, shift: f64) -> [f64; 3] {
    let mut acc = [f64x4::splat(0.0); 6];
    let (a, shift) = (f64x4::splat(a), f64x4::splat(shift));
    for (lc, dc) in lp.chunks_exact(8).zip(d.chunks_exact(8)) {
        // Two independent vectors per iteration: two exponentials' dependency chains overlap.
        for (h, acc) in acc.chunks_exact_mut(3).enumerate() {
            let dv = lanes(dc, 4 * h);
            let w = math::exp_f64x4(a.mul_add(dv, lanes(lc, 4 * h)) - shift);
            let wd = w * dv;
            acc[0] += w;
            acc[1] += wd;
            acc[2] = wd.mul_add(dv, acc[2]);
        }
    }
    let s = |k: usize| (acc[k] + acc[k + 3]).reduce_add();
    [s(0), s(1), s(2)]
}

/// With `u_i = exp(lp_i + b·d_i − sb)` and `v_i = exp(lp_i + c·d_i − sc)`:
/// `[Σu, Σu·d, Σv, Σv·d, Σu², Σv²]` (the last two bound the f32 weights' rounding in the sums).
pub(crate) fn two_tilts(lp: &[f64], d: &[f64], b: f64, c: f64, sb: f64, sc: f64) -> [f64; 6] {
    let mut total = [0.0f64; 6];
    let (mut u, mut v) = ([0.0f32; EXP_CHUNK], [0.0f32; EXP_CHUNK]);
    for (lb, db) in lp.chunks(EXP_CHUNK).zip(d.chunks(EXP_CHUNK)) {
        let n = lb.len();
        let (ub, vb) = (&mut u[..n], &mut v[..n]);
        for (((ou, ov), &l), &dv) in ub.iter_mut().zip(vb.iter_mut()).zip(lb).zip(db) {
            *ou = exp_f64_arg(dv.mul_add(b, l) - sb);
            *ov = exp_f64_arg(dv.mul_add(c, l) - sc);
        }
        let (mu, mv) = (chunk_sums(ub, db), chunk_sums(vb, db));
        total[0] += mu[0];
        total[1] += mu[1];
        total[2] += mv[0];
        total[3] += mv[1];
        total[4] += mu[2];
        total[5] += mv[2];
    }
    total
}

/// Exponents of [`ess_pass`] are raised to this. With `|2d − gap| ≤` [`ESS_RATIO_MAX`] on every
/// entry, a raised token's weights are below `e^{-390+300} = e^-90` both before and after (its
/// error summed over 2^17 tokens is below `e^-78`, relative `1e-14` to the smallest sum a pass
/// accepts, `1e-20`), and the smallest product `e^{-390-300}` is still a normal f64.
const ESS_FLOOR: f64 = -390.0;

/// Largest `|2d_i − gap|` of a row for which [`ess_pass`] is used (see [`ESS_FLOOR`]).
pub(crate) const ESS_RATIO_MAX: f64 = 300.0;

/// Lanes `k..k + 4` of a chunk.
#[inline(always)]
fn lanes(c: &[f64], k: usize) -> f64x4 {
    f64x4::new([c[k], c[k + 1], c[k + 2], c[k + 3]])
}

/// `ratio_i = e^{2d_i − gap}` (in f64, see [`math::exp_f64x4`]) for every entry, the factor
/// that turns one ESS tilt's weight into the other's: with `gap = sb − sc`,
/// `e^{lp + (2−α)d − sb} = e^{lp − αd − sc} · ratio`. Returns `max_i |2d_i − gap|` (the ratios
/// serve [`ess_pass`] only when it is at most [`ESS_RATIO_MAX`]) and, from the preparation's
/// weights `ex = e^x`, `ey = e^y`, the sums the ESS tilts at α = 0 and 1 need:
/// `[Σex·ratio, Σex·ratio·d, Σey/ratio, Σ(ey/ratio)·d]`. Lengths a multiple of 4.
pub(crate) fn ess_ratio(
    d: &[f64],
    ex: &[f64],
    ey: &[f64],
    gap: f64,
    ratio: &mut [f64],
) -> (f64, [f64; 4]) {
    let mut mx = f64x4::splat(0.0);
    let mut acc = [f64x4::splat(0.0); 4];
    let (two, gap) = (f64x4::splat(2.0), f64x4::splat(gap));
    let chunks = d
        .chunks_exact(4)
        .zip(ratio.chunks_exact_mut(4))
        .zip(ex.chunks_exact(4).zip(ey.chunks_exact(4)));
    for ((dc, rc), (xc, yc)) in chunks {
        let dv = lanes(dc, 0);
        let g = two.mul_sub(dv, gap);
        mx = mx.fast_max(g.abs());
        let r = math::exp_f64x4(g);
        rc.copy_from_slice(&r.to_array());
        let (u, v) = (lanes(xc, 0) * r, lanes(yc, 0) / r);
        acc[0] += u;
        acc[1] = u.mul_add(dv, acc[1]);
        acc[2] += v;
        acc[3] = v.mul_add(dv, acc[3]);
    }
    let m = mx.to_array().into_iter().fold(0.0, f64::max);
    (m, acc.map(|a| a.reduce_add()))
}

/// The two ESS tilts at α from one exponential per entry: with
/// `v_i = e^{max(lp_i − α·d_i − sc, ESS_FLOOR)}` and `u_i = v_i · ratio_i` (`ratio` from
/// [`ess_ratio`] with `gap = sb − sc`, so `u_i = e^{lp_i + (2−α)·d_i − sb}`):
/// `[Σu, Σu·d, Σv, Σv·d]`, in f64 throughout (each weight within `2·EXP_F64_REL_ERR`, relative,
/// of its exact value). Lengths a multiple of 8.
pub(crate) fn ess_pass(lp: &[f64], d: &[f64], ratio: &[f64], alpha: f64, sc: f64) -> [f64; 4] {
    let mut acc = [f64x4::splat(0.0); 8];
    let (na, sc, floor) = (
        f64x4::splat(-alpha),
        f64x4::splat(sc),
        f64x4::splat(ESS_FLOOR),
    );
    let chunks = lp
        .chunks_exact(8)
        .zip(d.chunks_exact(8))
        .zip(ratio.chunks_exact(8));
    for ((lc, dc), rc) in chunks {
        // Two independent vectors per iteration: two exponentials' dependency chains overlap.
        for (h, a) in acc.chunks_exact_mut(4).enumerate() {
            let k = 4 * h;
            let dv = lanes(dc, k);
            let x = (na.mul_add(dv, lanes(lc, k)) - sc).fast_max(floor);
            let v = math::exp_f64x4(x);
            let u = v * lanes(rc, k);
            a[0] += u;
            a[1] = u.mul_add(dv, a[1]);
            a[2] += v;
            a[3] = v.mul_add(dv, a[3]);
        }
    }
    let s = |k: usize| (acc[k] + acc[k + 4]).reduce_add();
    [s(0), s(1), s(2), s(3)]
}

/// The q* logits row: `(1−α)·zθ + α·zt` (in f64, rounded once) on the support (`zt ≥ tau`, both
/// finite), `-inf` elsewhere. At α = 0 (1) it is θ's (the teacher's) row exactly, restricted to
/// the support.
pub(crate) fn write_mix(theta: &[f32], teacher: &[f32], tau: f32, alpha: f64, out: &mut [f32]) {
    let b = 1.0 - alpha;
    for ((o, &zq), &zt) in out.iter_mut().zip(theta).zip(teacher) {
        let kept = zt >= tau && zt > f32::NEG_INFINITY && zq > f32::NEG_INFINITY;
        *o = if kept {
            (b * zq as f64 + alpha * zt as f64) as f32
        } else {
            f32::NEG_INFINITY
        };
    }
}

/// [`moments`] with f64 exponentials (libm): for rows whose residual is so steep that f32
/// weights cannot resolve the tolerance.
pub(crate) fn moments_exact(lp: &[f64], d: &[f64], a: f64, shift: f64) -> [f64; 3] {
    let mut t = [0.0f64; 3];
    for (&l, &dv) in lp.iter().zip(d) {
        let w = (dv.mul_add(a, l) - shift).exp();
        t[0] += w;
        t[1] += w * dv;
        t[2] += w * dv * dv;
    }
    t
}

/// [`two_tilts`] with f64 exponentials (libm).
pub(crate) fn two_tilts_exact(lp: &[f64], d: &[f64], b: f64, c: f64, sb: f64, sc: f64) -> [f64; 6] {
    let mut t = [0.0f64; 6];
    for (&l, &dv) in lp.iter().zip(d) {
        let u = (dv.mul_add(b, l) - sb).exp();
        let v = (dv.mul_add(c, l) - sc).exp();
        t[0] += u;
        t[1] += u * dv;
        t[2] += v;
        t[3] += v * dv;
    }
    t
}

/// Exact (libm f64) statistics of a prepared pair, for the rare rows the f32 weights cannot
/// resolve: `ln Σ e^{lp}` and `ln Σ e^{lp+d}` (0 if `lp` and `d` were exact).
pub(crate) fn log_norms_exact(lp: &[f64], d: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for (&l, &dv) in lp.iter().zip(d) {
        a += l.exp();
        b += (l + dv).exp();
    }
    (a.ln(), b.ln())
}

/// Exact (libm f64) `[E_θ[d], E_θ[d²], E_t[d], E_t[d²], Σπ_θ·lp, Σπ_t·(lp+d)]` of a normalised
/// prepared pair.
pub(crate) fn end_moments_exact(lp: &[f64], d: &[f64]) -> [f64; 6] {
    let mut t = [0.0f64; 6];
    for (&l, &dv) in lp.iter().zip(d) {
        if l == f64::NEG_INFINITY {
            continue;
        }
        let (p, q) = (l.exp(), (l + dv).exp());
        t[0] += p * dv;
        t[1] += p * dv * dv;
        t[2] += q * dv;
        t[3] += q * dv * dv;
        t[4] += p * l;
        t[5] += q * (l + dv);
    }
    t
}
