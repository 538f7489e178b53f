//! The OpenAI wire format of answers: completion and chat-completion objects, their stream
//! chunks, usage, finish reasons and log-probabilities (chat's `logprobs.content` and
//! completions' `tokens` / `token_logprobs` / `top_logprobs` / `text_offset`).
//!
//! Log-probabilities are those of the *final* distribution — after the request's sampling
//! pipeline — from which the token was drawn.

use adasamp_engine::tokenizer::TextTokenizer;
use adasamp_engine::{FinishReason, Usage};
use adasamp_sampling::Sample;
use serde_json::{json, Map, Value};

use crate::request::Endpoint;

/// OpenAI's name of a finish reason (end-of-sequence is a `stop`).
pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Eos | FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// `{"prompt_tokens", "completion_tokens", "total_tokens"}`.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    })
}

/// The text of one token (as it decodes alone; a partial character shows as U+FFFD).
fn token_text(tok: &TextTokenizer, id: u32) -> String {
    tok.decode(&[id], false).unwrap_or_default()
}

/// Log-probabilities in an endpoint's shape, built token by token (a stream's chunks each get
/// the tokens of their step; the completions `text_offset` runs on across chunks).
#[derive(Debug, Clone)]
pub struct LogprobWriter {
    endpoint: Endpoint,
    /// How many top tokens to report per position.
    top: usize,
    /// Completions: offset of the next token in the choice's text.
    offset: usize,
}

impl LogprobWriter {
    /// A writer for `endpoint` reporting `top` alternatives per token.
    pub fn new(endpoint: Endpoint, top: usize) -> Self {
        Self {
            endpoint,
            top,
            offset: 0,
        }
    }

    /// The `logprobs` object for `samples`.
    pub fn write(&mut self, samples: &[Sample], tok: &TextTokenizer) -> Value {
        match self.endpoint {
            Endpoint::Chat => {
                let content: Vec<Value> = samples
                    .iter()
                    .map(|s| {
                        let t = token_text(tok, s.token);
                        let top: Vec<Value> = s
                            .top
                            .iter()
                            .take(self.top)
                            .map(|p| {
                                let pt = token_text(tok, p.id);
                                json!({"token": pt, "logprob": p.logprob, "bytes": pt.as_bytes()})
                            })
                            .collect();
                        json!({"token": t, "logprob": s.logprob, "bytes": t.as_bytes(),
                               "top_logprobs": top})
                    })
                    .collect();
                json!({ "content": content })
            }
            Endpoint::Completions => {
                let mut tokens = Vec::new();
                let mut lps = Vec::new();
                let mut tops = Vec::new();
                let mut offsets = Vec::new();
                for s in samples {
                    let t = token_text(tok, s.token);
                    offsets.push(self.offset);
                    self.offset += t.len();
                    tokens.push(Value::String(t));
                    lps.push(json!(s.logprob));
                    let mut m = Map::new();
                    for p in s.top.iter().take(self.top) {
                        m.insert(token_text(tok, p.id), json!(p.logprob));
                    }
                    tops.push(Value::Object(m));
                }
                json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
                       "text_offset": offsets})
            }
        }
    }
}

/// The `object` of a whole answer.
pub fn object(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Completions => "text_completion",
        Endpoint::Chat => "chat.completion",
    }
}

/// The `object` of a stream chunk.
pub fn chunk_object(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Completions => "text_completion",
        Endpoint::Chat => "chat.completion.chunk",
    }
}

/// One choice of a whole answer.
pub fn choice_json(
    endpoint: Endpoint,
    index: usize,
    text: &str,
    logprobs: Option<Value>,
    finish: FinishReason,
) -> Value {
    let lp = logprobs.unwrap_or(Value::Null);
    match endpoint {
        Endpoint::Completions => json!({"index": index, "text": text, "logprobs": lp,
            "finish_reason": finish_reason(finish)}),
        Endpoint::Chat => json!({"index": index,
            "message": {"role": "assistant", "content": text},
            "logprobs": lp, "finish_reason": finish_reason(finish)}),
    }
}

/// One choice of a stream chunk: a text delta (chat: `delta.content`; the first chunk of a
/// chat choice also carries `delta.role`), its log-probabilities, and the finish reason in the
/// choice's last chunk.
pub fn chunk_choice_json(
    endpoint: Endpoint,
    index: usize,
    text: Option<&str>,
    first: bool,
    logprobs: Option<Value>,
    finish: Option<FinishReason>,
) -> Value {
    let lp = logprobs.unwrap_or(Value::Null);
    let fr = finish.map(finish_reason);
    match endpoint {
        Endpoint::Completions => json!({"index": index, "text": text.unwrap_or(""),
            "logprobs": lp, "finish_reason": fr}),
        Endpoint::Chat => {
            let mut delta = Map::new();
            if first {
                delta.insert("role".into(), json!("assistant"));
            }
            if let Some(t) = text {
                delta.insert("content".into(), json!(t));
            }
            json!({"index": index, "delta": delta, "logprobs": lp, "finish_reason": fr})
        }
    }
}
