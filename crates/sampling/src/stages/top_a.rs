//! `top_a`: remove tokens with `p < a · max(p)²`.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// Removes `p < a·p_max²`; in logits `z < ln a + 2·max(z) − lse`.
#[derive(Debug, Clone)]
pub struct TopA {
    /// The factor a in [0, 1].
    pub a: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

impl TopA {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "top_a";

    /// Reads `{top_a ∈ [0, 1], min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let a = p.f64_checked(
            "top_a",
            None,
            |v| (0.0..=1.0).contains(&v),
            "must be in [0, 1]",
        )?;
        Ok(Self {
            a,
            min_keep: p.min_keep()?,
        })
    }
}

impl Stage for TopA {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.a <= 0.0 {
            return Ok(());
        }
        let m = row.max() as f64;
        let lse = row.lse();
        let t = (self.a.ln() + 2.0 * m - lse) as f32;
        let t = row.with_min_keep(t, self.min_keep);
        row.retain_ge(t);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
