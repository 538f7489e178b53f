//! Exact speculative sampling (SPEC 3): a draft proposes `x ~ q`; the target keeps it with
//! probability `min(1, p(x)/q(x))`; at the first rejection the token is drawn from the residual
//! `norm(max(0, p − q))` and the round stops; when every draft token is kept, one bonus token is
//! drawn from the target's `p`. The tokens that come out are distributed exactly as `p`:
//! `P(y) = q(y)·min(1, p(y)/q(y)) + (1 − Σ_x min(q(x), p(x)))·r(y) = min(q(y), p(y)) + max(0, p(y) − q(y)) = p(y)`.
//!
//! `p` and `q` are the *post-pipeline* distributions (dense probabilities over one vocabulary);
//! a drafter whose proposal is deterministic (prompt-lookup n-grams, a greedy draft) has a
//! one-hot `q` ([`Proposal::OneHot`]). This module holds the rule only: which rows to compare,
//! in which context, and how the sequence's sampler state moves, is the decoding loop's job.

use crate::error::{Result, SamplingError};

#[cfg(test)]
mod tests;

/// The draft's distribution `q` of one proposed token.
#[derive(Debug, Clone, Copy)]
pub enum Proposal<'a> {
    /// `q` is one-hot on the proposed token (a deterministic draft: `q(x) = 1`).
    OneHot,
    /// `q` as dense probabilities over the vocabulary (a draft model's final distribution).
    Dense(&'a [f32]),
}

impl Proposal<'_> {
    /// `q(token)`.
    fn prob(&self, token: u32) -> f64 {
        match self {
            Proposal::OneHot => 1.0,
            Proposal::Dense(q) => q.get(token as usize).map_or(0.0, |&v| v as f64),
        }
    }
}

/// What the rule decided for one proposed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The draft token is kept.
    Accepted,
    /// The draft token is rejected; the round stops with a token from the residual.
    Rejected,
}

/// Largest tolerated `|Σ p − 1|` of a row (f32 probabilities summed over a vocabulary).
const SUM_TOLERANCE: f64 = 1e-3;

/// Checks that `row` (named `field` in errors) is a probability vector: non-empty, every entry
/// finite and ≥ 0, summing to 1 within 1e-3. Error: [`SamplingError::Speculative`] naming the
/// first bad entry (or the sum, as index = length).
pub fn check_row(field: &str, row: &[f32]) -> Result<()> {
    if row.is_empty() {
        return Err(bad(field, 0, "[]", "empty row"));
    }
    if let Some((i, &v)) = row
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(bad(field, i, v, "not a probability (finite and ≥ 0)"));
    }
    let sum: f64 = row.iter().map(|&v| v as f64).sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(bad(field, row.len(), sum, "the row's sum: not 1"));
    }
    Ok(())
}

fn bad(field: &str, index: usize, value: impl ToString, reason: &str) -> SamplingError {
    SamplingError::Speculative {
        field: field.to_string(),
        index,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks a (p, q, token) triple: `p` and a dense `q` are probability vectors of one length, the
/// token is inside the vocabulary and could have been proposed (`q(token) > 0`).
fn check(p: &[f32], q: Proposal<'_>, token: u32) -> Result<()> {
    check_row("p", p)?;
    if let Proposal::Dense(q) = q {
        check_row("q", q)?;
        if q.len() != p.len() {
            return Err(bad(
                "q",
                q.len(),
                format!("{} entries", q.len()),
                &format!("p has {} (one vocabulary needed)", p.len()),
            ));
        }
    }
    if token as usize >= p.len() {
        return Err(bad(
            "token",
            token as usize,
            token,
            &format!("outside the vocabulary of {}", p.len()),
        ));
    }
    if q.prob(token) <= 0.0 {
        return Err(bad(
            "q",
            token as usize,
            0,
            "the draft proposed a token it gives probability 0",
        ));
    }
    Ok(())
}

/// The probability of keeping the proposed `token`: `min(1, p(token)/q(token))`. Errors: rows
/// that are not distributions of one vocabulary, a token outside it or with `q(token) = 0`.
pub fn acceptance_probability(p: &[f32], q: Proposal<'_>, token: u32) -> Result<f64> {
    check(p, q, token)?;
    Ok(ratio(p, q, token))
}

fn ratio(p: &[f32], q: Proposal<'_>, token: u32) -> f64 {
    (p[token as usize] as f64 / q.prob(token)).min(1.0)
}

/// The accept/reject test with the uniform `u ∈ [0, 1)`: accepted iff
/// `u < min(1, p(token)/q(token))`. Errors as [`acceptance_probability`].
pub fn judge(p: &[f32], q: Proposal<'_>, token: u32, u: f64) -> Result<Verdict> {
    Ok(if u < acceptance_probability(p, q, token)? {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    })
}

/// The residual distribution after a rejection, `r = norm(max(0, p − q))`, into `out` (resized
/// to the vocabulary). Where `p ≤ q` everywhere (up to rounding, e.g. `p = q`) a rejection has
/// probability 0 and `r` is taken as `p`. Errors as [`acceptance_probability`] (`token` is the
/// rejected proposal, which a one-hot `q` needs).
pub fn residual(p: &[f32], q: Proposal<'_>, token: u32, out: &mut Vec<f64>) -> Result<()> {
    check(p, q, token)?;
    out.clear();
    out.extend(p.iter().map(|&v| v as f64));
    match q {
        Proposal::OneHot => out[token as usize] = 0.0,
        Proposal::Dense(q) => {
            for (o, &qv) in out.iter_mut().zip(q) {
                *o = (*o - qv as f64).max(0.0);
            }
        }
    }
    let z: f64 = out.iter().sum();
    if z > 0.0 {
        out.iter_mut().for_each(|o| *o /= z);
    } else {
        out.clear();
        out.extend(p.iter().map(|&v| v as f64));
    }
    Ok(())
}

/// Draws from the weights `w` (not necessarily normalised) with the uniform `u ∈ [0, 1)`: the
/// first id, in ascending order, at which the cumulative weight exceeds `u·Σw` (the last
/// positive one if rounding leaves the target past the end). Error: no positive weight.
pub fn draw_weights(w: &[f64], u: f64) -> Result<u32> {
    let total: f64 = w.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(bad("weights", w.len(), total, "nothing to draw from"));
    }
    let target = u * total;
    let mut cum = 0.0;
    for (i, &x) in w.iter().enumerate() {
        if x > 0.0 {
            cum += x;
            if cum > target {
                return Ok(i as u32);
            }
        }
    }
    let last = w.iter().rposition(|&x| x > 0.0).unwrap_or(0);
    Ok(last as u32)
}

/// After a rejection of `token`: a draw with the uniform `u` from [`residual`]`(p, q)`.
/// `scratch` is reused between calls.
pub fn resample(
    p: &[f32],
    q: Proposal<'_>,
    token: u32,
    u: f64,
    scratch: &mut Vec<f64>,
) -> Result<u32> {
    residual(p, q, token, scratch)?;
    draw_weights(scratch, u)
}

/// Counts of one decoding run's speculation: drafted and accepted tokens, target forwards and
/// tokens generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpeculationStats {
    /// Draft tokens proposed.
    pub drafted: usize,
    /// Draft tokens accepted.
    pub accepted: usize,
    /// Target forwards (verification steps, the prompt's included).
    pub target_forwards: usize,
    /// Tokens generated (accepted drafts, corrections and bonus tokens).
    pub generated: usize,
}

impl SpeculationStats {
    /// Accepted / drafted (0 when nothing was drafted).
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }

    /// Generated tokens per target forward (0 before the first forward).
    pub fn tokens_per_forward(&self) -> f64 {
        if self.target_forwards == 0 {
            0.0
        } else {
            self.generated as f64 / self.target_forwards as f64
        }
    }

    /// Adds another run's counts.
    pub fn add(&mut self, other: &SpeculationStats) {
        self.drafted += other.drafted;
        self.accepted += other.accepted;
        self.target_forwards += other.target_forwards;
        self.generated += other.generated;
    }
}
