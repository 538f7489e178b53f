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
    /// Reads `{n > 0}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let n = p.f64_checked("n", None, |v| v > 0.0 && v.is_finite(), "must be > 0 and finite")?;
        Ok(Self { n })
    }
}

/// `(mean, population standard deviation)` of the finite values, in f64.
pub(crate) fn finite_mean_std(xs: &[f32]) -> (f64, f64) {
    let (mut n, mut s) = (0usize, 0.0f64);
    for &v in xs {
        if v.is_finite() {
            n += 1;
            s += v as f64;
        }
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = s / n as f64;
    let var = xs.iter().filter(|v| v.is_finite()).map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    (mean, var.sqrt())
}

impl Stage for TopNSigma {
    fn name(&self) -> &'static str {
        "top_n_sigma"
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if row.values().len() <= 1 {
            return Ok(());
        }
        let (_, sd) = finite_mean_std(row.values());
        let t = row.max() as f64 - self.n * sd;
        row.retain_ge(t as f32);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
