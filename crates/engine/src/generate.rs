//! The decoding loop: prefill a batch of prompts, then decode step by step, sampling every token
//! with adasamp's sampling core, until EOS, a stop string or the token limit.

use std::time::{Duration, Instant};

use adasamp_sampling::{Context, Pipeline, Sample, SequenceSampler};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Feed, LanguageModel};
use crate::tokenizer::{TextTokenizer, TokenStream};

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
    /// Stop strings (the generation ends before the first occurrence).
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
    /// The token limit was reached.
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

/// Time spent, for throughput reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Prefill (prompt processing) time.
    pub prefill: Duration,
    /// Decode forward passes.
    pub decode: Duration,
    /// Sampling (pipelines + draws).
    pub sampling: Duration,
    /// Prompt tokens processed.
    pub prefill_tokens: usize,
    /// Tokens decoded (forward passes × batch).
    pub decode_tokens: usize,
}

struct Active {
    seq: usize,
    sampler: SequenceSampler,
    history: Vec<u32>,
    prompt_len: usize,
    stream: TokenStream,
    text: String,
    emitted: usize,
    gen: Vec<u32>,
    logprobs: Vec<Sample>,
    want_logprobs: bool,
    max_new: usize,
    stop: Vec<String>,
    done: Option<FinishReason>,
}

/// Runs every request to completion as one batch; `on_text(i, piece)` receives request `i`'s
/// newly decoded text as it is generated.
pub fn generate(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    requests: Vec<GenerationRequest>,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<(Vec<Generation>, Timing)> {
    let mut timing = Timing::default();
    let vocab = model.info().vocab_size;
    let mut active: Vec<Active> = Vec::with_capacity(requests.len());
    for r in &requests {
        if r.prompt.is_empty() {
            return Err(crate::error::bad_request(
                "prompt",
                "[]",
                "empty: nothing to condition on",
            ));
        }
        if let Some(&bad) = r.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(crate::error::bad_request(
                "prompt",
                format!("token {bad}"),
                format!("outside the vocabulary of {vocab}"),
            ));
        }
    }
    for r in requests {
        let seq = match model.new_sequence() {
            Ok(s) => s,
            Err(e) => {
                for a in &active {
                    model.free_sequence(a.seq);
                }
                return Err(e);
            }
        };
        active.push(Active {
            seq,
            sampler: SequenceSampler::new(r.pipeline, r.seed, 0, r.logprobs),
            prompt_len: r.prompt.len(),
            history: r.prompt,
            stream: TokenStream::default(),
            text: String::new(),
            emitted: 0,
            gen: Vec::new(),
            logprobs: Vec::new(),
            want_logprobs: r.logprobs > 0,
            max_new: r.max_new_tokens,
            stop: r.stop,
            done: None,
        });
    }
    let result = run(model, tok, &mut active, &mut timing, on_text);
    for a in &active {
        model.free_sequence(a.seq);
    }
    result?;
    let out = active
        .into_iter()
        .map(|a| Generation {
            usage: Usage {
                prompt_tokens: a.prompt_len,
                completion_tokens: a.gen.len(),
                total_tokens: a.prompt_len + a.gen.len(),
            },
            text: a.text,
            tokens: a.gen,
            finish_reason: a.done.unwrap_or(FinishReason::Length),
            logprobs: a.logprobs,
        })
        .collect();
    Ok((out, timing))
}

fn run(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    active: &mut [Active],
    timing: &mut Timing,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<()> {
    // Prefill every prompt in one batch.
    let t0 = Instant::now();
    let feeds: Vec<Feed<'_>> = active
        .iter()
        .map(|a| Feed::tokens(a.seq, &a.history))
        .collect();
    let mut logits = model.forward(&feeds)?.logits;
    timing.prefill += t0.elapsed();
    timing.prefill_tokens += active.iter().map(|a| a.prompt_len).sum::<usize>();
    // Rows of `logits` belong to these requests, in order.
    let mut rows: Vec<usize> = (0..active.len())
        .filter(|&i| active[i].max_new > 0)
        .collect();
    for a in active.iter_mut().filter(|a| a.max_new == 0) {
        a.done = Some(FinishReason::Length);
    }
    let eos = tok.eos_ids().to_vec();
    while !rows.is_empty() {
        let ts = Instant::now();
        let mut next = Vec::with_capacity(rows.len());
        for (r, &i) in rows.iter().enumerate() {
            let a = &mut active[i];
            let ctx = Context::new(&a.history, a.prompt_len);
            let s = a.sampler.sample(logits.row(r), &ctx, r)?;
            let t = s.token;
            if a.want_logprobs {
                a.logprobs.push(s);
            }
            a.gen.push(t);
            a.history.push(t);
            if eos.contains(&t) {
                a.done = Some(FinishReason::Eos);
                continue;
            }
            if let Some(piece) = a.stream.push(tok, t)? {
                let start = a.text.len();
                a.text.push_str(&piece);
                // A stop string may straddle pieces: search from just before the new text.
                let longest = a.stop.iter().map(|s| s.len()).max().unwrap_or(0);
                let from = floor_boundary(&a.text, start.saturating_sub(longest));
                let cut = a
                    .stop
                    .iter()
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| a.text[from..].find(s.as_str()).map(|p| from + p))
                    .min();
                if let Some(cut) = cut {
                    a.text.truncate(cut);
                    if cut > a.emitted {
                        on_text(i, &a.text[a.emitted..cut]);
                    }
                    a.emitted = cut;
                    a.done = Some(FinishReason::Stop);
                    continue;
                }
                // Hold back a tail that could still grow into a stop string.
                let safe = a.text.len() - held_back(&a.text, &a.stop);
                if safe > a.emitted {
                    on_text(i, &a.text[a.emitted..safe]);
                    a.emitted = safe;
                }
            }
            if a.gen.len() >= a.max_new {
                a.done = Some(FinishReason::Length);
                continue;
            }
            next.push(i);
        }
        timing.sampling += ts.elapsed();
        rows = next;
        if rows.is_empty() {
            break;
        }
        let td = Instant::now();
        let last: Vec<[u32; 1]> = rows
            .iter()
            .map(|&i| [*active[i].history.last().unwrap_or(&0)])
            .collect();
        let feeds: Vec<Feed<'_>> = rows
            .iter()
            .zip(&last)
            .map(|(&i, t)| Feed::tokens(active[i].seq, t))
            .collect();
        logits = model.forward(&feeds)?.logits;
        timing.decode += td.elapsed();
        timing.decode_tokens += rows.len();
    }
    // Flush text held back (incomplete UTF-8, a possible stop-string prefix) at the end.
    for (i, a) in active.iter_mut().enumerate() {
        if a.done != Some(FinishReason::Stop) {
            if let Some(rest) = a.stream.finish(tok)? {
                a.text.push_str(&rest);
            }
            if a.text.len() > a.emitted {
                on_text(i, &a.text[a.emitted..]);
                a.emitted = a.text.len();
            }
        }
    }
    Ok(())
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len()))
        .rev()
        .find(|&k| s.is_char_boundary(k))
        .unwrap_or(0)
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            (1..s.len())
                .rev()
                .filter(move |&k| s.is_char_boundary(k))
                .map(move |k| &s[..k])
        })
        .filter(|p| text.ends_with(p))
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdback_of_stop_prefixes() {
        let stops = vec!["\n\nUser:".to_string(), "END".to_string()];
        assert_eq!(held_back("hello\n\nUs", &stops), 4);
        assert_eq!(held_back("hello EN", &stops), 2);
        assert_eq!(held_back("hello", &stops), 0);
        assert_eq!(floor_boundary("aé", 2), 1);
    }
}
