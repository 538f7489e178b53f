//! `typical` (locally typical sampling).

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// HF `TypicalLogitsWarper`: score `s = |−lp − H|`; sorted ascending by score, keep the shortest
/// prefix whose cumulative probability reaches `mass` (the crossing token kept, and every token
/// whose score ties with it). At least `min_tokens_to_keep` of the *most typical* tokens stay
/// (HF's rule for this stage).
#[derive(Debug, Clone)]
pub struct Typical {
    /// Typical mass in (0, 1].
    pub mass: f64,
    /// Minimum number of tokens kept.
    pub min_keep: usize,
}

impl Typical {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "typical";

    /// Reads `{mass ∈ (0, 1], min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let mass = p.f64_checked("mass", None, |v| v > 0.0 && v <= 1.0, "must be in (0, 1]")?;
        Ok(Self {
            mass,
            min_keep: p.min_keep()?,
        })
    }
}

impl Stage for Typical {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        let (lse, h) = row.lse_entropy();
        // −lp − H = (lse − H) − z: one f32 rounding of a constant computed in f64.
        let c = (lse - h) as f32;
        let (_, z) = row.exp_scratch();
        // Keys: larger is more typical, key = −|c − z|; removed tokens get −inf.
        let mut keys = row.take_keys();
        keys.clear();
        keys.extend(row.values().iter().map(|&v| {
            if v == f32::NEG_INFINITY {
                v
            } else {
                -(c - v).abs()
            }
        }));
        let mut t = row.key_threshold(&keys, self.mass * z, z);
        if self.min_keep > 1 {
            let kth = crate::select::kth_largest(&keys, self.min_keep, &mut row.select);
            t = t.min(kth);
        }
        row.retain_by_key(&keys, t);
        row.put_keys(keys);
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
