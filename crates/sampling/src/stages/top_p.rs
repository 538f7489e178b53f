//! `top_p` (nucleus): keep the smallest most-likely set holding probability `top_p`.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// HF `TopPLogitsWarper`: sorted ascending, tokens whose cumulative mass is `≤ 1 − top_p` are
/// removed — i.e. a token is kept iff the mass of the tokens above it is `< top_p` (the token that
/// crosses `top_p` is kept; tokens tied with it are kept too). `top_p = 1` is a no-op.
#[derive(Debug, Clone)]
pub struct TopP {
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

impl TopP {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "top_p";

    /// Reads `{top_p ∈ (0, 1], min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let top_p = p.f64_checked("top_p", None, |v| v > 0.0 && v <= 1.0, "must be in (0, 1]")?;
        Ok(Self {
            top_p,
            min_keep: p.min_keep()?,
        })
    }
}

impl Stage for TopP {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.top_p >= 1.0 {
            return Ok(());
        }
        let t = row.mass_threshold(self.top_p);
        let t = row.with_min_keep(t, self.min_keep);
        row.retain_ge(t);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
