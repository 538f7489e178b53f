//! `top_k`: keep the k most likely tokens (ties at the boundary kept).

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// Keeps tokens whose logit is `≥` the k-th largest logit, `k = max(top_k, min_tokens_to_keep)`
/// capped at the vocabulary (HF `TopKLogitsWarper`).
#[derive(Debug, Clone)]
pub struct TopK {
    /// Effective k.
    pub k: usize,
}

impl TopK {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "top_k";

    /// Reads `{top_k ≥ 1, min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let k = p.int_checked("top_k", None, |v| v >= 1, "must be an integer ≥ 1")? as usize;
        let keep = p.min_keep()?;
        Ok(Self { k: k.max(keep) })
    }
}

impl Stage for TopK {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.k < row.values().len() {
            let t = row.kth_largest(self.k);
            row.retain_ge(t);
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
