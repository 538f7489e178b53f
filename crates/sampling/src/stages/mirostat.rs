//! Mirostat v1 and v2: truncation steered towards a target surprise τ (bits), stateful.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{state_mismatch, Context, Stage, StageState};

/// The distribution a mirostat stage left, to read the chosen token's probability at `accept`.
#[derive(Debug, Clone, Default)]
struct LastOutput {
    ids: Vec<u32>,
    vals: Vec<f32>,
    lse: f32,
}

impl LastOutput {
    fn record(&mut self, row: &Row) {
        self.ids.clear();
        self.vals.clear();
        for (i, &v) in row.values().iter().enumerate() {
            if v > f32::NEG_INFINITY {
                self.ids.push(row.id_at(i));
                self.vals.push(v);
            }
        }
        self.lse = crate::math::log_sum_exp(&self.vals).1 as f32;
    }

    /// Surprise `−log2 p(token)` under the recorded distribution (`None` if it was removed).
    fn surprise(&self, token: u32) -> Option<f64> {
        let i = self.ids.binary_search(&token).ok()?;
        Some(-((self.vals[i] - self.lse) as f64) / std::f64::consts::LN_2)
    }
}

/// μ from a saved state, or the error naming `stage` if it is not a mirostat state.
fn restore_mu(stage: &str, state: &StageState) -> Result<f64> {
    match state {
        StageState::Mirostat { mu } => Ok(*mu),
        other => Err(state_mismatch(stage, "mirostat", other)),
    }
}

fn read_tau_eta(p: &mut ParamReader) -> Result<(f64, f64)> {
    let tau = p.f64_checked(
        "tau",
        Some(5.0),
        |v| v >= 0.0 && v.is_finite(),
        "must be ≥ 0 and finite",
    )?;
    let eta = p.f64_checked(
        "eta",
        Some(0.1),
        |v| v >= 0.0 && v.is_finite(),
        "must be ≥ 0 and finite",
    )?;
    Ok((tau, eta))
}

/// Mirostat 2.0: removes tokens with surprise `−log2 p > μ` (keeping at least the top token);
/// after each sampled token `μ ← μ − η(−log2 p(x) − τ)`, μ starting at 2τ.
#[derive(Debug, Clone)]
pub struct MirostatV2 {
    /// Target surprise (bits).
    pub tau: f64,
    /// Learning rate.
    pub eta: f64,
    mu: f64,
    last: LastOutput,
}

impl MirostatV2 {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "mirostat_v2";

    /// Reads `{tau (default 5), eta (default 0.1)}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let (tau, eta) = read_tau_eta(p)?;
        Ok(Self {
            tau,
            eta,
            mu: 2.0 * tau,
            last: LastOutput::default(),
        })
    }

    /// Current μ.
    pub fn mu(&self) -> f64 {
        self.mu
    }
}

impl Stage for MirostatV2 {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        // −log2 p > μ ⇔ z − lse < −μ·ln2
        let lse = row.lse();
        let t = (lse - self.mu * std::f64::consts::LN_2) as f32;
        let t = t.min(row.max());
        row.retain_ge(t);
        self.last.record(row);
        Ok(())
    }
    fn accept(&mut self, token: u32) {
        if let Some(s) = self.last.surprise(token) {
            self.mu -= self.eta * (s - self.tau);
        }
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
    }
    fn snapshot(&self) -> StageState {
        StageState::Mirostat { mu: self.mu }
    }
    fn restore(&mut self, state: &StageState) -> Result<()> {
        self.mu = restore_mu(self.name(), state)?;
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// Mirostat 1.0: estimates the Zipf exponent ŝ from the top `m` tokens,
/// `ŝ = Σ t_i b_i / Σ t_i²` with `t_i = ln((i+2)/(i+1))`, `b_i = ln(p_i / p_{i+1})`; keeps the top
/// `k = ((ε̂·2^μ) / (1 − V^(−ε̂)))^(1/ŝ)`, `ε̂ = ŝ − 1`; μ updated as in v2.
#[derive(Debug, Clone)]
pub struct MirostatV1 {
    /// Target surprise (bits).
    pub tau: f64,
    /// Learning rate.
    pub eta: f64,
    /// Number of top tokens used to estimate ŝ.
    pub m: usize,
    mu: f64,
    last: LastOutput,
    top: Vec<f32>,
}

impl MirostatV1 {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "mirostat_v1";

    /// Reads `{tau (default 5), eta (default 0.1), m (default 100, ≥ 2)}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let (tau, eta) = read_tau_eta(p)?;
        let m = p.int_checked("m", Some(100), |v| v >= 2, "must be an integer ≥ 2")? as usize;
        Ok(Self {
            tau,
            eta,
            m,
            mu: 2.0 * tau,
            last: LastOutput::default(),
            top: Vec::new(),
        })
    }
}

impl Stage for MirostatV1 {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        let n = row.kept();
        let m = self.m.min(n);
        let t = row.kth_largest(m);
        self.top.clear();
        self.top
            .extend(row.values().iter().copied().filter(|&v| v >= t));
        self.top.sort_unstable_by(|a, b| b.total_cmp(a));
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for i in 0..m.saturating_sub(1).min(self.top.len().saturating_sub(1)) {
            let ti = ((i + 2) as f64 / (i + 1) as f64).ln();
            let bi = (self.top[i] - self.top[i + 1]) as f64;
            num += ti * bi;
            den += ti * ti;
        }
        let s_hat = num / den;
        let eps_hat = s_hat - 1.0;
        let v = row.vocab() as f64;
        let k = ((eps_hat * 2f64.powf(self.mu)) / (1.0 - v.powf(-eps_hat))).powf(1.0 / s_hat);
        let k = if k.is_finite() {
            (k as usize).clamp(1, n.max(1))
        } else {
            n.max(1)
        };
        if k < n {
            let t = row.kth_largest(k);
            row.retain_ge(t);
        }
        self.last.record(row);
        Ok(())
    }
    fn accept(&mut self, token: u32) {
        if let Some(s) = self.last.surprise(token) {
            self.mu -= self.eta * (s - self.tau);
        }
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
    }
    fn snapshot(&self) -> StageState {
        StageState::Mirostat { mu: self.mu }
    }
    fn restore(&mut self, state: &StageState) -> Result<()> {
        self.mu = restore_mu(self.name(), state)?;
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
