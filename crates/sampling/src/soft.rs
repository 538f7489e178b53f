//! Soft sampling (SPEC 3): the weights of the input-embedding mixture fed instead of a sampled
//! token, and the guidance-α schedule of soft-sampling training.
//!
//! A mixture `e = Σ_t w_t · W_E[t]` is described by its weights `w` as `(token, weight)` pairs;
//! the model applies them to its own embedding matrix (`LanguageModel::embedding_mixture` in the
//! engine). Plain soft sampling uses `w = p`, the final distribution of a pipeline; training mixes
//! in the ground-truth token: `e = α·W_E[x] + (1−α)·pᵀW_E`, i.e. `w = α·1[t = x] + (1−α)·p_t`.

use crate::error::{Result, SamplingError};
use crate::sample::Distribution;

/// Writes the kept tokens of `dist` and their probabilities into `out` (cleared first), ascending
/// id: the weights of the soft input `e = pᵀ·W_E`.
pub fn distribution_weights(dist: &Distribution<'_>, out: &mut Vec<(u32, f32)>) {
    out.clear();
    out.extend(dist.iter().map(|t| (t.id, t.prob)));
}

/// Checks a guidance weight: `alpha ∈ [0, 1]`, named `param` in the error.
pub fn check_alpha(param: &'static str, alpha: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(SamplingError::SoftParam {
            param,
            value: alpha.to_string(),
            reason: "must lie in [0, 1]".into(),
        });
    }
    Ok(())
}

/// The weights of the guided input `e = α·W_E[truth] + (1−α)·pᵀW_E`: `probs` (the pairs of `p`)
/// scaled by `1 − α`, with `α` added to `truth` (appended when `p` does not hold it), into `out`
/// (cleared first). α = 1 gives the one-hot `truth` (teacher forcing), α = 0 gives `p`.
pub fn guided_weights(
    alpha: f64,
    truth: u32,
    probs: &[(u32, f32)],
    out: &mut Vec<(u32, f32)>,
) -> Result<()> {
    check_alpha("alpha", alpha)?;
    out.clear();
    if alpha == 1.0 {
        out.push((truth, 1.0));
        return Ok(());
    }
    let soft = (1.0 - alpha) as f32;
    let mut found = false;
    for &(t, p) in probs {
        let w = soft * p + if t == truth { alpha as f32 } else { 0.0 };
        found |= t == truth;
        if w != 0.0 {
            out.push((t, w));
        }
    }
    if !found && alpha > 0.0 {
        out.push((truth, alpha as f32));
    }
    Ok(())
}

/// `out += w · row` for every pair of `weights`, `row(t)` giving the embedding row of token `t`
/// (`out.len()` values): `out = Σ_t w_t · W_E[t]` when `out` starts at zero.
pub fn accumulate_rows<'a>(
    weights: &[(u32, f32)],
    mut row: impl FnMut(u32) -> &'a [f32],
    out: &mut [f32],
) {
    for &(t, w) in weights {
        for (o, &x) in out.iter_mut().zip(row(t)) {
            *o += w * x;
        }
    }
}

/// The guidance-α schedule of soft-sampling training over `total` steps: α = 1 for the first
/// `⌊total·delay_ratio⌋` steps, then linear from 1 to `alpha_min` until step
/// `⌊total·(delay_ratio + warmup_ratio)⌋`, then `alpha_min`:
/// `α(s) = 1 − (1 − α_min)·(s − d)/(w − d)` for `d ≤ s < w`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaSchedule {
    /// Fraction of the steps held at α = 1.
    pub delay_ratio: f64,
    /// Fraction of the steps of the linear decay.
    pub warmup_ratio: f64,
    /// The final α.
    pub alpha_min: f64,
}

impl Default for AlphaSchedule {
    /// The seed's defaults: delay 0.1, warm-up 0.7, α_min 0.25.
    fn default() -> Self {
        Self {
            delay_ratio: 0.1,
            warmup_ratio: 0.7,
            alpha_min: 0.25,
        }
    }
}

impl AlphaSchedule {
    /// Checks the ratios (each in [0, 1], their sum at most 1) and `alpha_min` (in [0, 1]).
    pub fn validate(&self) -> Result<()> {
        let ratio = |param: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(SamplingError::SoftParam {
                    param,
                    value: v.to_string(),
                    reason: "must lie in [0, 1]".into(),
                })
            }
        };
        ratio("delay_ratio", self.delay_ratio)?;
        ratio("warmup_ratio", self.warmup_ratio)?;
        check_alpha("alpha_min", self.alpha_min)?;
        if self.delay_ratio + self.warmup_ratio > 1.0 {
            return Err(SamplingError::SoftParam {
                param: "warmup_ratio",
                value: self.warmup_ratio.to_string(),
                reason: format!(
                    "delay_ratio + warmup_ratio = {} exceeds 1",
                    self.delay_ratio + self.warmup_ratio
                ),
            });
        }
        Ok(())
    }

    /// α at 0-based `step` of `total`.
    pub fn alpha(&self, step: usize, total: usize) -> f64 {
        let delay_end = (total as f64 * self.delay_ratio) as usize;
        let warmup_end = (total as f64 * (self.delay_ratio + self.warmup_ratio)) as usize;
        if step < delay_end {
            1.0
        } else if step < warmup_end {
            let progress = (step - delay_end) as f64 / (warmup_end - delay_end) as f64;
            1.0 - (1.0 - self.alpha_min) * progress
        } else {
            self.alpha_min
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Pipeline, PipelineSpec, SequenceSampler, StageSpec};

    fn table() -> (Vec<f32>, usize) {
        // 4 tokens × 3 dims.
        (
            vec![
                1.0, 0.0, 2.0, //
                0.0, 1.0, -1.0, //
                3.0, 3.0, 0.0, //
                -2.0, 0.5, 0.5,
            ],
            3,
        )
    }

    fn mix(weights: &[(u32, f32)]) -> Vec<f32> {
        let (w, d) = table();
        let mut out = vec![0.0; d];
        accumulate_rows(
            weights,
            |t| &w[t as usize * d..(t as usize + 1) * d],
            &mut out,
        );
        out
    }

    #[test]
    fn one_hot_weights_select_the_row() {
        assert_eq!(mix(&[(2, 1.0)]), vec![3.0, 3.0, 0.0]);
    }

    #[test]
    fn mixture_is_the_probability_weighted_sum() {
        let got = mix(&[(0, 0.5), (1, 0.25), (3, 0.25)]);
        let want = [
            0.5 * 1.0 + 0.25 * -2.0,
            0.25 + 0.25 * 0.5,
            0.5 * 2.0 - 0.25 + 0.25 * 0.5,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn guided_weights_interpolate_truth_and_distribution() {
        let p = [(0, 0.5f32), (1, 0.5)];
        let mut w = Vec::new();
        guided_weights(1.0, 3, &p, &mut w).unwrap();
        assert_eq!(w, vec![(3, 1.0)]);
        guided_weights(0.0, 3, &p, &mut w).unwrap();
        assert_eq!(w, p.to_vec());
        guided_weights(0.25, 1, &p, &mut w).unwrap();
        assert_eq!(w, vec![(0, 0.375), (1, 0.625)]);
        guided_weights(0.25, 2, &p, &mut w).unwrap();
        assert_eq!(w, vec![(0, 0.375), (1, 0.375), (2, 0.25)]);
        // The mixed embedding equals α·W_E[x] + (1−α)·pᵀW_E.
        let e = mix(&w);
        let (soft, hard) = (mix(&p), mix(&[(2, 1.0)]));
        for i in 0..3 {
            assert!((e[i] - (0.25 * hard[i] + 0.75 * soft[i])).abs() < 1e-6);
        }
        let total: f32 = w.iter().map(|x| x.1).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn alpha_outside_the_unit_interval_is_an_error() {
        for a in [-0.1, 1.5, f64::NAN] {
            let e = guided_weights(a, 0, &[], &mut Vec::new()).unwrap_err();
            assert!(
                matches!(e, SamplingError::SoftParam { param: "alpha", .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn distribution_weights_are_the_kept_probabilities() {
        let spec = PipelineSpec {
            name: "k2".into(),
            weight: 1.0,
            processors: vec![StageSpec::new("top_k", &[("top_k", 2.0)])],
        };
        let mut s = SequenceSampler::new(Pipeline::from_spec(spec).unwrap(), 0, 0, 0);
        let d = s
            .distribution(&[0.0, 2.0, 1.0, -1.0], &Context::default(), 0)
            .unwrap();
        let mut w = Vec::new();
        distribution_weights(&d, &mut w);
        let z = 1.0 + (-1.0f32).exp();
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((w[0].1 - 1.0 / z).abs() < 1e-6 && (w[1].1 - (-1.0f32).exp() / z).abs() < 1e-6);
    }

    #[test]
    fn schedule_holds_decays_then_stays() {
        let s = AlphaSchedule {
            delay_ratio: 0.1,
            warmup_ratio: 0.5,
            alpha_min: 0.2,
        };
        s.validate().unwrap();
        assert_eq!(s.alpha(0, 100), 1.0);
        assert_eq!(s.alpha(9, 100), 1.0);
        assert_eq!(s.alpha(10, 100), 1.0);
        assert!((s.alpha(35, 100) - 0.6).abs() < 1e-12);
        assert_eq!(s.alpha(60, 100), 0.2);
        assert_eq!(s.alpha(99, 100), 0.2);
        // Monotone non-increasing.
        let a: Vec<f64> = (0..100).map(|i| s.alpha(i, 100)).collect();
        assert!(a.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn schedule_rejects_bad_ratios() {
        let bad = |delay_ratio, warmup_ratio, alpha_min| AlphaSchedule {
            delay_ratio,
            warmup_ratio,
            alpha_min,
        };
        for (s, param) in [
            (bad(-0.1, 0.5, 0.2), "delay_ratio"),
            (bad(0.1, 1.5, 0.2), "warmup_ratio"),
            (bad(0.6, 0.6, 0.2), "warmup_ratio"),
            (bad(0.1, 0.5, 2.0), "alpha_min"),
        ] {
            let e = s.validate().unwrap_err();
            assert!(
                matches!(e, SamplingError::SoftParam { param: p, .. } if p == param),
                "{e}"
            );
        }
    }
}
