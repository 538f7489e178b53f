//! Rule stages on specific tokens: `logit_bias`, `no_repeat_ngram`, `min_tokens`.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{check_ids, Context, Stage};

/// Adds a fixed bias to chosen tokens' logits (`-inf` bans a token).
#[derive(Debug, Clone)]
pub struct LogitBias {
    /// `(token, bias)` pairs.
    pub bias: Vec<(u32, f32)>,
}

impl LogitBias {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "logit_bias";

    /// Reads `{bias: {token_id: bias}}`; biases are finite (in f32) or `-inf`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let pairs = p.id_map("bias")?;
        if let Some((id, b)) = pairs
            .iter()
            .find(|(_, b)| *b != f64::NEG_INFINITY && !(*b as f32).is_finite())
        {
            return Err(p.invalid(
                "bias",
                format!("{{{id}: {b}}}"),
                "biases must be finite in f32 or -inf",
            ));
        }
        Ok(Self {
            bias: pairs.into_iter().map(|(i, b)| (i, b as f32)).collect(),
        })
    }
}

impl Stage for LogitBias {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        for &(id, b) in &self.bias {
            check_ids(&[id], row.vocab(), "logit_bias")?;
            if let Some(v) = row.get_mut(id) {
                *v += b;
            }
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// HF `NoRepeatNGramLogitsProcessor`: bans every token that would complete an n-gram already
/// present in the history.
#[derive(Debug, Clone)]
pub struct NoRepeatNgram {
    /// n ≥ 1.
    pub n: usize,
}

impl NoRepeatNgram {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "no_repeat_ngram";

    /// Reads `{n ≥ 1}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let n = p.int_checked("n", None, |v| v >= 1, "must be an integer ≥ 1")? as usize;
        Ok(Self { n })
    }
}

impl Stage for NoRepeatNgram {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        let h = ctx.history;
        check_ids(h, row.vocab(), "token history")?;
        let n = self.n;
        if h.len() < n {
            return Ok(());
        }
        let prefix = &h[h.len() + 1 - n..];
        for start in 0..=h.len() - n {
            if h[start..start + n - 1] == *prefix {
                if let Some(v) = row.get_mut(h[start + n - 1]) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// Suppresses the end-of-sequence tokens until `min_tokens` tokens have been generated.
#[derive(Debug, Clone)]
pub struct MinTokens {
    /// Minimum number of generated tokens.
    pub min_tokens: usize,
    /// End-of-sequence token ids.
    pub eos_ids: Vec<u32>,
}

impl MinTokens {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "min_tokens";

    /// Reads `{min_tokens ≥ 0, eos_ids (non-empty)}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let min_tokens =
            p.int_checked("min_tokens", None, |v| v >= 0, "must be an integer ≥ 0")? as usize;
        let eos_ids = p.ids("eos_ids")?;
        if eos_ids.is_empty() {
            return Err(p.invalid(
                "eos_ids",
                "[]",
                "at least one end-of-sequence token id is required",
            ));
        }
        Ok(Self {
            min_tokens,
            eos_ids,
        })
    }
}

impl Stage for MinTokens {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        check_ids(&self.eos_ids, row.vocab(), "min_tokens eos_ids")?;
        if ctx.generated().len() < self.min_tokens {
            for &id in &self.eos_ids {
                if let Some(v) = row.get_mut(id) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
