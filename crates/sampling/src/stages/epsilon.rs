//! `epsilon` and `eta` truncation: absolute probability floors.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// HF `EpsilonLogitsWarper`: remove `p < ε`, i.e. `z < lse + ln ε`.
#[derive(Debug, Clone)]
pub struct Epsilon {
    /// Probability floor in (0, 1).
    pub epsilon: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

fn read_epsilon(p: &mut ParamReader) -> Result<(f64, usize)> {
    let e = p.f64_checked("epsilon", None, |v| v > 0.0 && v < 1.0, "must be in (0, 1)")?;
    Ok((e, p.min_keep()?))
}

impl Epsilon {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "epsilon";

    /// Reads `{epsilon ∈ (0, 1), min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let (epsilon, min_keep) = read_epsilon(p)?;
        Ok(Self { epsilon, min_keep })
    }
}

impl Stage for Epsilon {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        let t = (row.lse() + self.epsilon.ln()) as f32;
        let t = row.with_min_keep(t, self.min_keep);
        row.retain_ge(t);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// HF `EtaLogitsWarper`: `η = min(ε, √ε · exp(−H))`; remove `p < η`.
#[derive(Debug, Clone)]
pub struct Eta {
    /// ε in (0, 1).
    pub epsilon: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

impl Eta {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "eta";

    /// Reads `{epsilon ∈ (0, 1), min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let (epsilon, min_keep) = read_epsilon(p)?;
        Ok(Self { epsilon, min_keep })
    }
}

impl Stage for Eta {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        let (lse, h) = row.lse_entropy();
        let eta = self.epsilon.min(self.epsilon.sqrt() * (-h).exp());
        let t = row.with_min_keep((lse + eta.ln()) as f32, self.min_keep);
        row.retain_ge(t);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
