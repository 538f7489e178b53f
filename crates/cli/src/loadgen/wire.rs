//! The OpenAI wire format as a load generator sees it: streamed request bodies, the meaning of
//! each streamed chunk, and error bodies.

use serde_json::{json, Map, Value};

/// Which OpenAI endpoint the load is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /v1/chat/completions` (the prompt as one user message).
    Chat,
    /// `POST /v1/completions` (the prompt as raw text).
    Completions,
}

impl Endpoint {
    /// The endpoint's path below the server's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "v1/chat/completions",
            Endpoint::Completions => "v1/completions",
        }
    }
}

/// What every request of a run has in common.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Endpoint the requests go to.
    pub endpoint: Endpoint,
    /// The `model` field.
    pub model: String,
    /// The `max_tokens` field.
    pub max_tokens: u32,
    /// The `temperature` field (left out when `None`: the server's default).
    pub temperature: Option<f64>,
    /// Further fields (e.g. `min_p`), set last so they override the ones above.
    pub extra: Map<String, Value>,
}

/// The JSON body of one streamed request for `prompt`: `stream: true` with
/// `stream_options.include_usage`, so the server reports the generated token count at the end.
pub fn request_body(t: &RequestTemplate, prompt: &str) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(t.model));
    match t.endpoint {
        Endpoint::Chat => body.insert(
            "messages".into(),
            json!([{"role": "user", "content": prompt}]),
        ),
        Endpoint::Completions => body.insert("prompt".into(), json!(prompt)),
    };
    body.insert("max_tokens".into(), json!(t.max_tokens));
    if let Some(temp) = t.temperature {
        body.insert("temperature".into(), json!(temp));
    }
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    for (k, v) in &t.extra {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// The meaning of one streamed event's data.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// `[DONE]`: the stream is complete.
    Done,
    /// A chunk. `token` when it carries generated output (non-empty `delta.content` for chat,
    /// `text` for completions, or logprob entries); `completion_tokens` when it carries usage.
    Chunk {
        /// Whether the chunk carries generated output.
        token: bool,
        /// `usage.completion_tokens`, when present.
        completion_tokens: Option<u64>,
    },
    /// An error reported inside the stream (an `error` object), with its message.
    Error(String),
}

/// Interprets the data of one streamed event; `Err` with a description when it is not JSON or not
/// an object.
pub fn parse_stream_data(data: &str) -> Result<StreamItem, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(StreamItem::Done);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| format!("chunk is not JSON ({e})"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("chunk is not a JSON object: {}", clip(data)))?;
    if let Some(err) = obj.get("error") {
        return Ok(StreamItem::Error(error_text(err)));
    }
    let token = obj
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| choices.iter().any(choice_has_output));
    let completion_tokens = obj
        .get("usage")
        .and_then(|u| u.get("completion_tokens"))
        .and_then(Value::as_u64);
    Ok(StreamItem::Chunk {
        token,
        completion_tokens,
    })
}

fn choice_has_output(c: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let logprobs = c
        .get("logprobs")
        .and_then(|l| l.get("content").or_else(|| l.get("tokens")))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    non_empty(c.get("text")) || non_empty(c.get("delta").and_then(|d| d.get("content"))) || logprobs
}

/// A short description of a failed response: the message of an OpenAI-style
/// `{"error": {"message": …}}` body, or else the body's text (clipped).
pub fn error_body_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("error").is_some() => error_text(&v["error"]),
        _ if text.trim().is_empty() => "(empty body)".into(),
        _ => clip(text.trim()),
    }
}

/// The message of an `error` value: its `message` field, a string, or the JSON itself.
fn error_text(err: &Value) -> String {
    match err {
        Value::String(s) => clip(s),
        _ => err
            .get("message")
            .and_then(Value::as_str)
            .map(clip)
            .unwrap_or_else(|| clip(&err.to_string())),
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(endpoint: Endpoint) -> RequestTemplate {
        RequestTemplate {
            endpoint,
            model: "m".into(),
            max_tokens: 64,
            temperature: Some(0.8),
            extra: serde_json::from_str(r#"{"min_p":0.05,"max_tokens":9}"#).unwrap(),
        }
    }

    #[test]
    fn bodies_stream_with_usage_and_extra_fields_override() {
        let chat = request_body(&template(Endpoint::Chat), "hi");
        assert_eq!(chat["messages"][0]["content"], "hi");
        assert_eq!(chat["messages"][0]["role"], "user");
        assert_eq!(chat["stream"], true);
        assert_eq!(chat["stream_options"]["include_usage"], true);
        assert_eq!(chat["min_p"], 0.05);
        assert_eq!(chat["max_tokens"], 9);
        assert_eq!(chat["temperature"], 0.8);
        let comp = request_body(&template(Endpoint::Completions), "hi");
        assert_eq!(comp["prompt"], "hi");
        assert!(comp.get("messages").is_none());
        let mut t = template(Endpoint::Chat);
        t.temperature = None;
        assert!(request_body(&t, "x").get("temperature").is_none());
    }

    #[test]
    fn chunks_are_classified() {
        let chunk = |s: &str| parse_stream_data(s).unwrap();
        assert_eq!(chunk(" [DONE] "), StreamItem::Done);
        let tok = StreamItem::Chunk {
            token: true,
            completion_tokens: None,
        };
        let empty = StreamItem::Chunk {
            token: false,
            completion_tokens: None,
        };
        assert_eq!(chunk(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#), tok);
        assert_eq!(chunk(r#"{"choices":[{"text":" there","index":0}]}"#), tok);
        // The role-only first chunk, a null content and the finish chunk carry no token.
        assert_eq!(
            chunk(r#"{"choices":[{"delta":{"role":"assistant","content":null}}]}"#),
            empty
        );
        assert_eq!(
            chunk(r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#),
            empty
        );
        // A token that decodes to no text yet still shows through its logprobs.
        assert_eq!(
            chunk(
                r#"{"choices":[{"delta":{"content":""},"logprobs":{"content":[{"token":"\u00e2","logprob":-1.0}]}}]}"#
            ),
            tok
        );
        assert_eq!(
            chunk(
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":64,"total_tokens":69}}"#
            ),
            StreamItem::Chunk {
                token: false,
                completion_tokens: Some(64)
            }
        );
    }

    #[test]
    fn errors_inside_the_stream_and_bad_chunks() {
        assert_eq!(
            parse_stream_data(r#"{"error":{"message":"out of memory","type":"server_error"}}"#)
                .unwrap(),
            StreamItem::Error("out of memory".into())
        );
        assert_eq!(
            parse_stream_data(r#"{"error":"plain"}"#).unwrap(),
            StreamItem::Error("plain".into())
        );
        assert!(parse_stream_data("{\"choices\":[").is_err());
        assert!(parse_stream_data("[1,2]").is_err());
    }

    #[test]
    fn error_bodies_give_their_message() {
        let openai = br#"{"error":{"message":"top_p must be in (0, 1], got 7","type":"invalid_request_error","param":"top_p","code":null}}"#;
        assert_eq!(error_body_message(openai), "top_p must be in (0, 1], got 7");
        assert_eq!(
            error_body_message(b"Service Unavailable\n"),
            "Service Unavailable"
        );
        assert_eq!(error_body_message(b""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(error_body_message(long.as_bytes()).chars().count(), 201);
        assert_eq!(
            error_body_message(br#"{"error":{"code":500}}"#),
            r#"{"code":500}"#
        );
    }
}
