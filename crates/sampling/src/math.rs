//! Vectorisable f32 kernels over logits rows: max, exp, sums, counts.
//!
//! Every loop is written so LLVM emits SIMD code (AVX2 + FMA with the workspace's `x86-64-v3`
//! baseline). Nothing calls libm, and fused multiply-add is IEEE-exact (one rounding, in hardware
//! or software alike), so results are bit-identical on every machine — the seeded sampler relies
//! on that for portable reproducibility.

use wide::{f32x8, f64x4, u64x4, CmpGe, CmpLt, CmpNe};

/// Number of f32 lanes each kernel processes per iteration.
/// Reductions accumulate this many elements in f32 before adding into an f64 total.
const BLOCK: usize = 1024;

/// Below this input, `exp` underflows to exactly 0 (covers `-inf`).
const EXP_MIN: f32 = -87.336_55;
/// Inputs are clamped here so that `2^n` stays a normal number (`exp(88) ≈ 1.65e38`).
const EXP_MAX: f32 = 88.0;

/// `exp(x)` in f32 with ≤ 2 ulp error (Cephes `expf` polynomial), `exp(-inf) = 0` exactly.
///
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, `exp(x) = 2^n · P(r)`. `n` is rounded with the
/// `1.5·2^23` trick so the whole function is branch-free straight-line code that vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let t = xc.mul_add(LOG2E, MAGIC); // low mantissa bits hold round(x·log2e)
    let n = t - MAGIC;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let y = p.mul_add(r2, r) + 1.0;
    // 2^n: the low bits of `t` are n (two's complement); shift them into the exponent field.
    let scale = f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23));
    if x < EXP_MIN {
        0.0
    } else {
        y * scale
    }
}

/// Lowest argument of [`exp_f64x4`]: inputs below it are raised to it (`e^-700 ≈ 1e-304`, still a
/// normal f64, so nothing subnormal is ever computed).
pub const EXP_F64_MIN: f64 = -700.0;
/// Largest argument of [`exp_f64x4`]: inputs above it are lowered to it (`e^700 ≈ 1e304`).
pub const EXP_F64_MAX: f64 = 700.0;
/// Bound of [`exp_f64x4`]'s relative error on `[EXP_F64_MIN, EXP_F64_MAX]`: the degree-8 Taylor
/// remainder relative to `e^r`, `(ln2/2)^9 / 9! · e^{2·ln2/2} ≈ 4.0e-10`, plus a few roundings
/// (~1e-16 each) of the reduction and of Horner's scheme. (Two more terms would give 4e-13 at
/// about 10 % more time per pass; the α solvers' tolerance, 1e-6, does not need them.)
pub const EXP_F64_REL_ERR: f64 = 5e-10;

/// `exp(x)` on 4 f64 lanes with relative error ≤ [`EXP_F64_REL_ERR`], for `x` clamped to
/// `[EXP_F64_MIN, EXP_F64_MAX]` (NaN gives `e^EXP_F64_MIN`): `x = n·ln2 + r`, `|r| ≤ ln2/2`,
/// `exp(x) = 2^n · P(r)` with `P` the degree-8 Taylor polynomial. No libm, fused multiply-adds
/// only: bit-identical on every machine.
#[inline(always)]
pub fn exp_f64x4(x: f64x4) -> f64x4 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln2 split so that n·LN2_HI is exact for |n| < 2^20: LN2_HI (0.693147180369…) has 32
    // significant bits, LN2_LO = ln2 − LN2_HI.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
                                                // 1/k! for k = 8 down to 2.
    const C: [f64; 7] = [
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        1.666_666_666_666_666_6e-1,
        0.5,
    ];
    let xc = x
        .fast_max(f64x4::splat(EXP_F64_MIN))
        .fast_min(f64x4::splat(EXP_F64_MAX));
    // The low mantissa bits of `t` hold round(x·log2e).
    let t = xc.mul_add(f64x4::splat(LOG2E), f64x4::splat(MAGIC));
    let n = t - f64x4::splat(MAGIC);
    let r = (-n).mul_add(f64x4::splat(LN2_LO), (-n).mul_add(f64x4::splat(LN2_HI), xc));
    let mut p = f64x4::splat(C[0]);
    for c in &C[1..] {
        p = p.mul_add(r, f64x4::splat(*c));
    }
    let y = p.mul_add(r * r, r) + f64x4::splat(1.0);
    // 2^n: the low bits of `t` are n (two's complement); shift them into the exponent field.
    let bits: u64x4 = bytemuck_cast(t);
    let scale: f64x4 = bytemuck_cast((bits << 52) + u64x4::splat(1023 << 52));
    y * scale
}

/// [`exp`] on 8 lanes: the same operations in the same order, so every lane is bit-identical to
/// [`exp`] of that lane (for loops whose trip counts defeat LLVM's vectoriser).
#[inline(always)]
pub fn exp8(x: f32x8) -> f32x8 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
    let xc = x.max(f32x8::splat(EXP_MIN)).min(f32x8::splat(EXP_MAX));
    let t = xc.mul_add(f32x8::splat(LOG2E), f32x8::splat(MAGIC));
    let n = t - f32x8::splat(MAGIC);
    let r = (-n).mul_add(f32x8::splat(LN2_LO), (-n).mul_add(f32x8::splat(LN2_HI), xc));
    let r2 = r * r;
    let mut p = f32x8::splat(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5e-1,
    ] {
        p = p.mul_add(r, f32x8::splat(c));
    }
    let y = p.mul_add(r2, r) + f32x8::splat(1.0);
    let bits: wide::i32x8 = bytemuck_cast(t);
    let scale: f32x8 = bytemuck_cast((bits << 23) + wide::i32x8::splat(127 << 23));
    x.cmp_lt(f32x8::splat(EXP_MIN))
        .blend(f32x8::ZERO, y * scale)
}

/// Reinterprets the 32 bytes of one SIMD vector as another.
#[inline(always)]
fn bytemuck_cast<A: Copy, B: Copy>(a: A) -> B {
    const { assert!(std::mem::size_of::<A>() == 32 && std::mem::size_of::<B>() == 32) };
    // SAFETY: both are plain 32-byte SIMD vectors of plain numbers (f32x8 / i32x8, f64x4 /
    // u64x4); every bit pattern is valid for either.
    unsafe { std::mem::transmute_copy(&a) }
}

/// Largest element (`-inf` for an empty slice). NaN-free input assumed.
pub fn max(xs: &[f32]) -> f32 {
    const W: usize = 32; // four independent AVX2 accumulators
    let mut acc = [f32::NEG_INFINITY; W];
    let chunks = xs.chunks_exact(W);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..W {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for v in acc {
        m = if v > m { v } else { m };
    }
    for &v in rest {
        m = if v > m { v } else { m };
    }
    m
}

/// `(max, has_nan)` of `xs` in one pass.
pub fn max_nan(xs: &[f32]) -> (f32, bool) {
    let mut acc = [f32x8::splat(f32::NEG_INFINITY); 4];
    let mut nan = f32x8::splat(0.0);
    let n = xs.len() / 32 * 32;
    for c in xs[..n].chunks_exact(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            let v = load8(&c[j * 8..]);
            *a = a.fast_max(v);
            // Not `v.cmp_ne(v)`: wide's AVX `cmp_ne` is the *ordered* compare, false for NaN.
            nan |= v.is_nan();
        }
    }
    let mut m = f32::NEG_INFINITY;
    for a in acc {
        for v in a.to_array() {
            m = if v > m { v } else { m };
        }
    }
    let mut any_nan = nan.any();
    for &v in &xs[n..] {
        m = if v > m { v } else { m };
        any_nan |= v.is_nan();
    }
    (m, any_nan)
}

/// Sum of a block in f32 with 8 independent lanes (fixed order: reproducible).
#[inline(always)]
fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = f32x8::splat(0.0);
    let n = xs.len() / 8 * 8;
    for c in xs[..n].chunks_exact(8) {
        acc += load8(c);
    }
    let a = acc.to_array();
    let mut s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    for &v in &xs[n..] {
        s += v;
    }
    s
}

/// `Σ x_i` in f64 (f32 lanes within blocks of [`BLOCK`]).
pub fn sum(xs: &[f32]) -> f64 {
    xs.chunks(BLOCK).map(|b| lane_sum(b) as f64).sum()
}

/// `Σ exp(x_i − m)` in f64 (f32 within blocks of [`BLOCK`] elements).
pub fn sum_exp(xs: &[f32], m: f32) -> f64 {
    let mut buf = [0.0f32; BLOCK];
    let mut total = 0.0f64;
    for block in xs.chunks(BLOCK) {
        let b = &mut buf[..block.len()];
        for (o, x) in b.iter_mut().zip(block) {
            *o = exp(*x - m);
        }
        total += lane_sum(b) as f64;
    }
    total
}

/// Replaces `out` by `exp(x_i − m)` for every `x_i` and returns `Σ` in f64 (no zero-fill).
pub fn exp_into_vec(xs: &[f32], m: f32, out: &mut Vec<f32>) -> f64 {
    out.clear();
    out.extend(xs.iter().map(|&x| exp(x - m)));
    sum(out)
}

/// Replaces `out` by `exp(x_i − m)` and returns `(Σ out_i, Σ out_i·(x_i − m))` in f64, one pass.
pub fn exp_into_vec_with_dot(xs: &[f32], m: f32, out: &mut Vec<f32>) -> (f64, f64) {
    out.clear();
    let (mut z, mut zx) = (0.0f64, 0.0f64);
    let mut d = [0.0f32; BLOCK];
    for block in xs.chunks(BLOCK) {
        let start = out.len();
        out.extend(block.iter().map(|&x| exp(x - m)));
        let e = &out[start..];
        let db = &mut d[..block.len()];
        for ((o, &x), &w) in db.iter_mut().zip(block).zip(e) {
            *o = if w > 0.0 { w * (x - m) } else { 0.0 };
        }
        z += lane_sum(e) as f64;
        zx += lane_sum(db) as f64;
    }
    (z, zx)
}

/// `Σ e_i·(v_i − m)` over entries with `e_i > 0`, in f64.
pub fn dot_shifted(e: &[f32], v: &[f32], m: f32) -> f64 {
    let mut total = 0.0f64;
    let mut buf = [0.0f32; BLOCK];
    for (eb, vb) in e.chunks(BLOCK).zip(v.chunks(BLOCK)) {
        let b = &mut buf[..eb.len()];
        for ((o, &x), &y) in b.iter_mut().zip(eb).zip(vb) {
            *o = if x > 0.0 { x * (y - m) } else { 0.0 };
        }
        total += lane_sum(b) as f64;
    }
    total
}

/// Log-sum-exp of the row and its maximum: `(m, m + ln Σ exp(x_i − m))` (f64 lse).
/// `lse = -inf` when every entry is `-inf`.
pub fn log_sum_exp(xs: &[f32]) -> (f32, f64) {
    let m = max(xs);
    if m == f32::NEG_INFINITY {
        return (m, f64::NEG_INFINITY);
    }
    (m, m as f64 + sum_exp(xs, m).ln())
}

/// Number of elements `≥ t`.
pub fn count_ge(xs: &[f32], t: f32) -> usize {
    let (tv, one) = (f32x8::splat(t), f32x8::splat(1.0));
    let mut total = 0usize;
    for block in xs.chunks(BLOCK) {
        let mut acc = f32x8::splat(0.0);
        let n = block.len() / 8 * 8;
        for c in block[..n].chunks_exact(8) {
            acc += load8(c).cmp_ge(tv) & one;
        }
        total += acc.reduce_add() as usize + block[n..].iter().filter(|&&v| v >= t).count();
    }
    total
}

/// Number of elements that are not `-inf`.
pub fn count_finite(xs: &[f32]) -> usize {
    count_ge(xs, f32::MIN)
}

/// Stores 8 lanes into the start of `xs`.
#[inline(always)]
fn store8(xs: &mut [f32], v: f32x8) {
    xs[..8].copy_from_slice(&v.to_array());
}

/// Sets `vals_i = -inf` (and `w_i = 0`, if given) wherever `vals_i < t`.
pub fn mask_below(vals: &mut [f32], t: f32, w: Option<&mut [f32]>) {
    mask_where(vals, None, t, w);
}

/// Sets `vals_i = -inf` (and `w_i = 0`, if given) wherever `keys_i < t`.
pub fn mask_by_keys(vals: &mut [f32], keys: &[f32], t: f32, w: Option<&mut [f32]>) {
    mask_where(vals, Some(keys), t, w);
}

/// Removes entry `i` (value `-inf`, weight 0) where its key — `keys_i`, or the value itself — is
/// below `t`. Whole-vector blends and plain stores (masked stores are microcoded and slow on some
/// x86 cores).
fn mask_where(vals: &mut [f32], keys: Option<&[f32]>, t: f32, mut w: Option<&mut [f32]>) {
    let (tv, ninf, zero) = (
        f32x8::splat(t),
        f32x8::splat(f32::NEG_INFINITY),
        f32x8::splat(0.0),
    );
    let n = vals.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        let old = load8(&vals[i..]);
        let key = keys.map_or(old, |k| load8(&k[i..]));
        let below = key.cmp_lt(tv);
        store8(&mut vals[i..], below.blend(ninf, old));
        if let Some(w) = w.as_deref_mut() {
            let old = load8(&w[i..]);
            store8(&mut w[i..], below.blend(zero, old));
        }
    }
    for i in n..vals.len() {
        if keys.map_or(vals[i], |k| k[i]) < t {
            vals[i] = f32::NEG_INFINITY;
            if let Some(w) = w.as_deref_mut() {
                w[i] = 0.0;
            }
        }
    }
}

/// Loads 8 lanes from the start of `xs` (`xs.len() ≥ 8`).
#[inline(always)]
pub(crate) fn load8(xs: &[f32]) -> f32x8 {
    f32x8::new(xs[..8].try_into().expect("8 lanes"))
}

/// Bit `l` set iff `c[l] ≥ t`, for 16 lanes.
#[inline(always)]
fn mask_ge(c: &[f32], t: f32x8) -> u32 {
    let a = load8(c).cmp_ge(t).move_mask() as u32;
    let b = load8(&c[8..]).cmp_ge(t).move_mask() as u32;
    a | b << 8
}

/// Bit `l` set iff `lo ≤ c[l] < hi`, for 16 lanes.
#[inline(always)]
pub(crate) fn mask_in(c: &[f32], lo: f32x8, hi: f32x8) -> u32 {
    let x = load8(c);
    let y = load8(&c[8..]);
    let a = (x.cmp_ge(lo) & x.cmp_lt(hi)).move_mask() as u32;
    let b = (y.cmp_ge(lo) & y.cmp_lt(hi)).move_mask() as u32;
    a | b << 8
}

/// Appends `(i, x_i)` for every `x_i ≥ t`, in index order; cost ∝ V/16 + number of hits.
pub fn gather_ge(xs: &[f32], t: f32, ids: &mut Vec<u32>, vals: &mut Vec<f32>) {
    gather_ge_limited(xs, t, usize::MAX, ids, vals);
}

/// Like [`gather_ge`], but gives up (returning `false`) once more than `limit` entries match.
pub fn gather_ge_limited(
    xs: &[f32],
    t: f32,
    limit: usize,
    ids: &mut Vec<u32>,
    vals: &mut Vec<f32>,
) -> bool {
    let chunks = xs.chunks_exact(16);
    let base_rest = xs.len() - chunks.remainder().len();
    let tv = f32x8::splat(t);
    for (b, c) in chunks.enumerate() {
        let mut m = mask_ge(c, tv);
        if m == 0 {
            continue;
        }
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            ids.push((b * 16 + l) as u32);
            vals.push(c[l]);
            m &= m - 1;
        }
        if ids.len() > limit {
            return false;
        }
    }
    for (j, &v) in xs[base_rest..].iter().enumerate() {
        if v >= t {
            ids.push((base_rest + j) as u32);
            vals.push(v);
        }
    }
    ids.len() <= limit
}

/// Index of the first maximum (lowest index among ties), `None` if all are `-inf` or empty.
pub fn argmax(xs: &[f32]) -> Option<usize> {
    first_ge(xs, max(xs))
}

/// Index of the first element `≥ t` (`None` if none, or if `t` is `-inf` and all are `-inf`).
pub fn first_ge(xs: &[f32], t: f32) -> Option<usize> {
    if t == f32::NEG_INFINITY {
        return xs.iter().position(|&v| v > t);
    }
    let tv = f32x8::splat(t);
    let chunks = xs.chunks_exact(16);
    let rest = xs.len() - chunks.remainder().len();
    for (b, c) in chunks.enumerate() {
        let m = mask_ge(c, tv);
        if m != 0 {
            return Some(b * 16 + m.trailing_zeros() as usize);
        }
    }
    xs[rest..].iter().position(|&v| v >= t).map(|j| rest + j)
}

/// `(mean, population standard deviation)` of the finite (non-`-inf`) values, in f64.
pub fn finite_mean_std(xs: &[f32]) -> (f64, f64) {
    let ninf = f32x8::splat(f32::NEG_INFINITY);
    let zero = f32x8::splat(0.0);
    let one = f32x8::splat(1.0);
    let (mut s, mut n) = (0.0f64, 0.0f64);
    for block in xs.chunks(BLOCK) {
        let (mut a, mut c) = (zero, zero);
        let k = block.len() / 8 * 8;
        for ch in block[..k].chunks_exact(8) {
            let v = load8(ch);
            let fin = v.cmp_ne(ninf);
            a += fin.blend(v, zero);
            c += fin & one;
        }
        s += a.reduce_add() as f64;
        n += c.reduce_add() as f64;
        for &v in &block[k..] {
            if v > f32::NEG_INFINITY {
                s += v as f64;
                n += 1.0;
            }
        }
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = s / n;
    let (mf, mut q) = (f32x8::splat(mean as f32), 0.0f64);
    for block in xs.chunks(BLOCK) {
        let mut a = zero;
        let k = block.len() / 8 * 8;
        for ch in block[..k].chunks_exact(8) {
            let v = load8(ch);
            let d = v.cmp_ne(ninf).blend(v - mf, zero);
            a += d * d;
        }
        q += a.reduce_add() as f64;
        for &v in &block[k..] {
            if v > f32::NEG_INFINITY {
                q += (v as f64 - mean).powi(2);
            }
        }
    }
    // Correct for using the f32-rounded mean: Σ(v − m')² = Σ(v − m)² + n(m − m')².
    let dm = mean - mean as f32 as f64;
    (mean, ((q / n) - dm * dm).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp8_lanes_equal_exp() {
        let xs = [
            -100.0f32,
            -87.4,
            -87.3,
            -20.5,
            -1.0,
            -1e-3,
            0.0,
            1e-7,
            0.5,
            1.0,
            10.3,
            60.0,
            88.0,
            90.0,
            f32::NEG_INFINITY,
            3.3,
        ];
        for c in xs.chunks_exact(8) {
            let v = exp8(f32x8::from(<[f32; 8]>::try_from(c).unwrap())).to_array();
            for (x, y) in c.iter().zip(v) {
                assert_eq!(y.to_bits(), exp(*x).to_bits(), "exp({x})");
            }
        }
    }

    #[test]
    fn max_nan_finds_a_nan_anywhere() {
        // Positions inside the 32-wide SIMD body and in the scalar tail.
        for n in [1usize, 31, 32, 33, 100, 1000] {
            for pos in [0, n / 2, n - 1] {
                let mut xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
                xs[pos] = f32::NAN;
                let (m, nan) = max_nan(&xs);
                assert!(nan, "n = {n}, NaN at {pos} missed");
                assert!(!m.is_nan());
            }
            let xs: Vec<f32> = (0..n).map(|i| i as f32).collect();
            assert_eq!(max_nan(&xs), ((n - 1) as f32, false));
        }
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_f64x4_is_within_its_bound_of_libm() {
        let mut worst = 0.0f64;
        let mut x = EXP_F64_MIN;
        // Steps incommensurate with ln2, so every part of the reduced range is hit.
        while x < EXP_F64_MAX {
            let xs = [x, x + 0.1234567, -x * 1e-3, x * 1.3e-6];
            let got = exp_f64x4(f64x4::new(xs)).to_array();
            for (g, &x) in got.iter().zip(&xs) {
                let want = x.clamp(EXP_F64_MIN, EXP_F64_MAX).exp();
                worst = worst.max(((g - want) / want).abs());
            }
            x += 0.0731;
        }
        assert!(worst <= EXP_F64_REL_ERR, "relative error {worst}");
        // Clamped ends: -inf and NaN give e^EXP_F64_MIN (a normal number), +inf e^EXP_F64_MAX.
        let ends = exp_f64x4(f64x4::new([
            f64::NEG_INFINITY,
            f64::NAN,
            f64::INFINITY,
            0.0,
        ]));
        let [a, b, c, d] = ends.to_array();
        let (lo, hi) = (EXP_F64_MIN.exp(), EXP_F64_MAX.exp());
        assert!(
            ((a - lo) / lo).abs() <= EXP_F64_REL_ERR && a.is_normal(),
            "{a}"
        );
        assert!(((b - lo) / lo).abs() <= EXP_F64_REL_ERR, "{b}");
        assert!(((c - hi) / hi).abs() <= EXP_F64_REL_ERR, "{c}");
        assert_eq!(d, 1.0);
    }

    #[test]
    fn reductions() {
        let xs: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
            .collect();
        assert_eq!(max(&xs), 5.0);
        let m = max(&xs);
        let want: f64 = xs.iter().map(|&v| ((v - m) as f64).exp()).sum();
        assert!((sum_exp(&xs, m) - want).abs() < 1e-4 * want);
        let mut out = Vec::new();
        assert!((exp_into_vec(&xs, m, &mut out) - want).abs() < 1e-4 * want);
        let (z, zx) =
            exp_into_vec_with_dot(&[0.0, 0.0, f32::NEG_INFINITY, 0.0, 0.0], 0.0, &mut out);
        assert!((z - 4.0).abs() < 1e-6 && zx.abs() < 1e-6);
        assert_eq!(
            count_ge(&xs, 4.95),
            xs.iter().filter(|&&v| v >= 4.95).count()
        );
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        let long: Vec<f32> = (0..100)
            .map(|i| {
                if i == 77 || i == 90 {
                    9.0
                } else {
                    (i % 7) as f32
                }
            })
            .collect();
        assert_eq!(argmax(&long), Some(77));
        let xs2: Vec<f32> = (0..3001)
            .map(|i| {
                if i % 10 == 0 {
                    f32::NEG_INFINITY
                } else {
                    ((i * 37) % 101) as f32 / 7.0 - 3.0
                }
            })
            .collect();
        let fin: Vec<f64> = xs2
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| v as f64)
            .collect();
        let mean = fin.iter().sum::<f64>() / fin.len() as f64;
        let sd = (fin.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / fin.len() as f64).sqrt();
        let (m2, sd2) = finite_mean_std(&xs2);
        assert!(
            (m2 - mean).abs() < 1e-6 && (sd2 - sd).abs() < 1e-5,
            "{m2} {sd2} vs {mean} {sd}"
        );
        assert_eq!(argmax(&[f32::NEG_INFINITY]), None);
    }

    #[test]
    fn gather_matches_filter() {
        let xs: Vec<f32> = (0..777).map(|i| ((i * 7919) % 1009) as f32).collect();
        let (mut ids, mut vals) = (vec![], vec![]);
        gather_ge(&xs, 1000.0, &mut ids, &mut vals);
        let want: Vec<u32> = (0..777u32).filter(|&i| xs[i as usize] >= 1000.0).collect();
        assert_eq!(ids, want);
    }
}
