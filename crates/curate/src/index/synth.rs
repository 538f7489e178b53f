//! A seeded synthetic token corpus for benchmarks when no real text of the size is at hand:
//! independent tokens with a Zipf-like distribution over the vocabulary.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{CurateError, Result};
use crate::index::build::CorpusTokens;

/// Independent token ids in which the id of rank `r` (ranks given to ids by a seeded shuffle)
/// has probability `(r + 1)^(−exponent) / Σ_j (j + 1)^(−exponent)`.
#[derive(Debug, Clone)]
pub struct ZipfTokens {
    cdf: Vec<f64>,
    ids: Vec<u32>,
    rng: ChaCha8Rng,
}

impl ZipfTokens {
    /// The source over `0..vocab_size` (≥ 1) with a finite `exponent` > 0, seeded.
    pub fn new(vocab_size: u32, exponent: f64, seed: u64) -> Result<Self> {
        if vocab_size == 0 {
            return Err(CurateError::BadParameter {
                name: "vocab_size".into(),
                value: "0".into(),
                message: "needs at least one token".into(),
            });
        }
        if !(exponent.is_finite() && exponent > 0.0) {
            return Err(CurateError::BadParameter {
                name: "exponent".into(),
                value: exponent.to_string(),
                message: "must be a finite number > 0".into(),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut acc = 0.0;
        let cdf = (0..vocab_size)
            .map(|r| {
                acc += (f64::from(r) + 1.0).powf(-exponent);
                acc
            })
            .collect();
        let mut ids: Vec<u32> = (0..vocab_size).collect();
        for i in (1..ids.len()).rev() {
            let j = rng.random_range(0..=i);
            ids.swap(i, j);
        }
        Ok(Self { cdf, ids, rng })
    }

    /// The next id.
    pub fn next_id(&mut self) -> u32 {
        let total = self.cdf[self.cdf.len() - 1];
        let u = self.rng.random::<f64>() * total;
        let rank = self.cdf.partition_point(|&c| c <= u);
        self.ids[rank.min(self.ids.len() - 1)]
    }
}

/// `tokens` synthetic tokens (≥ 1) in documents of `doc_len` (≥ 1) tokens, the last one
/// possibly shorter, drawn from [`ZipfTokens`].
pub fn synthetic_corpus(
    tokens: u64,
    vocab_size: u32,
    exponent: f64,
    doc_len: usize,
    seed: u64,
) -> Result<CorpusTokens> {
    if tokens == 0 || doc_len == 0 {
        return Err(CurateError::BadParameter {
            name: if tokens == 0 { "tokens" } else { "doc_len" }.into(),
            value: "0".into(),
            message: "must be at least 1".into(),
        });
    }
    let mut src = ZipfTokens::new(vocab_size, exponent, seed)?;
    let mut corpus = CorpusTokens::new(vocab_size)?;
    corpus.reserve((tokens + tokens / doc_len as u64 + 1) as usize);
    let mut doc = Vec::with_capacity(doc_len);
    let mut left = tokens;
    while left > 0 {
        let n = (doc_len as u64).min(left) as usize;
        doc.clear();
        doc.extend((0..n).map(|_| src.next_id()));
        corpus.extend(&doc)?;
        corpus.end_document();
        left -= n as u64;
    }
    Ok(corpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_zipf_shaped() {
        let mut a = ZipfTokens::new(1000, 1.1, 5).unwrap();
        let mut b = ZipfTokens::new(1000, 1.1, 5).unwrap();
        let xs: Vec<u32> = (0..20_000).map(|_| a.next_id()).collect();
        let ys: Vec<u32> = (0..20_000).map(|_| b.next_id()).collect();
        assert_eq!(xs, ys);
        let mut counts = vec![0usize; 1000];
        for &x in &xs {
            counts[x as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Rank 1 vs rank 2: ratio 2^1.1 ≈ 2.14 in expectation.
        let r = counts[0] as f64 / counts[1] as f64;
        assert!((1.7..2.7).contains(&r), "{r}");
        assert!(ZipfTokens::new(10, f64::NAN, 0).is_err());
        let c = synthetic_corpus(25, 1000, 1.1, 10, 1).unwrap();
        assert_eq!((c.tokens(), c.documents()), (25, 3));
    }
}
