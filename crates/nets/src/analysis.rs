//! Per-position analysis of a learned sampler against its target pipeline (SPEC §2 "Analysis").
//!
//! For one decoding position there are three logits rows over the same vocabulary:
//! - `raw`: the base model's logits (the *identity* sampler's prediction),
//! - `target`: the heuristic pipeline applied to `raw` (`-inf` = truncated token),
//! - `pred`: the learned sampler's output for `raw`.
//!
//! [`analyze_position`] compares both `raw` and `pred` with the target through
//! [`row_divergence`]: `KL(target ‖ ·)` and the predicted mass on truncated tokens.
//! [`summarize`] aggregates positions (mean / median / max) and [`Summary::to_markdown`] renders
//! the table; [`top_tokens`] picks the tokens worth plotting. Everything here is plain slices and
//! `f64` arithmetic except [`sampler_logits`], which runs a [`LearnedSampler`] on rows.

use candle_core::Tensor;

use crate::error::{NetsError, Result};
use crate::loss::row_divergence;
use crate::sampler::LearnedSampler;

/// The comparison of identity (raw logits) and sampler with the target at one position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionStats {
    /// `KL(target ‖ softmax(raw))` in nats.
    pub kl_identity: f64,
    /// `KL(target ‖ softmax(pred))` in nats (`+inf` if the sampler excludes a kept token).
    pub kl_sampler: f64,
    /// Raw probability mass on the tokens the target truncated.
    pub mass_identity: f64,
    /// Predicted probability mass on the tokens the target truncated.
    pub mass_sampler: f64,
    /// Number of tokens the target keeps (finite entries).
    pub kept: usize,
    /// Vocabulary size (row length).
    pub vocab: usize,
}

/// Compares `raw` (identity) and `pred` (sampler) with `target` at one position. The three rows
/// must have the same length; each needs a finite entry and no NaN / `+inf`.
pub fn analyze_position(raw: &[f32], target: &[f32], pred: &[f32]) -> Result<PositionStats> {
    if raw.len() != target.len() {
        return Err(NetsError::shape(
            "raw row",
            format!("{} entries (the target's)", target.len()),
            raw.len().to_string(),
        ));
    }
    let identity = row_divergence(target, raw)?;
    let sampler = row_divergence(target, pred)?;
    Ok(PositionStats {
        kl_identity: identity.kl,
        kl_sampler: sampler.kl,
        mass_identity: identity.truncated_mass,
        mass_sampler: sampler.truncated_mass,
        kept: target.iter().filter(|v| v.is_finite()).count(),
        vocab: target.len(),
    })
}

/// Mean, median and maximum of a set of values (infinite values propagate: a `+inf` KL makes
/// the mean and the maximum `+inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Maximum.
    pub max: f64,
}

impl Aggregate {
    /// The aggregate of `values`; `None` if empty or any value is NaN.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        };
        Some(Self {
            mean: sorted.iter().sum::<f64>() / n as f64,
            median,
            max: sorted[n - 1],
        })
    }
}

/// Aggregates over all analysed positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of positions.
    pub positions: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// `KL(target ‖ raw)` over positions.
    pub kl_identity: Aggregate,
    /// `KL(target ‖ pred)` over positions.
    pub kl_sampler: Aggregate,
    /// Raw mass on truncated tokens over positions.
    pub mass_identity: Aggregate,
    /// Predicted mass on truncated tokens over positions.
    pub mass_sampler: Aggregate,
    /// Mean number of tokens the target keeps per position.
    pub mean_kept: f64,
}

/// Aggregates per-position results; errors if there are none or a value is NaN.
pub fn summarize(positions: &[PositionStats]) -> Result<Summary> {
    let agg = |f: fn(&PositionStats) -> f64, what: &str| {
        Aggregate::of(&positions.iter().map(f).collect::<Vec<_>>()).ok_or_else(|| {
            NetsError::NoData {
                what: format!("positions (or a NaN) to aggregate {what} over"),
            }
        })
    };
    Ok(Summary {
        positions: positions.len(),
        vocab: positions.first().map_or(0, |p| p.vocab),
        kl_identity: agg(|p| p.kl_identity, "KL (identity)")?,
        kl_sampler: agg(|p| p.kl_sampler, "KL (sampler)")?,
        mass_identity: agg(|p| p.mass_identity, "truncated mass (identity)")?,
        mass_sampler: agg(|p| p.mass_sampler, "truncated mass (sampler)")?,
        mean_kept: positions.iter().map(|p| p.kept as f64).sum::<f64>() / positions.len() as f64,
    })
}

/// A number for tables: `0`, 4 decimals, or scientific notation below 1e-3.
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        format!("{v}")
    } else if v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

impl Summary {
    /// The aggregate table as Markdown: one row for identity (raw logits), one for the sampler;
    /// columns KL(target ‖ ·) and truncated mass, each mean / median / max; then the positions,
    /// vocabulary and mean kept-token count.
    pub fn to_markdown(&self) -> String {
        let row = |name: &str, kl: &Aggregate, mass: &Aggregate| {
            format!(
                "| {name} | {} | {} | {} | {} | {} | {} |\n",
                format_value(kl.mean),
                format_value(kl.median),
                format_value(kl.max),
                format_value(mass.mean),
                format_value(mass.median),
                format_value(mass.max),
            )
        };
        let mut s = String::new();
        s.push_str(
            "| predictor | KL mean | KL median | KL max | trunc. mass mean | trunc. mass median | trunc. mass max |\n",
        );
        s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        s.push_str(&row(
            "identity (raw)",
            &self.kl_identity,
            &self.mass_identity,
        ));
        s.push_str(&row("sampler", &self.kl_sampler, &self.mass_sampler));
        s.push_str(&format!(
            "\nKL = KL(target ‖ predictor) in nats; trunc. mass = predicted probability on tokens the \
             target removed. {} positions, vocabulary {}, target keeps {:.1} tokens per position on \
             average.\n",
            self.positions, self.vocab, self.mean_kept
        ));
        s
    }
}

/// One token's probability under the three distributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenProbs {
    /// Token id.
    pub id: u32,
    /// `softmax(raw)`.
    pub raw: f64,
    /// `softmax(target)` (0 for truncated tokens).
    pub target: f64,
    /// `softmax(pred)`.
    pub pred: f64,
}

/// `softmax(row)` in `f64` (`-inf` → 0); all zeros for a row with no finite entry.
pub fn probabilities(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    if !max.is_finite() {
        return vec![0.0; row.len()];
    }
    let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// The tokens worth plotting at one position: the `k` most likely under `raw`, plus every token
/// the target keeps when it keeps at most `max_kept_extra` tokens (so small kept sets are shown
/// whole), plus the tokens of `always` (e.g. the sampled one). Sorted by descending raw
/// probability (ties by id); ids outside the row are an error.
pub fn top_tokens(
    raw: &[f32],
    target: &[f32],
    pred: &[f32],
    k: usize,
    max_kept_extra: usize,
    always: &[u32],
) -> Result<Vec<TokenProbs>> {
    if raw.len() != target.len() || raw.len() != pred.len() {
        return Err(NetsError::shape(
            "rows (raw, target, pred)",
            "equal lengths",
            format!("{}, {}, {}", raw.len(), target.len(), pred.len()),
        ));
    }
    if let Some(&id) = always.iter().find(|&&id| id as usize >= raw.len()) {
        return Err(NetsError::bad_request(
            "token",
            id,
            format!("outside a row of {}", raw.len()),
        ));
    }
    let (pr, pt, pp) = (
        probabilities(raw),
        probabilities(target),
        probabilities(pred),
    );
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&a, &b| pr[b].total_cmp(&pr[a]).then(a.cmp(&b)));
    let kept = target.iter().filter(|v| v.is_finite()).count();
    let mut chosen: Vec<usize> = order.iter().copied().take(k).collect();
    if kept <= max_kept_extra {
        chosen.extend(
            order
                .iter()
                .skip(k)
                .copied()
                .filter(|&i| target[i].is_finite()),
        );
    }
    for &id in always {
        if !chosen.contains(&(id as usize)) {
            chosen.push(id as usize);
        }
    }
    chosen.sort_by(|&a, &b| pr[b].total_cmp(&pr[a]).then(a.cmp(&b)));
    Ok(chosen
        .into_iter()
        .map(|i| TokenProbs {
            id: i as u32,
            raw: pr[i],
            target: pt[i],
            pred: pp[i],
        })
        .collect())
}

/// Runs `sampler` on `rows` (row-major `[n, vocab]` raw logits) and returns its output logits in
/// the same layout, as `f32`.
pub fn sampler_logits(sampler: &LearnedSampler, rows: &[f32], vocab: usize) -> Result<Vec<f32>> {
    if vocab == 0 || !rows.len().is_multiple_of(vocab) {
        return Err(NetsError::shape(
            "logits",
            format!("whole rows of {vocab}"),
            format!("{} values", rows.len()),
        ));
    }
    let z = Tensor::from_slice(rows, (rows.len() / vocab, vocab), sampler.device())?;
    Ok(sampler
        .forward(&z)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NINF: f32 = f32::NEG_INFINITY;

    #[test]
    fn identity_kl_and_masked_mass_match_hand_computation() {
        // raw = uniform over 4; target keeps tokens 0 and 1 with p = (1/4, 3/4).
        let raw = [0.0f32; 4];
        let target = [0.0f32, 3f32.ln(), NINF, NINF];
        let s = analyze_position(&raw, &target, &raw).unwrap();
        let kl = 0.25 * (0.25f64 / 0.25).ln() + 0.75 * (0.75f64 / 0.25).ln();
        assert!((s.kl_identity - kl).abs() < 1e-6, "{s:?}");
        assert!((s.mass_identity - 0.5).abs() < 1e-9);
        assert_eq!(s.kept, 2);
        assert_eq!(s.vocab, 4);
        assert_eq!(s.kl_identity, s.kl_sampler);
    }

    #[test]
    fn prediction_equal_to_target_gives_zero() {
        let raw = [1.0f32, 2.0, 0.5, -1.0, 3.0];
        let target = [NINF, 2.0, NINF, NINF, 3.0];
        let s = analyze_position(&raw, &target, &target).unwrap();
        assert!(s.kl_sampler.abs() < 1e-12, "{s:?}");
        assert_eq!(s.mass_sampler, 0.0);
        assert!(s.kl_identity > 0.0 && s.mass_identity > 0.0);
        // A shifted copy of the target (logits are shift-invariant) is just as exact.
        let shifted: Vec<f32> = target.iter().map(|v| v + 7.0).collect();
        let s = analyze_position(&raw, &target, &shifted).unwrap();
        assert!(s.kl_sampler.abs() < 1e-6);
    }

    #[test]
    fn excluded_kept_token_is_infinite_kl() {
        let target = [0.0f32, 0.0];
        let s = analyze_position(&[0.0, 0.0], &target, &[0.0, NINF]).unwrap();
        assert_eq!(s.kl_sampler, f64::INFINITY);
        let sum = summarize(&[s]).unwrap();
        assert_eq!(sum.kl_sampler.max, f64::INFINITY);
        assert!(sum.to_markdown().contains("inf"));
    }

    #[test]
    fn aggregates() {
        let a = Aggregate::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(a.mean, 4.0);
        assert_eq!(a.median, 2.5);
        assert_eq!(a.max, 10.0);
        assert_eq!(Aggregate::of(&[5.0]).unwrap().median, 5.0);
        assert!(Aggregate::of(&[]).is_none());
        assert!(Aggregate::of(&[f64::NAN]).is_none());
        assert!(summarize(&[]).is_err());

        let p = |kl: f64, kept: usize| PositionStats {
            kl_identity: kl,
            kl_sampler: kl / 2.0,
            mass_identity: 0.5,
            mass_sampler: 0.25,
            kept,
            vocab: 10,
        };
        let s = summarize(&[p(1.0, 2), p(3.0, 4), p(2.0, 6)]).unwrap();
        assert_eq!(s.positions, 3);
        assert_eq!(s.kl_identity.median, 2.0);
        assert_eq!(s.kl_sampler.max, 1.5);
        assert_eq!(s.mean_kept, 4.0);
        let md = s.to_markdown();
        assert!(
            md.contains("| identity (raw) | 2.0000 | 2.0000 | 3.0000 | 0.5000"),
            "{md}"
        );
        assert!(
            md.contains("| sampler | 1.0000 | 1.0000 | 1.5000 | 0.2500"),
            "{md}"
        );
    }

    #[test]
    fn top_tokens_take_top_k_and_small_kept_sets() {
        // Raw order: 4, 1, 0, 2, 3. The target keeps 4 and 3 (a penalty promoted 3).
        let raw = [1.0f32, 2.0, 0.5, -1.0, 3.0];
        let target = [NINF, NINF, NINF, 5.0, 3.0];
        let t = top_tokens(&raw, &target, &raw, 2, 8, &[]).unwrap();
        let ids: Vec<u32> = t.iter().map(|t| t.id).collect();
        assert_eq!(ids, [4, 1, 3]);
        assert_eq!(t[1].target, 0.0);
        assert!((t[0].raw - probabilities(&raw)[4]).abs() < 1e-15);
        assert!((t[2].target + t[0].target - 1.0).abs() < 1e-12);
        // Kept set larger than the cap: top-k only.
        let t = top_tokens(&raw, &target, &raw, 2, 1, &[]).unwrap();
        assert_eq!(t.len(), 2);
        // `always` tokens join, in raw order.
        let t = top_tokens(&raw, &target, &raw, 2, 1, &[3, 0, 4]).unwrap();
        let ids: Vec<u32> = t.iter().map(|t| t.id).collect();
        assert_eq!(ids, [4, 1, 0, 3]);
        assert!(top_tokens(&raw, &target[..4], &raw, 2, 1, &[]).is_err());
        assert!(top_tokens(&raw, &target, &raw, 2, 1, &[5]).is_err());
    }

    #[test]
    fn sampler_rows_round_trip() {
        use crate::config::SamplerConfig;
        use candle_core::{DType, Device};
        let cfg = SamplerConfig::from_yaml_str(
            "architecture: local_probability_transform\nhidden: 8\n",
            "<test>",
        )
        .unwrap();
        let s = LearnedSampler::seeded(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
        let rows = [0.0f32, 1.0, NINF, 2.0, 0.5, 0.5];
        let out = sampler_logits(&s, &rows, 3).unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(out[2], NINF);
        assert!(out.iter().enumerate().all(|(i, v)| i == 2 || v.is_finite()));
        assert!(sampler_logits(&s, &rows, 4).is_err());
    }
}
