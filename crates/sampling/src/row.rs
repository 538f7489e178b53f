//! The working row a pipeline transforms: one logits row over the vocabulary, held densely or,
//! once a truncation has left few tokens, as a sparse (id, logit) list in ascending id order.

use crate::error::{Result, SamplingError};
use crate::math;
use crate::select::{top_weight_threshold, SelectScratch};

/// A logits row being transformed by a pipeline, plus the scratch buffers its stages reuse.
///
/// Removed tokens are `-inf` (dense) or absent (sparse). Buffers are kept between rows, so a warm
/// `Row` does not allocate. The row caches `exp(v − ref)` for its entries once a stage has computed
/// it; truncations keep the cache valid (removed entries get weight 0), anything that changes a
/// kept logit drops it — so a chain of truncations and the final draw share one exp pass.
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// The caller's index of the loaded row, for errors.
    index: usize,
    vocab: usize,
    sparse: bool,
    ids: Vec<u32>,
    vals: Vec<f32>,
    /// `exp(vals[i] − exp_ref)` when `exp_valid`.
    exp: Vec<f32>,
    exp_ref: f32,
    exp_valid: bool,
    /// The largest value, when known.
    max_cache: Option<f32>,
    /// Scratch for gathers.
    tmp: Vec<f32>,
    /// Scratch for per-entry keys.
    keys: Vec<f32>,
    pub(crate) select: SelectScratch,
}

/// Checks a raw logits row: no NaN, no `+inf`, not empty, not entirely `-inf`; `row` names it in
/// the error (with the first offending token). The one check every boundary that receives logits
/// (rows loaded for sampling, rows a model returns, learned-stage outputs, training targets) calls.
pub fn validate_logits(logits: &[f32], row: usize) -> Result<()> {
    checked_max(logits, row).map(|_| ())
}

/// [`validate_logits`], returning the row's largest logit (finite) from the same single pass.
pub fn checked_max(logits: &[f32], row: usize) -> Result<f32> {
    if logits.is_empty() {
        return Err(SamplingError::EmptyRow { row });
    }
    let (m, nan) = math::max_nan(logits);
    if nan {
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
    Ok(m)
}

impl Row {
    /// An empty row; call [`Row::load`] before use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a raw logits row (validated: see [`validate_logits`]); `row` names it in errors.
    pub fn load(&mut self, logits: &[f32], row: usize) -> Result<()> {
        self.index = row;
        self.vocab = logits.len();
        self.sparse = false;
        self.exp_valid = false;
        self.ids.clear();
        // Buffers keep their capacity across rows: no reallocation, no zero-fill.
        self.vals.clear();
        let m = checked_max(logits, row)?;
        self.vals.extend_from_slice(logits);
        self.max_cache = Some(m);
        Ok(())
    }

    /// The index the row was loaded with (names it in errors).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Vocabulary size of the row.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The first entry that is NaN or `+inf` (a stage overflowed), as `(token, value)`.
    pub fn first_non_finite(&self) -> Option<(u32, f32)> {
        self.vals
            .iter()
            .position(|v| v.is_nan() || *v == f32::INFINITY)
            .map(|i| (self.id_at(i), self.vals[i]))
    }

    /// Checks the row as a pipeline left it: no NaN or `+inf` entry
    /// ([`SamplingError::NonFiniteOutput`]) and at least one token kept
    /// ([`SamplingError::AllMasked`]).
    pub fn check_output(&self) -> Result<()> {
        let (m, nan) = math::max_nan(&self.vals);
        if nan || m == f32::INFINITY {
            let (token, value) = self.first_non_finite().unwrap_or((0, m));
            return Err(SamplingError::NonFiniteOutput {
                row: self.index,
                token,
                value,
            });
        }
        if m == f32::NEG_INFINITY {
            return Err(SamplingError::AllMasked { row: self.index });
        }
        Ok(())
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
        self.exp_valid = false;
        self.max_cache = None;
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
        self.index_of(id)
            .map(|i| self.vals[i])
            .filter(|v| *v > f32::NEG_INFINITY)
    }

    /// Mutable logit of token `id` if it is held (dense: any id below the vocabulary size).
    pub fn get_mut(&mut self, id: u32) -> Option<&mut f32> {
        let i = self.index_of(id)?;
        self.exp_valid = false;
        self.max_cache = None;
        Some(&mut self.vals[i])
    }

    /// The index into [`Row::values`] of token `id`, if the row holds it.
    pub(crate) fn index_of(&self, id: u32) -> Option<usize> {
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
        self.max_cache.unwrap_or_else(|| math::max(&self.vals))
    }

    /// `(lse, H)`: log-sum-exp of the row and the entropy (nats) of its softmax, in f64.
    pub fn lse_entropy(&mut self) -> (f64, f64) {
        let (m, z, zx) = if self.exp_valid {
            let (m, z) = self.exp_scratch();
            (m, z, math::dot_shifted(&self.exp, &self.vals, m))
        } else {
            let m = self.max();
            let (z, zx) = math::exp_into_vec_with_dot(&self.vals, m, &mut self.exp);
            self.exp_ref = m;
            self.exp_valid = m > f32::NEG_INFINITY;
            (m, z, zx)
        };
        if z == 0.0 {
            return (f64::NEG_INFINITY, 0.0);
        }
        // H = ln Z − Σ e·(v − ref) / Z
        let ln_z = z.ln();
        (m as f64 + ln_z, (ln_z - zx / z).max(0.0))
    }

    /// Log-sum-exp of the row (f64).
    pub fn lse(&mut self) -> f64 {
        let (m, z) = self.exp_scratch();
        m as f64 + z.ln()
    }

    /// The k-th largest logit (ties counted individually), or the smallest finite logit if fewer
    /// than k tokens remain. `k ≥ 1`.
    pub fn kth_largest(&mut self, k: usize) -> f32 {
        crate::select::kth_largest(&self.vals, k, &mut self.select)
    }

    /// Removes every token whose logit is below `t`. A dense row that keeps few tokens turns sparse.
    pub fn retain_ge(&mut self, t: f32) {
        if t == f32::NEG_INFINITY {
            return;
        }
        if self.max_cache.is_some_and(|m| t > m) {
            self.max_cache = Some(f32::NEG_INFINITY);
        }
        if self.sparse {
            let mut j = 0;
            for i in 0..self.vals.len() {
                if self.vals[i] >= t {
                    self.vals[j] = self.vals[i];
                    self.ids[j] = self.ids[i];
                    if self.exp_valid {
                        self.exp[j] = self.exp[i];
                    }
                    j += 1;
                }
            }
            self.vals.truncate(j);
            self.ids.truncate(j);
            self.exp.truncate(j);
            return;
        }
        self.ids.clear();
        self.tmp.clear();
        if math::gather_ge_limited(&self.vals, t, self.vocab / 4, &mut self.ids, &mut self.tmp) {
            // Copy (not swap) so the large buffers keep their capacity for the next dense row.
            self.vals.clear();
            self.vals.extend_from_slice(&self.tmp);
            if self.exp_valid {
                self.tmp.clear();
                self.tmp
                    .extend(self.ids.iter().map(|&i| self.exp[i as usize]));
                self.exp.clear();
                self.exp.extend_from_slice(&self.tmp);
            }
            self.sparse = true;
        } else {
            self.ids.clear();
            let w = self.exp_valid.then_some(self.exp.as_mut_slice());
            math::mask_below(&mut self.vals, t, w);
        }
    }

    /// Divides every logit by `t > 0` (`z / t`, as HF's temperature warper). Division by a
    /// positive number is monotonic and correctly rounded, so the maximum stays known.
    pub fn divide(&mut self, t: f32) {
        let m = self.max_cache.map(|m| m / t);
        for x in self.vals.iter_mut() {
            *x /= t;
        }
        self.exp_valid = false;
        self.max_cache = m;
    }

    /// Index (into [`Row::values`]) of the most likely entry, lowest index among ties.
    pub fn argmax(&self) -> Option<usize> {
        math::first_ge(&self.vals, self.max()).filter(|_| self.max() > f32::NEG_INFINITY)
    }

    /// Removes the given entries (indices into [`Row::values`]); keeps the exp cache valid.
    pub fn remove_entries(&mut self, entries: &[usize]) {
        for &i in entries {
            self.vals[i] = f32::NEG_INFINITY;
            if self.exp_valid {
                self.exp[i] = 0.0;
            }
        }
        self.max_cache = None;
        if self.sparse {
            self.retain_ge(f32::MIN);
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
        self.exp_valid = false;
        self.max_cache = Some(v);
    }

    /// Threshold that also keeps at least `min_keep` of the best tokens: `min(t, k-th largest)`.
    pub fn with_min_keep(&mut self, t: f32, min_keep: usize) -> f32 {
        if min_keep <= 1 {
            // The maximum always survives a threshold ≤ max; thresholds above it keep the max only.
            return t.min(self.max());
        }
        t.min(self.kth_largest(min_keep))
    }

    /// `exp(v − ref)` for every entry (cached) and `(ref, Z)` with `Z = Σ exp(v − ref)`; `ref` is
    /// the maximum when computed fresh. Read the weights with [`Row::weights`].
    pub fn exp_scratch(&mut self) -> (f32, f64) {
        if self.exp_valid {
            return (self.exp_ref, math::sum(&self.exp));
        }
        let m = self.max();
        let z = math::exp_into_vec(&self.vals, m, &mut self.exp);
        self.exp_ref = m;
        self.exp_valid = m > f32::NEG_INFINITY;
        (m, z)
    }

    /// The cached weights `exp(v − ref)` of [`Row::exp_scratch`].
    pub fn weights(&self) -> &[f32] {
        &self.exp
    }

    /// Top-p threshold: the logit `t*` such that the tokens with logit `≥ t*` are the shortest
    /// most-probable prefix holding probability `≥ mass` (the crossing token kept, ties kept).
    pub fn mass_threshold(&mut self, mass: f64) -> f32 {
        let (_, z) = self.exp_scratch();
        top_weight_threshold(&self.vals, Some(&self.exp), mass * z, z, &mut self.select)
    }

    /// Threshold over per-entry keys (larger is better) weighted by the cached weights.
    pub(crate) fn key_threshold(&mut self, keys: &[f32], target: f64, total: f64) -> f32 {
        top_weight_threshold(keys, Some(&self.exp), target, total, &mut self.select)
    }

    /// Removes every entry `i` with `keys[i] < t` (keys aligned with [`Row::values`]).
    pub(crate) fn retain_by_key(&mut self, keys: &[f32], t: f32) {
        self.max_cache = None;
        let w = self.exp_valid.then_some(self.exp.as_mut_slice());
        math::mask_by_keys(&mut self.vals, keys, t, w);
        if self.sparse {
            self.retain_ge(f32::MIN);
        }
    }

    /// Takes the key buffer out of the row (give it back with [`Row::put_keys`]).
    pub(crate) fn take_keys(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.keys)
    }

    /// Returns the buffer taken by [`Row::take_keys`].
    pub(crate) fn put_keys(&mut self, keys: Vec<f32>) {
        self.keys = keys;
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
        assert_eq!(
            validate_logits(&[0.0, f32::NAN], 3),
            Err(SamplingError::NanLogit { row: 3, token: 1 })
        );
        assert_eq!(
            validate_logits(&[f32::INFINITY, 0.0], 0),
            Err(SamplingError::PosInfLogit { row: 0, token: 0 })
        );
        assert_eq!(
            validate_logits(&[f32::NEG_INFINITY; 3], 2),
            Err(SamplingError::AllMasked { row: 2 })
        );
        assert_eq!(
            validate_logits(&[], 1),
            Err(SamplingError::EmptyRow { row: 1 })
        );
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
        // Entropy of a uniform row over the 4 finite tokens is ln 4; lse is ln 4 too.
        r.load(&[0.0, 0.0, f32::NEG_INFINITY, 0.0, 0.0], 0).unwrap();
        let (lse, h) = r.lse_entropy();
        assert!((lse - 4f64.ln()).abs() < 1e-6 && (h - 4f64.ln()).abs() < 1e-6);
    }
}
