//! One generation's decoding state: its sampler, token history, streamed text with stop strings,
//! limits and, once it ends, why — everything a decoding loop keeps per sequence, apart from the
//! model's KV cache.

use std::ops::Range;

use adasamp_sampling::{Context, Distribution, Pipeline, Sample, SequenceSampler};
use serde::{Deserialize, Serialize};

use crate::error::{bad_request, Result};
use crate::model::ModelInfo;
use crate::stop::StopMatcher;
use crate::stream::TokenStream;
use crate::tokenizer::TextTokenizer;

/// One generation to run.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The prompt, tokenized (chat template already applied).
    pub prompt: Vec<u32>,
    /// Sampling pipeline.
    pub pipeline: Pipeline,
    /// Seed of this generation's sampler.
    pub seed: u64,
    /// Token limit for the generated part.
    pub max_new_tokens: usize,
    /// Stop strings (the generation ends before the first occurrence; empty ones are ignored).
    pub stop: Vec<String>,
    /// Report the top-k tokens of each step's final distribution (0 = only the chosen token).
    pub logprobs: usize,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token was sampled.
    Eos,
    /// A stop string appeared.
    Stop,
    /// The token limit (or the model's context length) was reached.
    Length,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (EOS included).
    pub completion_tokens: usize,
    /// Sum of both.
    pub total_tokens: usize,
}

/// A finished generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// Generated text (up to, not including, a stop string or EOS).
    pub text: String,
    /// Generated token ids (EOS included when sampled).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Per step: the chosen token's probability and the top tokens (when requested).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Sample>,
}

/// What one decoded token did to a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// The chosen token.
    pub token: u32,
    /// The range of [`Sequence::text`] released by it (empty while text is held back: an
    /// incomplete character, or a tail that may grow into a stop string).
    pub text: Range<usize>,
    /// Set when the sequence ended with this token.
    pub finished: Option<FinishReason>,
}

/// The decoding state of one sequence.
///
/// Its history is the prompt followed by the generated tokens; the last generated token is not
/// yet in the model's KV cache until a decoding loop feeds it. The sequence ends at an
/// end-of-sequence token, a stop string, `max_new_tokens`, or when its history fills the
/// model's context length (`max_seq_len`: no further token could be fed).
#[derive(Debug, Clone)]
pub struct Sequence {
    sampler: SequenceSampler,
    history: Vec<u32>,
    prompt_len: usize,
    detok: TokenStream,
    stop: StopMatcher,
    max_new_tokens: usize,
    max_len: usize,
    want_logprobs: bool,
    logprobs: Vec<Sample>,
    finished: Option<FinishReason>,
}

impl Sequence {
    /// The state of `request` on a model described by `info`. Errors: an empty prompt, a token
    /// outside the vocabulary, a prompt longer than the context length.
    pub fn new(request: GenerationRequest, info: &ModelInfo) -> Result<Self> {
        let vocab = info.vocab_size;
        if request.prompt.is_empty() {
            return Err(bad_request(
                "prompt",
                "[]",
                "empty: nothing to condition on",
            ));
        }
        if let Some(&bad) = request.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(bad_request(
                "prompt",
                format!("token {bad}"),
                format!("outside the vocabulary of {vocab}"),
            ));
        }
        if request.prompt.len() > info.max_seq_len {
            return Err(bad_request(
                "prompt",
                format!("{} tokens", request.prompt.len()),
                format!(
                    "longer than the maximum sequence length {}",
                    info.max_seq_len
                ),
            ));
        }
        let finished = (request.max_new_tokens == 0).then_some(FinishReason::Length);
        Ok(Self {
            sampler: SequenceSampler::new(request.pipeline, request.seed, 0, request.logprobs),
            prompt_len: request.prompt.len(),
            history: request.prompt,
            detok: TokenStream::default(),
            stop: StopMatcher::new(&request.stop),
            max_new_tokens: request.max_new_tokens,
            max_len: info.max_seq_len,
            want_logprobs: request.logprobs > 0,
            logprobs: Vec::new(),
            finished,
        })
    }

    /// The prompt followed by the generated tokens.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// The prompt.
    pub fn prompt(&self) -> &[u32] {
        &self.history[..self.prompt_len]
    }

    /// The generated tokens (EOS included when sampled).
    pub fn generated(&self) -> &[u32] {
        &self.history[self.prompt_len..]
    }

    /// The generated text so far (cut before a stop string), including text not yet released.
    pub fn text(&self) -> &str {
        self.stop.text()
    }

    /// Why the sequence ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finished
    }

    /// Token counts so far.
    pub fn usage(&self) -> Usage {
        let completion = self.history.len() - self.prompt_len;
        Usage {
            prompt_tokens: self.prompt_len,
            completion_tokens: completion,
            total_tokens: self.history.len(),
        }
    }

    /// Per generated token so far (when logprobs were requested): the chosen token's
    /// probability and the final distribution's top tokens.
    pub fn logprobs(&self) -> &[Sample] {
        &self.logprobs
    }

    /// The sampler (pipeline, RNG).
    pub fn sampler(&self) -> &SequenceSampler {
        &self.sampler
    }

    /// Samples the next token from `logits` (the model's row for this sequence's last position;
    /// `row` names it in errors) and appends it: history, text, stop strings, limits. When the
    /// sequence ends, the text still held back is released too. An error (a row the pipeline
    /// empties, a token the tokenizer cannot decode) leaves the sequence unusable.
    pub fn decode(&mut self, logits: &[f32], row: usize, tok: &TextTokenizer) -> Result<Advance> {
        self.distribution(logits, row)?;
        let s = self.sampler.draw()?;
        self.push(s, tok)
    }

    /// The final distribution of `logits` (the model's row for this sequence's next position;
    /// `row` names it in errors) under the pipeline, in the context of the history so far.
    /// Stage state is read, not advanced; nothing is appended.
    pub fn distribution(&mut self, logits: &[f32], row: usize) -> Result<Distribution<'_>> {
        let ctx = Context::new(&self.history, self.prompt_len);
        Ok(self.sampler.distribution(logits, &ctx, row)?)
    }

    /// The next uniform in `[0, 1)` of the sequence's RNG (an accept/reject test).
    pub fn next_uniform(&mut self) -> f64 {
        self.sampler.next_uniform()
    }

    /// Draws a token from the last [`Sequence::distribution`] with the sequence's RNG and
    /// appends it, as [`Sequence::decode`] does.
    pub fn draw(&mut self, tok: &TextTokenizer) -> Result<Advance> {
        let s = self.sampler.draw()?;
        self.push(s, tok)
    }

    /// Appends `token`, chosen elsewhere from the last [`Sequence::distribution`] (an accepted
    /// draft token, a residual draw), exactly as if it had been drawn: stateful stages, history,
    /// text, stop strings, limits. Error: a token that distribution gives probability 0.
    pub fn commit(&mut self, token: u32, tok: &TextTokenizer) -> Result<Advance> {
        let s = self.sampler.sample_token(token)?;
        self.push(s, tok)
    }

    /// How many more tokens the sequence may generate (token limit and context length); 0
    /// once it has ended.
    pub fn remaining(&self) -> usize {
        if self.finished.is_some() {
            return 0;
        }
        let generated = self.history.len() - self.prompt_len;
        self.max_new_tokens
            .saturating_sub(generated)
            .min(self.max_len.saturating_sub(self.history.len()))
    }

    /// Appends the sampled `s`: stateful stages observe it, then history, text, stop strings,
    /// limits.
    fn push(&mut self, s: Sample, tok: &TextTokenizer) -> Result<Advance> {
        self.sampler.accept(s.token);
        let token = s.token;
        if self.want_logprobs {
            self.logprobs.push(s);
        }
        self.history.push(token);
        let before = self.stop.released();
        let finished = self.append_text(token, tok)?;
        if let Some(reason) = finished {
            self.end(reason, tok)?;
        }
        Ok(Advance {
            token,
            text: before..self.stop.released(),
            finished: self.finished,
        })
    }

    /// Streams `token`'s text and returns why the sequence ends with it, if it does.
    fn append_text(&mut self, token: u32, tok: &TextTokenizer) -> Result<Option<FinishReason>> {
        if tok.eos_ids().contains(&token) {
            return Ok(Some(FinishReason::Eos));
        }
        if let Some(piece) = self.detok.push(tok, token)? {
            self.stop.push(&piece);
            if self.stop.stopped() {
                return Ok(Some(FinishReason::Stop));
            }
        }
        if self.history.len() - self.prompt_len >= self.max_new_tokens
            || self.history.len() >= self.max_len
        {
            return Ok(Some(FinishReason::Length));
        }
        Ok(None)
    }

    /// Marks the sequence ended and releases the text held back: an incomplete character (as
    /// U+FFFD) and a tail that never grew into a stop string.
    fn end(&mut self, reason: FinishReason, tok: &TextTokenizer) -> Result<()> {
        if reason != FinishReason::Stop {
            if let Some(rest) = self.detok.finish(tok)? {
                self.stop.push(&rest);
            }
            self.stop.finish();
        }
        self.finished = Some(if self.stop.stopped() {
            FinishReason::Stop
        } else {
            reason
        });
        Ok(())
    }

    /// The finished generation (call once [`Sequence::finish_reason`] is set; an unfinished
    /// sequence reports [`FinishReason::Length`] with the text released so far).
    pub fn into_generation(self) -> Generation {
        let usage = self.usage();
        let released = self.stop.released();
        let mut text = self.stop.into_text();
        text.truncate(released);
        let mut history = self.history;
        Generation {
            text,
            tokens: history.split_off(self.prompt_len),
            finish_reason: self.finished.unwrap_or(FinishReason::Length),
            usage,
            logprobs: self.logprobs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backend, Capabilities};
    use crate::tokenizer::tests::tiny_gguf;
    use adasamp_sampling::{PipelineSpec, StageSpec};

    fn tok() -> TextTokenizer {
        TextTokenizer::from_gguf(&tiny_gguf("smollm")).unwrap()
    }

    fn info(vocab: usize, max_seq_len: usize) -> ModelInfo {
        ModelInfo {
            source: "test".into(),
            arch: "llama".into(),
            backend: Backend::Candle,
            vocab_size: vocab,
            hidden_size: 8,
            n_layers: 1,
            max_seq_len,
            capabilities: Capabilities::default(),
        }
    }

    fn request(max_new_tokens: usize, stop: &[&str]) -> GenerationRequest {
        GenerationRequest {
            prompt: vec![4, 5],
            pipeline: Pipeline::from_spec(PipelineSpec {
                name: "greedy".into(),
                weight: 1.0,
                processors: vec![StageSpec::new("greedy", &[])],
            })
            .unwrap(),
            seed: 0,
            max_new_tokens,
            stop: stop.iter().map(|s| s.to_string()).collect(),
            logprobs: 0,
        }
    }

    /// A logits row whose arg-max is `token`.
    fn row_for(token: u32, vocab: usize) -> Vec<f32> {
        let mut r = vec![0.0; vocab];
        r[token as usize] = 10.0;
        r
    }

    /// Decodes `tokens` greedily; returns the text released at each step and the sequence.
    fn decode_all(
        mut seq: Sequence,
        tokens: &[&str],
        tok: &TextTokenizer,
    ) -> (Vec<String>, Sequence) {
        let vocab = tok.vocab_size();
        let mut out = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let id = tok.token_to_id(t).unwrap();
            let adv = seq.decode(&row_for(id, vocab), i, tok).unwrap();
            assert_eq!(adv.token, id);
            out.push(seq.text()[adv.text].to_string());
            if adv.finished.is_some() {
                break;
            }
        }
        (out, seq)
    }

    #[test]
    fn a_stop_string_split_across_tokens_is_never_released() {
        let tok = tok();
        let seq = Sequence::new(request(10, &["llo"]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["he", "ll", "o", "Ġworld"], &tok);
        assert_eq!(out, ["he", "", ""]);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Stop));
        let g = seq.into_generation();
        assert_eq!(g.text, "he");
        assert_eq!(g.tokens.len(), 3);
        assert_eq!(g.usage.completion_tokens, 3);
    }

    #[test]
    fn a_character_split_across_tokens_comes_out_whole() {
        let tok = tok();
        let seq = Sequence::new(request(10, &[]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, _) = decode_all(seq, &["h", "Ã", "©", "Ġw"], &tok);
        assert_eq!(out, ["h", "", "é", " w"]);
    }

    #[test]
    fn held_back_text_is_released_when_the_sequence_ends() {
        let tok = tok();
        // A stop-string prefix is held back, then released at EOS.
        let seq = Sequence::new(request(5, &[" wox"]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["hello", "Ġwo", "<|im_end|>"], &tok);
        assert_eq!(out, ["hello", "", " wo"]);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Eos));
        assert_eq!(seq.into_generation().text, "hello wo");
        // … and at the token limit, in the step that reaches it.
        let seq = Sequence::new(request(2, &[" wox"]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["hello", "Ġwo"], &tok);
        assert_eq!(out, ["hello", " wo"]);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Length));
        // An incomplete character at EOS comes out as U+FFFD.
        let seq = Sequence::new(request(5, &[]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["Ã", "<|im_end|>"], &tok);
        assert_eq!(out, ["", "\u{FFFD}"]);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Eos));
        let g = seq.into_generation();
        assert_eq!(g.text, "\u{FFFD}");
        assert_eq!(g.tokens, [tok.token_to_id("Ã").unwrap(), 2]);
    }

    #[test]
    fn eos_ends_without_text_and_empty_stops_are_ignored() {
        let tok = tok();
        let seq = Sequence::new(request(5, &[""]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["hello", "<|im_end|>", "hello"], &tok);
        assert_eq!(out, ["hello", ""]);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Eos));
        assert_eq!(seq.generated(), [17, 2]);
        assert_eq!(seq.into_generation().text, "hello");
    }

    #[test]
    fn limits_token_count_and_context_length() {
        let tok = tok();
        let seq = Sequence::new(request(2, &[]), &info(tok.vocab_size(), 64)).unwrap();
        let (out, seq) = decode_all(seq, &["h", "e", "l"], &tok);
        assert_eq!(out.len(), 2);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Length));
        // Prompt of 2 in a context of 3: one token, then the history fills the context.
        let seq = Sequence::new(request(10, &[]), &info(tok.vocab_size(), 3)).unwrap();
        let (out, seq) = decode_all(seq, &["h", "e"], &tok);
        assert_eq!(out.len(), 1);
        assert_eq!(seq.finish_reason(), Some(FinishReason::Length));
        assert_eq!(seq.usage().total_tokens, 3);
        // No tokens asked for: finished before any.
        let seq = Sequence::new(request(0, &[]), &info(tok.vocab_size(), 64)).unwrap();
        assert_eq!(seq.finish_reason(), Some(FinishReason::Length));
    }

    #[test]
    fn bad_requests_are_refused() {
        let i = info(26, 4);
        let mut r = request(1, &[]);
        r.prompt.clear();
        let err = Sequence::new(r, &i).unwrap_err().to_string();
        assert!(err.contains("prompt") && err.contains("empty"), "{err}");
        let mut r = request(1, &[]);
        r.prompt = vec![3, 26];
        let err = Sequence::new(r, &i).unwrap_err().to_string();
        assert!(err.contains("26") && err.contains("vocabulary"), "{err}");
        let mut r = request(1, &[]);
        r.prompt = vec![3; 5];
        let err = Sequence::new(r, &i).unwrap_err().to_string();
        assert!(
            err.contains("prompt = 5 tokens") && err.contains("length 4"),
            "{err}"
        );
    }

    #[test]
    fn a_row_nothing_can_be_drawn_from_is_an_error() {
        let tok = tok();
        let mut r = request(3, &[]);
        r.pipeline = Pipeline::from_spec(PipelineSpec {
            name: "none".into(),
            weight: 1.0,
            processors: vec![StageSpec::new("top_k", &[("top_k", 1.0)])],
        })
        .unwrap();
        let mut seq = Sequence::new(r, &info(tok.vocab_size(), 64)).unwrap();
        let all_neg = vec![f32::NEG_INFINITY; tok.vocab_size()];
        assert!(seq.decode(&all_neg, 7, &tok).is_err());
    }
}
