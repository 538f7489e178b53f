//! CPU f32 kernels of the fast path: a register-blocked `[rows, k] × [k, n]` product over packed
//! weights (AVX2 `f32x8`, 6 rows × 16 columns per micro-tile), and branch-free scalar
//! activations written so that LLVM vectorises the loops that call them.

use std::ptr;

use adasamp_sampling::math::exp;
use wide::f32x8;

/// Lanes per SIMD vector.
pub(crate) const LANES: usize = 8;

/// `n` rounded up to a multiple of [`LANES`].
pub(crate) fn pad8(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// A weight matrix for `y = x·W + b`, stored transposed from candle's `[out, in]` layout as
/// `[k, n_pad]` row-major (k = inputs, `n_pad` = outputs rounded up to 8, zero padded), with a
/// bias of `n_pad` entries (zero in the padding).
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    /// Number of inputs (rows of `w`).
    pub k: usize,
    /// Padded number of outputs (row stride of `w`).
    pub n_pad: usize,
    /// `[k, n_pad]` weights.
    pub w: Vec<f32>,
    /// `[n_pad]` bias.
    pub b: Vec<f32>,
}

impl Packed {
    /// All-zero `[k, n_pad]` weights and bias.
    pub fn zeros(k: usize, n_pad: usize) -> Self {
        debug_assert_eq!(n_pad % LANES, 0);
        Self {
            k,
            n_pad,
            w: vec![0.0; k * n_pad],
            b: vec![0.0; n_pad],
        }
    }

    /// Copies a candle Linear weight `weight: [out, in_total]` restricted to the input columns
    /// `in_start .. in_start + self.k` into output columns `col0 .. col0 + out`, and `bias`
    /// (length `out`, if given) into the same columns.
    pub fn put(
        &mut self,
        col0: usize,
        weight: &[f32],
        out: usize,
        in_total: usize,
        in_start: usize,
        bias: Option<&[f32]>,
    ) {
        for o in 0..out {
            for i in 0..self.k {
                self.w[i * self.n_pad + col0 + o] = weight[o * in_total + in_start + i];
            }
        }
        if let Some(b) = bias {
            self.b[col0..col0 + out].copy_from_slice(&b[..out]);
        }
    }
}

#[inline(always)]
unsafe fn load(p: *const f32) -> f32x8 {
    f32x8::from(ptr::read_unaligned(p as *const [f32; LANES]))
}

#[inline(always)]
unsafe fn store(p: *mut f32, v: f32x8) {
    ptr::write_unaligned(p as *mut [f32; LANES], v.to_array());
}

/// One `R × (8·C)` micro-tile: `y[r, c] = init[r, c] + Σ_i x[r·xr + i·xi]·w[i, c]`, where `init`
/// is `bias[c]` or, with `ACC`, the tile's current `y[r, c]` (accumulation).
///
/// # Safety
/// `x` must be readable at `r·xr + i·xi` for `r < R, i < k`; `w` at `i·ldw + c` and `bias` (unless
/// `ACC`) at `c` for `c < 8C`; `y` readable and writable at `r·ldy + c`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<const R: usize, const C: usize, const ACC: bool>(
    x: *const f32,
    xr: usize,
    xi: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    bias: *const f32,
    y: *mut f32,
    ldy: usize,
) {
    let mut acc = [[f32x8::ZERO; C]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        for (c, a) in row.iter_mut().enumerate() {
            *a = if ACC {
                load(y.add(r * ldy + c * LANES))
            } else {
                load(bias.add(c * LANES))
            };
        }
    }
    for i in 0..k {
        let mut wv = [f32x8::ZERO; C];
        for (c, v) in wv.iter_mut().enumerate() {
            *v = load(w.add(i * ldw + c * LANES));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let xv = f32x8::splat(*x.add(r * xr + i * xi));
            for c in 0..C {
                row[c] = xv.mul_add(wv[c], row[c]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            store(y.add(r * ldy + c * LANES), *v);
        }
    }
}

/// `R` output rows over all `n` columns (a multiple of 8), 16 at a time. `bias` may be null
/// with `ACC` (it is only offset, never read).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<const R: usize, const ACC: bool>(
    x: *const f32,
    xr: usize,
    xi: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    n: usize,
    bias: *const f32,
    y: *mut f32,
    ldy: usize,
) {
    let nv = n / LANES;
    let mut c = 0;
    while c + 2 <= nv {
        micro::<R, 2, ACC>(
            x,
            xr,
            xi,
            k,
            w.add(c * LANES),
            ldw,
            bias.wrapping_add(c * LANES),
            y.add(c * LANES),
            ldy,
        );
        c += 2;
    }
    if c < nv {
        micro::<R, 1, ACC>(
            x,
            xr,
            xi,
            k,
            w.add(c * LANES),
            ldw,
            bias.wrapping_add(c * LANES),
            y.add(c * LANES),
            ldy,
        );
    }
}

/// The general product: `y[r, c] = init + Σ_{i<k} x[r·xr + i·xi]·w[i·ldw + c]` for `r < rows`,
/// `c < n` (a multiple of 8), `init` = `bias[c]` or (with `ACC`) `y[r, c]` itself.
///
/// # Safety
/// The caller bounds every access (see [`micro`]).
#[allow(clippy::too_many_arguments)]
unsafe fn product<const ACC: bool>(
    x: *const f32,
    xr: usize,
    xi: usize,
    rows: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    n: usize,
    bias: *const f32,
    y: *mut f32,
    ldy: usize,
) {
    let mut r = 0;
    while r + 6 <= rows {
        row_block::<6, ACC>(
            x.add(r * xr),
            xr,
            xi,
            k,
            w,
            ldw,
            n,
            bias,
            y.add(r * ldy),
            ldy,
        );
        r += 6;
    }
    let (xp, yp) = (x.add(r * xr), y.add(r * ldy));
    match rows - r {
        1 => row_block::<1, ACC>(xp, xr, xi, k, w, ldw, n, bias, yp, ldy),
        2 => row_block::<2, ACC>(xp, xr, xi, k, w, ldw, n, bias, yp, ldy),
        3 => row_block::<3, ACC>(xp, xr, xi, k, w, ldw, n, bias, yp, ldy),
        4 => row_block::<4, ACC>(xp, xr, xi, k, w, ldw, n, bias, yp, ldy),
        5 => row_block::<5, ACC>(xp, xr, xi, k, w, ldw, n, bias, yp, ldy),
        _ => {}
    }
}

/// `y[r, c] = bias[c] + Σ_{i<k} x[r·ldx + i]·p.w[i, c]` for `r < rows`, `c < p.n_pad`
/// (`y` row stride `ldy`). `bias` has `p.n_pad` entries (pass `&p.b` or a per-row bias).
///
/// Panics if a slice is too short.
pub(crate) fn gemm(
    x: &[f32],
    ldx: usize,
    rows: usize,
    p: &Packed,
    bias: &[f32],
    y: &mut [f32],
    ldy: usize,
) {
    if rows == 0 {
        return;
    }
    let (k, n) = (p.k, p.n_pad);
    assert!(ldx >= k && ldy >= n && bias.len() >= n && p.w.len() >= k * n);
    assert!(x.len() >= (rows - 1) * ldx + k);
    assert!(y.len() >= (rows - 1) * ldy + n);
    // SAFETY: the asserts above bound every access of the micro-kernels.
    unsafe {
        product::<false>(
            x.as_ptr(),
            ldx,
            1,
            rows,
            k,
            p.w.as_ptr(),
            n,
            n,
            bias.as_ptr(),
            y.as_mut_ptr(),
            ldy,
        );
    }
}

/// The transposed-left product that accumulates weight gradients:
/// `acc[i·lda + c] += Σ_{t<tokens} x[t·ldx + i]·dy[t·ldy + c]` for `i < k`, `c < n` (`n` a
/// multiple of 8) — `Xᵀ·dY` over a tile of tokens.
///
/// Panics if a slice is too short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_tn_acc(
    x: &[f32],
    ldx: usize,
    k: usize,
    dy: &[f32],
    ldy: usize,
    n: usize,
    tokens: usize,
    acc: &mut [f32],
    lda: usize,
) {
    if tokens == 0 || k == 0 {
        return;
    }
    assert!(n.is_multiple_of(LANES) && ldx >= k && ldy >= n && lda >= n);
    assert!(x.len() >= (tokens - 1) * ldx + k);
    assert!(dy.len() >= (tokens - 1) * ldy + n);
    assert!(acc.len() >= (k - 1) * lda + n);
    // SAFETY: the asserts above bound every access: output row i reads x[t·ldx + i], t < tokens.
    unsafe {
        product::<true>(
            x.as_ptr(),
            1,
            ldx,
            k,
            tokens,
            dy.as_ptr(),
            ldy,
            n,
            ptr::null(),
            acc.as_mut_ptr(),
            lda,
        );
    }
}

/// Per row `r`: `acc[r·ld .. +8]` (8 lanes) `+= Σ_t a[t, ka + i]` outer products — the linear
/// attention's `Σ_j φ(k_j) v_jᵀ` restricted to one head: `kv[i, j] += Σ_t k[t·ld + ko + i] ·
/// v[t·ld + vo + j]` for `i, j < w`, `w` a multiple of 8 (`kv` is `[w, w]` row-major, f32).
pub(crate) fn outer_accumulate(
    buf: &[f32],
    ld: usize,
    rows: usize,
    ko: usize,
    vo: usize,
    w: usize,
    kv: &mut [f32],
) {
    debug_assert_eq!(w % LANES, 0);
    if rows == 0 {
        return;
    }
    assert!(buf.len() >= (rows - 1) * ld + ko.max(vo) + w && kv.len() >= w * w);
    for ib in (0..w).step_by(LANES) {
        for cb in (0..w).step_by(LANES) {
            let mut acc = [f32x8::ZERO; LANES];
            // SAFETY: bounded by the assert above.
            unsafe {
                let p = buf.as_ptr();
                for t in 0..rows {
                    let vv = load(p.add(t * ld + vo + cb));
                    for (ii, a) in acc.iter_mut().enumerate() {
                        *a = f32x8::splat(*p.add(t * ld + ko + ib + ii)).mul_add(vv, *a);
                    }
                }
            }
            for (ii, a) in acc.iter().enumerate() {
                let dst = &mut kv[(ib + ii) * w + cb..(ib + ii) * w + cb + LANES];
                for (d, s) in dst.iter_mut().zip(a.to_array()) {
                    *d += s;
                }
            }
        }
    }
}

/// `silu(x) = x·σ(x) = x / (1 + e⁻ˣ)` (the sampling crate's SIMD-friendly `exp`).
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `φ(x) = elu(x) + 1 = max(x, 0) + exp(min(x, 0))`.
#[inline(always)]
pub(crate) fn elu_plus_one(x: f32) -> f32 {
    x.max(0.0) + exp(x.min(0.0))
}

/// Natural logarithm for finite `x > 0` (normal numbers), Cephes `logf` (≈ 1 ulp), branch-free
/// so that loops calling it vectorise.
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let e0 = ((bits >> 23) & 0xff) as i32 - 126;
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // [0.5, 1)
    let small = m0 < SQRTHF;
    let e = (e0 - small as i32) as f32;
    let m = if small { m0 + m0 - 1.0 } else { m0 - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y.mul_add(m, -1.151_461e-1);
    y = y.mul_add(m, 1.167_699_9e-1);
    y = y.mul_add(m, -1.242_014_1e-1);
    y = y.mul_add(m, 1.424_932_3e-1);
    y = y.mul_add(m, -1.666_805_8e-1);
    y = y.mul_add(m, 2.000_071_4e-1);
    y = y.mul_add(m, -2.499_999_4e-1);
    y = y.mul_add(m, 3.333_333e-1);
    y = y * m * z;
    y = e.mul_add(-2.121_944_4e-4, y);
    y = (-0.5f32).mul_add(z, y);
    e.mul_add(0.693_359_4, m + y)
}

/// `softplus(x) = max(x, 0) + ln(1 + e^{−|x|})` (as [`crate::layers::softplus`]).
#[inline(always)]
pub(crate) fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln(1.0 + exp(-x.abs()))
}

/// `logsigmoid(x) = −softplus(−x) = min(x, 0) − ln(1 + e^{−|x|})`.
#[inline(always)]
pub(crate) fn logsigmoid(x: f32) -> f32 {
    x.min(0.0) - ln(1.0 + exp(-x.abs()))
}

/// Soft truncation gate on one value: `l + logsigmoid(s·l + τ)`.
#[inline(always)]
pub(crate) fn gate(l: f32, s: f32, tau: f32) -> f32 {
    l + logsigmoid(s.mul_add(l, tau))
}

/// Layer norm of one `d`-vector in place: `(x − mean)/√(var + ε)·w + b` (biased variance).
#[inline(always)]
pub(crate) fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = x.len() as f32;
    let mean = lane_sum(x, |v| v) / d;
    for v in x.iter_mut() {
        *v -= mean;
    }
    let var = lane_sum(x, |v| v * v);
    let inv = 1.0 / (var / d + eps).sqrt();
    for ((v, w), b) in x.iter_mut().zip(w).zip(b) {
        *v = (*v * inv).mul_add(*w, *b);
    }
}

/// [`layer_norm`] that also keeps what its backward needs: writes the normalised
/// `x̂ = (x − mean)/√(var + ε)` to `xhat` and returns `1/√(var + ε)` (same arithmetic, so the
/// output is bit-identical to [`layer_norm`]'s).
#[inline(always)]
pub(crate) fn layer_norm_keep(
    x: &mut [f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    xhat: &mut [f32],
) -> f32 {
    let d = x.len() as f32;
    let mean = lane_sum(x, |v| v) / d;
    for v in x.iter_mut() {
        *v -= mean;
    }
    let var = lane_sum(x, |v| v * v);
    let inv = 1.0 / (var / d + eps).sqrt();
    for (((v, h), w), b) in x.iter_mut().zip(xhat.iter_mut()).zip(w).zip(b) {
        *h = *v * inv;
        *v = h.mul_add(*w, *b);
    }
    inv
}

/// `Σ f(x_i)` in 8 lane-wise partial sums (vectorisable; the tail, if any, added last).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The linear attention's output for heads exactly 8 wide (one `f32x8` each): per row `t` and
/// head `h`, `out[t·ldo + 8h + j] = Σ_i φq_i·KV_h[i, j] / (Σ_i φq_i·ksum[8h + i] + eps)` with
/// `φq_i = q[t·ldq + 8h + i]`; `kv` is `[heads, 8, 8]` row-major, `ksum` `[8·heads]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_heads8(
    q: &[f32],
    ldq: usize,
    rows: usize,
    heads: usize,
    kv: &[f32],
    ksum: &[f32],
    eps: f32,
    out: &mut [f32],
    ldo: usize,
) {
    if rows == 0 {
        return;
    }
    let d = heads * LANES;
    assert!(ldq >= d && ldo >= d && kv.len() >= heads * LANES * LANES && ksum.len() >= d);
    assert!(q.len() >= (rows - 1) * ldq + d && out.len() >= (rows - 1) * ldo + d);
    for h in 0..heads {
        let o = h * LANES;
        // SAFETY: bounded by the asserts above.
        unsafe {
            let kvp = kv.as_ptr().add(h * LANES * LANES);
            let m: [f32x8; LANES] = std::array::from_fn(|i| load(kvp.add(i * LANES)));
            let ks = &ksum[o..o + LANES];
            for t in 0..rows {
                let qp = q.as_ptr().add(t * ldq + o);
                let mut num = f32x8::ZERO;
                let mut den = eps;
                for (i, (mi, &k)) in m.iter().zip(ks).enumerate() {
                    let qi = *qp.add(i);
                    num = f32x8::splat(qi).mul_add(*mi, num);
                    den = qi.mul_add(k, den);
                }
                store(out.as_mut_ptr().add(t * ldo + o), num / f32x8::splat(den));
            }
        }
    }
}

/// A block-diagonal product with 8-wide blocks: per row `t` and block `h`,
/// `out[t·ldo + 8h + j] = bias[8h + j] + Σ_i x[t·ldx + 8h + i]·m[h, i, j]` (`m` is
/// `[heads, 8, 8]` row-major; `bias` of `8·heads` entries or `None` for zero) — the linear
/// attention's per-head `8 × 8` products without the `H×` zeros of a dense `[d, d]` product.
#[allow(clippy::too_many_arguments)]
pub(crate) fn heads8_product(
    x: &[f32],
    ldx: usize,
    rows: usize,
    heads: usize,
    m: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
) {
    if rows == 0 {
        return;
    }
    let d = heads * LANES;
    assert!(ldx >= d && ldo >= d && m.len() >= heads * LANES * LANES);
    assert!(x.len() >= (rows - 1) * ldx + d && out.len() >= (rows - 1) * ldo + d);
    assert!(bias.is_none_or(|b| b.len() >= d));
    for h in 0..heads {
        let o = h * LANES;
        // SAFETY: bounded by the asserts above.
        unsafe {
            let mp = m.as_ptr().add(h * LANES * LANES);
            let mh: [f32x8; LANES] = std::array::from_fn(|i| load(mp.add(i * LANES)));
            let b = bias.map_or(f32x8::ZERO, |b| load(b.as_ptr().add(o)));
            for t in 0..rows {
                let xp = x.as_ptr().add(t * ldx + o);
                let mut acc = b;
                for (i, mi) in mh.iter().enumerate() {
                    acc = f32x8::splat(*xp.add(i)).mul_add(*mi, acc);
                }
                store(out.as_mut_ptr().add(t * ldo + o), acc);
            }
        }
    }
}

/// One 64-byte cache line of f32s (the unit of [`AlignedBuf`]).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A growable f32 buffer whose data starts on a 64-byte cache-line boundary, so the 8-lane loads
/// of rows with 32-float strides never straddle two lines whatever the allocator returns (a
/// `Vec<f32>` is only guaranteed 4-byte alignment).
#[derive(Debug, Clone, Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// Grows to at least `n` elements (new ones zero); never shrinks.
    pub(crate) fn grow(&mut self, n: usize) {
        if self.len < n {
            self.lines.resize(n.div_ceil(16), Line([0.0; 16]));
            self.len = n;
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `lines` holds at least `len` contiguous, initialised f32s (`Line` is
        // `repr(C)` over `[f32; 16]`, no padding).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, with unique access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_accurate() {
        for &x in &[
            1e-30f32, 0.1, 0.5, 0.70710677, 0.9, 1.0, 1.0000001, 1.5, 2.0, 7.3, 1e30,
        ] {
            let e = (x as f64).ln();
            assert!((ln(x) as f64 - e).abs() <= 2e-7 * e.abs().max(1.0), "{x}");
        }
    }

    #[test]
    fn gemm_matches_naive() {
        for &(rows, k, n) in &[(1, 1, 8), (7, 5, 24), (13, 32, 96), (6, 3, 40)] {
            let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let wt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let mut p = Packed::zeros(k, n);
            p.put(0, &wt, n, k, 0, Some(&bias));
            let mut y = vec![0.0; rows * n];
            gemm(&x, k, rows, &p, &p.b, &mut y, n);
            for r in 0..rows {
                for c in 0..n {
                    let e: f32 =
                        bias[c] + (0..k).map(|i| x[r * k + i] * wt[c * k + i]).sum::<f32>();
                    assert!((y[r * n + c] - e).abs() < 1e-4, "{rows} {k} {n}");
                }
            }
        }
    }

    #[test]
    fn gemm_tn_acc_matches_naive() {
        for &(tokens, k, n) in &[(1, 1, 8), (7, 5, 24), (60, 13, 96), (13, 64, 16)] {
            let (ldx, ldy, lda) = (k + 3, n + 8, n + 16);
            let x: Vec<f32> = (0..tokens * ldx).map(|i| (i as f32 * 0.37).sin()).collect();
            let dy: Vec<f32> = (0..tokens * ldy).map(|i| (i as f32 * 0.11).cos()).collect();
            let init = |i: usize| i as f32 * 0.001;
            let mut acc: Vec<f32> = (0..k * lda).map(init).collect();
            gemm_tn_acc(&x, ldx, k, &dy, ldy, n, tokens, &mut acc, lda);
            for i in 0..k {
                for c in 0..lda {
                    let e = if c < n {
                        init(i * lda + c)
                            + (0..tokens)
                                .map(|t| x[t * ldx + i] * dy[t * ldy + c])
                                .sum::<f32>()
                    } else {
                        init(i * lda + c)
                    };
                    let got = acc[i * lda + c];
                    assert!(
                        (got - e).abs() < 1e-4 * e.abs().max(1.0),
                        "{tokens} {k} {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn heads8_product_matches_naive() {
        let (rows, heads, ldx, ldo) = (5, 3, 27, 30);
        let x: Vec<f32> = (0..rows * ldx).map(|i| (i as f32 * 0.3).sin()).collect();
        let m: Vec<f32> = (0..heads * 64).map(|i| (i as f32 * 0.7).cos()).collect();
        let bias: Vec<f32> = (0..heads * 8).map(|i| i as f32 * 0.1).collect();
        for b in [None, Some(bias.as_slice())] {
            let mut out = vec![7.0f32; rows * ldo];
            heads8_product(&x, ldx, rows, heads, &m, b, &mut out, ldo);
            for t in 0..rows {
                for h in 0..heads {
                    for j in 0..8 {
                        let e = b.map_or(0.0, |b| b[8 * h + j])
                            + (0..8)
                                .map(|i| x[t * ldx + 8 * h + i] * m[h * 64 + i * 8 + j])
                                .sum::<f32>();
                        let got = out[t * ldo + 8 * h + j];
                        assert!((got - e).abs() < 1e-5, "{t} {h} {j}: {got} vs {e}");
                    }
                }
                assert!(out[t * ldo + 24..(t + 1) * ldo].iter().all(|&v| v == 7.0));
            }
        }
    }

    #[test]
    fn aligned_buf_grows_zeroed_on_cache_lines() {
        let mut b = AlignedBuf::default();
        assert!(b.is_empty());
        b.grow(37);
        assert_eq!(b.len(), 37);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(b.iter().all(|&v| v == 0.0));
        b[36] = 2.5;
        b.grow(10); // never shrinks
        assert_eq!((b.len(), b[36]), (37, 2.5));
        b.grow(1000);
        assert_eq!((b.len(), b[36], b[999]), (1000, 2.5, 0.0));
        assert_eq!(b.as_ptr() as usize % 64, 0);
    }
}
