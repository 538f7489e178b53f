//! What a pairwise judge is: something that, given comparisons (a question and two answers in
//! the order shown), returns the probabilities of its first token being `A` or `B`.
//! Implemented by a local model on the engine ([`super::local`]) and an OpenAI-compatible
//! endpoint ([`super::endpoint`]).

use super::outcome::LetterProbs;
use crate::error::{CurateError, Result};

/// How many top log-probabilities of the judge's one generated token are read (SPEC 4: top 15).
pub const TOP_LOGPROBS: usize = 15;

/// One comparison: the user's question and two answers, `answer_a` shown first (as `A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison<'a> {
    /// The user's question.
    pub question: &'a str,
    /// The answer shown as `A`.
    pub answer_a: &'a str,
    /// The answer shown as `B`.
    pub answer_b: &'a str,
}

/// A pairwise judge.
pub trait Judge {
    /// What judges, for reports (a model file, an endpoint and model name).
    fn describe(&self) -> String;

    /// Judges every comparison, in order: the letter probabilities of its reply's first token,
    /// or why that comparison could not be judged. An `Err` of the whole call means the judge
    /// itself failed (nothing was judged).
    fn judge(
        &mut self,
        comparisons: &[Comparison<'_>],
    ) -> Result<Vec<Result<LetterProbs, CurateError>>>;

    /// Anything the stage report should say about this judge's work so far (e.g. answers cut
    /// to fit its context).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}
