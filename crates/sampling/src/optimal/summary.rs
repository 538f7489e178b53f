//! Means of a generation's per-step optimal-sampling diagnostics.

use serde::{Deserialize, Serialize};

use super::{AlphaStatus, MixStep};

/// Running means of [`MixStep`]s (for a generation's record) and counts of the steps that did
/// not end at a root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MixSummary {
    /// Steps seen.
    pub steps: usize,
    /// Mean α.
    pub alpha_mean: f64,
    /// Mean `ESS_θ`.
    pub ess_theta_mean: f64,
    /// Mean `ESS_t`.
    pub ess_teacher_mean: f64,
    /// Mean `ESS_θ / ESS_t`.
    pub ess_ratio_mean: f64,
    /// Mean `KL(q‖π_θ)`.
    pub kl_q_theta_mean: f64,
    /// Mean `KL(q‖π_t)`.
    pub kl_q_teacher_mean: f64,
    /// Largest `|Δ(α)|` of a step.
    pub max_abs_residual: f64,
    /// Steps whose α is a bracket end (no root inside).
    pub bracket_end_steps: usize,
    /// Steps where α = 1 was imposed.
    pub forced_steps: usize,
    /// Steps whose search did not reach the tolerance.
    pub unconverged_steps: usize,
}

impl MixSummary {
    /// Adds one step.
    pub fn add(&mut self, s: &MixStep) {
        self.steps += 1;
        let n = self.steps as f64;
        let upd = |m: &mut f64, x: f64| *m += (x - *m) / n;
        upd(&mut self.alpha_mean, s.alpha);
        upd(&mut self.ess_theta_mean, s.ess_theta);
        upd(&mut self.ess_teacher_mean, s.ess_teacher);
        upd(&mut self.ess_ratio_mean, s.ess_ratio);
        upd(&mut self.kl_q_theta_mean, s.kl_q_theta);
        upd(&mut self.kl_q_teacher_mean, s.kl_q_teacher);
        self.max_abs_residual = self.max_abs_residual.max(s.residual.abs());
        match s.status {
            AlphaStatus::BracketEnd => self.bracket_end_steps += 1,
            AlphaStatus::Forced => self.forced_steps += 1,
            AlphaStatus::Unconverged => self.unconverged_steps += 1,
            _ => {}
        }
    }
}
