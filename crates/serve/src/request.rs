//! A completion or chat-completion request body, parsed and range-checked: the prompt, the
//! generation controls (`n`, `max_tokens`, `stop`, `seed`, `logprobs`, `stream`) and the
//! sampling fields (see [`crate::sampling`]). Every error is a 400 naming the field.

use adasamp_engine::chat::ChatMessage;
use serde_json::Value;

use crate::error::ApiError;
use crate::fields::{describe, Fields};
use crate::sampling::SamplingFields;

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/completions`: a raw text prompt.
    Completions,
    /// `POST /v1/chat/completions`: messages through the chat template.
    Chat,
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Raw text (completions).
    Text(String),
    /// Token ids (completions).
    Tokens(Vec<u32>),
    /// A conversation (chat).
    Chat(Vec<ChatMessage>),
}

/// Server limits a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `max_tokens`, and largest `n × max_tokens`.
    pub max_tokens_cap: usize,
    /// Largest `n`.
    pub max_n: usize,
    /// Largest `top_logprobs` / completions `logprobs`.
    pub max_logprobs: usize,
}

/// Most stop strings a request may give.
pub const MAX_STOP: usize = 16;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 256;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The prompt.
    pub prompt: Prompt,
    /// Choices to generate (≥ 1).
    pub n: usize,
    /// Token limit per choice (default: `max_tokens_cap / n`).
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Seed of choice 0 (choice k uses `seed + k`); `None` = the server picks one.
    pub seed: Option<u64>,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// With `stream`: a last chunk with the usage.
    pub include_usage: bool,
    /// Report log-probabilities: `Some(k)` = the chosen token and the top k.
    pub logprobs: Option<usize>,
    /// Sampling fields.
    pub sampling: SamplingFields,
    /// Name of an installed sampler.
    pub sampler: Option<String>,
    /// The `model` field as sent (echoed nowhere; any name is accepted).
    pub model: Option<String>,
}

/// Parses and checks the body of a request to `endpoint`.
pub fn parse(body: &Value, endpoint: Endpoint, limits: &Limits) -> Result<ParsedRequest, ApiError> {
    let mut f = Fields::of(body)?;
    let model = f.str("model")?.map(str::to_string);
    let prompt = match endpoint {
        Endpoint::Completions => completion_prompt(f.raw("prompt"))?,
        Endpoint::Chat => Prompt::Chat(messages(f.raw("messages"))?),
    };
    let n = f
        .i64_in(
            "n",
            |v| v >= 1 && v as usize <= limits.max_n,
            &format!("must be in [1, {}]", limits.max_n),
        )?
        .unwrap_or(1) as usize;
    let cap = limits.max_tokens_cap;
    let mut max_tokens = None;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = f.i64_in(key, |v| v >= 1, "must be ≥ 1")? {
            if v as u64 > cap as u64 {
                return Err(ApiError::invalid(
                    key,
                    format!("{v} is above this server's cap of {cap} tokens"),
                ));
            }
            if max_tokens.is_some_and(|m| m != v as usize) {
                return Err(ApiError::invalid(
                    key,
                    "differs from max_tokens; give one of them",
                ));
            }
            max_tokens = Some(v as usize);
        }
    }
    let max_tokens = match max_tokens {
        Some(m) => {
            if n * m > cap {
                return Err(ApiError::invalid(
                    "n",
                    format!(
                        "n × max_tokens = {n} × {m} is above this server's cap of {cap} tokens"
                    ),
                ));
            }
            m
        }
        None => (cap / n).max(1),
    };
    let stop = f.strings("stop", MAX_STOP)?;
    if let Some(s) = stop.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "a stop string of {} bytes; at most {MAX_STOP_BYTES}",
                s.len()
            ),
        ));
    }
    let seed = match f.raw("seed") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::invalid(
                "seed",
                format!("{} is not an integer in [0, 2^64)", describe(v)),
            )
        })?),
    };
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.raw("stream_options") {
        None => false,
        Some(Value::Object(_)) => {
            let opts = f.raw("stream_options").cloned().unwrap_or(Value::Null);
            let mut o = Fields::of(&opts)?;
            let u = o.bool("include_usage")?.unwrap_or(false);
            o.finish()
                .map_err(|e| ApiError::invalid("stream_options", e.message))?;
            u
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "stream_options",
                format!("expected an object, got {}", describe(v)),
            ))
        }
    };
    if include_usage && !stream {
        return Err(ApiError::invalid(
            "stream_options",
            "only allowed with stream: true",
        ));
    }
    let max_lp = limits.max_logprobs;
    let logprobs = match endpoint {
        Endpoint::Chat => {
            let on = f.bool("logprobs")?.unwrap_or(false);
            let top = f.i64_in(
                "top_logprobs",
                |v| v >= 0 && v as usize <= max_lp,
                &format!("must be in [0, {max_lp}]"),
            )?;
            if top.is_some() && !on {
                return Err(ApiError::invalid("top_logprobs", "needs logprobs: true"));
            }
            on.then(|| top.unwrap_or(0) as usize)
        }
        Endpoint::Completions => f
            .i64_in(
                "logprobs",
                |v| v >= 0 && v as usize <= max_lp,
                &format!("must be in [0, {max_lp}]"),
            )?
            .map(|k| k as usize),
    };
    let sampler = f.str("sampler")?.map(str::to_string);
    let sampling = SamplingFields::parse(&mut f)?;
    // OpenAI fields accepted with no effect, or only at their default.
    f.ignore("user");
    f.ignore("metadata");
    f.ignore("store");
    f.ignore("service_tier");
    if endpoint == Endpoint::Completions {
        if f.bool("echo")? == Some(true) {
            return Err(ApiError::invalid("echo", "true is not supported"));
        }
        if let Some(b) = f.i64("best_of")? {
            if b as u64 != n as u64 {
                return Err(ApiError::invalid(
                    "best_of",
                    "only best_of = n is supported",
                ));
            }
        }
        if f.str("suffix")?.is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid("suffix", "not supported"));
        }
    }
    f.finish()?;
    Ok(ParsedRequest {
        endpoint,
        prompt,
        n,
        max_tokens,
        stop,
        seed,
        stream,
        include_usage,
        logprobs,
        sampling,
        sampler,
        model,
    })
}

/// A completions `prompt`: a string, a list of one string, or a list of token ids.
fn completion_prompt(v: Option<&Value>) -> Result<Prompt, ApiError> {
    let bad = |what: String| ApiError::invalid("prompt", what);
    match v {
        None => Err(bad("required".into())),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [] => Err(bad("empty".into())),
            [Value::String(s)] => Ok(Prompt::Text(s.clone())),
            [Value::String(_), ..] => Err(bad(format!(
                "{} prompts; one prompt per request (use n for several choices)",
                a.len()
            ))),
            ids => ids
                .iter()
                .map(|x| {
                    x.as_u64()
                        .filter(|&t| t <= u32::MAX as u64)
                        .map(|t| t as u32)
                        .ok_or_else(|| bad(format!("expected token ids, got {}", describe(x))))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Prompt::Tokens),
        },
        Some(other) => Err(bad(format!(
            "expected a string or a list of token ids, got {}",
            describe(other)
        ))),
    }
}

/// Chat `messages`: `[{role, content}]`, content a string or a list of `{type: text, text}`.
fn messages(v: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let bad = |what: String| ApiError::invalid("messages", what);
    let Some(v) = v else {
        return Err(bad("required".into()));
    };
    let Value::Array(list) = v else {
        return Err(bad(format!("expected a list, got {}", describe(v))));
    };
    if list.is_empty() {
        return Err(bad("empty".into()));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(o) = m else {
                return Err(bad(format!(
                    "[{i}]: expected an object, got {}",
                    describe(m)
                )));
            };
            let role = match o.get("role") {
                Some(Value::String(r))
                    if matches!(r.as_str(), "system" | "developer" | "user" | "assistant") =>
                {
                    // The chat templates know `system`; `developer` is OpenAI's newer name.
                    if r == "developer" {
                        "system".to_string()
                    } else {
                        r.clone()
                    }
                }
                Some(r) => {
                    return Err(bad(format!(
                        "[{i}].role: {} is not system, developer, user or assistant",
                        describe(r)
                    )))
                }
                None => return Err(bad(format!("[{i}].role: required"))),
            };
            let content = match o.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| match (p.get("type"), p.get("text")) {
                        (Some(Value::String(t)), Some(Value::String(s))) if t == "text" => {
                            Ok(s.as_str())
                        }
                        _ => Err(bad(format!(
                            "[{i}].content: only text parts {{type: text, text}} are supported"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(""),
                Some(other) => {
                    return Err(bad(format!(
                        "[{i}].content: expected a string, got {}",
                        describe(other)
                    )))
                }
                None => return Err(bad(format!("[{i}].content: required"))),
            };
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "role" | "content" | "name"))
            {
                return Err(bad(format!("[{i}].{k}: unknown field")));
            }
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_tokens_cap: 100,
        max_n: 8,
        max_logprobs: 20,
    };

    fn err(v: Value, e: Endpoint) -> ApiError {
        parse(&v, e, &LIMITS).unwrap_err()
    }

    #[test]
    fn parses_a_full_chat_request() {
        let r = parse(
            &json!({"model": "m", "messages": [{"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "n": 2, "max_completion_tokens": 10, "stop": "\n", "seed": 7,
                "stream": true, "stream_options": {"include_usage": true},
                "logprobs": true, "top_logprobs": 3, "user": "u"}),
            Endpoint::Chat,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(r.n, 2);
        assert_eq!(r.max_tokens, 10);
        assert_eq!(r.stop, ["\n"]);
        assert_eq!(r.logprobs, Some(3));
        assert!(r.include_usage);
        assert_eq!(
            r.prompt,
            Prompt::Chat(vec![
                ChatMessage::system("be brief"),
                ChatMessage::user("hi")
            ])
        );
    }

    #[test]
    fn defaults_and_caps() {
        let r = parse(
            &json!({"prompt": "x", "n": 3}),
            Endpoint::Completions,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(r.max_tokens, 33);
        let r = parse(
            &json!({"prompt": "x", "seed": u64::MAX}),
            Endpoint::Completions,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(r.seed, Some(u64::MAX));
        assert_eq!(r.logprobs, None);
        let e = err(
            json!({"prompt": "x", "max_tokens": 101}),
            Endpoint::Completions,
        );
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = err(
            json!({"prompt": "x", "max_tokens": 60, "n": 2}),
            Endpoint::Completions,
        );
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = err(json!({"prompt": "x", "n": 0}), Endpoint::Completions);
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = err(json!({"prompt": "x", "n": 1e9}), Endpoint::Completions);
        assert_eq!(e.param.as_deref(), Some("n"));
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, field, ep) in [
            (json!({"prompt": 3}), "prompt", Endpoint::Completions),
            (
                json!({"prompt": ["a", "b"]}),
                "prompt",
                Endpoint::Completions,
            ),
            (json!({}), "messages", Endpoint::Chat),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages",
                Endpoint::Chat,
            ),
            (
                json!({"messages": [{"role": "user"}]}),
                "messages",
                Endpoint::Chat,
            ),
            (
                json!({"prompt": "x", "stream": "yes"}),
                "stream",
                Endpoint::Completions,
            ),
            (
                json!({"prompt": "x", "logprobs": 21}),
                "logprobs",
                Endpoint::Completions,
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
                "top_logprobs",
                Endpoint::Chat,
            ),
            (
                json!({"prompt": "x", "stop": [1]}),
                "stop",
                Endpoint::Completions,
            ),
            (
                json!({"prompt": "x", "seed": -1}),
                "seed",
                Endpoint::Completions,
            ),
            (
                json!({"prompt": "x", "stream_options": {"include_usage": true}}),
                "stream_options",
                Endpoint::Completions,
            ),
            (
                json!({"prompt": "x", "echo": true}),
                "echo",
                Endpoint::Completions,
            ),
            (
                json!({"prompt": "x", "frobnicate": 1}),
                "frobnicate",
                Endpoint::Completions,
            ),
        ] {
            let e = err(body.clone(), ep);
            assert_eq!(e.param.as_deref(), Some(field), "{body}: {e}");
            assert_eq!(e.status.as_u16(), 400);
        }
    }
}
