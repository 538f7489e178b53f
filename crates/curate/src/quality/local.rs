//! A judge running on the engine: the judging prompt goes through the model's chat template as
//! one user turn, and one forward over it gives the final row's log-softmax, whose top
//! [`TOP_LOGPROBS`] tokens are read (the scheduler runs every comparison of a call as one
//! batch, `max_new_tokens` 1, temperature 1 — an empty pipeline — so the reported top tokens
//! are those of the model's raw next-token distribution).
//!
//! The scheduler runs with its prefix cache ([`generate_with`]): every judging prompt starts
//! with the same template and instructions, and the comparisons of one question share the
//! question too, so most of a prompt is already in the KV cache of a comparison judged in the
//! step before (about half the prompt tokens of a demo tournament round). The verdicts are the
//! same as from whole prompts (the engine's batch invariance).
//!
//! Which tokens are the letters: each top token is decoded alone and counts for `A` (or `B`)
//! when its text, trimmed, is exactly that letter ([`verdict_letter`]): after SmolLM2's
//! `<|im_start|>assistant\n` the reply's first token is `A` (id 49) or `B` (id 50), and the
//! word-initial forms ` A` / ` B` count too if the model puts them in its top tokens.
//!
//! A prompt longer than the model's context has both answers cut (their beginnings kept, the
//! same cut in both orders) until it fits; the report counts such comparisons.
//!
//! [`verdict_letter`]: super::outcome::verdict_letter

use std::time::Instant;

use adasamp_engine::chat::ChatMessage;
use adasamp_engine::{
    chat_prompt_tokens, generate_with, GenerationRequest, LoadedModel, SchedulerOptions,
};
use adasamp_sampling::{Pipeline, PipelineSpec};

use super::judge::{Comparison, Judge, TOP_LOGPROBS};
use super::outcome::LetterProbs;
use super::template;
use crate::error::{CurateError, Result};

/// Tokens kept free below the context length when answers are cut (token boundaries shift a
/// little when cut text is re-tokenized).
const CUT_SLACK: usize = 8;

/// A judge model loaded on the engine.
pub struct LocalJudge {
    lm: LoadedModel,
    cut: usize,
    judged: usize,
    /// Prompt tokens of the comparisons, those run (the rest came from the prefix cache) and
    /// the time the runs took.
    prompt_tokens: usize,
    prefilled: usize,
    seconds: f64,
}

impl std::fmt::Debug for LocalJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalJudge")
            .field("model", &self.lm.path)
            .finish()
    }
}

impl LocalJudge {
    /// A judge on `lm` (its batch size is the model's number of sequences).
    pub fn new(lm: LoadedModel) -> Self {
        Self {
            lm,
            cut: 0,
            judged: 0,
            prompt_tokens: 0,
            prefilled: 0,
            seconds: 0.0,
        }
    }

    /// The judge model.
    pub fn model(&self) -> &LoadedModel {
        &self.lm
    }

    /// The judge model, given back.
    pub fn into_model(self) -> LoadedModel {
        self.lm
    }

    /// Longest prompt the model takes.
    fn max_prompt_tokens(&self) -> usize {
        self.lm.model.info().max_seq_len.saturating_sub(1).max(1)
    }

    /// The judging prompt through the chat template, tokenized.
    fn tokens(&self, answer_a: &str, answer_b: &str, question: &str) -> Result<Vec<u32>> {
        let text = template::render(question, answer_a, answer_b);
        Ok(chat_prompt_tokens(
            &self.lm.tokenizer,
            self.lm.chat.as_ref(),
            &[ChatMessage::user(text)],
        )?)
    }

    /// The comparison's prompt tokens, with both answers cut to fit the context when needed;
    /// also whether they were cut.
    pub fn prompt_tokens(&self, c: &Comparison<'_>) -> Result<(Vec<u32>, bool)> {
        let limit = self.max_prompt_tokens();
        let full = self.tokens(c.answer_a, c.answer_b, c.question)?;
        if full.len() <= limit {
            return Ok((full, false));
        }
        let tok = &self.lm.tokenizer;
        let overhead = self.tokens("", "", c.question)?.len();
        let (ta, tb) = (
            tok.encode(c.answer_a, false)?,
            tok.encode(c.answer_b, false)?,
        );
        let mut avail = limit.saturating_sub(overhead + CUT_SLACK);
        while avail >= 2 {
            let (ka, kb) = split_budget(avail, ta.len(), tb.len());
            let a = tok.decode(&ta[..ka], false)?;
            let b = tok.decode(&tb[..kb], false)?;
            let t = self.tokens(&a, &b, c.question)?;
            if t.len() <= limit {
                return Ok((t, true));
            }
            avail = avail * 9 / 10;
        }
        Err(CurateError::BadParameter {
            name: "judge context".into(),
            value: format!("{} tokens", self.lm.model.info().max_seq_len),
            message: format!(
                "the judging prompt needs {overhead} tokens before any answer text: the question is too long for the judge"
            ),
        })
    }
}

/// Token budgets `(for a, for b)` sharing `avail` between answers of `la` and `lb` tokens: a
/// short answer keeps all of it and leaves the rest to the other; two long ones get half each.
/// Symmetric: swapping the answers swaps the budgets.
pub fn split_budget(avail: usize, la: usize, lb: usize) -> (usize, usize) {
    let half = avail / 2;
    if la <= half {
        (la, lb.min(avail - la))
    } else if lb <= half {
        (la.min(avail - lb), lb)
    } else {
        (half, half)
    }
}

impl Judge for LocalJudge {
    fn describe(&self) -> String {
        format!("{} (local)", self.lm.path.display())
    }

    fn judge(
        &mut self,
        comparisons: &[Comparison<'_>],
    ) -> Result<Vec<Result<LetterProbs, CurateError>>> {
        let pipeline = Pipeline::from_spec(PipelineSpec {
            name: "judge".into(),
            weight: 1.0,
            processors: Vec::new(),
        })
        .map_err(adasamp_engine::EngineError::from)?;
        let mut out: Vec<Option<Result<LetterProbs, CurateError>>> =
            Vec::with_capacity(comparisons.len());
        let mut requests = Vec::new();
        let mut slots = Vec::new();
        for c in comparisons {
            match self.prompt_tokens(c) {
                Ok((prompt, cut)) => {
                    self.cut += usize::from(cut);
                    slots.push(out.len());
                    out.push(None);
                    requests.push(GenerationRequest {
                        prompt,
                        pipeline: pipeline.clone(),
                        seed: 0,
                        max_new_tokens: 1,
                        stop: Vec::new(),
                        logprobs: TOP_LOGPROBS,
                    });
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let tok = &self.lm.tokenizer;
        self.prompt_tokens += requests.iter().map(|r| r.prompt.len()).sum::<usize>();
        let started = Instant::now();
        let options = SchedulerOptions {
            prefix_cache: true,
            prefill_budget: None,
        };
        let (gens, timing) = generate_with(
            self.lm.model.as_mut(),
            tok,
            requests,
            options,
            &mut |_, _| {},
        )?;
        self.seconds += started.elapsed().as_secs_f64();
        self.prefilled += timing.prefill_tokens;
        for (slot, g) in slots.into_iter().zip(gens) {
            let verdict = match g.logprobs.first() {
                None => Err(CurateError::BadParameter {
                    name: "judge reply".into(),
                    value: format!("{:?}", g.text),
                    message: "no log-probabilities for the first token".into(),
                }),
                Some(first) => {
                    let texts: Vec<(String, f64)> = first
                        .top
                        .iter()
                        .map(|t| Ok((tok.decode(&[t.id], false)?, f64::from(t.logprob))))
                        .collect::<Result<_>>()?;
                    LetterProbs::from_top(texts.iter().map(|(t, l)| (t.as_str(), *l))).map_err(
                        |e| CurateError::BadParameter {
                            name: "judge log-probability".into(),
                            value: e.logprob.to_string(),
                            message: e.to_string(),
                        },
                    )
                }
            };
            out[slot] = Some(verdict);
        }
        self.judged += comparisons.len();
        Ok(out
            .into_iter()
            .map(|v| {
                v.unwrap_or_else(|| {
                    Err(CurateError::BadParameter {
                        name: "judge".into(),
                        value: "(no reply)".into(),
                        message: "the engine returned fewer generations than requests".into(),
                    })
                })
            })
            .collect())
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "the judge ran {} of {} prompt tokens ({} from the prefix cache) in {:.1} s ({:.0} tokens run/s)",
            self.prefilled,
            self.prompt_tokens,
            self.prompt_tokens.saturating_sub(self.prefilled),
            self.seconds,
            self.prefilled as f64 / self.seconds.max(1e-9)
        )];
        if self.cut > 0 {
            notes.push(format!(
                "{} of {} judging prompts had both answers cut to fit the judge's context of {} tokens",
                self.cut,
                self.judged,
                self.lm.model.info().max_seq_len
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_share_what_is_available() {
        assert_eq!(split_budget(100, 10, 500), (10, 90));
        assert_eq!(split_budget(100, 500, 10), (90, 10));
        assert_eq!(split_budget(100, 300, 400), (50, 50));
        assert_eq!(split_budget(101, 300, 400), (50, 50));
        assert_eq!(split_budget(100, 50, 50), (50, 50));
        for (avail, la, lb) in [(7, 3, 9), (64, 0, 100), (10, 10, 10), (3, 1, 1)] {
            let (a, b) = split_budget(avail, la, lb);
            assert!(a <= la && b <= lb && a + b <= avail);
            assert_eq!(split_budget(avail, lb, la), (b, a));
        }
    }
}
