//! `top_n_sigma`: keep logits within n standard deviations of the maximum.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// llama.cpp `top_n_sigma`: keep `z ≥ max(z) − n·σ(z)`, σ the population standard deviation of
/// the finite logits. Invariant to temperature.
#[derive(Debug, Clone)]
pub struct TopNSigma {
    /// n > 0.
    pub n: f64,
}

impl TopNSigma {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "top_n_sigma";

    /// Reads `{n > 0}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let n = p.f64_checked(
            "n",
            None,
            |v| v > 0.0 && v.is_finite(),
            "must be > 0 and finite",
        )?;
        Ok(Self { n })
    }
}

impl Stage for TopNSigma {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if row.values().len() <= 1 {
            return Ok(());
        }
        let (_, sd) = crate::math::finite_mean_std(row.values());
        let t = row.max() as f64 - self.n * sd;
        row.retain_ge(t as f32);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
