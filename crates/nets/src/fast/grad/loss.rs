//! [`crate::TruncatedLogitsLoss`] of one row on the fast path, with its gradient with respect to
//! the sampler's outputs.
//!
//! Over the kept input tokens `j` (outputs `o_j`; masked input tokens have output `-inf`, i.e.
//! `q_j = 0`), with `log q = log_softmax(o)`, `p_t = softmax(target)` and `M_j = [target_j = −inf]`:
//! `KL = Σ_{¬M} p_t,j (log p_t,j − log q_j)`, `pen = Σ_M q_j`, and
//! `∂(KL + γ·pen)/∂o_j = q_j·(1 − γ·pen) − p_t,j + γ·M_j·q_j`
//! (`∂KL/∂o_j = q_j·Σ p_t − p_t,j` with `Σ p_t = 1`; `∂pen/∂o_j = q_j·(M_j − pen)`).
//! A token the target keeps but the input masks makes `KL = +inf` (no gradient is formed).
//! Sums run in f32 within blocks of [`BLOCK`] tokens, in f64 across blocks.

use adasamp_sampling::math;
use adasamp_sampling::row::validate_logits;

use super::{RowBufs, RowLoss, TargetRow};
use crate::error::{NetsError, Result};

/// Tokens per f32 partial sum.
const BLOCK: usize = 1024;

/// The target row `target` gathered onto the kept input tokens of `rows` (into `rows.target`),
/// checked; returns `(max, log Σ exp(t − max))` of the whole target row and whether every token
/// the target keeps is also kept by the input.
fn compact_target(
    rows: &mut RowBufs,
    n: usize,
    target: TargetRow<'_>,
    index: usize,
) -> Result<(f32, f32, bool)> {
    let v = rows.vocab;
    rows.target.grow(n);
    let tc = &mut rows.target[..n];
    let bad = |e| NetsError::logits("target", e);
    match target {
        TargetRow::Dense(t) => {
            if t.len() != v {
                return Err(NetsError::shape(
                    format!("target row {index}"),
                    format!("{v} entries (the input row's)"),
                    t.len().to_string(),
                ));
            }
            let m = checked_target_max(t, index).map_err(bad)?;
            if rows.ids.is_empty() {
                tc.copy_from_slice(t);
            } else {
                for (c, &id) in tc.iter_mut().zip(&rows.ids) {
                    *c = t[id as usize];
                }
            }
            let covered = math::count_finite(tc) == math::count_finite(t);
            Ok((m, math::sum_exp(t, m).ln() as f32, covered))
        }
        TargetRow::Sparse { ids, logits } => {
            if ids.len() != logits.len() {
                return Err(NetsError::shape(
                    format!("sparse target row {index}"),
                    format!("{} logits (one per id)", ids.len()),
                    logits.len().to_string(),
                ));
            }
            if let Some(k) =
                (0..ids.len()).find(|&k| ids[k] as usize >= v || (k > 0 && ids[k] <= ids[k - 1]))
            {
                return Err(NetsError::bad_request(
                    format!("sparse target row {index}, id {k}"),
                    ids[k],
                    format!("ids must be strictly ascending and below V = {v}"),
                ));
            }
            let m = checked_target_max(logits, index).map_err(bad)?;
            tc.fill(f32::NEG_INFINITY);
            let mut covered = true;
            for (&id, &l) in ids.iter().zip(logits) {
                let j = if rows.ids.is_empty() {
                    Some(id as usize)
                } else {
                    rows.ids.binary_search(&id).ok()
                };
                match j {
                    Some(j) => tc[j] = l,
                    None => covered &= l == f32::NEG_INFINITY,
                }
            }
            Ok((m, math::sum_exp(logits, m).ln() as f32, covered))
        }
    }
}

/// The largest entry of a target row, which must be non-empty, free of NaN / `+inf` and hold a
/// finite entry.
fn checked_target_max(
    t: &[f32],
    index: usize,
) -> std::result::Result<f32, adasamp_sampling::SamplingError> {
    validate_logits(t, index)?;
    Ok(math::max(t))
}

/// KL and penalty of the row's outputs (`rows.out` per unit) against `target` (row `index` in
/// errors); when the KL is finite, writes `∂(KL + γ·pen)/∂o` per unit to `rows.dout` (for a
/// unit standing for several tokens: the sum of theirs).
pub(super) fn row(
    rows: &mut RowBufs,
    target: TargetRow<'_>,
    gamma: f32,
    index: usize,
) -> Result<RowLoss> {
    let n = rows.kept;
    let (mt, lst, covered) = compact_target(rows, n, target, index)?;
    let grouped = !rows.unit_of.is_empty();
    if grouped {
        for (t, &u) in rows.tout[..n].iter_mut().zip(&rows.unit_of) {
            *t = rows.out[u as usize];
        }
    }
    let (o, dout) = if grouped {
        (&rows.tout[..n], &mut rows.tdout[..n])
    } else {
        (&rows.out[..n], &mut rows.dout[..n])
    };
    let loss = token_loss(o, &rows.target[..n], mt, lst, covered, gamma, dout);
    if grouped && loss.kl.is_finite() {
        // Summed in f64, rounded once per unit.
        let sums = &mut rows.unit_sums;
        sums.clear();
        sums.resize(rows.out.len(), 0.0);
        for (&u, &d) in rows.unit_of.iter().zip(&rows.tdout[..n]) {
            sums[u as usize] += d as f64;
        }
        for (o, &s) in rows.dout.iter_mut().zip(sums.iter()) {
            *o = s as f32;
        }
    }
    Ok(loss)
}

/// The loss of per-token outputs `o` against the compacted target `tc` (whole-row `max` `mt`
/// and `log Σ exp(t − mt)` `lst`); writes the per-token gradient to `dout` when the KL is finite
/// (`covered`: every token the target keeps is kept by the input).
fn token_loss(
    o: &[f32],
    tc: &[f32],
    mt: f32,
    lst: f32,
    covered: bool,
    gamma: f32,
    dout: &mut [f32],
) -> RowLoss {
    let mo = math::max(o);
    let lso = math::sum_exp(o, mo).ln() as f32;
    let (mut kl, mut pen) = (0.0f64, 0.0f64);
    for ((ob, tb), db) in o
        .chunks(BLOCK)
        .zip(tc.chunks(BLOCK))
        .zip(dout.chunks_mut(BLOCK))
    {
        let (mut k32, mut p32) = ([0.0f32; 8], [0.0f32; 8]);
        for (i, ((&oj, &tj), d)) in ob.iter().zip(tb).zip(db.iter_mut()).enumerate() {
            let lq = (oj - mo) - lso;
            let q = math::exp(lq);
            let lpt = (tj - mt) - lst;
            let masked = tj == f32::NEG_INFINITY;
            let p = math::exp(lpt);
            k32[i % 8] += if masked { 0.0 } else { p * (lpt - lq) };
            p32[i % 8] += if masked { q } else { 0.0 };
            *d = q;
        }
        kl += k32.iter().map(|&x| x as f64).sum::<f64>();
        pen += p32.iter().map(|&x| x as f64).sum::<f64>();
    }
    if !covered {
        return RowLoss {
            kl: f64::INFINITY,
            penalty: pen,
        };
    }
    let keep = 1.0 - gamma * pen as f32;
    for (d, &tj) in dout.iter_mut().zip(tc) {
        let q = *d;
        let masked = tj == f32::NEG_INFINITY;
        let p = math::exp((tj - mt) - lst);
        *d = q.mul_add(keep, -p) + if masked { gamma * q } else { 0.0 };
    }
    RowLoss { kl, penalty: pen }
}
