//! Drawing a token from a transformed row: greedy (via the `greedy` stage) or seeded multinomial,
//! with the token's probability and the final distribution's top-N.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::math;
use crate::pipeline::Pipeline;
use crate::rng::{self, ChaCha20Rng};
use crate::row::Row;
use crate::stage::{Context, StageState};

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

/// The normalisation of a transformed row, checked finite: reference `m` (the row's maximum) and
/// `Z = Σ exp(v − m)` summed in the order [`draw`] walks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Norm {
    m: f32,
    total: f64,
}

impl Norm {
    /// Computes the row's weights (cached in the row) and their total. Errors: every entry
    /// removed ([`SamplingError::AllMasked`]); a NaN or `+inf` entry
    /// ([`SamplingError::NonFiniteOutput`], naming the row and token).
    fn of(row: &mut Row) -> Result<Self> {
        let (m, _) = row.exp_scratch();
        if m == f32::NEG_INFINITY {
            return Err(SamplingError::AllMasked { row: row.index() });
        }
        // Block sums define the total, so the walk of `draw` and the total agree exactly.
        let mut total = 0.0f64;
        for b in row.weights().chunks(BLOCK) {
            total += block_sum(b);
        }
        // A NaN entry makes its weight and so the total NaN; `+inf` makes the maximum `+inf`.
        if !(m.is_finite() && total.is_finite() && total > 0.0) {
            return Err(non_finite(row));
        }
        Ok(Self { m, total })
    }

    /// `ln Z`.
    fn ln_z(&self) -> f32 {
        self.total.ln() as f32
    }
}

/// The error naming the first entry of `row` that is NaN or `+inf` (else one whose weight is not
/// finite).
fn non_finite(row: &Row) -> SamplingError {
    let (token, value) = row.first_non_finite().unwrap_or_else(|| {
        let i = row
            .weights()
            .iter()
            .position(|w| !w.is_finite())
            .unwrap_or(0);
        match row.values().get(i) {
            Some(&v) => (row.id_at(i), v),
            None => (0, f32::NAN),
        }
    });
    SamplingError::NonFiniteOutput {
        row: row.index(),
        token,
        value,
    }
}

/// Entries per block of the draw's walk.
const BLOCK: usize = 256;

/// Index (into [`Row::values`]) of the first entry, in ascending id order, at which the
/// cumulative weight exceeds `u·Z`; the last entry with weight if rounding leaves the target past
/// the end. `None` if no entry has weight.
fn walk(e: &[f32], total: f64, u: f64) -> Option<usize> {
    let target = u * total;
    let mut cum = 0.0f64;
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
                        return Some(bi * BLOCK + j);
                    }
                }
            }
            if let Some(j) = last_nonzero {
                return Some(bi * BLOCK + j);
            }
        }
        cum += s;
    }
    e.iter().rposition(|&x| x > 0.0)
}

/// The [`Sample`] for entry `i` of a row normalised by `norm`, with the top `top_n` tokens.
fn sample_at(row: &mut Row, i: usize, norm: Norm, top_n: usize) -> Sample {
    let ln_z = norm.ln_z();
    let logprob = row.values()[i] - norm.m - ln_z;
    let token = row.id_at(i);
    let top = if top_n > 0 {
        top_tokens(row, top_n, norm.m, ln_z)
    } else {
        Vec::new()
    };
    Sample {
        token,
        prob: logprob.exp(),
        logprob,
        top,
    }
}

/// Draws from `softmax(row)` with the uniform number `u ∈ [0, 1)`: the first token, in ascending
/// id order, at which the cumulative unnormalised mass exceeds `u·Z`. `top_n` > 0 also returns
/// the `top_n` most likely tokens. Errors: every entry removed ([`SamplingError::AllMasked`]); a
/// NaN or `+inf` entry ([`SamplingError::NonFiniteOutput`]) — never a draw from a non-finite
/// distribution.
pub fn draw(row: &mut Row, u: f64, top_n: usize) -> Result<Sample> {
    let norm = Norm::of(row)?;
    let i =
        walk(row.weights(), norm.total, u).ok_or(SamplingError::AllMasked { row: row.index() })?;
    Ok(sample_at(row, i, norm, top_n))
}

/// The final distribution of one row: the row as the pipeline left it, normalised (finite,
/// summing to 1 over the kept tokens). `p(t) = exp(z_t − m − ln Z)`, the same numbers a draw from
/// it reports.
#[derive(Debug, Clone, Copy)]
pub struct Distribution<'a> {
    row: &'a Row,
    norm: Norm,
    ln_z: f32,
}

impl<'a> Distribution<'a> {
    fn new(row: &'a Row, norm: Norm) -> Self {
        Self {
            row,
            norm,
            ln_z: norm.ln_z(),
        }
    }

    /// The transformed row (logits; removed tokens `-inf` or absent).
    pub fn row(&self) -> &'a Row {
        self.row
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.row.vocab()
    }

    /// `ln p(token)`; `-inf` for a removed token or one outside the vocabulary.
    pub fn logprob(&self, token: u32) -> f32 {
        self.row
            .get(token)
            .map_or(f32::NEG_INFINITY, |v| v - self.norm.m - self.ln_z)
    }

    /// `p(token)`; 0 for a removed token or one outside the vocabulary.
    pub fn prob(&self, token: u32) -> f32 {
        self.logprob(token).exp()
    }

    /// The kept tokens (probability > 0 before rounding) with their probabilities, ascending id.
    pub fn iter(&self) -> impl Iterator<Item = TokenProb> + 'a {
        let (row, m, ln_z) = (self.row, self.norm.m, self.ln_z);
        row.values()
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > f32::NEG_INFINITY)
            .map(move |(i, &v)| {
                let logprob = v - m - ln_z;
                TokenProb {
                    id: row.id_at(i),
                    prob: logprob.exp(),
                    logprob,
                }
            })
    }

    /// Writes the dense probabilities (`out.len()` = vocabulary size; removed tokens 0).
    pub fn write_probs(&self, out: &mut [f32]) {
        out.fill(0.0);
        for t in self.iter() {
            if let Some(o) = out.get_mut(t.id as usize) {
                *o = t.prob;
            }
        }
    }
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
///
/// One token is three steps, which [`SequenceSampler::sample`] runs in a row and which callers
/// that decide for themselves (speculative decoding: accept or reject a draft token against the
/// target's distribution, draw a correction elsewhere) run one by one:
/// 1. [`SequenceSampler::distribution`]: the pipeline applied to a row, normalised and checked;
/// 2. [`SequenceSampler::draw_with`] (a given uniform) or [`SequenceSampler::draw`] (the
///    sequence's RNG): a token from that distribution;
/// 3. [`SequenceSampler::accept`]: stateful stages observe the token finally chosen.
///
/// [`SequenceSampler::snapshot`] / [`SequenceSampler::restore`] save and roll back the state
/// between tokens (RNG position and every stateful stage), e.g. after a rejected draft.
#[derive(Debug, Clone)]
pub struct SequenceSampler {
    pipeline: Pipeline,
    row: Row,
    rng: ChaCha20Rng,
    /// Normalisation of the distribution in `row`, while there is one to draw from.
    norm: Option<Norm>,
    /// How many top tokens each [`Sample`] reports.
    pub top_n: usize,
}

/// A sequence sampler's state between tokens: its RNG position and its pipeline's stage states.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerState {
    /// Word position of the sequence's ChaCha20 stream.
    pub rng_word_pos: u128,
    /// The pipeline's state ([`StageState::Pipeline`]).
    pub pipeline: StageState,
}

impl SequenceSampler {
    /// A sampler for one sequence with its own RNG (`seed`, `stream`).
    pub fn new(mut pipeline: Pipeline, seed: u64, stream: u64, top_n: usize) -> Self {
        pipeline.reset();
        Self {
            pipeline,
            row: Row::new(),
            rng: rng::seeded(seed, stream),
            norm: None,
            top_n,
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Step 1: loads `logits` (validated: no NaN or `+inf`), applies the pipeline with `ctx`, and
    /// returns the final distribution. `row_index` names the row in errors. Stage state is read,
    /// not advanced: computing it again for the same row and context gives the same result.
    pub fn distribution(
        &mut self,
        logits: &[f32],
        ctx: &Context<'_>,
        row_index: usize,
    ) -> Result<Distribution<'_>> {
        self.norm = None;
        self.row.load(logits, row_index)?;
        self.pipeline.apply(&mut self.row, ctx)?;
        let norm = Norm::of(&mut self.row).map_err(|e| match e {
            SamplingError::AllMasked { row } => SamplingError::NothingLeft {
                row,
                pipeline: self.pipeline.name().to_string(),
            },
            other => other,
        })?;
        self.norm = Some(norm);
        Ok(Distribution::new(&self.row, norm))
    }

    /// The distribution computed by the last [`SequenceSampler::distribution`], if any (none
    /// after a failed one or a [`SequenceSampler::restore`]).
    pub fn current(&self) -> Option<Distribution<'_>> {
        self.norm.map(|n| Distribution::new(&self.row, n))
    }

    /// Step 2 with a given uniform `u ∈ [0, 1)`: draws a token from the current distribution
    /// (see [`draw`]). Error: no current distribution.
    pub fn draw_with(&mut self, u: f64) -> Result<Sample> {
        let norm = self.norm.ok_or(SamplingError::NoDistribution)?;
        let i = walk(self.row.weights(), norm.total, u).ok_or(SamplingError::NothingLeft {
            row: self.row.index(),
            pipeline: self.pipeline.name().to_string(),
        })?;
        Ok(sample_at(&mut self.row, i, norm, self.top_n))
    }

    /// Step 2 for a token chosen elsewhere (an accepted draft token, a residual draw): the
    /// [`Sample`] a draw of `token` from the current distribution would report. Errors: no
    /// current distribution; a token the distribution gives probability 0.
    pub fn sample_token(&mut self, token: u32) -> Result<Sample> {
        let norm = self.norm.ok_or(SamplingError::NoDistribution)?;
        let i = self
            .row
            .index_of(token)
            .filter(|&i| self.row.values()[i] > f32::NEG_INFINITY)
            .ok_or_else(|| SamplingError::TokenOutOfRange {
                what: format!(
                    "chosen token (removed by pipeline `{}`)",
                    self.pipeline.name()
                ),
                token: token as u64,
                vocab: self.row.vocab(),
            })?;
        Ok(sample_at(&mut self.row, i, norm, self.top_n))
    }

    /// Step 2 with the sequence's RNG: [`SequenceSampler::draw_with`] of its next uniform.
    pub fn draw(&mut self) -> Result<Sample> {
        let u = self.next_uniform();
        self.draw_with(u)
    }

    /// The next uniform in `[0, 1)` of the sequence's RNG (what [`SequenceSampler::draw`] uses),
    /// e.g. for an accept/reject test that must roll back with [`SequenceSampler::restore`].
    pub fn next_uniform(&mut self) -> f64 {
        rng::uniform(&mut self.rng)
    }

    /// Step 3: lets stateful stages observe the token finally chosen for this position.
    pub fn accept(&mut self, token: u32) {
        self.pipeline.accept(token);
    }

    /// Applies the pipeline to `logits`, draws a token, and lets stateful stages observe it:
    /// exactly [`SequenceSampler::distribution`], [`SequenceSampler::draw`],
    /// [`SequenceSampler::accept`]. `row_index` names the row in errors.
    pub fn sample(
        &mut self,
        logits: &[f32],
        ctx: &Context<'_>,
        row_index: usize,
    ) -> Result<Sample> {
        self.distribution(logits, ctx, row_index)?;
        let s = self.draw()?;
        self.accept(s.token);
        Ok(s)
    }

    /// The row as the pipeline left it in the last call to [`SequenceSampler::distribution`]
    /// (or [`SequenceSampler::sample`]).
    pub fn last_row(&self) -> &Row {
        &self.row
    }

    /// The state between tokens: RNG position and every stateful stage (no row buffers).
    pub fn snapshot(&self) -> SamplerState {
        SamplerState {
            rng_word_pos: self.rng.get_word_pos(),
            pipeline: self.pipeline.snapshot(),
        }
    }

    /// Returns to a state saved by [`SequenceSampler::snapshot`] of this sampler (or a clone):
    /// the tokens that followed it are drawn again identically. Discards the current
    /// distribution. Error: a state saved from a different pipeline.
    pub fn restore(&mut self, state: &SamplerState) -> Result<()> {
        self.pipeline.restore(&state.pipeline)?;
        self.rng.set_word_pos(state.rng_word_pos);
        self.norm = None;
        Ok(())
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
