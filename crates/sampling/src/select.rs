//! Weighted selection without a full sort: the threshold that splits a row into its best keys
//! holding a target weight. Top-k (unit weights), top-p (probability weights) and typical sampling
//! (weights over typicality keys) are all this one question.

use wide::{f32x8, CmpGe, CmpLt};

use crate::math;

/// Below this many candidates the band is simply sorted.
const SORT_BELOW: usize = 192;

/// Reusable buffers for [`top_weight_threshold`] (no allocation per row once warm).
#[derive(Debug, Default, Clone)]
pub struct SelectScratch {
    idx: Vec<u32>,
    maxima: Vec<f32>,
    mweights: Vec<f32>,
    keys: Vec<f32>,
    weights: Vec<f32>,
    keys2: Vec<f32>,
    weights2: Vec<f32>,
    pairs: Vec<(f32, f32)>,
}

/// The key threshold `t* = max{ t ∈ keys : W(key ≥ t) ≥ target }`, where `W(S)` is the total
/// weight of `S` (each element weighs 1 when `weights` is `None`).
///
/// Keeping every element with `key ≥ t*` keeps the shortest best-first prefix whose weight reaches
/// `target`, with ties at the boundary kept. Only finite keys take part (keys are finite or
/// `-inf`); if even all of them weigh less than `target`, the smallest finite key is returned
/// (keep everything finite); `-inf` if no key is finite. `total_hint` approximates the total
/// weight and only steers the search.
///
/// Usually one sweep: the block-maxima bound ([`block_bound`]) leaves a few candidates, which are
/// bisected by value and finally sorted. Where it cannot (the answer lies deep in a flat row), a
/// strided sample brackets the answer and value bisection over a shrinking, compacted band
/// finishes. Expected O(V).
pub fn top_weight_threshold(
    keys: &[f32],
    weights: Option<&[f32]>,
    target: f64,
    total_hint: f64,
    s: &mut SelectScratch,
) -> f32 {
    let fmax = math::max(keys);
    if fmax == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    if let Some(w) = weights {
        debug_assert_eq!(w.len(), keys.len());
    }
    // Invariant: the answer lies in the band [lo, hi); `above` is the weight of keys ≥ hi.
    // `lo = f32::MIN` admits every finite key and nothing else; the real minimum is only
    // computed if a bisection step needs it.
    let mut lo = f32::MIN;
    let mut lo_is_key = false;
    let mut in_scratch = false;
    let mut hi = f32::INFINITY;
    let mut top = fmax; // an upper estimate of the largest key in the band
    let mut above = 0.0f64;
    let mut band_n = keys.len();
    let bound = if keys.len() >= 16 * BLOCK {
        block_bound(keys, weights, target, s)
    } else {
        None
    };
    if let Some(b) = bound {
        lo = b;
        lo_is_key = true;
        band_n = s.keys.len();
        in_scratch = true;
    } else if keys.len() > 8 * SAMPLE {
        if let Some((t_lo, t_hi, est)) =
            sample_bracket(keys, weights, target, total_hint, &mut s.pairs)
        {
            s.idx.clear();
            s.keys.clear();
            if t_lo > f32::MIN
                && est <= keys.len() / 16
                && math::gather_ge_limited(keys, t_lo, keys.len() / 8, &mut s.idx, &mut s.keys)
            {
                // Few keys reach t_lo: work on exactly those from here on.
                s.weights.clear();
                if let Some(w) = weights {
                    s.weights.extend(s.idx.iter().map(|&i| w[i as usize]));
                }
                let w_all = if weights.is_some() {
                    s.weights.iter().map(|&x| x as f64).sum()
                } else {
                    s.keys.len() as f64
                };
                if w_all >= target {
                    lo = t_lo;
                    lo_is_key = true;
                    band_n = s.keys.len();
                    in_scratch = true;
                } else {
                    hi = t_lo;
                    top = t_lo;
                    above = w_all;
                    band_n = keys.len() - s.keys.len();
                }
            } else {
                let [w_lo, n_lo, w_hi, n_hi] = two_threshold_sweep(keys, weights, t_lo, t_hi);
                if w_hi >= target {
                    lo = t_hi;
                    lo_is_key = true;
                    band_n = n_hi as usize;
                } else if w_lo >= target {
                    lo = t_lo;
                    lo_is_key = t_lo > f32::MIN;
                    hi = t_hi;
                    top = t_hi.min(fmax);
                    above = w_hi;
                    band_n = (n_lo - n_hi) as usize;
                } else {
                    hi = t_lo;
                    top = t_lo;
                    above = w_lo;
                    band_n = keys.len() - n_lo as usize;
                }
            }
        }
    }
    loop {
        if !in_scratch && band_n * 16 < keys.len() {
            s.keys.clear();
            s.weights.clear();
            compact(keys, weights, lo, hi, &mut s.keys, &mut s.weights);
            in_scratch = true;
        }
        let (wk, ww): (&[f32], Option<&[f32]>) = if in_scratch {
            (&s.keys, weights.map(|_| s.weights.as_slice()))
        } else {
            (keys, weights)
        };
        if band_n <= SORT_BELOW {
            return sorted_walk(wk, ww, lo, hi, above, target, &mut s.pairs);
        }
        if !lo_is_key {
            // Working-set keys below `hi` are all ≥ lo, so their finite minimum is a valid lo.
            lo = band_min(wk, lo, hi);
            lo_is_key = true;
        }
        let t = lo + (top - lo) * 0.5;
        if !(t > lo && t < hi) {
            return sorted_walk(wk, ww, lo, hi, above, target, &mut s.pairs);
        }
        let (w_up, n_up) = band_weight(wk, ww, t, hi);
        if above + w_up >= target {
            lo = t;
            band_n = n_up;
        } else {
            above += w_up;
            hi = t;
            top = t;
            band_n -= n_up;
        }
        if in_scratch && band_n * 8 < wk.len() && wk.len() > SORT_BELOW {
            s.keys2.clear();
            s.weights2.clear();
            compact(
                &s.keys,
                weights.map(|_| s.weights.as_slice()),
                lo,
                hi,
                &mut s.keys2,
                &mut s.weights2,
            );
            std::mem::swap(&mut s.keys, &mut s.keys2);
            std::mem::swap(&mut s.weights, &mut s.weights2);
        }
    }
}

/// Smallest key in `[lo, hi)` (`lo` if there is none).
fn band_min(keys: &[f32], lo: f32, hi: f32) -> f32 {
    let (lv, hv) = (f32x8::splat(lo), f32x8::splat(hi));
    let mut acc = f32x8::splat(f32::INFINITY);
    let n = keys.len() / 8 * 8;
    for c in keys[..n].chunks_exact(8) {
        let k = math::load8(c);
        let inside = k.cmp_ge(lv) & k.cmp_lt(hv);
        acc = acc.min(inside.blend(k, f32x8::splat(f32::INFINITY)));
    }
    let mut m = acc.to_array().into_iter().fold(f32::INFINITY, f32::min);
    for &k in &keys[n..] {
        if k >= lo && k < hi && k < m {
            m = k;
        }
    }
    if m.is_finite() {
        m
    } else {
        lo
    }
}

/// Block length of the block-maxima bound.
const BLOCK: usize = 64;

/// The k-th largest finite key (counting ties individually), or the smallest finite key if fewer
/// than k are finite; `-inf` if none is.
pub fn kth_largest(keys: &[f32], k: usize, s: &mut SelectScratch) -> f32 {
    top_weight_threshold(keys, None, k.max(1) as f64, keys.len() as f64, s)
}

/// Block-maxima bound: the arg-maxima of blocks of [`BLOCK`] keys are distinct elements, so if
/// those with keys at or above `b` already weigh `target`, then `W(key ≥ b) ≥ target` and the
/// answer is `≥ b`. Finds such a `b` over the (few thousand) maxima, then gathers every key `≥ b` — only
/// from the blocks reaching `b` — into `s.keys`/`s.weights`. `None` when the bound would leave
/// too many candidates to be worth it.
fn block_bound(
    keys: &[f32],
    weights: Option<&[f32]>,
    target: f64,
    s: &mut SelectScratch,
) -> Option<f32> {
    let nb = keys.len().div_ceil(BLOCK);
    let mut maxima = std::mem::take(&mut s.maxima);
    let mut mweights = std::mem::take(&mut s.mweights);
    maxima.clear();
    maxima.extend(keys.chunks(BLOCK).map(block_max));
    mweights.clear();
    match weights {
        // The weight of each block's first arg-max.
        Some(w) => mweights.extend(
            keys.chunks(BLOCK)
                .zip(&maxima)
                .enumerate()
                .map(|(bi, (c, &m))| math::first_ge(c, m).map_or(0.0, |j| w[bi * BLOCK + j])),
        ),
        None => mweights.extend(
            maxima
                .iter()
                .map(|&m| if m > f32::NEG_INFINITY { 1.0 } else { 0.0 }),
        ),
    }
    let total: f64 = mweights.iter().map(|&w| w as f64).sum();
    let result = (total >= target)
        .then(|| top_weight_threshold(&maxima, Some(&mweights), target, total, s))
        .filter(|&b| b > f32::NEG_INFINITY && math::count_ge(&maxima, b) * 4 <= nb)
        .inspect(|&b| {
            s.keys.clear();
            s.weights.clear();
            let (bv, inf) = (f32x8::splat(b), f32x8::splat(f32::INFINITY));
            for (bi, (c, &m)) in keys.chunks(BLOCK).zip(&maxima).enumerate() {
                if m < b {
                    continue;
                }
                if c.len() < BLOCK {
                    compact(
                        c,
                        weights.map(|w| &w[bi * BLOCK..]),
                        b,
                        f32::INFINITY,
                        &mut s.keys,
                        &mut s.weights,
                    );
                    continue;
                }
                for q in 0..BLOCK / 16 {
                    let mut mask = math::mask_in(&c[q * 16..], bv, inf);
                    while mask != 0 {
                        let l = q * 16 + mask.trailing_zeros() as usize;
                        s.keys.push(c[l]);
                        if let Some(w) = weights {
                            s.weights.push(w[bi * BLOCK + l]);
                        }
                        mask &= mask - 1;
                    }
                }
            }
        });
    s.maxima = maxima;
    s.mweights = mweights;
    result
}

/// Largest value of a block.
#[inline(always)]
fn block_max(c: &[f32]) -> f32 {
    if c.len() == BLOCK {
        let mut acc = math::load8(c);
        for j in 1..BLOCK / 8 {
            acc = acc.fast_max(math::load8(&c[j * 8..]));
        }
        acc.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max)
    } else {
        c.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// Sample size of the bracketing step.
const SAMPLE: usize = 256;

/// Brackets the answer from a strided sample: `(t_lo, t_hi, estimated count ≥ t_lo)` with, hopefully,
/// `W(≥ t_hi) < target ≤ W(≥ t_lo)` (`t_lo = -inf` / `t_hi = +inf` for an open side).
/// Weighted targets above half the total are estimated from the light side, which a uniform
/// sample represents well even when a few tokens carry most of the weight.
fn sample_bracket(
    keys: &[f32],
    weights: Option<&[f32]>,
    target: f64,
    total: f64,
    pairs: &mut Vec<(f32, f32)>,
) -> Option<(f32, f32, usize)> {
    let n = keys.len();
    let stride = n / SAMPLE;
    pairs.clear();
    for j in 0..SAMPLE {
        let i = j * stride + stride / 2;
        if keys[i] > f32::NEG_INFINITY {
            pairs.push((keys[i], weights.map_or(1.0, |w| w[i])));
        }
    }
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let scale = stride as f64;
    let from_light_side = weights.is_some() && target > 0.5 * total;
    let crossing = if from_light_side {
        // W(≥ key_i) ≈ total − scale·Σ_{j > i} w_j
        let mut below: f64 = pairs.iter().map(|p| p.1 as f64).sum::<f64>() * scale;
        let mut found = None;
        for (i, p) in pairs.iter().enumerate() {
            below -= p.1 as f64 * scale;
            if total - below.max(0.0) >= target {
                found = Some(i);
                break;
            }
        }
        found
    } else {
        let mut cum = 0.0;
        pairs.iter().position(|p| {
            cum += p.1 as f64 * scale;
            cum >= target
        })
    }?;
    let margin = 2 + (3.0 * ((crossing + 1) as f64).sqrt()) as usize;
    let t_hi = crossing
        .checked_sub(margin)
        .map_or(f32::INFINITY, |i| pairs[i].0);
    let t_lo = pairs
        .get(crossing + margin)
        .map_or(f32::NEG_INFINITY, |p| p.0);
    // Estimated number of keys ≥ t_lo.
    let est = ((crossing + margin + 1) * stride).min(n);
    (t_lo < t_hi).then_some((t_lo, t_hi, est))
}

/// Unit weights, for counting with the weighted sweeps.
static UNIT: [f32; 1024] = [1.0; 1024];

/// Calls `f(keys_block, weights_block)` on blocks of at most 1024 elements.
#[inline(always)]
fn blocks<'a>(
    keys: &'a [f32],
    weights: Option<&'a [f32]>,
) -> impl Iterator<Item = (&'a [f32], &'a [f32])> {
    keys.chunks(1024).enumerate().map(move |(bi, kb)| {
        (
            kb,
            weights.map_or(&UNIT[..kb.len()], |w| &w[bi * 1024..bi * 1024 + kb.len()]),
        )
    })
}

/// `[W(≥ t_lo), n(≥ t_lo), W(≥ t_hi), n(≥ t_hi)]` in one sweep.
fn two_threshold_sweep(keys: &[f32], weights: Option<&[f32]>, t_lo: f32, t_hi: f32) -> [f64; 4] {
    let (lo, hi, one) = (f32x8::splat(t_lo), f32x8::splat(t_hi), f32x8::splat(1.0));
    let mut tot = [0.0f64; 4];
    for (kb, wb) in blocks(keys, weights) {
        let mut acc = [f32x8::splat(0.0); 4];
        let n = kb.len() / 8 * 8;
        for (kc, wc) in kb[..n].chunks_exact(8).zip(wb[..n].chunks_exact(8)) {
            let (k, w) = (math::load8(kc), math::load8(wc));
            let (ml, mh) = (k.cmp_ge(lo), k.cmp_ge(hi));
            acc[0] += ml & w;
            acc[1] += ml & one;
            acc[2] += mh & w;
            acc[3] += mh & one;
        }
        let mut sums = acc.map(|a| a.reduce_add() as f64);
        for (k, w) in kb[n..].iter().zip(&wb[n..]) {
            if *k >= t_lo {
                sums[0] += *w as f64;
                sums[1] += 1.0;
            }
            if *k >= t_hi {
                sums[2] += *w as f64;
                sums[3] += 1.0;
            }
        }
        for (t, x) in tot.iter_mut().zip(sums) {
            *t += x;
        }
    }
    tot
}

/// `(Σ w, count)` over elements with `t ≤ key < hi`.
fn band_weight(keys: &[f32], weights: Option<&[f32]>, t: f32, hi: f32) -> (f64, usize) {
    let (tv, hv, one) = (f32x8::splat(t), f32x8::splat(hi), f32x8::splat(1.0));
    let (mut total_w, mut total_n) = (0.0f64, 0.0f64);
    for (kb, wb) in blocks(keys, weights) {
        let (mut aw, mut an) = (f32x8::splat(0.0), f32x8::splat(0.0));
        let n = kb.len() / 8 * 8;
        for (kc, wc) in kb[..n].chunks_exact(8).zip(wb[..n].chunks_exact(8)) {
            let k = math::load8(kc);
            let m = k.cmp_ge(tv) & k.cmp_lt(hv);
            aw += m & math::load8(wc);
            an += m & one;
        }
        total_w += aw.reduce_add() as f64;
        total_n += an.reduce_add() as f64;
        for (k, w) in kb[n..].iter().zip(&wb[n..]) {
            if *k >= t && *k < hi {
                total_w += *w as f64;
                total_n += 1.0;
            }
        }
    }
    (total_w, total_n as usize)
}

/// Copies the elements with `lo ≤ key < hi` (and their weights) into `ok`/`ow`, in order.
/// Cost ∝ V/16 plus a few nanoseconds per copied element: meant for small bands.
fn compact(
    keys: &[f32],
    weights: Option<&[f32]>,
    lo: f32,
    hi: f32,
    ok: &mut Vec<f32>,
    ow: &mut Vec<f32>,
) {
    let chunks = keys.chunks_exact(16);
    let rest = keys.len() - chunks.remainder().len();
    let (lv, hv) = (f32x8::splat(lo), f32x8::splat(hi));
    for (b, c) in chunks.enumerate() {
        let mut m = math::mask_in(c, lv, hv);
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            ok.push(c[l]);
            if let Some(w) = weights {
                ow.push(w[b * 16 + l]);
            }
            m &= m - 1;
        }
    }
    for i in rest..keys.len() {
        if keys[i] >= lo && keys[i] < hi {
            ok.push(keys[i]);
            if let Some(w) = weights {
                ow.push(w[i]);
            }
        }
    }
}

/// Sorts the band `[lo, hi)` best-first and walks it until the cumulative weight reaches `target`.
fn sorted_walk(
    keys: &[f32],
    weights: Option<&[f32]>,
    lo: f32,
    hi: f32,
    above: f64,
    target: f64,
    pairs: &mut Vec<(f32, f32)>,
) -> f32 {
    pairs.clear();
    match weights {
        Some(w) => pairs.extend(
            keys.iter()
                .zip(w)
                .filter(|(k, _)| **k >= lo && **k < hi)
                .map(|(k, w)| (*k, *w)),
        ),
        None => pairs.extend(
            keys.iter()
                .filter(|k| **k >= lo && **k < hi)
                .map(|k| (*k, 1.0)),
        ),
    }
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut cum = above;
    let mut i = 0;
    while i < pairs.len() {
        // A whole group of equal keys enters together.
        let k = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == k {
            cum += pairs[i].1 as f64;
            i += 1;
        }
        if cum >= target {
            return k;
        }
    }
    pairs.last().map_or(lo, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: sort everything, walk best-first by groups of equal keys.
    fn naive(keys: &[f32], weights: Option<&[f32]>, target: f64) -> f32 {
        let mut p: Vec<(f32, f32)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_finite())
            .map(|(i, k)| (*k, weights.map_or(1.0, |w| w[i])))
            .collect();
        if p.is_empty() {
            return f32::NEG_INFINITY;
        }
        p.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut cum = 0.0f64;
        let mut i = 0;
        while i < p.len() {
            let k = p[i].0;
            while i < p.len() && p[i].0 == k {
                cum += p[i].1 as f64;
                i += 1;
            }
            if cum >= target {
                return k;
            }
        }
        p.last().unwrap().0
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    #[test]
    fn matches_sort_on_varied_rows() {
        let mut seed = 7u64;
        for &n in &[1usize, 5, 300, 5000, 70000, 130000] {
            let keys: Vec<f32> = (0..n)
                .map(|i| {
                    let u = lcg(&mut seed);
                    if i % 17 == 3 {
                        f32::NEG_INFINITY
                    } else {
                        ((u * 40.0).powi(2) / 40.0 * 4.0).round() / 4.0
                    }
                })
                .collect();
            let w: Vec<f32> = keys
                .iter()
                .map(|k| if k.is_finite() { (k / 10.0).exp() } else { 0.0 })
                .collect();
            let total: f64 = w.iter().map(|&x| x as f64).sum();
            let mut s = SelectScratch::default();
            for frac in [0.01, 0.3, 0.9, 0.999, 1.5] {
                let t = total * frac;
                assert_eq!(
                    top_weight_threshold(&keys, Some(&w), t, total, &mut s),
                    naive(&keys, Some(&w), t),
                    "n={n} frac={frac}"
                );
            }
            for k in [1usize, 2, 40, 1000, n + 3] {
                assert_eq!(
                    top_weight_threshold(&keys, None, k as f64, n as f64, &mut s),
                    naive(&keys, None, k as f64),
                    "n={n} k={k}"
                );
            }
        }
    }

    #[test]
    fn exp_weighted_bound_matches_sort() {
        let mut seed = 11u64;
        let mut s = SelectScratch::default();
        let keys: Vec<f32> = (0..100_000)
            .map(|i| {
                if i % 7 == 0 {
                    f32::NEG_INFINITY
                } else {
                    (lcg(&mut seed) * 8.0).powi(2) / 4.0
                }
            })
            .collect();
        let m = math::max(&keys);
        let w: Vec<f32> = keys.iter().map(|&k| math::exp(k - m)).collect();
        let total: f64 = w.iter().map(|&x| x as f64).sum();
        for frac in [0.1, 0.5, 0.9, 0.95, 0.999] {
            let t = total * frac;
            assert_eq!(
                top_weight_threshold(&keys, Some(&w), t, total, &mut s),
                naive(&keys, Some(&w), t),
                "frac {frac}"
            );
        }
    }

    #[test]
    fn kth_largest_matches_threshold() {
        let mut seed = 3u64;
        let mut s = SelectScratch::default();
        for &n in &[10usize, 1000, 70000] {
            let keys: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 13 == 0 {
                        f32::NEG_INFINITY
                    } else {
                        (lcg(&mut seed) * 64.0).round() / 4.0
                    }
                })
                .collect();
            for k in [1usize, 3, 40, 100, n] {
                assert_eq!(
                    kth_largest(&keys, k, &mut s),
                    naive(&keys, None, k as f64),
                    "n={n} k={k}"
                );
            }
        }
    }

    #[test]
    fn all_masked_is_neg_inf() {
        let mut s = SelectScratch::default();
        assert_eq!(
            top_weight_threshold(&[f32::NEG_INFINITY; 4], None, 1.0, 4.0, &mut s),
            f32::NEG_INFINITY
        );
    }
}
