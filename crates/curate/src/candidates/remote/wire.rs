//! One chat-completion request to an OpenAI-compatible server and what its answer means: a
//! generation, or a failure a retry may cure (the server is down, overloaded or failed) or not
//! (the server refuses the request itself).

use adasamp_engine::{FinishReason, Usage};
use serde_json::{json, Map, Value};

use crate::candidates::Outcome;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server is unreachable, timed out, failed (5xx) or answered nonsense: retry, and
    /// count it against the endpoint.
    Transient(String),
    /// The server is busy (408, 429): retry later, the endpoint is fine.
    Busy(String),
    /// The server refuses the request itself (another 4xx): retrying cannot help.
    Refused(String),
}

impl Failure {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(m) | Failure::Busy(m) | Failure::Refused(m) => m,
        }
    }
}

/// The body of a chat-completion request: the system message (if any) and the prompt, one
/// choice of at most `max_tokens` tokens sampled with `seed`, and the sampling fields.
pub fn chat_body(
    model: &str,
    system: Option<&str>,
    prompt: &str,
    max_tokens: usize,
    seed: u64,
    sampling: &Map<String, Value>,
) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": prompt}));
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("n".into(), json!(1));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("seed".into(), json!(seed));
    body.insert("stream".into(), json!(false));
    for (k, v) in sampling {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// The meaning of an HTTP answer with `status` and `body` to a chat-completion request.
pub fn read_answer(status: u16, body: &[u8]) -> Result<Outcome, Failure> {
    let text = || {
        let t: String = String::from_utf8_lossy(body).chars().take(300).collect();
        format!("HTTP {status}: {}", t.trim())
    };
    match status {
        200 => {}
        408 | 429 => return Err(Failure::Busy(text())),
        400..=499 => return Err(Failure::Refused(text())),
        _ => return Err(Failure::Transient(text())),
    }
    let bad = |what: &str| Failure::Transient(format!("malformed answer ({what}): {}", text()));
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| bad("no choices[0]"))?;
    let content = match choice.get("message").and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(_) => return Err(bad("message.content is not text")),
    };
    let finish_reason = match choice.get("finish_reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r == "stop" => Some(FinishReason::Eos),
        Some(Value::String(r)) if r == "length" => Some(FinishReason::Length),
        Some(other) => {
            return Err(Failure::Transient(format!(
                "the generation ended with finish_reason {other}"
            )))
        }
    };
    let usage = match v.get("usage") {
        None | Some(Value::Null) => None,
        Some(u) => Some(serde_json::from_value::<Usage>(u.clone()).map_err(|_| bad("usage"))?),
    };
    Ok(Outcome {
        text: content,
        tokens: None,
        finish_reason,
        usage,
    })
}

/// Sends `body` to `url` (with a bearer `key`) and reads the answer.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<Outcome, Failure> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Transient(error_chain(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Failure::Transient(error_chain(&e)))?;
    read_answer(status, &bytes)
}

/// An error with its causes, on one line (reqwest's own message hides the cause, e.g.
/// "connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_messages_seed_and_fields() {
        let mut f = Map::new();
        f.insert("temperature".into(), json!(0.7));
        let b = chat_body("m", Some("sys"), "hi", 16, 3, &f);
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(b["messages"][1]["content"], "hi");
        assert_eq!(
            (b["seed"].clone(), b["max_tokens"].clone()),
            (json!(3), json!(16))
        );
        assert_eq!(b["temperature"], 0.7);
        let b = chat_body("m", None, "hi", 16, 3, &f);
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn answers_and_failures() {
        let ok = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let o = read_answer(200, ok).unwrap();
        assert_eq!(o.text, "Hello");
        assert_eq!(o.finish_reason, Some(FinishReason::Length));
        assert_eq!(o.usage.unwrap().completion_tokens, 2);
        assert!(o.tokens.is_none());
        assert!(
            matches!(read_answer(503, b"down"), Err(Failure::Transient(m)) if m.contains("503"))
        );
        assert!(matches!(read_answer(429, b""), Err(Failure::Busy(_))));
        assert!(
            matches!(read_answer(400, b"{\"error\":1}"), Err(Failure::Refused(m)) if m.contains("error"))
        );
        assert!(
            matches!(read_answer(200, b"<html>"), Err(Failure::Transient(m)) if m.contains("not JSON"))
        );
        assert!(matches!(
            read_answer(200, b"{\"choices\":[]}"),
            Err(Failure::Transient(_))
        ));
        let aborted = br#"{"choices":[{"message":{"content":"x"},"finish_reason":"abort"}]}"#;
        assert!(matches!(
            read_answer(200, aborted),
            Err(Failure::Transient(_))
        ));
    }
}
