//! Penalties over a window of the token history: repetition (HF/CTRL), frequency and presence
//! (OpenAI).

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{check_ids, Context, Stage};

/// Counts of each distinct token of a window, reusing its buffer: `(token, count)` ascending.
#[derive(Debug, Clone, Default)]
struct TokenCounts {
    sorted: Vec<u32>,
    counts: Vec<(u32, u32)>,
}

impl TokenCounts {
    fn fill(&mut self, window: &[u32]) -> &[(u32, u32)] {
        self.sorted.clear();
        self.sorted.extend_from_slice(window);
        self.sorted.sort_unstable();
        self.counts.clear();
        for &t in &self.sorted {
            match self.counts.last_mut() {
                Some((id, c)) if *id == t => *c += 1,
                _ => self.counts.push((t, 1)),
            }
        }
        &self.counts
    }
}

/// Which penalty a [`Penalty`] stage applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PenaltyKind {
    /// Seen tokens: positive logits ÷ penalty, negative × penalty.
    Repetition,
    /// `z −= count · penalty`.
    Frequency,
    /// `z −= penalty` for every seen token.
    Presence,
}

impl PenaltyKind {
    /// The stage name of this penalty in pipeline files.
    pub const fn name(self) -> &'static str {
        match self {
            PenaltyKind::Repetition => "repetition_penalty",
            PenaltyKind::Frequency => "frequency_penalty",
            PenaltyKind::Presence => "presence_penalty",
        }
    }
}

/// A penalty on the tokens of the last `last_n` history tokens (prompt + generated).
#[derive(Debug, Clone)]
pub struct Penalty {
    /// The penalty kind.
    pub kind: PenaltyKind,
    /// Penalty strength.
    pub penalty: f32,
    /// Window (None = whole history).
    pub last_n: Option<usize>,
    counts: TokenCounts,
}

impl Penalty {
    /// Reads `{penalty, last_n (default -1 = whole history for repetition, 64 otherwise)}`;
    /// repetition penalty must be > 0, the others finite.
    pub fn from_params(kind: PenaltyKind, p: &mut ParamReader) -> Result<Self> {
        let penalty = match kind {
            PenaltyKind::Repetition => p.f32_checked(
                "penalty",
                None,
                |v| v > 0.0 && v.is_finite(),
                "must be > 0 and finite in f32",
            )?,
            _ => p.f32_checked("penalty", None, f32::is_finite, "must be finite in f32")?,
        };
        let last_n = p.last_n(if kind == PenaltyKind::Repetition {
            -1
        } else {
            64
        })?;
        Ok(Self {
            kind,
            penalty,
            last_n,
            counts: TokenCounts::default(),
        })
    }
}

impl Stage for Penalty {
    fn name(&self) -> &'static str {
        self.kind.name()
    }
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        if self.last_n == Some(0) {
            return Ok(());
        }
        let window = ctx.window(self.last_n);
        check_ids(window, row.vocab(), "token history")?;
        let (kind, pen) = (self.kind, self.penalty);
        for &(id, count) in self.counts.fill(window) {
            if let Some(z) = row.get_mut(id) {
                if *z == f32::NEG_INFINITY {
                    continue;
                }
                *z = match kind {
                    PenaltyKind::Repetition => {
                        if *z < 0.0 {
                            *z * pen
                        } else {
                            *z / pen
                        }
                    }
                    PenaltyKind::Frequency => *z - count as f32 * pen,
                    PenaltyKind::Presence => *z - pen,
                };
            }
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
