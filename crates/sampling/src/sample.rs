//! Drawing a token from a transformed row: greedy (via the `greedy` stage) or seeded multinomial,
//! with the token's probability and the final distribution's top-N.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::math;
use crate::pipeline::Pipeline;
use crate::rng::{self, ChaCha20Rng};
use crate::row::Row;
use crate::stage::Context;

/// One token of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenProb {
    /// Token id.
    pub id: u32,
    /// Probability in the final distribution.
    pub prob: f32,
    /// Its natural log.
    pub logprob: f32,
}

/// The outcome of sampling one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The chosen token.
    pub token: u32,
    /// Its probability under the final (post-pipeline) distribution.
    pub prob: f32,
    /// Its log-probability.
    pub logprob: f32,
    /// The final distribution's most likely tokens, by descending probability (ties by id).
    pub top: Vec<TokenProb>,
}

/// Draws from `softmax(row)` with the uniform number `u ∈ [0, 1)`: the first token, in ascending
/// id order, at which the cumulative unnormalised mass exceeds `u·Z`. Returns `None` if every
/// entry is `-inf`. `top_n` > 0 also returns the `top_n` most likely tokens.
pub fn draw(row: &mut Row, u: f64, top_n: usize) -> Option<Sample> {
    const BLOCK: usize = 256;
    let (m, _) = row.exp_scratch();
    if m == f32::NEG_INFINITY {
        return None;
    }
    let e = row.weights();
    // Block sums define the total, so the walk below and the total agree exactly.
    let mut total = 0.0f64;
    for b in e.chunks(BLOCK) {
        total += block_sum(b);
    }
    let target = u * total;
    let mut cum = 0.0f64;
    let mut chosen = None;
    for (bi, b) in e.chunks(BLOCK).enumerate() {
        let s = block_sum(b);
        if cum + s > target {
            let mut c = cum;
            let mut last_nonzero = None;
            for (j, &x) in b.iter().enumerate() {
                if x > 0.0 {
                    last_nonzero = Some(j);
                    c += x as f64;
                    if c > target {
                        chosen = Some(bi * BLOCK + j);
                        break;
                    }
                }
            }
            if chosen.is_none() {
                chosen = last_nonzero.map(|j| bi * BLOCK + j);
            }
            if chosen.is_some() {
                break;
            }
        }
        cum += s;
    }
    // Rounding left the target past the end: take the last token with mass.
    let i = chosen.or_else(|| e.iter().rposition(|&x| x > 0.0))?;
    let ln_z = total.ln() as f32;
    let vals = row.values();
    let logprob = vals[i] - m - ln_z;
    let token = row.id_at(i);
    let top = if top_n > 0 {
        top_tokens(row, top_n, m, ln_z)
    } else {
        Vec::new()
    };
    Some(Sample {
        token,
        prob: logprob.exp(),
        logprob,
        top,
    })
}

fn block_sum(b: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let chunks = b.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for &x in rest {
        s += x;
    }
    s as f64
}

/// The `n` most likely tokens of the row (descending probability, ties by ascending id).
fn top_tokens(row: &mut Row, n: usize, m: f32, ln_z: f32) -> Vec<TokenProb> {
    let t = row.kth_largest(n);
    let mut out: Vec<TokenProb> = row
        .values()
        .iter()
        .enumerate()
        .filter(|(_, &v)| v >= t && v > f32::NEG_INFINITY)
        .map(|(i, &v)| {
            let lp = v - m - ln_z;
            TokenProb {
                id: row.id_at(i),
                prob: lp.exp(),
                logprob: lp,
            }
        })
        .collect();
    out.sort_by(|a, b| b.logprob.total_cmp(&a.logprob).then(a.id.cmp(&b.id)));
    out.truncate(n);
    out
}

/// Samples tokens for one sequence: pipeline + working row + seeded RNG, reused step after step.
#[derive(Debug, Clone)]
pub struct SequenceSampler {
    pipeline: Pipeline,
    row: Row,
    rng: ChaCha20Rng,
    /// How many top tokens each [`Sample`] reports.
    pub top_n: usize,
}

impl SequenceSampler {
    /// A sampler for one sequence with its own RNG (`seed`, `stream`).
    pub fn new(mut pipeline: Pipeline, seed: u64, stream: u64, top_n: usize) -> Self {
        pipeline.reset();
        Self {
            pipeline,
            row: Row::new(),
            rng: rng::seeded(seed, stream),
            top_n,
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Applies the pipeline to `logits`, draws a token, and lets stateful stages observe it.
    /// `row_index` names the row in errors.
    pub fn sample(
        &mut self,
        logits: &[f32],
        ctx: &Context<'_>,
        row_index: usize,
    ) -> Result<Sample> {
        self.row.load(logits, row_index)?;
        self.pipeline.apply(&mut self.row, ctx)?;
        let u = rng::uniform(&mut self.rng);
        let s = draw(&mut self.row, u, self.top_n).ok_or_else(|| SamplingError::NothingLeft {
            row: row_index,
            pipeline: self.pipeline.name().to_string(),
        })?;
        self.pipeline.accept(s.token);
        Ok(s)
    }

    /// The row as the pipeline left it in the last call to [`SequenceSampler::sample`].
    pub fn last_row(&self) -> &Row {
        &self.row
    }
}

/// Samples every row of a `[n, vocab]` batch independently: row `r` gets a fresh copy of the
/// pipeline and RNG stream `r` of `seed`, so results do not depend on the batch size.
pub fn sample_batch(
    pipeline: &Pipeline,
    logits: &[f32],
    vocab: usize,
    seed: u64,
    top_n: usize,
) -> Result<Vec<Sample>> {
    if vocab == 0 || !logits.len().is_multiple_of(vocab) {
        return Err(SamplingError::VocabMismatch {
            row: 0,
            expected: vocab,
            got: logits.len(),
        });
    }
    logits
        .chunks(vocab)
        .enumerate()
        .map(|(r, row)| {
            SequenceSampler::new(pipeline.clone(), seed, r as u64, top_n).sample(
                row,
                &Context::default(),
                r,
            )
        })
        .collect()
}

/// The distribution `softmax(row)` as dense probabilities (for statistics and tests).
pub fn probabilities(row: &[f32]) -> Vec<f64> {
    let (m, lse) = math::log_sum_exp(row);
    if m == f32::NEG_INFINITY {
        return vec![0.0; row.len()];
    }
    row.iter().map(|&v| (v as f64 - lse).exp()).collect()
}
