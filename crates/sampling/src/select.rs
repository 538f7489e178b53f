//! Weighted selection without a full sort: the threshold that splits a row into its best keys
//! holding a target weight. Top-k (unit weights), top-p (probability weights) and typical sampling
//! (weights over typicality keys) are all this one question.

use crate::math;

/// Below this many candidates the band is simply sorted.
const SORT_BELOW: usize = 192;

/// Reusable buffers for [`top_weight_threshold`] (no allocation per row once warm).
#[derive(Debug, Default, Clone)]
pub struct SelectScratch {
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
/// `target`, with ties at the boundary kept. Only finite keys take part; if even all of them weigh
/// less than `target`, the smallest finite key is returned (keep everything finite); `-inf` if no
/// key is finite.
///
/// Value bisection over a shrinking band of candidates, each pass one vectorised sweep; the band is
/// compacted once it is small and sorted once it is tiny. Expected O(V).
pub fn top_weight_threshold(
    keys: &[f32],
    weights: Option<&[f32]>,
    target: f64,
    s: &mut SelectScratch,
) -> f32 {
    let Some((fmin, fmax)) = math::finite_min_max(keys) else {
        return f32::NEG_INFINITY;
    };
    if let Some(w) = weights {
        debug_assert_eq!(w.len(), keys.len());
    }
    // Invariant: the answer lies in the band [lo, hi); `above` is the weight of keys ≥ hi.
    let mut lo = fmin;
    let mut hi = f32::INFINITY;
    let mut top = fmax; // an upper estimate of the largest key in the band
    let mut above = 0.0f64;
    let mut band_n = keys.len();
    let mut in_scratch = false;
    loop {
        let (wk, ww): (&[f32], Option<&[f32]>) = if in_scratch {
            (&s.keys, weights.map(|_| s.weights.as_slice()))
        } else {
            (keys, weights)
        };
        let t = lo + (top - lo) * 0.5;
        if band_n <= SORT_BELOW || !(t > lo && t < hi) {
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
        if band_n * 8 < wk.len() && wk.len() > SORT_BELOW {
            s.keys2.clear();
            s.weights2.clear();
            compact(wk, ww, lo, hi, &mut s.keys2, &mut s.weights2);
            std::mem::swap(&mut s.keys, &mut s.keys2);
            std::mem::swap(&mut s.weights, &mut s.weights2);
            in_scratch = true;
        }
    }
}

/// `(Σ w, count)` over elements with `t ≤ key < hi`.
fn band_weight(keys: &[f32], weights: Option<&[f32]>, t: f32, hi: f32) -> (f64, usize) {
    const L: usize = 16;
    let mut total_w = 0.0f64;
    let mut total_n = 0usize;
    match weights {
        Some(w) => {
            for (kb, wb) in keys.chunks(1024).zip(w.chunks(1024)) {
                let mut aw = [0.0f32; L];
                let mut an = [0u32; L];
                let n = kb.len() / L * L;
                for (kc, wc) in kb[..n].chunks_exact(L).zip(wb[..n].chunks_exact(L)) {
                    for l in 0..L {
                        let inside = kc[l] >= t && kc[l] < hi;
                        aw[l] += if inside { wc[l] } else { 0.0 };
                        an[l] += inside as u32;
                    }
                }
                let mut sw: f32 = aw.iter().sum();
                let mut sn: u32 = an.iter().sum();
                for (k, wv) in kb[n..].iter().zip(&wb[n..]) {
                    if *k >= t && *k < hi {
                        sw += *wv;
                        sn += 1;
                    }
                }
                total_w += sw as f64;
                total_n += sn as usize;
            }
        }
        None => {
            for kb in keys.chunks(1024) {
                let mut an = [0u32; L];
                let n = kb.len() / L * L;
                for kc in kb[..n].chunks_exact(L) {
                    for l in 0..L {
                        an[l] += (kc[l] >= t && kc[l] < hi) as u32;
                    }
                }
                let mut sn: u32 = an.iter().sum();
                sn += kb[n..].iter().filter(|&&k| k >= t && k < hi).count() as u32;
                total_n += sn as usize;
            }
            total_w = total_n as f64;
        }
    }
    (total_w, total_n)
}

/// Copies the elements with `lo ≤ key < hi` (and their weights) into `ok`/`ow`.
fn compact(keys: &[f32], weights: Option<&[f32]>, lo: f32, hi: f32, ok: &mut Vec<f32>, ow: &mut Vec<f32>) {
    match weights {
        Some(w) => {
            for (&k, &wv) in keys.iter().zip(w) {
                if k >= lo && k < hi {
                    ok.push(k);
                    ow.push(wv);
                }
            }
        }
        None => ok.extend(keys.iter().copied().filter(|&k| k >= lo && k < hi)),
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
        Some(w) => pairs.extend(keys.iter().zip(w).filter(|(k, _)| **k >= lo && **k < hi).map(|(k, w)| (*k, *w))),
        None => pairs.extend(keys.iter().filter(|k| **k >= lo && **k < hi).map(|k| (*k, 1.0))),
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
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32) / (1u64 << 24) as f32
    }

    #[test]
    fn matches_sort_on_varied_rows() {
        let mut seed = 7u64;
        for &n in &[1usize, 5, 300, 5000, 70000] {
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
            let w: Vec<f32> = keys.iter().map(|k| if k.is_finite() { (k / 10.0).exp() } else { 0.0 }).collect();
            let total: f64 = w.iter().map(|&x| x as f64).sum();
            let mut s = SelectScratch::default();
            for frac in [0.01, 0.3, 0.9, 0.999, 1.5] {
                let t = total * frac;
                assert_eq!(top_weight_threshold(&keys, Some(&w), t, &mut s), naive(&keys, Some(&w), t), "n={n} frac={frac}");
            }
            for k in [1usize, 2, 40, 1000, n + 3] {
                assert_eq!(top_weight_threshold(&keys, None, k as f64, &mut s), naive(&keys, None, k as f64), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn all_masked_is_neg_inf() {
        let mut s = SelectScratch::default();
        assert_eq!(top_weight_threshold(&[f32::NEG_INFINITY; 4], None, 1.0, &mut s), f32::NEG_INFINITY);
    }
}
