//! `dry` ("don't repeat yourself"): penalise tokens that would extend a verbatim repeat.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{check_ids, Context, Stage};

/// For a token that would extend a repeat of length `L ≥ allowed_length` of the context,
/// `z −= multiplier · base^(L − allowed_length)`. Matching never reaches back past the last
/// occurrence of a sequence breaker (single- or multi-token); a context ending in a breaker is not
/// penalised. The exponent is capped so the penalty stays finite.
#[derive(Debug, Clone)]
pub struct Dry {
    /// Penalty scale (0 disables).
    pub multiplier: f32,
    /// Growth base ≥ 1.
    pub base: f32,
    /// Repeats shorter than this are free.
    pub allowed_length: usize,
    /// Breaker token sequences.
    pub breakers: Vec<Vec<u32>>,
    /// Window (None = whole history).
    pub last_n: Option<usize>,
    z: Vec<usize>,
    rev: Vec<u32>,
    hits: Vec<(u32, usize)>,
}

impl Dry {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "dry";

    /// Reads `{multiplier ≥ 0, base ≥ 1 (default 1.75), allowed_length ≥ 0 (default 2),
    /// sequence_breakers (ids or id lists), last_n (default -1)}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let multiplier = p.f32_checked(
            "multiplier",
            None,
            |v| v >= 0.0 && v.is_finite(),
            "must be ≥ 0 and finite in f32",
        )?;
        let base = p.f32_checked(
            "base",
            Some(1.75),
            |v| v >= 1.0 && v.is_finite(),
            "must be ≥ 1 and finite in f32",
        )?;
        let allowed_length = p.int_checked(
            "allowed_length",
            Some(2),
            |v| v >= 0,
            "must be an integer ≥ 0",
        )? as usize;
        let breakers = p.id_sequences("sequence_breakers")?;
        let last_n = p.last_n(-1)?;
        Ok(Self {
            multiplier,
            base,
            allowed_length,
            breakers,
            last_n,
            z: Vec::new(),
            rev: Vec::new(),
            hits: Vec::new(),
        })
    }

    /// Number of tokens at the end of `w` after the last breaker occurrence.
    fn tail_after_breaker(&self, w: &[u32]) -> usize {
        for end in (1..=w.len()).rev() {
            if self
                .breakers
                .iter()
                .any(|b| b.len() <= end && w[end - b.len()..end] == b[..])
            {
                return w.len() - end;
            }
        }
        w.len()
    }
}

/// Z-function: `z[i]` = length of the longest common prefix of `s` and `s[i..]` (`z[0] = len`).
pub(crate) fn z_function(s: &[u32], z: &mut Vec<usize>) {
    let n = s.len();
    z.clear();
    z.resize(n, 0);
    if n == 0 {
        return;
    }
    z[0] = n;
    let (mut l, mut r) = (0usize, 0usize);
    for i in 1..n {
        if i < r {
            z[i] = (r - i).min(z[i - l]);
        }
        while i + z[i] < n && s[z[i]] == s[i + z[i]] {
            z[i] += 1;
        }
        if i + z[i] > r {
            l = i;
            r = i + z[i];
        }
    }
}

impl Stage for Dry {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        if self.multiplier == 0.0 || self.last_n == Some(0) {
            return Ok(());
        }
        let w = ctx.window(self.last_n);
        check_ids(w, row.vocab(), "token history")?;
        let limit = self.tail_after_breaker(w);
        let n = w.len();
        if n < 2 || limit == 0 {
            return Ok(());
        }
        self.rev.clear();
        self.rev.extend(w.iter().rev());
        let mut z = std::mem::take(&mut self.z);
        z_function(&self.rev, &mut z);
        // Earlier position p (< n−1): the sequence ending at p matches the context's suffix for
        // z[n−1−p] tokens; the token that followed it, w[p+1], would extend that repeat.
        self.hits.clear();
        for p in 0..n - 1 {
            let len = z[n - 1 - p].min(limit);
            if len >= self.allowed_length && len > 0 {
                self.hits.push((w[p + 1], len));
            }
        }
        self.z = z;
        self.hits.sort_unstable();
        let max_exp = f32::MAX.ln() / self.base.ln().max(f32::MIN_POSITIVE);
        let mut i = 0;
        while i < self.hits.len() {
            let token = self.hits[i].0;
            let mut len = 0;
            while i < self.hits.len() && self.hits[i].0 == token {
                len = len.max(self.hits[i].1);
                i += 1;
            }
            let e = ((len - self.allowed_length) as f32).min(max_exp);
            if let Some(v) = row.get_mut(token) {
                *v -= self.multiplier * self.base.powf(e);
            }
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_function_small() {
        let mut z = Vec::new();
        z_function(&[1, 1, 2, 1, 1, 2, 1], &mut z);
        assert_eq!(z, vec![7, 1, 0, 4, 1, 0, 1]);
    }
}
