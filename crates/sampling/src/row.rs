//! The working row a pipeline transforms: one logits row over the vocabulary, held densely or,
//! once a truncation has left few tokens, as a sparse (id, logit) list in ascending id order.

use crate::error::{Result, SamplingError};
use crate::math;
use crate::select::{top_weight_threshold, SelectScratch};

/// A logits row being transformed by a pipeline, plus the scratch buffers its stages reuse.
///
/// Removed tokens are `-inf` (dense) or absent (sparse). Buffers are kept between rows, so a warm
/// `Row` does not allocate.
#[derive(Debug, Default, Clone)]
pub struct Row {
    vocab: usize,
    sparse: bool,
    ids: Vec<u32>,
    vals: Vec<f32>,
    /// Scratch for per-token quantities (probabilities, keys).
    pub(crate) tmp: Vec<f32>,
    /// Second scratch buffer.
    pub(crate) tmp2: Vec<f32>,
    pub(crate) select: SelectScratch,
}

/// Checks a raw logits row: no NaN, no `+inf`, not empty, not entirely `-inf`.
pub fn validate_logits(logits: &[f32], row: usize) -> Result<()> {
    if logits.is_empty() {
        return Err(SamplingError::EmptyRow { row });
    }
    let m = math::max(logits);
    if m.is_nan() || logits.iter().any(|v| v.is_nan()) {
        let token = logits.iter().position(|v| v.is_nan()).unwrap_or(0);
        return Err(SamplingError::NanLogit { row, token });
    }
    if m == f32::INFINITY {
        let token = logits.iter().position(|v| *v == f32::INFINITY).unwrap_or(0);
        return Err(SamplingError::PosInfLogit { row, token });
    }
    if m == f32::NEG_INFINITY {
        return Err(SamplingError::AllMasked { row });
    }
    Ok(())
}

impl Row {
    /// An empty row; call [`Row::load`] before use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a raw logits row (validated: see [`validate_logits`]); `row` names it in errors.
    pub fn load(&mut self, logits: &[f32], row: usize) -> Result<()> {
        validate_logits(logits, row)?;
        self.vocab = logits.len();
        self.sparse = false;
        self.ids.clear();
        self.vals.clear();
        self.vals.extend_from_slice(logits);
        Ok(())
    }

    /// Vocabulary size of the row.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Whether the row is held as a sparse (id, logit) list.
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// The logits held: the full row (dense) or the kept tokens' logits (sparse, ascending id).
    pub fn values(&self) -> &[f32] {
        &self.vals
    }

    /// Mutable access to [`Row::values`].
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.vals
    }

    /// Token ids of the kept entries when sparse; `None` when dense (entry i is token i).
    pub fn ids(&self) -> Option<&[u32]> {
        self.sparse.then_some(self.ids.as_slice())
    }

    /// Token id of entry `i` of [`Row::values`].
    pub fn id_at(&self, i: usize) -> u32 {
        if self.sparse {
            self.ids[i]
        } else {
            i as u32
        }
    }

    /// The logit of token `id`, if it is still present (not removed).
    pub fn get(&self, id: u32) -> Option<f32> {
        self.index_of(id).map(|i| self.vals[i]).filter(|v| *v > f32::NEG_INFINITY)
    }

    /// Mutable logit of token `id` if it is held (dense: any id below the vocabulary size).
    pub fn get_mut(&mut self, id: u32) -> Option<&mut f32> {
        let i = self.index_of(id)?;
        Some(&mut self.vals[i])
    }

    fn index_of(&self, id: u32) -> Option<usize> {
        if self.sparse {
            self.ids.binary_search(&id).ok()
        } else {
            ((id as usize) < self.vocab).then_some(id as usize)
        }
    }

    /// Number of tokens not removed.
    pub fn kept(&self) -> usize {
        math::count_finite(&self.vals)
    }

    /// Largest logit.
    pub fn max(&self) -> f32 {
        math::max(&self.vals)
    }

    /// `(lse, H)`: log-sum-exp of the row and the entropy (nats) of its softmax.
    pub fn lse_entropy(&self) -> (f64, f64) {
        math::lse_and_entropy(&self.vals)
    }

    /// Log-sum-exp of the row.
    pub fn lse(&self) -> f32 {
        math::log_sum_exp(&self.vals).1
    }

    /// The k-th largest logit (ties counted individually), or the smallest finite logit if fewer
    /// than k tokens remain. `k ≥ 1`.
    pub fn kth_largest(&mut self, k: usize) -> f32 {
        top_weight_threshold(&self.vals, None, k as f64, &mut self.select)
    }

    /// Removes every token whose logit is below `t`. A dense row that keeps few tokens turns sparse.
    pub fn retain_ge(&mut self, t: f32) {
        if t == f32::NEG_INFINITY {
            return;
        }
        if self.sparse {
            let mut j = 0;
            for i in 0..self.vals.len() {
                if self.vals[i] >= t {
                    self.vals[j] = self.vals[i];
                    self.ids[j] = self.ids[i];
                    j += 1;
                }
            }
            self.vals.truncate(j);
            self.ids.truncate(j);
            return;
        }
        let n = math::count_ge(&self.vals, t);
        if n * 4 <= self.vocab {
            self.ids.clear();
            self.tmp.clear();
            math::gather_ge(&self.vals, t, &mut self.ids, &mut self.tmp);
            std::mem::swap(&mut self.vals, &mut self.tmp);
            self.sparse = true;
        } else {
            math::mask_below(&mut self.vals, t);
        }
    }

    /// Keeps only token `id` (which must be present), as a one-entry sparse row.
    pub fn keep_only(&mut self, id: u32) {
        let v = self.get(id).unwrap_or(f32::NEG_INFINITY);
        self.ids.clear();
        self.vals.clear();
        self.ids.push(id);
        self.vals.push(v);
        self.sparse = true;
    }

    /// Removes every token for which `remove(id, logit)` is true.
    pub fn remove_where(&mut self, mut remove: impl FnMut(u32, f32) -> bool) {
        for i in 0..self.vals.len() {
            let id = self.id_at(i);
            if remove(id, self.vals[i]) {
                self.vals[i] = f32::NEG_INFINITY;
            }
        }
        if self.sparse {
            self.retain_ge(f32::MIN);
        }
    }

    /// Threshold that also keeps at least `min_keep` of the best tokens: `min(t, k-th largest)`.
    pub fn with_min_keep(&mut self, t: f32, min_keep: usize) -> f32 {
        if min_keep <= 1 {
            // The maximum always survives a threshold ≤ max; thresholds above it keep the max only.
            return t.min(self.max());
        }
        t.min(self.kth_largest(min_keep))
    }

    /// Probabilities `softmax(values)` written into the row's scratch buffer; returns `(max, Z)`
    /// with `Z = Σ exp(v − max)`. Read them with [`Row::scratch`] (unnormalised: divide by Z).
    pub fn exp_scratch(&mut self) -> (f32, f64) {
        let m = self.max();
        self.tmp.resize(self.vals.len(), 0.0);
        let z = math::exp_into(&self.vals, m, &mut self.tmp);
        (m, z)
    }

    /// The scratch buffer filled by [`Row::exp_scratch`].
    pub fn scratch(&self) -> &[f32] {
        &self.tmp
    }

    /// Top-p threshold: the logit `t*` such that the tokens with logit `≥ t*` are the shortest
    /// most-probable prefix holding probability `≥ mass` (the crossing token kept, ties kept).
    /// Leaves `exp(v − max)` in the scratch buffer.
    pub fn mass_threshold(&mut self, mass: f64) -> f32 {
        let (_, z) = self.exp_scratch();
        top_weight_threshold(&self.vals, Some(&self.tmp), mass * z, &mut self.select)
    }

    /// Threshold over per-entry keys the caller wrote into `keys` (larger is better), weighted
    /// by the unnormalised probabilities left in the scratch buffer by [`Row::exp_scratch`].
    pub(crate) fn key_threshold(&mut self, keys: &[f32], target: f64) -> f32 {
        top_weight_threshold(keys, Some(&self.tmp), target, &mut self.select)
    }

    /// Removes every entry `i` with `keys[i] < t` (keys aligned with [`Row::values`]).
    pub(crate) fn retain_by_key(&mut self, keys: &[f32], t: f32) {
        for (v, k) in self.vals.iter_mut().zip(keys) {
            if *k < t {
                *v = f32::NEG_INFINITY;
            }
        }
        if self.sparse {
            self.retain_ge(f32::MIN);
        }
    }

    /// Takes the second scratch buffer out of the row (give it back with [`Row::put_keys`]).
    pub(crate) fn take_keys(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.tmp2)
    }

    /// Returns the buffer taken by [`Row::take_keys`].
    pub(crate) fn put_keys(&mut self, keys: Vec<f32>) {
        self.tmp2 = keys;
    }

    /// Writes the row as a dense logits row (`-inf` for removed tokens) into `out` (len = vocab).
    pub fn write_dense(&self, out: &mut [f32]) {
        if self.sparse {
            out.fill(f32::NEG_INFINITY);
            for (&id, &v) in self.ids.iter().zip(&self.vals) {
                out[id as usize] = v;
            }
        } else {
            out.copy_from_slice(&self.vals);
        }
    }

    /// The row as a dense vector.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.vocab];
        self.write_dense(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(validate_logits(&[0.0, f32::NAN], 3), Err(SamplingError::NanLogit { row: 3, token: 1 }));
        assert_eq!(validate_logits(&[f32::INFINITY, 0.0], 0), Err(SamplingError::PosInfLogit { row: 0, token: 0 }));
        assert_eq!(validate_logits(&[f32::NEG_INFINITY; 3], 2), Err(SamplingError::AllMasked { row: 2 }));
        assert_eq!(validate_logits(&[], 1), Err(SamplingError::EmptyRow { row: 1 }));
    }

    #[test]
    fn retain_goes_sparse_and_back_to_dense() {
        let logits: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut r = Row::new();
        r.load(&logits, 0).unwrap();
        r.retain_ge(50.0);
        assert!(!r.is_sparse());
        assert_eq!(r.kept(), 50);
        r.retain_ge(90.0);
        assert!(r.is_sparse());
        assert_eq!(r.ids().unwrap(), &(90..100).collect::<Vec<u32>>()[..]);
        assert_eq!(r.get(95), Some(95.0));
        assert_eq!(r.get(5), None);
        let d = r.to_dense();
        assert_eq!(d[89], f32::NEG_INFINITY);
        assert_eq!(d[99], 99.0);
        assert_eq!(r.kth_largest(3), 97.0);
    }
}
