//! The stage interface every sampling heuristic implements (after llama.cpp's sampler chain:
//! name / apply / accept / reset / clone), plus snapshot / restore of a stage's state.

use crate::error::{Result, SamplingError};
use crate::row::Row;

/// What a stage may know about the sequence being decoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Token history: the prompt followed by the tokens generated so far.
    pub history: &'a [u32],
    /// How many leading tokens of `history` are the prompt.
    pub prompt_len: usize,
}

impl<'a> Context<'a> {
    /// A context with a history and the prompt length within it.
    pub fn new(history: &'a [u32], prompt_len: usize) -> Self {
        Self {
            history,
            prompt_len: prompt_len.min(history.len()),
        }
    }

    /// The generated tokens (history after the prompt).
    pub fn generated(&self) -> &'a [u32] {
        &self.history[self.prompt_len.min(self.history.len())..]
    }

    /// The last `n` tokens of the history (`None` = all of it).
    pub fn window(&self, last_n: Option<usize>) -> &'a [u32] {
        match last_n {
            None => self.history,
            Some(n) => &self.history[self.history.len().saturating_sub(n)..],
        }
    }
}

/// The state a stateful stage carries from one token to the next (what [`Stage::snapshot`]
/// saves): small plain data, never a row buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    /// The stage keeps no state between tokens.
    Stateless,
    /// Mirostat's running target surprise μ (bits).
    Mirostat {
        /// μ.
        mu: f64,
    },
    /// A stage's own random stream: its position and the uniform held for the next step.
    Rng {
        /// Word position of the ChaCha20 stream.
        word_pos: u128,
        /// The uniform the next `apply` uses.
        pending: f64,
        /// Whether an `apply` since the last `accept` used `pending`.
        used: bool,
    },
    /// A nested pipeline: its stages' states, in order.
    Pipeline(Vec<StageState>),
}

impl StageState {
    /// The state's kind, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Stateless => "stateless",
            Self::Mirostat { .. } => "mirostat",
            Self::Rng { .. } => "rng",
            Self::Pipeline(_) => "pipeline",
        }
    }
}

/// The error for restoring `got` into stage `stage`, which saves states of kind `expected`.
pub(crate) fn state_mismatch(stage: &str, expected: &str, got: &StageState) -> SamplingError {
    SamplingError::StateMismatch {
        stage: stage.to_string(),
        reason: format!(
            "expected a {expected} state, got a {} state (saved from another pipeline?)",
            got.kind()
        ),
    }
}

/// One sampling stage: transforms a logits row in place (removing tokens by setting them to
/// `-inf`), optionally observing the chosen token afterwards.
///
/// `apply` reads the stage's state but does not advance it; `accept` does. So applying twice to
/// the same row and context gives the same result, and [`Stage::snapshot`] taken between tokens
/// captures everything the next tokens depend on.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// The stage's name as written in pipeline files.
    fn name(&self) -> &'static str;
    /// Transforms the row. Removed tokens end as `-inf` (or leave a sparse row).
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()>;
    /// Observes the token that was finally sampled (stateful stages update here).
    fn accept(&mut self, _token: u32) {}
    /// Returns to the initial state for a new sequence.
    fn reset(&mut self) {}
    /// The state carried between tokens (default: [`StageState::Stateless`]).
    fn snapshot(&self) -> StageState {
        StageState::Stateless
    }
    /// Returns to a state saved by [`Stage::snapshot`] of this stage (or of a clone); a state of
    /// another kind is an error.
    fn restore(&mut self, state: &StageState) -> Result<()> {
        match state {
            StageState::Stateless => Ok(()),
            other => Err(state_mismatch(self.name(), "stateless", other)),
        }
    }
    /// A copy with the same parameters and state.
    fn clone_box(&self) -> Box<dyn Stage>;
}

impl Clone for Box<dyn Stage> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Checks that every token of `ids` lies inside the row's vocabulary.
pub(crate) fn check_ids(ids: &[u32], vocab: usize, what: &str) -> Result<()> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(&t) => Err(SamplingError::TokenOutOfRange {
            what: what.to_string(),
            token: t as u64,
            vocab,
        }),
        None => Ok(()),
    }
}
