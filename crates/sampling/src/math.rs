//! Vectorisable f32 kernels over logits rows: max, exp, sums, counts.
//!
//! Every loop works on fixed-width lane arrays so LLVM emits SIMD code (AVX2 with the workspace's
//! `x86-64-v3` baseline). None uses fused multiply-add or libm, so results are bit-identical on
//! every machine — the seeded sampler relies on that for portable reproducibility.

/// Number of f32 lanes each kernel processes per iteration.
const LANES: usize = 16;
/// Reductions accumulate this many elements in f32 before adding into an f64 total.
const BLOCK: usize = 1024;

/// Below this input, `exp` underflows to exactly 0 (covers `-inf`).
const EXP_MIN: f32 = -87.336_55;
const EXP_MAX: f32 = 88.722_83;

/// `exp(x)` in f32 with ≤ 2 ulp error (Cephes `expf` polynomial), `exp(-inf) = 0` exactly.
///
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, `exp(x) = 2^n · P(r)`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r2 + r + 1.0;
    // 2^n by building the exponent bits; n ∈ [-126, 128] after the clamp.
    let bits = ((n as i32 + 127).clamp(1, 254) as u32) << 23;
    let v = y * f32::from_bits(bits) * if n > 127.0 { 2.0 } else { 1.0 };
    if x < EXP_MIN {
        0.0
    } else {
        v
    }
}

/// Largest element (`-inf` for an empty slice). NaN-free input assumed.
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(rest) {
        if v > m {
            m = v;
        }
    }
    m
}

/// Smallest and largest finite elements, or `None` if there is none.
pub fn finite_min_max(xs: &[f32]) -> Option<(f32, f32)> {
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            let v = c[l];
            let fin = v.is_finite();
            lo[l] = if fin && v < lo[l] { v } else { lo[l] };
            hi[l] = if fin && v > hi[l] { v } else { hi[l] };
        }
    }
    let (mut a, mut b) = (f32::INFINITY, f32::NEG_INFINITY);
    for l in 0..LANES {
        a = a.min(lo[l]);
        b = b.max(hi[l]);
    }
    for &v in rest {
        if v.is_finite() {
            a = a.min(v);
            b = b.max(v);
        }
    }
    (a <= b).then_some((a, b))
}

/// `Σ exp(x_i − m)` in f64 (f32 lanes within blocks of [`BLOCK`]).
pub fn sum_exp(xs: &[f32], m: f32) -> f64 {
    let mut total = 0.0f64;
    for block in xs.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let chunks = block.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..LANES {
                acc[l] += exp(c[l] - m);
            }
        }
        let mut s: f32 = acc.iter().sum();
        for &v in rest {
            s += exp(v - m);
        }
        total += s as f64;
    }
    total
}

/// Writes `out_i = exp(x_i − m)` and returns `Σ out_i` in f64. `out.len() == xs.len()`.
pub fn exp_into(xs: &[f32], m: f32, out: &mut [f32]) -> f64 {
    debug_assert_eq!(xs.len(), out.len());
    let mut total = 0.0f64;
    for (xb, ob) in xs.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut acc = [0.0f32; LANES];
        let n = xb.len() / LANES * LANES;
        for (xc, oc) in xb[..n].chunks_exact(LANES).zip(ob[..n].chunks_exact_mut(LANES)) {
            for l in 0..LANES {
                let e = exp(xc[l] - m);
                oc[l] = e;
                acc[l] += e;
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, o) in xb[n..].iter().zip(&mut ob[n..]) {
            *o = exp(*x - m);
            s += *o;
        }
        total += s as f64;
    }
    total
}

/// Log-sum-exp of the row and its maximum: `(m, m + ln Σ exp(x_i − m))`.
/// `lse = -inf` when every entry is `-inf`.
pub fn log_sum_exp(xs: &[f32]) -> (f32, f32) {
    let m = max(xs);
    if m == f32::NEG_INFINITY {
        return (m, m);
    }
    (m, m + sum_exp(xs, m).ln() as f32)
}

/// Shannon entropy (nats) of `softmax(x)`: `H = lse − Σ p_i x_i` with `p = softmax(x)`.
/// Returns `(lse, H)` in f64; `-inf` entries contribute nothing.
pub fn lse_and_entropy(xs: &[f32]) -> (f64, f64) {
    let m = max(xs);
    if m == f32::NEG_INFINITY {
        return (f64::NEG_INFINITY, 0.0);
    }
    // Σ e_i and Σ e_i·(x_i − m), with e_i = exp(x_i − m).
    let (mut z, mut zx) = (0.0f64, 0.0f64);
    for block in xs.chunks(BLOCK) {
        let mut a = [0.0f32; LANES];
        let mut b = [0.0f32; LANES];
        let chunks = block.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..LANES {
                let d = c[l] - m;
                let e = exp(d);
                a[l] += e;
                b[l] += if e > 0.0 { e * d } else { 0.0 };
            }
        }
        let (mut sa, mut sb): (f32, f32) = (a.iter().sum(), b.iter().sum());
        for &v in rest {
            let d = v - m;
            let e = exp(d);
            sa += e;
            sb += if e > 0.0 { e * d } else { 0.0 };
        }
        z += sa as f64;
        zx += sb as f64;
    }
    let ln_z = z.ln();
    // H = −Σ p (d − ln z) = ln z − Σ e d / z
    (m as f64 + ln_z, (ln_z - zx / z).max(0.0))
}

/// Multiplies every element by `s` in place.
pub fn scale(xs: &mut [f32], s: f32) {
    for x in xs.iter_mut() {
        *x *= s;
    }
}

/// Number of elements `≥ t`.
pub fn count_ge(xs: &[f32], t: f32) -> usize {
    let mut acc = [0u32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut total = 0usize;
    for (i, c) in chunks.enumerate() {
        for l in 0..LANES {
            acc[l] += (c[l] >= t) as u32;
        }
        if i % 65536 == 65535 {
            total += acc.iter().map(|&a| a as usize).sum::<usize>();
            acc = [0; LANES];
        }
    }
    total += acc.iter().map(|&a| a as usize).sum::<usize>();
    total + rest.iter().filter(|&&v| v >= t).count()
}

/// Number of finite elements.
pub fn count_finite(xs: &[f32]) -> usize {
    xs.len() - xs.iter().filter(|v| **v == f32::NEG_INFINITY).count()
}

/// Sets every element `< t` to `-inf`.
pub fn mask_below(xs: &mut [f32], t: f32) {
    for x in xs.iter_mut() {
        *x = if *x < t { f32::NEG_INFINITY } else { *x };
    }
}

/// Appends `(i, x_i)` for every `x_i ≥ t`, in index order, skipping whole blocks whose maximum
/// is below `t`.
pub fn gather_ge(xs: &[f32], t: f32, ids: &mut Vec<u32>, vals: &mut Vec<f32>) {
    const B: usize = 32;
    let mut base = 0usize;
    for c in xs.chunks(B) {
        if max(c) >= t {
            for (j, &v) in c.iter().enumerate() {
                if v >= t {
                    ids.push((base + j) as u32);
                    vals.push(v);
                }
            }
        }
        base += c.len();
    }
}

/// Index of the first maximum (lowest index among ties), `None` if all are `-inf` or empty.
pub fn argmax(xs: &[f32]) -> Option<usize> {
    let m = max(xs);
    if m == f32::NEG_INFINITY {
        return None;
    }
    xs.iter().position(|&v| v == m)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reductions() {
        let xs: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
        assert_eq!(max(&xs), 5.0);
        let m = max(&xs);
        let want: f64 = xs.iter().map(|&v| ((v - m) as f64).exp()).sum();
        assert!((sum_exp(&xs, m) - want).abs() < 1e-4 * want);
        let mut out = vec![0.0; xs.len()];
        assert!((exp_into(&xs, m, &mut out) - want).abs() < 1e-4 * want);
        assert_eq!(count_ge(&xs, 4.95), xs.iter().filter(|&&v| v >= 4.95).count());
        let (lse, h) = lse_and_entropy(&[0.0, 0.0, f32::NEG_INFINITY, 0.0, 0.0]);
        assert!((lse - 4f64.ln()).abs() < 1e-6 && (h - 4f64.ln()).abs() < 1e-6);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY]), None);
        assert_eq!(finite_min_max(&[f32::NEG_INFINITY, 2.0, -1.0]), Some((-1.0, 2.0)));
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
