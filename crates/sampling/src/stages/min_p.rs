//! `min_p`: remove tokens less likely than a fraction of the most likely one.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// HF `MinPLogitsWarper`: remove `p < min_p · max(p)`, decided in logit space as
/// `z < max(z) + ln(min_p)` (no softmax).
#[derive(Debug, Clone)]
pub struct MinP {
    /// Relative threshold in [0, 1].
    pub min_p: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

impl MinP {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "min_p";

    /// Reads `{min_p ∈ [0, 1], min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let min_p = p.f64_checked(
            "min_p",
            None,
            |v| (0.0..=1.0).contains(&v),
            "must be in [0, 1]",
        )?;
        Ok(Self {
            min_p,
            min_keep: p.min_keep()?,
        })
    }
}

impl Stage for MinP {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.min_p <= 0.0 {
            return Ok(());
        }
        let t = row.max() + (self.min_p.ln() as f32);
        let t = row.with_min_keep(t, self.min_keep);
        row.retain_ge(t);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
